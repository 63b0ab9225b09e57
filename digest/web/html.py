"""Rendering the HTML pages: the Jinja environment, a renderer that gives every form its CSRF field
(and a first-time visitor the cookie), and the pages any form or link can end on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from digest.latex import latex_to_text
from digest.render import topic_label
from digest.signup import next_link_at
from digest.web.deps import BadLink, CsrfFailed, RateLimited, Unsubscribed, Web, WebDep, get_web
from digest.web.forms import TITLE_DAYS
from digest.web.security import CSRF_FIELD, SECURE_CSRF_COOKIE, csrf_cookie_name, csrf_token, new_csrf_cookie

TEMPLATES = Path(__file__).resolve().parent / "templates"


def environment() -> Environment:
    """The pages' templates, autoescaped."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html",), default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["title_days"] = TITLE_DAYS  # the form macros say how far back a typed title is looked for
    env.filters["text"] = latex_to_text  # feed text (titles) as it reads: LaTeX as Unicode, never markup
    return env


@dataclass(frozen=True)
class Renderer:
    """Renders pages for one request."""

    request: Request
    web: Web

    def render(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        """A page with a CSRF field for its forms, setting the CSRF cookie on the first visit."""
        settings = self.web.settings
        cookie_name = csrf_cookie_name(settings.base_url)
        cookie = self.request.cookies.get(cookie_name) or new_csrf_cookie()
        values.update(
            csrf_field=CSRF_FIELD,
            csrf_token=csrf_token(settings.secret_key, cookie),
            list_name=settings.list_name,
            topic_label=topic_label,
        )
        response = HTMLResponse(self.web.pages.get_template(name).render(values), status_code=status)
        if self.request.cookies.get(cookie_name) != cookie:
            secure = cookie_name == SECURE_CSRF_COOKIE  # a __Host- cookie must be Secure
            response.set_cookie(cookie_name, cookie, httponly=True, samesite="strict", secure=secure, path="/")
        return response


def get_renderer(request: Request, web: WebDep) -> Renderer:
    return Renderer(request, web)


PageDep = Annotated[Renderer, Depends(get_renderer)]


def local_time(moment: datetime, zone: str) -> str:
    """'10:00 on Tuesday 1 December (Europe/Paris time)', or '… (UTC)'."""
    local = moment.astimezone(ZoneInfo(zone))
    label = "UTC" if zone == "UTC" else f"{zone} time"
    return f"{local:%H:%M} on {local:%A} {local.day} {local:%B} ({label})"


def check_inbox(page: Renderer, now: datetime, zone: str = "UTC") -> HTMLResponse:
    """The answer to every sign-up and every 'send me a new link', whatever the address's state: an
    email may be on its way or have gone out within the cooldown, and when a new one can be sent
    (a time that depends only on `now`, in the visitor's chosen zone when it is one we know)."""
    settings = page.web.settings
    when = next_link_at(settings, now)
    shown = local_time(when, zone if zone in page.web.zones else "UTC")
    return page.render("check_inbox.html", cooldown_hours=settings.confirm_cooldown_hours, new_link_after=shown)


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
def _rate_limited(request: Request, exc: Exception) -> Response:
    wait = exc.wait if isinstance(exc, RateLimited) else 60
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "too many requests"}, status_code=429, headers={"Retry-After": str(wait)})
    return too_many(Renderer(request, get_web(request)), wait)


ERROR_PAGES: dict[type[Exception], Callable[[Request, Exception], Response]] = {
    CsrfFailed: _forbidden,
    BadLink: _bad_link,
    Unsubscribed: _unsubscribed,
    RateLimited: _rate_limited,
}
