"""The HTML pages. Every one works without JavaScript; every state change is a POST with a CSRF
token, except the RFC 8058 one-click unsubscribe, which mail providers send without cookies."""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from digest.compose import links, schedule_text
from digest.models import Frequency, Subscriber, SubscriberStatus
from digest.signup import (
    LinkError,
    confirm,
    confirm_max_age,
    request_new_link,
    request_signup,
    set_paused,
    subscriber_for,
    update_preferences,
)
from digest.subscribers import SubscriberError, unsubscribe
from digest.tokens import Purpose
from digest.web.app import check_csrf, limited, preview, render_page, web
from digest.web.forms import read_preferences, read_signup, topic_lines

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
ONE_CLICK = "One-Click"


def _form_values(form: Any) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _defaults() -> dict[str, str]:
    return {"frequency": "daily", "send_hour": "8", "timezone": "UTC", "weekly_day": "0", "max_papers": "25"}


def _index(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    w = web(request)
    values.setdefault("form", _defaults())
    values.setdefault("errors", {})
    return render_page(request, "index.html", status, zones=w.zones, frequencies=list(Frequency), **values)


def _forbidden(request: Request) -> HTMLResponse:
    return render_page(
        request, "message.html", 403, title="Please try again",
        text="This form expired or was sent from somewhere else. Reload the page and send it again.",
    )  # fmt: skip


def _too_many(request: Request, wait: int) -> HTMLResponse:
    when = f"{-(-wait // 60)} minutes" if wait >= 60 else f"{wait} seconds"
    response = render_page(
        request, "message.html", 429, title="Too many requests", text=f"Please wait {when} and try again."
    )
    response.headers["Retry-After"] = str(wait)
    return response


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    """The sign-up form."""
    return _index(request)


@router.post("/preview", response_class=HTMLResponse)
async def preview_page(request: Request) -> HTMLResponse:
    """The sign-up form again, with the papers of the last week the topics would have brought."""
    form = await request.form()
    if not check_csrf(request, form):
        return _forbidden(request)
    if (wait := limited(request, "preview", 120)) is not None:
        return _too_many(request, wait)
    values = _form_values(form)
    errors: dict[str, str] = {}
    read_preferences(values, errors)
    papers: list[Any] = []
    more = 0
    if "topics" not in errors:
        papers, more = preview(web(request), topic_lines(values.get("topics", "")), web(request).clock())
    return _index(request, 400 if "topics" in errors else 200, form=values, errors=errors, preview=papers, more=more)


@router.post("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request) -> HTMLResponse:
    """Validate, record a pending sign-up, queue the email; the answer never reveals the address's state."""
    w = web(request)
    form = await request.form()
    if not check_csrf(request, form):
        return _forbidden(request)
    if (wait := limited(request, "signup", w.settings.signup_rate_limit)) is not None:
        return _too_many(request, wait)
    values = _form_values(form)
    if values.get("website"):  # the honeypot: people never see this field, bots fill it in
        log.info("honeypot filled from %s", request.client.host if request.client else "?")
        return render_page(request, "check_inbox.html")
    result = read_signup(values)
    if result.errors or result.prefs is None:
        return _index(request, 400, form=values, errors=result.errors)
    with _session(request) as session:
        try:
            outcome = request_signup(session, w.settings, result.email, result.prefs, w.clock())
        except SubscriberError as exc:
            return _index(request, 400, form=values, errors={"email": str(exc)})
    log.info("sign-up request: %s", outcome.outcome.value)
    w.kick()
    return render_page(request, "check_inbox.html")


@router.post("/resend", response_class=HTMLResponse)
async def resend(request: Request) -> HTMLResponse:
    """'Send me a new link' from an expired or broken confirmation link (same neutral answer)."""
    w = web(request)
    form = await request.form()
    if not check_csrf(request, form):
        return _forbidden(request)
    if (wait := limited(request, "signup", w.settings.signup_rate_limit)) is not None:
        return _too_many(request, wait)
    with _session(request) as session, suppress(SubscriberError):  # the same answer either way
        request_new_link(session, w.settings, str(form.get("email", "")), w.clock())
    w.kick()
    return render_page(request, "check_inbox.html")


def _session(request: Request) -> Any:
    from digest.db import open_session

    return open_session(web(request).engine)


def _bad_link(request: Request) -> HTMLResponse:
    return render_page(request, "bad_link.html", 400)


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> HTMLResponse:
    """One button: mail scanners fetch links, so a GET never confirms anything."""
    w = web(request)
    with _session(request) as session:
        try:
            sub = subscriber_for(
                session, w.settings, Purpose.CONFIRM, token, now=w.clock(), max_age=confirm_max_age(w.settings)
            )
        except LinkError:
            return _bad_link(request)
    if sub.status is SubscriberStatus.UNSUBSCRIBED:
        return _bad_link(request)
    return render_page(
        request, "confirm.html", topics=sub.topics, email=sub.email, schedule=schedule_text(sub),
        done=sub.status is not SubscriberStatus.PENDING, manage_url=links(w.settings, sub, w.clock()).manage,
    )  # fmt: skip


@router.post("/confirm/{token}", response_class=HTMLResponse)
async def confirm_post(request: Request, token: str) -> HTMLResponse:
    """Activate the subscription."""
    w = web(request)
    form = await request.form()
    if not check_csrf(request, form):
        return _forbidden(request)
    with _session(request) as session:
        try:
            sub = confirm(session, w.settings, token, w.clock())
        except LinkError:
            return _bad_link(request)
        manage_url = links(w.settings, sub, w.clock()).manage
        return render_page(
            request, "confirmed.html", email=sub.email, schedule=schedule_text(sub), manage_url=manage_url
        )


def _manage_values(sub: Subscriber) -> dict[str, str]:
    return {
        "topics": "\n".join(sub.topics),
        "frequency": sub.frequency.value,
        "send_hour": str(sub.send_hour),
        "timezone": sub.timezone,
        "weekly_day": str(sub.weekly_day),
        "min_upvotes": "" if sub.min_upvotes is None else str(sub.min_upvotes),
        "max_papers": str(sub.max_papers),
    }


def _manage(request: Request, sub: Subscriber, status: int = 200, **values: Any) -> HTMLResponse:
    w = web(request)
    values.setdefault("form", _manage_values(sub))
    values.setdefault("errors", {})
    return render_page(
        request, "manage.html", status, sub=sub, zones=w.zones, frequencies=list(Frequency),
        unsubscribe_url=links(w.settings, sub, w.clock()).unsubscribe, **values,
    )  # fmt: skip


@router.get("/manage/{token}", response_class=HTMLResponse)
def manage_page(request: Request, token: str) -> HTMLResponse:
    """The reader's preferences, editable."""
    with _session(request) as session:
        try:
            sub = subscriber_for(session, web(request).settings, Purpose.MANAGE, token, now=web(request).clock())
        except LinkError:
            return _bad_link(request)
        if sub.status is SubscriberStatus.UNSUBSCRIBED:
            return render_page(request, "unsubscribed.html", email=sub.email)
        return _manage(request, sub)


@router.post("/manage/{token}", response_class=HTMLResponse)
async def manage_post(request: Request, token: str) -> HTMLResponse:
    """Save, pause, resume, or unsubscribe."""
    w = web(request)
    form = await request.form()
    if not check_csrf(request, form):
        return _forbidden(request)
    values = _form_values(form)
    action = values.get("action", "save")
    with _session(request) as session:
        try:
            sub = subscriber_for(session, w.settings, Purpose.MANAGE, token, now=w.clock())
            if sub.status is SubscriberStatus.UNSUBSCRIBED:
                return render_page(request, "unsubscribed.html", email=sub.email)
            return _apply_action(request, session, sub, action, values)
        except LinkError:
            return _bad_link(request)


def _apply_action(request: Request, session: Any, sub: Subscriber, action: str, values: dict[str, str]) -> HTMLResponse:
    w = web(request)
    now = w.clock()
    if action == "unsubscribe":
        unsubscribe(session, sub, now)
        return render_page(request, "unsubscribed.html", email=sub.email)
    if action not in ("save", "pause", "resume"):
        return _manage(request, sub, 400, errors={"action": "Unknown action."})
    if action in ("pause", "resume"):
        set_paused(session, sub, action == "pause", now)
        return _manage(request, sub, saved="Paused: no digests until you resume." if action == "pause" else "Resumed.")
    errors: dict[str, str] = {}
    prefs = read_preferences(values, errors)
    if prefs is None:
        return _manage(request, sub, 400, form=values, errors=errors)
    update_preferences(session, sub, prefs)
    return _manage(request, sub, saved="Saved. Your next digest follows these settings.")


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    """One button; the GET changes nothing (mail scanners fetch every link)."""
    with _session(request) as session:
        try:
            sub = subscriber_for(session, web(request).settings, Purpose.UNSUBSCRIBE, token, now=web(request).clock())
        except LinkError:
            return _bad_link(request)
        if sub.status is SubscriberStatus.UNSUBSCRIBED:
            return render_page(request, "unsubscribed.html", email=sub.email)
        return render_page(request, "unsubscribe.html", email=sub.email)


@router.post("/unsubscribe/{token}", response_model=None)
async def unsubscribe_post(request: Request, token: str) -> Response:
    """The button's POST (CSRF-checked), or RFC 8058 one-click (no cookies, answered 200, idempotent)."""
    form = await request.form()
    one_click = form.get("List-Unsubscribe") == ONE_CLICK
    if not one_click and not check_csrf(request, form):
        return _forbidden(request)
    with _session(request) as session:
        try:
            sub = subscriber_for(session, web(request).settings, Purpose.UNSUBSCRIBE, token, now=web(request).clock())
        except LinkError:
            if one_click:
                return PlainTextResponse("This unsubscribe link is not valid.", status_code=400)
            return _bad_link(request)
        unsubscribe(session, sub, web(request).clock())
        log.info("unsubscribed subscriber %s (%s)", sub.id, "one-click" if one_click else "page")
        if one_click:
            return PlainTextResponse("You are unsubscribed.")
        return render_page(request, "unsubscribed.html", email=sub.email)
