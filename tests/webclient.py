"""Drives the real web app in-process for tests: a clock we move, CSRF handling, the outbox, tokens."""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from digest.compose import links
from digest.config import Settings
from digest.db import open_session
from digest.models import Notice, NoticeKind, Subscriber, SubscriberStatus
from digest.notices import send_notices
from digest.send import OutboxTransport
from digest.web.app import create_app
from digest.web.security import CSRF_COOKIE, CSRF_FIELD, MemoryRateLimiter, RateLimiter
from tests.conftest import NOW
from tests.factories import subscriber as make_subscriber

# The settings fixture signs links for https://digest.example.org; TestClient talks to the app over
# https too, so the CSRF cookie (Secure, because the base URL is https) is sent back.
BASE = "https://testserver"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]*)"')
LINK = re.compile(r"https://digest\.example\.org/(confirm|manage|unsubscribe)/([A-Za-z0-9_.\-]+)")
FIXED_EPOCH = 1_800_000_000.0  # inside one rate-limit window for any window up to an hour


class Clock:
    """The app's clock: NOW until a test moves it."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Sent:
    """One email the notice sender wrote into the outbox."""

    to: str
    subject: str
    text: str
    tokens: dict[str, str]  # purpose ("confirm", "manage", "unsubscribe") -> token found in the text
    message: EmailMessage


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF_INPUT.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def without_csrf(html: str) -> str:
    """A page with its CSRF token blanked, to compare two answers."""
    return CSRF_INPUT.sub('name="csrf_token" value=""', html)


def token_of(url: str) -> str:
    """The token at the end of a confirm/manage/unsubscribe URL."""
    return url.rstrip("/").rsplit("/", 1)[1]


def tamper(token: str) -> str:
    """The same token with the first character of its signature changed (the last character of a
    base64 signature may only carry padding bits, so changing it can leave the signature valid)."""
    head, _, signature = token.rpartition(".")
    first = "A" if signature[0] != "A" else "B"
    return f"{head}.{first}{signature[1:]}"


class Site:
    """The ASGI app built by create_app, a TestClient for it, and views of its database and outbox."""

    def __init__(
        self, settings: Settings, engine: Engine, clock: Clock | None = None, limiter: RateLimiter | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock or Clock()
        self.app = create_app(
            settings,
            engine=engine,
            clock=self.clock,
            limiter=limiter or MemoryRateLimiter(clock=lambda: FIXED_EPOCH),
            send_in_process=False,
        )
        # No broker in tests: count the "send queued notices now" prompts instead of calling Celery.
        self.kicks = 0
        self.app.app.state.web.kick = self._kick  # type: ignore[attr-defined]
        self.client = self.new_client()
        self.outbox = OutboxTransport(settings.outbox_dir)
        self.seen_files: set[str] = set()

    def _kick(self) -> None:
        self.kicks += 1

    def new_client(self) -> TestClient:
        """A client with no cookies (another browser, or a mail provider's one-click POST)."""
        return TestClient(self.app, base_url=BASE, follow_redirects=False)

    # --- forms -------------------------------------------------------------------------------------

    def csrf(self, client: TestClient | None = None) -> str:
        """Load the sign-up page (which sets the CSRF cookie) and return its form token."""
        page = (client or self.client).get("/")
        assert page.status_code == 200
        return csrf_of(page.text)

    def signup_form(self, email: str = "ada@example.org", topics: str = "diffusion", **fields: str) -> dict[str, str]:
        """The sign-up form as a browser sends it (CSRF token included)."""
        form = {
            CSRF_FIELD: self.csrf(),
            "email": email,
            "topics": topics,
            "frequency": "daily",
            "weekly_day": "0",
            "send_hour": "8",
            "timezone": "UTC",
            "min_upvotes": "",
            "max_papers": "25",
            "website": "",
        }
        form.update(fields)
        return form

    def signup(self, email: str = "ada@example.org", topics: str = "diffusion", **fields: str) -> httpx.Response:
        return self.client.post("/subscribe", data=self.signup_form(email, topics, **fields))

    def post(self, path: str, fields: dict[str, str] | None = None, *, csrf: bool = True) -> httpx.Response:
        """A form POST from the browser that has our CSRF cookie (or without the token)."""
        data = dict(fields or {})
        if csrf:
            data[CSRF_FIELD] = self.csrf()
        return self.client.post(path, data=data)

    def csrf_cookie(self) -> str | None:
        return self.client.cookies.get(CSRF_COOKIE)

    # --- the database ------------------------------------------------------------------------------

    def subscriber(self, email: str) -> Subscriber | None:
        with open_session(self.engine) as session:
            return session.exec(select(Subscriber).where(Subscriber.email == email)).first()

    def subscribers(self) -> list[Subscriber]:
        with open_session(self.engine) as session:
            return list(session.exec(select(Subscriber).order_by(col(Subscriber.id))))

    def notices(self, email: str | None = None, kind: NoticeKind | None = None) -> list[Notice]:
        with open_session(self.engine) as session:
            query = select(Notice).order_by(col(Notice.id))
            if email is not None:
                sub = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
                if sub is None:
                    return []
                query = query.where(Notice.subscriber_id == sub.id)
            if kind is not None:
                query = query.where(Notice.kind == kind)
            return list(session.exec(query))

    def add_subscriber(
        self, email: str, topics: tuple[str, ...] = ("diffusion",), status: SubscriberStatus = SubscriberStatus.ACTIVE
    ) -> Subscriber:
        """A reader who is already there (created directly, with no notice in the queue)."""
        with open_session(self.engine) as session:
            sub = make_subscriber(session, email, topics, joined=self.clock() - timedelta(days=30), status=status)
            if status is SubscriberStatus.UNSUBSCRIBED:
                sub.unsubscribed_at = self.clock() - timedelta(days=3)
                session.add(sub)
                session.commit()
            return sub

    def tokens(self, email: str) -> dict[str, str]:
        """The manage and unsubscribe tokens of a subscriber, as a digest's footer carries them."""
        sub = self.subscriber(email)
        assert sub is not None
        manage, leave = links(self.settings, sub, self.clock())
        return {"manage": token_of(manage), "unsubscribe": token_of(leave)}

    # --- the outbox --------------------------------------------------------------------------------

    def send(self) -> list[Sent]:
        """Send every queued notice into the outbox (as the worker would) and return the new emails."""
        with open_session(self.engine) as session:
            send_notices(session, self.settings, self.outbox, self.clock())
        folder = self.settings.outbox_dir
        new = sorted(p for p in folder.glob("*.eml") if p.name not in self.seen_files) if folder.exists() else []
        sent = []
        for path in new:
            self.seen_files.add(path.name)
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            assert isinstance(message, EmailMessage)
            body = message.get_body(preferencelist=("plain",))
            assert body is not None
            text = body.get_content()
            sent.append(Sent(str(message["To"]), str(message["Subject"]), text, dict(LINK.findall(text)), message))
        return sent

    def confirm_token(self, email: str) -> str:
        """Send the queue and return the confirmation token mailed to `email` (exactly one email)."""
        mails = [m for m in self.send() if email in m.to]
        assert len(mails) == 1, mails
        assert "confirm" in mails[0].tokens, mails[0].text
        return mails[0].tokens["confirm"]


def status_of(site: Site, email: str) -> SubscriberStatus | None:
    sub = site.subscriber(email)
    return None if sub is None else sub.status


def json_prefs(**values: Any) -> dict[str, Any]:
    """A JSON body for the API's subscribe/manage endpoints."""
    body: dict[str, Any] = {"topics": ["diffusion"], "frequency": "daily", "send_hour": 8, "timezone": "UTC"}
    body.update(values)
    return body
