"""Drives the real web app in-process for tests: a clock we move, CSRF handling, the outbox, tokens."""

from __future__ import annotations

import email
import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response as ClientResponse  # what the Starlette TestClient returns (it runs on httpx2)
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from digest.compose import links
from digest.config import Settings
from digest.db import open_session
from digest.models import Notice, NoticeKind, Subscriber, SubscriberStatus
from digest.notices import send_notices
from digest.send import OutboxTransport
from digest.signup import stamp_of
from digest.suppress import forget, suppress
from digest.tokens import Purpose, make_token
from digest.web.app import create_app
from digest.web.security import CSRF_FIELD, MemoryRateLimiter, RateLimiter, csrf_cookie_name
from tests.conftest import NOW
from tests.factories import add_papers, paper
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
        # No broker in tests: count the "send queued notices now" prompts instead of calling Celery.
        self.kicks = 0
        self.limiter = limiter or MemoryRateLimiter(clock=lambda: FIXED_EPOCH)
        self.app = create_app(
            settings,
            engine=engine,
            clock=self.clock,
            limiter=self.limiter,
            send_in_process=False,
            kick=self._kick,
        )
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
            "trending_count": "10",  # the number is always sent; the box "trending" only when ticked
            "website": "",
        }
        form.update(fields)
        return form

    def signup(self, email: str = "ada@example.org", topics: str = "diffusion", **fields: str) -> ClientResponse:
        response: ClientResponse = self.client.post("/subscribe", data=self.signup_form(email, topics, **fields))
        return response

    def post(self, path: str, fields: dict[str, str] | None = None, *, csrf: bool = True) -> ClientResponse:
        """A form POST from the browser that has our CSRF cookie (or without the token)."""
        data = dict(fields or {})
        if csrf:
            data[CSRF_FIELD] = self.csrf()
        response: ClientResponse = self.client.post(path, data=data)
        return response

    def csrf_cookie(self) -> str | None:
        cookie: str | None = self.client.cookies.get(csrf_cookie_name(self.settings.base_url))
        return cookie

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
        signed = links(self.settings, sub, self.clock())
        return {"manage": token_of(signed.manage), "unsubscribe": token_of(signed.unsubscribe)}

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


ADA = "ada@example.org"
CHECK_INBOX = "Check your inbox"
BAD_LINK = "This link does not work"
PENDING, ACTIVE, PAUSED, UNSUBSCRIBED = (
    SubscriberStatus.PENDING,
    SubscriberStatus.ACTIVE,
    SubscriberStatus.PAUSED,
    SubscriberStatus.UNSUBSCRIBED,
)


# --- fixtures (a test module imports the ones it uses) ------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def site(settings: Settings, engine: Engine, clock: Clock) -> Site:
    return Site(settings, engine, clock)


@pytest.fixture
def papers(site: Site) -> None:
    """Three papers: two seen this week (one on diffusion), one on diffusion seen 8 days ago."""
    with open_session(site.engine) as session:
        add_papers(
            session,
            paper("2611.00001", "Diffusion models for text", "We study diffusion.", first_seen=NOW - timedelta(days=1)),
            paper("2611.00002", "A survey of graph networks", "Graphs.", first_seen=NOW - timedelta(days=2)),
            paper("2611.00003", "Old diffusion results", "Diffusion again.", first_seen=NOW - timedelta(days=8)),
        )


# Papers of the last week on Hugging Face with known upvotes (and one arXiv-only, one too old), for
# the trending section: by upvotes they are 10001 (120), 10002 (80), 10003 (45), 10005 (10), 10004 (4).
TRENDING_PAPERS = [
    ("2611.10001", "Diffusion transformers at scale", 120, 1),
    ("2611.10002", "Agents that use tools", 80, 2),
    ("2611.10003", "Diffusion for proteins", 45, 3),
    ("2611.10004", "Small diffusion tricks", 4, 1),
    ("2611.10005", "A survey of graphs", 10, 2),
    ("2611.10006", "Diffusion without votes", None, 1),
    ("2611.10007", "An old favourite", 500, 12),
]


@pytest.fixture
def trending_papers(site: Site) -> None:
    """TRENDING_PAPERS in the database: (id, title, upvotes, days ago first seen); those with upvotes
    are on Hugging Face."""
    rows = [
        paper(pid, title, first_seen=NOW - timedelta(days=days), upvotes=upvotes, on_hf=upvotes is not None,
              sources=("hf",) if upvotes is not None else ("arxiv",))
        for pid, title, upvotes, days in TRENDING_PAPERS
    ]  # fmt: skip
    with open_session(site.engine) as session:
        add_papers(session, *rows)


# --- reading pages --------------------------------------------------------------------------------


def field_block(page: str, name: str) -> str:
    """The `<div class="field">` that holds the input called `name`."""
    for block in re.findall(r'<div class="field[^"]*">(.*?)</div>', page, re.S):
        if f'id="{name}"' in block:
            return str(block)
    raise AssertionError(f"no field {name!r} on the page")


def field_error(page: str, name: str) -> str | None:
    """The error shown next to a field (role="alert", inside the field's block), unescaped."""
    found = re.search(rf'<p class="error" id="{name}-error" role="alert">(.*?)</p>', field_block(page, name), re.S)
    return html.unescape(found.group(1)) if found else None


def all_errors(page: str) -> list[str]:
    return [html.unescape(e) for e in re.findall(r'<p class="error" id="[^"]+" role="alert">(.*?)</p>', page, re.S)]


def is_checked(page: str, name: str) -> bool:
    """Whether the checkbox called `name` is ticked."""
    found = re.search(rf'<input type="checkbox" id="{name}" name="{name}"[^>]*>', page)
    assert found, f"no checkbox {name}"
    return " checked" in found.group(0)


def page_text(page: str) -> str:
    """A page's words, as a reader sees them (tags removed, spaces collapsed)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def preview_text(page: str) -> str:
    """The preview section's words."""
    found = re.search(r'<section id="preview"[^>]*>(.*?)</section>', page, re.S)
    assert found, "no preview section"
    return page_text(found.group(1))


def textarea(page: str) -> str:
    found = re.search(r'<textarea id="topics"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, "no topics box"
    return html.unescape(found.group(1))


def input_value(page: str, name: str) -> str:
    found = re.search(rf'<input id="{name}" name="{name}"[^>]*value="([^"]*)"', page)
    assert found, f"no input {name}"
    return html.unescape(found.group(1))


def selected(page: str, name: str) -> str:
    select_box = re.search(rf'<select id="{name}" name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert select_box, f"no select {name}"
    chosen = re.findall(r"<option(?: value=\"([^\"]*)\")? selected>([^<]*)</option>", select_box.group(1))
    assert len(chosen) == 1, chosen
    value, label = chosen[0]
    return html.unescape(value or label)


# --- what every answer of a kind looks like ---------------------------------------------------------


def assert_bad_link(response: ClientResponse) -> None:
    """The neutral page for any link that does not work: 400, and a form to ask for a new one."""
    assert response.status_code == 400, response.text[:300]
    assert BAD_LINK in response.text
    assert 'action="/resend"' in response.text
    assert 'name="email"' in response.text
    assert csrf_of(response.text)


def assert_forbidden(response: ClientResponse) -> None:
    assert response.status_code == 403, response.text[:300]
    assert "Please try again" in response.text


def assert_security_headers(response: ClientResponse) -> None:
    csp = response.headers.get("content-security-policy", "")
    assert "form-action 'self'" in csp, (response.request.url, csp)
    assert "frame-ancestors 'none'" in csp, (response.request.url, csp)
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("referrer-policy") == "no-referrer"


def assert_not_off_site(response: ClientResponse) -> None:
    location = response.headers.get("location")
    if location is None:
        return
    parts = urlsplit(location)
    assert parts.netloc in ("", "testserver"), f"{response.request.url} redirects off-site to {location}"
    assert not location.startswith(("//", "/\\", "\\")), f"{response.request.url} -> {location}"
    assert parts.scheme in ("", "https", "http"), location


def nothing_stored(site: Site) -> None:
    assert site.subscribers() == []
    assert site.notices() == []


# --- a reader's steps -------------------------------------------------------------------------------


def pending_with_token(site: Site, email: str = ADA, topics: str = "diffusion") -> str:
    """Sign up on the page and return the confirmation token from the email."""
    response = site.signup(email, topics)
    assert response.status_code == 200, response.text[:300]
    return site.confirm_token(email)


def confirmed(site: Site, email: str = ADA, topics: str = "diffusion") -> dict[str, str]:
    """Sign up and confirm through the pages; returns the reader's manage and unsubscribe tokens."""
    token = pending_with_token(site, email, topics)
    assert site.post(f"/confirm/{token}").status_code == 200
    assert status_of(site, email) is ACTIVE
    return site.tokens(email)


def manage_form(**overrides: str) -> dict[str, str]:
    form = {
        "topics": '"long context"\ncat:cs.CL retrieval',
        "frequency": "weekly",
        "send_hour": "6",
        "timezone": "Europe/Paris",
        "weekly_day": "4",
        "min_upvotes": "3",
        "max_papers": "10",
        "trending_count": "10",
        "action": "save",
    }
    form.update(overrides)
    return form


def four_addresses(site: Site) -> dict[str, str]:
    """An address in each state: new, pending (asked in the last hour), active, unsubscribed."""
    addresses = {s: f"{s}@example.org" for s in ("new", "pending", "active", "unsubscribed")}
    site.add_subscriber(addresses["active"], ("graph neural networks",), ACTIVE)
    site.add_subscriber(addresses["unsubscribed"], ("graph neural networks",), UNSUBSCRIBED)
    site.clock.advance(minutes=-60)
    assert site.signup(addresses["pending"]).status_code == 200
    site.clock.advance(minutes=60)
    site.send()  # the pending address's confirmation went out an hour ago
    return addresses


def every_state(site: Site) -> dict[str, str]:
    """four_addresses (its pending one asked an hour ago, so it is cooling down) and a bounced and a
    forgotten address (suppressed: a row marked so, or only the address's hash left)."""
    addresses = four_addresses(site)
    for state in ("bounced", "forgotten"):
        addresses[state] = f"{state}@example.org"
        sub = site.add_subscriber(addresses[state])
        with open_session(site.engine) as session:
            if state == "bounced":
                suppress(session, sub.email, "hard bounce: 550", site.clock() - timedelta(days=2))
            else:
                forget(session, sub, site.clock() - timedelta(days=2))
    return addresses


def bad_confirm_token(site: Site, kind: str) -> str:
    """A confirmation link for ADA that must not work, and leaves ADA not active."""
    if kind == "expired":
        assert site.signup(ADA).status_code == 200
        token = site.confirm_token(ADA)
        site.clock.advance(hours=site.settings.confirm_link_hours + 1)
        return token
    token = pending_with_token(site, ADA)
    if kind.startswith("replayed"):
        return _replayed(site, token, kind)
    if kind == "after-unsubscribing":
        return _confirmed_then_unsubscribed(site, token)
    return _broken(site, token)[kind]


def _broken(site: Site, token: str) -> dict[str, str]:
    """ADA's confirmation token spoilt in every way that needs no more steps, by kind."""
    sub = site.subscriber(ADA)
    assert sub is not None and sub.id is not None
    another_key = make_token(
        ["someone-elses-key"], Purpose.CONFIRM, sub.handle, stamp_of(sub.requested_at), now=site.clock()
    )
    tokens = site.tokens(ADA)
    return {
        "tampered": tamper(token),
        "truncated": token[:-6],
        "garbage": "not-a-token",
        "too-long": token + "A" * 600,
        "signed-with-another-key": another_key,
        "manage-token": tokens["manage"],
        "unsubscribe-token": tokens["unsubscribe"],
    }


def _replayed(site: Site, token: str, kind: str) -> str:
    """The old token, after a new sign-up or a resend issued a newer one."""
    site.clock.advance(hours=site.settings.confirm_cooldown_hours + 1)
    if kind == "replayed-after-new-signup":
        assert site.signup(ADA).status_code == 200
    else:
        assert site.post("/resend", {"email": ADA}).status_code == 200
    newer = site.confirm_token(ADA)
    assert newer != token
    return token


def _confirmed_then_unsubscribed(site: Site, token: str) -> str:
    assert site.post(f"/confirm/{token}").status_code == 200
    leave = site.tokens(ADA)["unsubscribe"]
    assert site.post(f"/unsubscribe/{leave}").status_code == 200
    assert status_of(site, ADA) is UNSUBSCRIBED
    return token


def one_click(site: Site, token: str, encoding: str) -> ClientResponse:
    """An RFC 8058 one-click POST, as a mail provider sends it: no cookies, no CSRF token."""
    client = site.new_client()
    assert not client.cookies
    response: ClientResponse
    if encoding == "urlencoded":
        response = client.post(
            f"/unsubscribe/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    else:
        response = client.post(f"/unsubscribe/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    return response


def bad_link_tokens(site: Site, email: str, good: dict[str, str], mine: str) -> dict[str, str]:
    """Tokens that must not work as a `mine` ("manage" or "unsubscribe") link for `email`: tampered,
    garbage, the other link's token, a confirmation token, one signed with another key."""
    sub = site.subscriber(email)
    assert sub is not None and sub.id is not None
    keys, now = site.settings.signing_keys, site.clock()
    other = "unsubscribe" if mine == "manage" else "manage"
    return {
        "tampered": tamper(good[mine]),
        "garbage": "abc.def.ghi",
        f"{other}-token": good[other],
        "confirm-token": make_token(keys, Purpose.CONFIRM, sub.handle, 1, now=now),
        "another-key": make_token(["other-key"], Purpose(mine), sub.handle, now=now),
    }
