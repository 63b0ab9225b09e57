"""Rendering the HTML pages: the Jinja environment, a renderer that gives every form its CSRF field
(and a first-time visitor the cookie), and the pages any form or link can end on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from digest.render import topic_label
from digest.web.deps import BadLink, CsrfFailed, Unsubscribed, Web, WebDep, get_web
from digest.web.security import CSRF_COOKIE, CSRF_FIELD, csrf_token, new_csrf_cookie

TEMPLATES = Path(__file__).resolve().parent / "templates"


def environment() -> Environment:
    """The pages' templates, autoescaped."""
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html",), default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass(frozen=True)
class Renderer:
    """Renders pages for one request."""

    request: Request
    web: Web

    def render(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        """A page with a CSRF field for its forms, setting the CSRF cookie on the first visit."""
        settings = self.web.settings
        cookie = self.request.cookies.get(CSRF_COOKIE) or new_csrf_cookie()
        values.update(
            csrf_field=CSRF_FIELD,
            csrf_token=csrf_token(settings.secret_key, cookie),
            list_name=settings.list_name,
            topic_label=topic_label,
        )
        response = HTMLResponse(self.web.pages.get_template(name).render(values), status_code=status)
        if self.request.cookies.get(CSRF_COOKIE) != cookie:
            secure = settings.base_url.startswith("https://")
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict", secure=secure, path="/")
        return response


def get_renderer(request: Request, web: WebDep) -> Renderer:
    return Renderer(request, web)


PageDep = Annotated[Renderer, Depends(get_renderer)]


def too_many(page: Renderer, wait: int) -> HTMLResponse:
    """429, saying how long to wait."""
    when = f"{-(-wait // 60)} minutes" if wait >= 60 else f"{wait} seconds"
    response = page.render("message.html", 429, title="Too many requests", text=f"Please wait {when} and try again.")
    response.headers["Retry-After"] = str(wait)
    return response


def _forbidden(request: Request, _exc: Exception) -> HTMLResponse:
    return Renderer(request, get_web(request)).render(
        "message.html", 403, title="Please try again",
        text="This form expired or was sent from somewhere else. Reload the page and send it again.",
    )  # fmt: skip


def _bad_link(request: Request, _exc: Exception) -> HTMLResponse:
    return Renderer(request, get_web(request)).render("bad_link.html", 400)


def _unsubscribed(request: Request, exc: Exception) -> HTMLResponse:
    email = exc.email if isinstance(exc, Unsubscribed) else ""
    return Renderer(request, get_web(request)).render("unsubscribed.html", email=email)


# What the pages answer when their dependencies refuse a request (create_app registers these).
ERROR_PAGES: dict[type[Exception], Callable[[Request, Exception], HTMLResponse]] = {
    CsrfFailed: _forbidden,
    BadLink: _bad_link,
    Unsubscribed: _unsubscribed,
}
