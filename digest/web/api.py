"""The JSON API under /api/: the same actions as the pages, for scripts and the live preview.

JSON bodies cannot be sent cross-site without a CORS preflight (which we never grant), so these
endpoints need no CSRF token; link tokens still authorise everything about a subscriber."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from digest.db import open_session
from digest.models import Frequency, Subscriber, SubscriberStatus
from digest.signup import (
    LinkError,
    confirm,
    request_new_link,
    request_signup,
    set_paused,
    subscriber_for,
    update_preferences,
)
from digest.subscribers import SubscriberError, unsubscribe
from digest.tokens import Purpose
from digest.web.app import Web, limited, preview, web
from digest.web.forms import read_preferences, read_signup

router = APIRouter(prefix="/api", tags=["subscriptions"])
ACCEPTED = "If this address can receive the digest, a confirmation email is on its way to it."


class PreferencesIn(BaseModel):
    topics: list[str] = Field(min_length=1, max_length=20, examples=[['"long context"', "cat:cs.CL retrieval"]])
    frequency: Frequency = Frequency.DAILY
    send_hour: int = Field(default=8, ge=0, le=23)
    timezone: str = "UTC"
    weekly_day: int = Field(default=0, ge=0, le=6)
    min_upvotes: int | None = Field(default=None, ge=0)
    max_papers: int = Field(default=25, ge=1, le=100)

    def form(self) -> dict[str, str]:
        """The same fields as the HTML form, so both share one validator."""
        return {
            "topics": "\n".join(t.replace("\r", " ").replace("\n", " ") for t in self.topics),
            "frequency": self.frequency.value,
            "send_hour": str(self.send_hour),
            "timezone": self.timezone,
            "weekly_day": str(self.weekly_day),
            "min_upvotes": "" if self.min_upvotes is None else str(self.min_upvotes),
            "max_papers": str(self.max_papers),
        }


class SubscribeIn(PreferencesIn):
    email: str = Field(max_length=200, examples=["ada@example.org"])


class EmailIn(BaseModel):
    email: str = Field(max_length=200)


class PreviewIn(BaseModel):
    topics: list[str] = Field(min_length=1, max_length=20)


class Status(BaseModel):
    status: str
    message: str = ""


class SubscriptionOut(PreferencesIn):
    email: str
    status: SubscriberStatus


def _invalid(errors: dict[str, str]) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=422)


def _rate_limited(wait: int) -> JSONResponse:
    return JSONResponse({"error": "too many requests"}, status_code=429, headers={"Retry-After": str(wait)})


@contextmanager
def _session(w: Web) -> Iterator[Session]:
    with open_session(w.engine) as session:
        yield session


def _linked(session: Session, w: Web, purpose: Purpose, token: str) -> Subscriber:
    try:
        return subscriber_for(session, w.settings, purpose, token, now=w.clock())
    except LinkError as exc:
        raise HTTPException(status_code=400, detail="This link is not valid.") from exc


@router.post("/subscribe", status_code=202, response_model=Status, responses={422: {}, 429: {}})
def subscribe(request: Request, body: SubscribeIn) -> JSONResponse | Status:
    """Sign up (double opt-in): the answer is the same whatever state the address is in."""
    w = web(request)
    if (wait := limited(request, "signup", w.settings.signup_rate_limit)) is not None:
        return _rate_limited(wait)
    result = read_signup({**body.form(), "email": body.email})
    if result.errors or result.prefs is None:
        return _invalid(result.errors)
    with _session(w) as session:
        try:
            request_signup(session, w.settings, result.email, result.prefs, w.clock())
        except SubscriberError as exc:
            return _invalid({"email": str(exc)})
    w.kick()
    return Status(status="accepted", message=ACCEPTED)


@router.post("/resend", status_code=202, response_model=Status, responses={429: {}})
def resend(request: Request, body: EmailIn) -> JSONResponse | Status:
    """Ask for a new confirmation link for a pending sign-up (same answer for every address)."""
    w = web(request)
    if (wait := limited(request, "signup", w.settings.signup_rate_limit)) is not None:
        return _rate_limited(wait)
    with _session(w) as session, suppress(SubscriberError):
        request_new_link(session, w.settings, body.email, w.clock())
    w.kick()
    return Status(status="accepted", message=ACCEPTED)


@router.post("/preview", responses={422: {}, 429: {}})
def preview_topics(request: Request, body: PreviewIn) -> JSONResponse:
    """The papers of the last 7 days these topics match, as the digest would show them."""
    if (wait := limited(request, "preview", 300)) is not None:
        return _rate_limited(wait)
    errors: dict[str, str] = {}
    read_preferences({"topics": "\n".join(t.replace("\r", " ").replace("\n", " ") for t in body.topics)}, errors)
    if "topics" in errors:
        return JSONResponse({"errors": {"topics": errors["topics"]}}, status_code=422)
    w = web(request)
    papers, more = preview(w, [t.strip() for t in body.topics if t.strip()], w.clock())
    return JSONResponse({"papers": [{**asdict(p), "meta": p.meta} for p in papers], "more": more})


@router.post("/confirm/{token}", response_model=Status, responses={400: {}})
def confirm_subscription(request: Request, token: str) -> Status:
    """Confirm a sign-up with the token from the confirmation email."""
    w = web(request)
    with _session(w) as session:
        try:
            sub = confirm(session, w.settings, token, w.clock())
        except LinkError as exc:
            raise HTTPException(status_code=400, detail="This link is not valid.") from exc
        return Status(status=sub.status.value)


def _out(sub: Subscriber) -> SubscriptionOut:
    return SubscriptionOut(
        email=sub.email, status=sub.status, topics=sub.topics, frequency=sub.frequency, send_hour=sub.send_hour,
        timezone=sub.timezone, weekly_day=sub.weekly_day, min_upvotes=sub.min_upvotes, max_papers=sub.max_papers,
    )  # fmt: skip


@router.get("/manage/{token}", response_model=SubscriptionOut, responses={400: {}})
def get_subscription(request: Request, token: str) -> SubscriptionOut:
    """The subscription a manage token is for."""
    w = web(request)
    with _session(w) as session:
        return _out(_linked(session, w, Purpose.MANAGE, token))


@router.put("/manage/{token}", response_model=SubscriptionOut, responses={400: {}, 422: {}})
def put_subscription(request: Request, token: str, body: PreferencesIn) -> JSONResponse | SubscriptionOut:
    """Replace the topics and schedule."""
    w = web(request)
    errors: dict[str, str] = {}
    prefs = read_preferences(body.form(), errors)
    if prefs is None:
        return _invalid(errors)
    with _session(w) as session:
        sub = _linked(session, w, Purpose.MANAGE, token)
        try:
            return _out(update_preferences(session, sub, prefs))
        except LinkError as exc:
            raise HTTPException(status_code=409, detail="Unsubscribed: sign up again.") from exc


@router.post("/manage/{token}/{action}", response_model=SubscriptionOut, responses={400: {}, 404: {}, 409: {}})
def pause_or_resume(request: Request, token: str, action: str) -> SubscriptionOut:
    """`pause` or `resume` the digests."""
    if action not in ("pause", "resume"):
        raise HTTPException(status_code=404, detail="Use pause or resume.")
    w = web(request)
    with _session(w) as session:
        sub = _linked(session, w, Purpose.MANAGE, token)
        try:
            return _out(set_paused(session, sub, action == "pause", w.clock()))
        except LinkError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from exc


@router.post("/unsubscribe/{token}", response_model=Status, responses={400: {}})
def unsubscribe_api(request: Request, token: str) -> Status:
    """Unsubscribe (idempotent)."""
    w = web(request)
    with _session(w) as session:
        sub = _linked(session, w, Purpose.UNSUBSCRIBE, token)
        unsubscribe(session, sub, w.clock())
        return Status(status="unsubscribed")
