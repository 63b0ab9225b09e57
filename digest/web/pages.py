"""The HTML pages. Every one works without JavaScript; every state change is a POST with a CSRF
token, except the RFC 8058 one-click unsubscribe, which mail providers send without cookies."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import suppress
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlmodel import Session

from digest.archive import feed_url, reset_feed, set_feed_only
from digest.compose import links, schedule_text
from digest.feedback import record, undo
from digest.models import DEFAULT_PREFERENCES, Frequency, Subscriber, SubscriberStatus
from digest.signup import LinkError, confirm, request_new_link, request_signup, set_paused, update_preferences
from digest.subscribers import SubscriberError, unsubscribe
from digest.tokens import Purpose
from digest.web.deps import (
    CSRF_CHECKED,
    LINKS_LIMITED,
    BadLink,
    ConfirmReader,
    FeedbackLink,
    FormDep,
    LimitsDep,
    ManageReader,
    NowDep,
    PapersDep,
    ReadersDep,
    SessionDep,
    SettingsDep,
    StoredPapers,
    TrainDep,
    UnsubscribeReader,
    WebDep,
    require_csrf,
)
from digest.web.forms import (
    form_values,
    manage_values,
    preview_preferences,
    read_preferences,
    read_signup,
    split_examples,
)
from digest.web.html import PageDep, Renderer, check_inbox
from digest.web.previews import lookback_of, preview
from digest.web.reading import past_digests

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
ONE_CLICK = "One-Click"
PREVIEWS_PER_WINDOW = 120


def _shown(form: Mapping[str, str]) -> dict[str, str]:
    """The preference fields a form shows: what was sent, and the defaults for what was not."""
    return {**form_values(DEFAULT_PREFERENCES), **form}


def _index(page: Renderer, status: int = 200, **values: Any) -> HTMLResponse:
    values["form"] = _shown(values.get("form", {}))
    values.setdefault("errors", {})
    return page.render("index.html", status, zones=page.web.zones, frequencies=list(Frequency), **values)


@router.get("/", response_class=HTMLResponse)
def index(page: PageDep) -> HTMLResponse:
    """The sign-up form."""
    return _index(page)


@router.post("/preview", response_class=HTMLResponse, dependencies=[CSRF_CHECKED])
def preview_page(page: PageDep, form: FormDep, limits: LimitsDep, papers: PapersDep, now: NowDep) -> HTMLResponse:
    """The sign-up form again, with what these settings would have brought in the last week."""
    limits.check("preview", PREVIEWS_PER_WINDOW)
    errors: dict[str, str] = {}
    prefs = preview_preferences(form, errors, papers.titled)
    if prefs is None:
        return _index(page, 400, form=form, errors=errors)
    shown = preview(page.web.previews, prefs, now, lookback_of(page.web.settings))
    return _index(page, form=form, errors=errors, preview=shown)


@router.post("/subscribe", response_class=HTMLResponse, dependencies=[CSRF_CHECKED])
def subscribe(
    page: PageDep, form: FormDep, limits: LimitsDep, session: SessionDep, papers: PapersDep, web: WebDep, now: NowDep
) -> HTMLResponse:
    """Validate, record a pending sign-up, queue the email; the answer never reveals the address's state."""
    limits.check("signup", web.settings.signup_rate_limit)
    zone = form.get("timezone", "").strip()
    if form.get("website"):  # the honeypot: people never see this field, bots fill it in
        log.info("honeypot filled from %s", limits.visitor)
        return check_inbox(page, now, zone)
    result = read_signup(form, papers.titled)
    if result.errors or result.prefs is None:
        return _index(page, 400, form=form, errors=result.errors)
    try:
        outcome = request_signup(session, web.settings, result.email, result.prefs, now)
    except SubscriberError as exc:
        return _index(page, 400, form=form, errors={"email": str(exc)})
    log.info("sign-up request: %s", outcome.outcome.value)
    web.kick()
    return check_inbox(page, now, zone)


@router.post("/resend", response_class=HTMLResponse, dependencies=[CSRF_CHECKED])
def resend(
    page: PageDep, form: FormDep, limits: LimitsDep, session: SessionDep, web: WebDep, now: NowDep
) -> HTMLResponse:
    """'Send me a new link' from an expired or broken confirmation link (same neutral answer)."""
    limits.check("signup", web.settings.signup_rate_limit)
    with suppress(SubscriberError):  # the same answer either way
        request_new_link(session, web.settings, form.get("email", ""), now)
    web.kick()
    return check_inbox(page, now)


@router.get("/confirm/{token}", response_class=HTMLResponse, dependencies=[LINKS_LIMITED])
def confirm_page(page: PageDep, sub: ConfirmReader, papers: PapersDep, now: NowDep) -> HTMLResponse:
    """One button: mail scanners fetch links, so a GET never confirms anything."""
    topics, examples = split_examples(sub.topics)
    return page.render(
        "confirm.html", topics=topics, liked=papers.liked(examples), trending=sub.trending, email=sub.email,
        schedule=schedule_text(sub), done=sub.status is not SubscriberStatus.PENDING,
        manage_url=links(page.web.settings, sub, now).manage,
    )  # fmt: skip


@router.post("/confirm/{token}", response_class=HTMLResponse, dependencies=[LINKS_LIMITED, CSRF_CHECKED])
def confirm_post(page: PageDep, token: str, session: SessionDep, settings: SettingsDep, now: NowDep) -> HTMLResponse:
    """Activate the subscription."""
    try:
        sub = confirm(session, settings, token, now)
    except LinkError as exc:
        raise BadLink from exc
    manage_url = links(settings, sub, now).manage
    return page.render("confirmed.html", email=sub.email, schedule=schedule_text(sub), manage_url=manage_url)


def _manage(
    page: Renderer, sub: Subscriber, papers: StoredPapers, status: int = 200, number: int = 1, **values: Any
) -> HTMLResponse:
    """The manage page: the form as sent (after an error), or the reader's settings, each paper they
    liked listed with its title; then page `number` of their past digests, and their feed."""
    if "form" not in values:
        values["form"] = manage_values(sub.preferences)
        values["liked"] = papers.liked(split_examples(sub.topics)[1])
    values["form"] = _shown(values["form"])
    values.setdefault("errors", {})
    settings = page.web.settings
    return page.render(
        "manage.html", status, sub=sub, zones=page.web.zones, frequencies=list(Frequency),
        unsubscribe_url=links(settings, sub, papers.now).unsubscribe,
        archive=past_digests(papers.session, settings, sub, number, papers.now), feed_url=feed_url(settings, sub),
        archive_days=settings.archive_days, **values,
    )  # fmt: skip


def page_number(text: str | None) -> int:
    """The archive page a `?page=` asks for (1 for anything that is not a number from 1 on)."""
    return int(text) if text and text.isdigit() and 0 < len(text) < 7 and int(text) > 0 else 1


@router.get("/manage/{token}", response_class=HTMLResponse, dependencies=[LINKS_LIMITED])
def manage_page(page: PageDep, sub: ManageReader, papers: PapersDep, request: Request) -> HTMLResponse:
    """The reader's preferences, editable, and their past digests (`?page=2`: older ones)."""
    return _manage(page, sub, papers, number=page_number(request.query_params.get("page")))


@router.post("/manage/{token}", response_class=HTMLResponse, dependencies=[LINKS_LIMITED, CSRF_CHECKED])
def manage_post(
    page: PageDep, form: FormDep, sub: ManageReader, session: SessionDep, papers: PapersDep, now: NowDep
) -> HTMLResponse:
    """Save, pause, resume, or unsubscribe."""
    try:
        return _apply_action(page, session, sub, now, form, papers)
    except LinkError as exc:  # pausing a reader who never confirmed
        raise BadLink from exc


def _apply_action(
    page: Renderer, session: Session, sub: Subscriber, now: datetime, form: Mapping[str, str], papers: StoredPapers
) -> HTMLResponse:
    action = form.get("action", "save")
    if action == "unsubscribe":
        unsubscribe(session, sub, now)
        return page.render("unsubscribed.html", email=sub.email)
    if action in ("pause", "resume"):
        set_paused(session, sub, action == "pause", now)
        saved = "Paused: no digests until you resume." if action == "pause" else "Resumed."
        return _manage(page, sub, papers, saved=saved)
    if action in READING_ACTIONS:
        return _manage(page, sub, papers, saved=_reading_action(session, sub, action, now))
    if action != "save":
        return _manage(page, sub, papers, 400, errors={"action": "Unknown action."})
    errors: dict[str, str] = {}
    prefs = read_preferences(form, errors, papers.titled)
    if prefs is None:
        return _manage(page, sub, papers, 400, form=form, errors=errors)
    update_preferences(session, sub, prefs)
    return _manage(page, sub, papers, saved="Saved. Your next digest follows these settings.")


READING_ACTIONS = {
    "feed_only": "Feed only: your digests go to your feed, and no more emails come.",
    "email_again": "Emails again: your next digest comes by email (and in your feed).",
    "reset_feed": "Your feed has a new address: the old one, and the view-in-browser links of the digests "
    "already sent, no longer work.",
}


def _reading_action(session: Session, sub: Subscriber, action: str, now: datetime) -> str:
    """Feed only, email again, or a new feed address; returns what the page says was done."""
    if action == "reset_feed":
        reset_feed(session, sub, now)
    else:
        set_feed_only(session, sub, action == "feed_only")
    return READING_ACTIONS[action]


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, dependencies=[LINKS_LIMITED])
def unsubscribe_page(page: PageDep, sub: UnsubscribeReader) -> HTMLResponse:
    """One button; the GET changes nothing (mail scanners fetch every link)."""
    return page.render("unsubscribe.html", email=sub.email)


def one_click(request: Request, form: FormDep, settings: SettingsDep) -> bool:
    """Whether an unsubscribe POST is RFC 8058's one-click (mail providers send it without cookies);
    any other must pass the CSRF check (else CsrfFailed)."""
    if form.get("List-Unsubscribe") == ONE_CLICK:
        return True
    require_csrf(request, form, settings)
    return False


OneClickDep = Annotated[bool, Depends(one_click)]


@router.post("/unsubscribe/{token}", response_model=None)
def unsubscribe_post(
    page: PageDep, is_one_click: OneClickDep, token: str, readers: ReadersDep, session: SessionDep, now: NowDep
) -> Response:
    """The button's POST (CSRF-checked), or RFC 8058 one-click (no cookies, answered 200, idempotent)."""
    try:
        sub = readers.find(Purpose.UNSUBSCRIBE, token)
    except LinkError as exc:
        if is_one_click:
            return PlainTextResponse("This unsubscribe link is not valid.", status_code=400)
        raise BadLink from exc
    unsubscribe(session, sub, now)
    log.info("unsubscribed subscriber %s (%s)", sub.id, "one-click" if is_one_click else "page")
    if is_one_click:
        return PlainTextResponse("You are unsubscribed.")
    return page.render("unsubscribed.html", email=sub.email)


@router.get("/feedback/{token}", response_class=HTMLResponse, dependencies=[LINKS_LIMITED])
def feedback_page(page: PageDep, token: str, fb: FeedbackLink) -> HTMLResponse:
    """One button: mail scanners open every link, so a GET records nothing."""
    return page.render("feedback.html", fb=fb, token=token, state="ask")


@router.post("/feedback/{token}", response_class=HTMLResponse, dependencies=[LINKS_LIMITED, CSRF_CHECKED])
def feedback_post(
    page: PageDep, token: str, fb: FeedbackLink, session: SessionDep, train: TrainDep, now: NowDep
) -> HTMLResponse:
    """Record the vote (a second POST of the same link changes nothing), then offer to undo it."""
    changed = record(session, fb, now)
    if changed and fb.sub.id is not None:
        train(fb.sub.id)
    return page.render("feedback.html", fb=fb, token=token, state="recorded", already=not changed)


@router.post("/feedback/{token}/undo", response_class=HTMLResponse, dependencies=[LINKS_LIMITED, CSRF_CHECKED])
def feedback_undo(page: PageDep, token: str, fb: FeedbackLink, session: SessionDep, train: TrainDep) -> HTMLResponse:
    """Remove this link's vote (safe twice), and offer to record it again."""
    if undo(session, fb) and fb.sub.id is not None:
        train(fb.sub.id)
    return page.render("feedback.html", fb=fb, token=token, state="undone")
