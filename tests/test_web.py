"""The web app end to end, in-process: every page and API route with good and bad input.

Each test gets its own SQLite file, a clock it controls, and an in-memory rate limiter. No email
leaves the test: queued notices are rows, sent into the outbox folder by `Site.send()` when a test
wants to read them (the links in them are what a reader would click)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.db import open_session
from digest.models import NoticeKind, SubscriberStatus
from digest.signup import stamp_of
from digest.tokens import Purpose, make_token
from digest.web.api import ACCEPTED
from digest.web.security import CSRF_COOKIE, CSRF_FIELD, MemoryRateLimiter
from tests.conftest import NOW
from tests.factories import add_papers, paper
from tests.webclient import (
    FIXED_EPOCH,
    Clock,
    Site,
    csrf_of,
    json_prefs,
    status_of,
    tamper,
    without_csrf,
)

ADA = "ada@example.org"
CHECK_INBOX = "Check your inbox"
BAD_LINK = "This link does not work"
PENDING, ACTIVE, PAUSED, UNSUBSCRIBED = (
    SubscriberStatus.PENDING,
    SubscriberStatus.ACTIVE,
    SubscriberStatus.PAUSED,
    SubscriberStatus.UNSUBSCRIBED,
)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def site(settings: Settings, engine: Engine, clock: Clock) -> Site:
    return Site(settings, engine, clock)


# --- reading pages ---------------------------------------------------------------------------------


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


def assert_bad_link(response: httpx.Response) -> None:
    """The neutral page for any link that does not work: 400, and a form to ask for a new one."""
    assert response.status_code == 400, response.text[:300]
    assert BAD_LINK in response.text
    assert 'action="/resend"' in response.text
    assert 'name="email"' in response.text
    assert csrf_of(response.text)


def assert_forbidden(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text[:300]
    assert "Please try again" in response.text


def assert_security_headers(response: httpx.Response) -> None:
    csp = response.headers.get("content-security-policy", "")
    assert "form-action 'self'" in csp, (response.request.url, csp)
    assert "frame-ancestors 'none'" in csp, (response.request.url, csp)
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("referrer-policy") == "no-referrer"


def assert_not_off_site(response: httpx.Response) -> None:
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
        "action": "save",
    }
    form.update(overrides)
    return form


# === the sign-up form ===============================================================================


def test_the_signup_page_has_the_form_and_sets_the_csrf_cookie(site: Site) -> None:
    page = site.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'action="/subscribe"' in page.text
    for name in ("email", "topics", "frequency", "send_hour", "timezone", "weekly_day", "max_papers", "website"):
        assert f'name="{name}"' in page.text
    assert site.csrf_cookie()
    assert csrf_of(page.text)
    assert selected(page.text, "timezone") == "UTC"
    assert selected(page.text, "send_hour") == "8"


def test_a_valid_signup_records_a_pending_reader_and_queues_one_confirmation(site: Site) -> None:
    response = site.signup(
        "Ada.Lovelace@Example.ORG",
        'diffusion\n"long context" -survey\r\nauthor:"Yann LeCun"',
        frequency="weekly",
        weekly_day="2",
        send_hour="7",
        timezone="Europe/Paris",
        min_upvotes="5",
        max_papers="10",
    )
    assert response.status_code == 200
    assert CHECK_INBOX in response.text
    assert site.kicks >= 1  # the sender was prompted, the email was not sent inside the request

    [sub] = site.subscribers()
    assert sub.email == "ada.lovelace@example.org"
    assert sub.status is PENDING
    assert sub.topics == ["diffusion", '"long context" -survey', 'author:"Yann LeCun"']
    assert (sub.frequency.value, sub.weekly_day, sub.send_hour, sub.timezone) == ("weekly", 2, 7, "Europe/Paris")
    assert (sub.min_upvotes, sub.max_papers) == (5, 10)
    assert sub.requested_at == NOW

    [notice] = site.notices()
    assert notice.kind is NoticeKind.CONFIRM
    assert notice.subscriber_id == sub.id

    [mail] = site.send()
    assert mail.to == "ada.lovelace@example.org"
    assert "Confirm your subscription" in mail.subject
    assert "confirm" in mail.tokens
    assert site.send() == []  # sent once


def test_the_same_address_in_any_case_is_one_subscriber(site: Site) -> None:
    assert site.signup("Alice@Example.COM").status_code == 200
    assert site.signup("alice@example.com", "transformers").status_code == 200
    assert site.signup("  ALICE@example.com ", "transformers").status_code == 200
    [sub] = site.subscribers()
    assert sub.email == "alice@example.com"
    assert len(site.notices()) == 1
    assert sub.topics == ["transformers"]  # a corrected form still counts while pending


def test_unicode_topics_are_accepted_and_stored_exactly(site: Site) -> None:
    topics = ["Schrödinger bridge", "数学", '"Pérez" OR author:Müller', "équation de la chaleur"]
    response = site.signup(ADA, "\n".join(topics))
    assert response.status_code == 200, all_errors(response.text)
    sub = site.subscriber(ADA)
    assert sub is not None
    assert sub.topics == topics
    token = site.confirm_token(ADA)
    page = site.client.get(f"/confirm/{token}")
    assert "Schrödinger bridge" in page.text
    assert "数学" in page.text


def test_a_100kb_topic_is_refused_with_a_clear_error_and_nothing_stored(site: Site) -> None:
    response = site.signup(ADA, "diffusion " * 10_000)
    assert response.status_code in (400, 413)
    if response.status_code == 400:
        message = field_error(response.text, "topics")
        assert message and "too much text" in message
    nothing_stored(site)


BAD_SIGNUP_FIELDS = [
    # (field, value, field the error is shown next to, words of the message)
    ("email", "not-an-email", "email", "Enter a valid email address"),
    ("email", "", "email", "Enter a valid email address"),
    ("email", "ada@", "email", "Enter a valid email address"),
    ("email", "ada@example", "email", "Enter a valid email address"),
    ("email", "ada example@example.org", "email", "Enter a valid email address"),
    ("email", "a" * 250 + "@example.org", "email", "too long"),
    ("email", "ada@example.org\r\nBcc: eve@example.org", "email", "line breaks"),
    ("email", "ada@example.org\n", "email", "line breaks"),
    ("email", "ada@example.org\r", "email", "line breaks"),
    ("timezone", "Mars/Olympus_Mons", "timezone", "time zone"),
    ("timezone", "UTC\r\nX-Injected: 1", "timezone", ""),  # any error: the zone check has the last word
    ("timezone", "Europe/Paris\n", "timezone", "line breaks"),
    ("frequency", "hourly", "frequency", "daily, weekdays or weekly"),
    ("send_hour", "24", "send_hour", "from 0 to 23"),
    ("send_hour", "-1", "send_hour", "from 0 to 23"),
    ("send_hour", "eight", "send_hour", "whole number"),
    ("send_hour", "８", "send_hour", "whole number"),
    ("weekly_day", "7", "weekly_day", "from 0 to 6"),
    ("min_upvotes", "-5", "min_upvotes", "from 0 to 100000"),
    ("min_upvotes", "many", "min_upvotes", "whole number"),
    ("max_papers", "0", "max_papers", "from 1 to 100"),
    ("max_papers", "101", "max_papers", "from 1 to 100"),
    ("topics", "", "topics", "Add at least one topic"),
    ("topics", "   \n \r\n ", "topics", "Add at least one topic"),
    ("topics", "\n".join(f"topic{n}" for n in range(21)), "topics", "At most 20 topics"),
    ("topics", "agents AND", "topics", "column 8: AND needs a term after it"),
    ("topics", '"long context AND agents', "topics", 'column 1: this quote is never closed; add a closing "'),
    ("topics", "-survey", "topics", "column 1"),
    ("topics", "foo:bar", "topics", "unknown field 'foo:'"),
    ("topics", "(vision OR image", "topics", "this '(' is never closed"),
    ("topics", "diffusion\nagents AND", "topics", "line 2, column 8: AND needs a term after it"),
    ("topics", 'diffusion\n"long context', "topics", "line 2, column 1: this quote is never closed"),
    ("topics", "diffusion\r\nrag\r\ncat:cs..x", "topics", "line 3, column"),
]


@pytest.mark.parametrize(("name", "value", "shown_at", "message"), BAD_SIGNUP_FIELDS)
def test_a_bad_signup_field_is_refused_with_the_error_next_to_it(
    site: Site, name: str, value: str, shown_at: str, message: str
) -> None:
    response = site.client.post("/subscribe", data=site.signup_form(**{name: value}))
    assert response.status_code == 400
    assert 'id="signup"' in response.text  # the form again, ready to correct
    error = field_error(response.text, shown_at)
    assert error is not None, all_errors(response.text)
    assert message in error
    assert f'aria-describedby="{shown_at}-error"' in response.text or shown_at not in ("email", "topics")
    nothing_stored(site)


def test_the_form_shown_with_an_error_can_be_corrected_and_sent(site: Site) -> None:
    first = site.client.post("/subscribe", data=site.signup_form(topics="agents AND", timezone="Asia/Tokyo"))
    assert first.status_code == 400
    assert selected(first.text, "timezone") == "Asia/Tokyo"  # what was typed is kept
    corrected = {
        CSRF_FIELD: csrf_of(first.text),
        "email": input_value(first.text, "email"),
        "topics": "agents AND tools",
        "frequency": selected(first.text, "frequency"),
        "send_hour": selected(first.text, "send_hour"),
        "timezone": selected(first.text, "timezone"),
        "weekly_day": selected(first.text, "weekly_day"),
        "max_papers": input_value(first.text, "max_papers"),
    }
    second = site.client.post("/subscribe", data=corrected)
    assert second.status_code == 200
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.topics, sub.timezone) == (["agents AND tools"], "Asia/Tokyo")


ONE_LINE_FIELDS = {
    "email": ADA,
    "timezone": "Europe/Paris",
    "frequency": "daily",
    "send_hour": "8",
    "weekly_day": "0",
    "min_upvotes": "5",
    "max_papers": "25",
}


@pytest.mark.parametrize("shape", ["{v}\r\nX-Injected: 1", "{v}\r\n", "\n{v}"])
@pytest.mark.parametrize("name", list(ONE_LINE_FIELDS))
def test_a_line_break_in_any_one_line_field_is_refused(site: Site, name: str, shape: str) -> None:
    value = shape.format(v=ONE_LINE_FIELDS[name])
    response = site.client.post("/subscribe", data=site.signup_form(**{name: value}))
    assert response.status_code == 400, f"{name}={value!r} was accepted"
    assert field_error(response.text, name), all_errors(response.text)
    nothing_stored(site)


@pytest.mark.parametrize("how", ["missing", "empty", "wrong", "no-cookie", "another-visitors"])
def test_signup_without_a_matching_csrf_token_is_forbidden(site: Site, how: str) -> None:
    form = site.signup_form()
    client = site.client
    if how == "missing":
        del form[CSRF_FIELD]
    elif how == "empty":
        form[CSRF_FIELD] = ""
    elif how == "wrong":
        form[CSRF_FIELD] = "0" * 64
    elif how == "no-cookie":
        client = site.new_client()  # the right token, but the browser has no cookie
    elif how == "another-visitors":
        other = site.new_client()
        form[CSRF_FIELD] = site.csrf(other)  # someone else's token with our cookie
    response = client.post("/subscribe", data=form)
    assert_forbidden(response)
    nothing_stored(site)


def test_the_honeypot_gets_the_same_page_and_stores_nothing(site: Site) -> None:
    trapped = site.signup(ADA, website="https://spam.example")
    assert trapped.status_code == 200
    assert CHECK_INBOX in trapped.text
    nothing_stored(site)
    real = site.signup("grace@example.org")
    assert (real.status_code, without_csrf(real.text)) == (trapped.status_code, without_csrf(trapped.text))
    assert [s.email for s in site.subscribers()] == ["grace@example.org"]


def test_too_many_signups_from_one_client_are_refused_with_retry_after(site: Site) -> None:
    limit = site.settings.signup_rate_limit
    for n in range(limit):
        assert site.signup(f"reader{n}@example.org").status_code == 200
    response = site.signup("one-too-many@example.org")
    assert response.status_code == 429
    retry = int(response.headers["retry-after"])
    assert 0 < retry <= site.settings.rate_window_seconds
    assert "Too many requests" in response.text
    assert site.subscriber("one-too-many@example.org") is None
    assert len(site.subscribers()) == limit
    api = site.client.post("/api/subscribe", json=json_prefs(email="api@example.org"))
    assert api.status_code == 429
    assert int(api.headers["retry-after"]) > 0
    assert site.subscriber("api@example.org") is None


def test_the_rate_limit_window_resets(settings: Settings, engine: Engine, clock: Clock) -> None:
    now = [FIXED_EPOCH]
    settings.signup_rate_limit = 2
    site = Site(settings, engine, clock, limiter=MemoryRateLimiter(clock=lambda: now[0]))
    assert site.signup("a@example.org").status_code == 200
    assert site.signup("b@example.org").status_code == 200
    assert site.signup("c@example.org").status_code == 429
    now[0] += settings.rate_window_seconds
    assert site.signup("c@example.org").status_code == 200


# === the answer never says what state an address is in ===============================================


def _four_addresses(site: Site) -> dict[str, str]:
    """An address in each state: new, pending (asked in the last hour), active, unsubscribed."""
    addresses = {s: f"{s}@example.org" for s in ("new", "pending", "active", "unsubscribed")}
    site.add_subscriber(addresses["active"], ("graph neural networks",), ACTIVE)
    site.add_subscriber(addresses["unsubscribed"], ("graph neural networks",), UNSUBSCRIBED)
    site.clock.advance(minutes=-60)
    assert site.signup(addresses["pending"]).status_code == 200
    site.clock.advance(minutes=60)
    site.send()  # the pending address's confirmation went out an hour ago
    return addresses


def _emails_by_kind(site: Site) -> dict[str, list[str]]:
    sent: dict[str, list[str]] = {}
    for mail in site.send():
        sent.setdefault(mail.to, []).append(mail.subject)
    return sent


def test_signup_answers_the_same_for_new_pending_active_and_unsubscribed(site: Site) -> None:
    addresses = _four_addresses(site)
    answers = {}
    for state, address in addresses.items():
        response = site.signup(address, "diffusion")
        answers[state] = (
            response.status_code,
            response.headers["content-type"],
            "set-cookie" in response.headers,
            without_csrf(response.text),
        )
    assert answers["new"][0] == 200
    assert CHECK_INBOX in answers["new"][3]
    assert answers["pending"] == answers["new"]
    assert answers["active"] == answers["new"]
    assert answers["unsubscribed"] == answers["new"]

    # Only the owner of each address can tell the difference, from what arrives.
    kinds = {state: [n.kind for n in site.notices(address)] for state, address in addresses.items()}
    assert kinds == {
        "new": [NoticeKind.CONFIRM],
        "pending": [NoticeKind.CONFIRM],  # the one from an hour ago: nothing more within 24 h
        "active": [NoticeKind.ALREADY],
        "unsubscribed": [NoticeKind.CONFIRM],
    }
    sent = _emails_by_kind(site)
    assert set(sent) == {addresses["new"], addresses["active"], addresses["unsubscribed"]}
    assert "Confirm your subscription" in sent[addresses["new"]][0]
    assert "already subscribed" in sent[addresses["active"]][0]
    assert "Confirm your subscription" in sent[addresses["unsubscribed"]][0]

    # A stranger's sign-up never changes a confirmed reader; a returning one must confirm again.
    active = site.subscriber(addresses["active"])
    assert active is not None
    assert (active.status, active.topics) == (ACTIVE, ["graph neural networks"])
    assert status_of(site, addresses["unsubscribed"]) is PENDING


def test_at_most_one_email_per_address_per_24_hours(site: Site) -> None:
    assert site.signup(ADA).status_code == 200
    assert len(site.send()) == 1
    for hours in (1, 12, 22):
        site.clock.now = NOW + timedelta(hours=hours)
        assert site.signup(ADA).status_code == 200
        assert site.post("/resend", {"email": ADA}).status_code == 200
    assert [n.kind for n in site.notices(ADA)] == [NoticeKind.CONFIRM]
    assert site.send() == []

    site.clock.now = NOW + timedelta(hours=24, minutes=1)
    assert site.signup(ADA).status_code == 200
    assert [n.kind for n in site.notices(ADA)] == [NoticeKind.CONFIRM, NoticeKind.CONFIRM]
    assert len(site.send()) == 1


def test_an_active_reader_gets_one_already_subscribed_email_per_24_hours(site: Site) -> None:
    site.add_subscriber(ADA)
    for _ in range(3):
        assert site.signup(ADA).status_code == 200
    assert [n.kind for n in site.notices(ADA)] == [NoticeKind.ALREADY]
    [mail] = site.send()
    assert "already subscribed" in mail.subject
    assert "manage" in mail.tokens  # the owner gets the way to change things instead
    site.clock.advance(hours=25)
    assert site.signup(ADA).status_code == 200
    assert [n.kind for n in site.notices(ADA)] == [NoticeKind.ALREADY, NoticeKind.ALREADY]


# === confirmation ====================================================================================


def test_get_confirm_shows_one_button_and_changes_nothing(site: Site) -> None:
    token = pending_with_token(site, ADA, '"long context"\ndiffusion')
    for _ in range(2):  # mail scanners fetch links, sometimes twice
        page = site.client.get(f"/confirm/{token}")
        assert page.status_code == 200
        assert "Confirm your subscription" in page.text
        assert ADA in page.text
        assert "long context" in page.text
        assert page.text.count("<button") == 1
        assert page.text.count('<form method="post"') == 1
        assert csrf_of(page.text)
    assert status_of(site, ADA) is PENDING


def test_post_confirm_activates_and_is_idempotent(site: Site) -> None:
    token = pending_with_token(site, ADA)
    site.clock.advance(hours=2)
    first = site.post(f"/confirm/{token}")
    assert first.status_code == 200
    assert "You are subscribed" in first.text
    assert 'id="manage-link"' in first.text
    sub = site.subscriber(ADA)
    assert sub is not None
    assert sub.status is ACTIVE
    assert sub.confirmed_at == NOW + timedelta(hours=2)

    site.clock.advance(hours=1)
    second = site.post(f"/confirm/{token}")
    assert second.status_code == 200
    assert "You are subscribed" in second.text
    again = site.subscriber(ADA)
    assert again is not None
    assert (again.status, again.confirmed_at) == (ACTIVE, NOW + timedelta(hours=2))

    page = site.client.get(f"/confirm/{token}")
    assert page.status_code == 200
    assert "You are subscribed" in page.text
    assert "<button" not in page.text


def test_post_confirm_without_csrf_is_forbidden(site: Site) -> None:
    token = pending_with_token(site)
    assert_forbidden(site.post(f"/confirm/{token}", csrf=False))
    assert_forbidden(site.new_client().post(f"/confirm/{token}", data={CSRF_FIELD: site.csrf()}))
    assert status_of(site, ADA) is PENDING


def test_a_link_almost_at_its_age_limit_still_confirms(site: Site) -> None:
    assert site.signup(ADA).status_code == 200
    token = site.confirm_token(ADA)
    site.clock.advance(hours=site.settings.confirm_link_hours - 1)
    assert site.client.get(f"/confirm/{token}").status_code == 200
    assert site.post(f"/confirm/{token}").status_code == 200
    assert status_of(site, ADA) is ACTIVE


BAD_CONFIRM_LINKS = [
    "tampered",
    "truncated",
    "garbage",
    "too-long",
    "expired",
    "signed-with-another-key",
    "manage-token",
    "unsubscribe-token",
    "replayed-after-new-signup",
    "replayed-after-resend",
    "after-unsubscribing",
]


def bad_confirm_token(site: Site, kind: str) -> str:
    """A confirmation link for ADA that must not work, and leaves ADA not active."""
    if kind == "expired":
        assert site.signup(ADA).status_code == 200
        token = site.confirm_token(ADA)
        site.clock.advance(hours=site.settings.confirm_link_hours + 1)
        return token
    token = pending_with_token(site, ADA)
    sub = site.subscriber(ADA)
    assert sub is not None and sub.id is not None
    if kind == "tampered":
        return tamper(token)
    if kind == "truncated":
        return token[:-6]
    if kind == "garbage":
        return "not-a-token"
    if kind == "too-long":
        return token + "A" * 600
    if kind == "signed-with-another-key":
        return make_token(
            ["someone-elses-key"], Purpose.CONFIRM, sub.id, sub.email, stamp_of(sub.requested_at), now=site.clock()
        )
    if kind == "manage-token":
        return site.tokens(ADA)["manage"]
    if kind == "unsubscribe-token":
        return site.tokens(ADA)["unsubscribe"]
    if kind.startswith("replayed"):
        site.clock.advance(hours=site.settings.confirm_cooldown_hours + 1)
        if kind == "replayed-after-new-signup":
            assert site.signup(ADA).status_code == 200
        else:
            assert site.post("/resend", {"email": ADA}).status_code == 200
        newer = site.confirm_token(ADA)
        assert newer != token
        return token
    if kind == "after-unsubscribing":
        assert site.post(f"/confirm/{token}").status_code == 200
        leave = site.tokens(ADA)["unsubscribe"]
        assert site.post(f"/unsubscribe/{leave}").status_code == 200
        assert status_of(site, ADA) is UNSUBSCRIBED
        return token
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", BAD_CONFIRM_LINKS)
def test_a_confirmation_link_that_must_not_work_shows_the_neutral_page(site: Site, kind: str) -> None:
    token = bad_confirm_token(site, kind)
    before = status_of(site, ADA)
    assert before in (PENDING, UNSUBSCRIBED)
    assert_bad_link(site.client.get(f"/confirm/{token}"))
    assert_bad_link(site.post(f"/confirm/{token}"))
    assert status_of(site, ADA) is before


def test_the_newest_confirmation_link_works_after_a_replayed_one_fails(site: Site) -> None:
    old = pending_with_token(site)
    site.clock.advance(hours=25)
    assert site.signup(ADA).status_code == 200
    new = site.confirm_token(ADA)
    assert_bad_link(site.post(f"/confirm/{old}"))
    assert site.post(f"/confirm/{new}").status_code == 200
    assert status_of(site, ADA) is ACTIVE


@pytest.mark.parametrize(
    "address",
    ["pending@example.org", "active@example.org", "unsubscribed@example.org", "nobody@example.org", "not an address",
     "", "pending@example.org\r\nBcc: eve@example.org", "PENDING@EXAMPLE.ORG"],
)  # fmt: skip
def test_resend_gives_every_address_the_same_page(site: Site, address: str) -> None:
    site.add_subscriber("active@example.org")
    site.add_subscriber("unsubscribed@example.org", status=UNSUBSCRIBED)
    site.clock.advance(hours=-30)
    assert site.signup("pending@example.org").status_code == 200
    site.clock.advance(hours=30)
    before = len(site.notices())
    reference = site.post("/resend", {"email": "nobody-at-all@example.org"})
    response = site.post("/resend", {"email": address})
    assert response.status_code == reference.status_code == 200
    assert without_csrf(response.text) == without_csrf(reference.text)
    assert CHECK_INBOX in response.text
    new = site.notices()[before:]
    if address.lower() == "pending@example.org":  # a pending address past the cooldown gets a new link
        assert [n.kind for n in new] == [NoticeKind.CONFIRM]
    else:
        assert new == []
    assert status_of(site, "active@example.org") is ACTIVE
    assert status_of(site, "unsubscribed@example.org") is UNSUBSCRIBED


def test_resend_respects_the_cooldown_and_needs_csrf(site: Site) -> None:
    assert site.signup(ADA).status_code == 200
    site.clock.advance(hours=2)
    assert site.post("/resend", {"email": ADA}).status_code == 200
    assert len(site.notices(ADA)) == 1
    assert_forbidden(site.post("/resend", {"email": ADA}, csrf=False))
    site.clock.advance(hours=23)
    assert_forbidden(site.post("/resend", {"email": ADA}, csrf=False))
    assert len(site.notices(ADA)) == 1
    assert site.post("/resend", {"email": ADA}).status_code == 200
    assert len(site.notices(ADA)) == 2


# === manage =========================================================================================


def test_manage_shows_the_current_preferences(site: Site) -> None:
    tokens = confirmed(site, ADA, '"long context"\ncat:cs.CL retrieval')
    page = site.client.get(f"/manage/{tokens['manage']}")
    assert page.status_code == 200
    assert ADA in page.text
    assert textarea(page.text) == '"long context"\ncat:cs.CL retrieval'
    assert selected(page.text, "frequency") == "daily"
    assert selected(page.text, "send_hour") == "8"
    assert selected(page.text, "timezone") == "UTC"
    assert input_value(page.text, "max_papers") == "25"
    assert 'value="pause"' in page.text
    assert 'value="unsubscribe"' in page.text


@pytest.mark.parametrize("zone_name", ["Etc/GMT-3", "Etc/UTC", "GMT"])
def test_manage_shows_every_accepted_time_zone_as_selected(site: Site, zone_name: str) -> None:
    """A zone the validator accepts (here set through the API) must be the selected option on the manage
    page; otherwise the browser submits the first option, and saving anything resets the zone to UTC."""
    assert site.client.post("/api/subscribe", json=json_prefs(email=ADA, timezone=zone_name)).status_code == 202
    token = site.confirm_token(ADA)
    assert site.client.post(f"/api/confirm/{token}").status_code == 200
    page = site.client.get(f"/manage/{site.tokens(ADA)['manage']}")
    assert page.status_code == 200
    box = re.search(r'<select id="timezone" name="timezone"[^>]*>(.*?)</select>', page.text, re.S)
    assert box is not None
    chosen = re.findall(r"<option selected>([^<]*)</option>", box.group(1))
    assert chosen == [zone_name], f"stored zone {zone_name!r}, the page's time zone box selects {chosen or 'nothing'}"


def test_manage_save_updates_the_row(site: Site) -> None:
    tokens = confirmed(site)
    response = site.post(f"/manage/{tokens['manage']}", manage_form())
    assert response.status_code == 200
    assert "Saved" in response.text
    assert textarea(response.text) == '"long context"\ncat:cs.CL retrieval'
    sub = site.subscriber(ADA)
    assert sub is not None
    assert sub.status is ACTIVE
    assert sub.topics == ['"long context"', "cat:cs.CL retrieval"]
    assert (sub.frequency.value, sub.send_hour, sub.timezone, sub.weekly_day) == ("weekly", 6, "Europe/Paris", 4)
    assert (sub.min_upvotes, sub.max_papers) == (3, 10)
    page = site.client.get(f"/manage/{tokens['manage']}")
    assert selected(page.text, "timezone") == "Europe/Paris"
    assert selected(page.text, "weekly_day") == "4"
    assert input_value(page.text, "min_upvotes") == "3"


def test_manage_without_an_action_saves(site: Site) -> None:
    tokens = confirmed(site)
    form = manage_form(topics="transformers")
    del form["action"]
    assert site.post(f"/manage/{tokens['manage']}", form).status_code == 200
    sub = site.subscriber(ADA)
    assert sub is not None and sub.topics == ["transformers"]


BAD_MANAGE_FIELDS = [
    ("topics", "agents AND", "column 8: AND needs a term after it"),
    ("topics", "diffusion\n(vision", "line 2, column 1"),
    ("topics", "", "Add at least one topic"),
    ("topics", "x " * 15_000, "too much text"),
    ("timezone", "Nowhere/Land", "time zone"),
    ("timezone", "UTC\r\nX-Injected: 1", ""),
    ("frequency", "monthly", "daily, weekdays or weekly"),
    ("send_hour", "99", "from 0 to 23"),
    ("weekly_day", "-1", "from 0 to 6"),
    ("min_upvotes", "lots", "whole number"),
    ("max_papers", "1000", "from 1 to 100"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD_MANAGE_FIELDS)
def test_manage_save_with_a_bad_value_shows_the_error_and_changes_nothing(
    site: Site, name: str, value: str, message: str
) -> None:
    tokens = confirmed(site, ADA, "diffusion")
    before = site.subscriber(ADA)
    response = site.post(f"/manage/{tokens['manage']}", manage_form(**{name: value}))
    assert response.status_code == 400
    error = field_error(response.text, name)
    assert error and message in error, all_errors(response.text)
    after = site.subscriber(ADA)
    assert after is not None and before is not None
    assert after.model_dump() == before.model_dump()


def test_pause_and_resume_from_the_manage_page(site: Site) -> None:
    tokens = confirmed(site)
    url = f"/manage/{tokens['manage']}"
    site.clock.advance(days=1)
    paused = site.post(url, {"action": "pause"})
    assert paused.status_code == 200
    assert "Paused" in paused.text
    assert 'value="resume"' in paused.text
    assert status_of(site, ADA) is PAUSED
    again = site.post(url, {"action": "pause"})  # idempotent
    assert again.status_code == 200
    assert status_of(site, ADA) is PAUSED

    site.clock.advance(days=3)
    resumed = site.post(url, {"action": "resume"})
    assert resumed.status_code == 200
    assert "Resumed" in resumed.text
    sub = site.subscriber(ADA)
    assert sub is not None
    assert sub.status is ACTIVE
    assert sub.confirmed_at == NOW + timedelta(days=4)  # no flood of what came out while paused


def test_unsubscribe_from_the_manage_page(site: Site) -> None:
    tokens = confirmed(site)
    url = f"/manage/{tokens['manage']}"
    response = site.post(url, {"action": "unsubscribe"})
    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    sub = site.subscriber(ADA)
    assert sub is not None
    assert (sub.status, sub.unsubscribed_at) == (UNSUBSCRIBED, NOW)
    page = site.client.get(url)
    assert page.status_code == 200
    assert "You are unsubscribed" in page.text
    assert "<textarea" not in page.text
    saved = site.post(url, manage_form(topics="sneaky"))  # the old link cannot bring them back
    assert "You are unsubscribed" in saved.text
    gone = site.subscriber(ADA)
    assert gone is not None and (gone.status, gone.topics) == (UNSUBSCRIBED, ["diffusion"])


@pytest.mark.parametrize("action", ["save", "pause", "resume", "unsubscribe"])
def test_manage_post_without_csrf_is_forbidden(site: Site, action: str) -> None:
    tokens = confirmed(site)
    before = site.subscriber(ADA)
    response = site.post(f"/manage/{tokens['manage']}", manage_form(action=action, topics="changed"), csrf=False)
    assert_forbidden(response)
    after = site.subscriber(ADA)
    assert after is not None and before is not None
    assert after.model_dump() == before.model_dump()


@pytest.mark.parametrize("kind", ["tampered", "garbage", "unsubscribe-token", "confirm-token", "another-key"])
def test_manage_with_a_bad_token_shows_the_neutral_page(site: Site, kind: str) -> None:
    tokens = confirmed(site)
    sub = site.subscriber(ADA)
    assert sub is not None and sub.id is not None
    token = {
        "tampered": tamper(tokens["manage"]),
        "garbage": "abc.def.ghi",
        "unsubscribe-token": tokens["unsubscribe"],
        "confirm-token": make_token(
            site.settings.signing_keys, Purpose.CONFIRM, sub.id, sub.email, 1, now=site.clock()
        ),
        "another-key": make_token(["other-key"], Purpose.MANAGE, sub.id, sub.email, now=site.clock()),
    }[kind]
    assert_bad_link(site.client.get(f"/manage/{token}"))
    for action in ("save", "pause", "unsubscribe"):
        assert_bad_link(site.post(f"/manage/{token}", manage_form(action=action)))
    after = site.subscriber(ADA)
    assert after is not None
    assert (after.status, after.topics) == (ACTIVE, ["diffusion"])


def test_a_manage_link_dies_with_its_address(site: Site) -> None:
    tokens = confirmed(site)
    sub = site.subscriber(ADA)
    assert sub is not None and sub.id is not None
    forged = make_token(site.settings.signing_keys, Purpose.MANAGE, sub.id, "eve@example.org", now=site.clock())
    assert_bad_link(site.client.get(f"/manage/{forged}"))
    assert_bad_link(site.client.get(f"/manage/{tokens['manage'][:-1]}"))


# === unsubscribe ====================================================================================


def test_get_unsubscribe_shows_a_button_and_changes_nothing(site: Site) -> None:
    tokens = confirmed(site)
    for _ in range(2):
        page = site.client.get(f"/unsubscribe/{tokens['unsubscribe']}")
        assert page.status_code == 200
        assert ADA in page.text
        assert page.text.count("<button") == 1
        assert 'id="unsubscribe-button"' in page.text
    assert status_of(site, ADA) is ACTIVE


def test_post_unsubscribe_with_csrf_unsubscribes(site: Site) -> None:
    tokens = confirmed(site)
    site.clock.advance(days=2)
    response = site.post(f"/unsubscribe/{tokens['unsubscribe']}")
    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    sub = site.subscriber(ADA)
    assert sub is not None
    assert (sub.status, sub.unsubscribed_at) == (UNSUBSCRIBED, NOW + timedelta(days=2))
    again = site.post(f"/unsubscribe/{tokens['unsubscribe']}")
    assert again.status_code == 200
    assert "You are unsubscribed" in again.text
    page = site.client.get(f"/unsubscribe/{tokens['unsubscribe']}")
    assert "You are unsubscribed" in page.text
    assert "<button" not in page.text


def _one_click(site: Site, token: str, encoding: str) -> httpx.Response:
    client = site.new_client()  # a mail provider: no cookies, no CSRF token
    assert not client.cookies
    if encoding == "urlencoded":
        return client.post(
            f"/unsubscribe/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    return client.post(f"/unsubscribe/{token}", files={"List-Unsubscribe": (None, "One-Click")})


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_rfc8058_one_click_unsubscribes_without_cookies_and_answers_200(site: Site, encoding: str) -> None:
    tokens = confirmed(site)
    first = _one_click(site, tokens["unsubscribe"], encoding)
    assert first.status_code == 200, first.text
    assert "location" not in first.headers
    assert status_of(site, ADA) is UNSUBSCRIBED
    second = _one_click(site, tokens["unsubscribe"], encoding)
    assert second.status_code == 200
    assert "location" not in second.headers
    assert status_of(site, ADA) is UNSUBSCRIBED


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_with_a_tampered_token_is_400_and_unsubscribes_nobody(site: Site, encoding: str) -> None:
    tokens = confirmed(site)
    for token in (tamper(tokens["unsubscribe"]), tokens["manage"], "x"):
        response = _one_click(site, token, encoding)
        assert response.status_code == 400
    assert status_of(site, ADA) is ACTIVE


@pytest.mark.parametrize(
    "body",
    [{}, {"List-Unsubscribe": "Yes"}, {"List-Unsubscribe": "one-click"}, {CSRF_FIELD: "0" * 64}],
)
def test_a_normal_unsubscribe_post_without_csrf_is_forbidden(site: Site, body: dict[str, str]) -> None:
    tokens = confirmed(site)
    assert_forbidden(site.client.post(f"/unsubscribe/{tokens['unsubscribe']}", data=body))
    assert_forbidden(site.new_client().post(f"/unsubscribe/{tokens['unsubscribe']}", data=body))
    assert status_of(site, ADA) is ACTIVE


@pytest.mark.parametrize("kind", ["tampered", "garbage", "manage-token", "confirm-token"])
def test_unsubscribe_with_a_bad_token_shows_the_neutral_page(site: Site, kind: str) -> None:
    tokens = confirmed(site)
    sub = site.subscriber(ADA)
    assert sub is not None and sub.id is not None
    token = {
        "tampered": tamper(tokens["unsubscribe"]),
        "garbage": "garbage",
        "manage-token": tokens["manage"],
        "confirm-token": make_token(
            site.settings.signing_keys, Purpose.CONFIRM, sub.id, sub.email, 1, now=site.clock()
        ),
    }[kind]
    assert_bad_link(site.client.get(f"/unsubscribe/{token}"))
    assert_bad_link(site.post(f"/unsubscribe/{token}"))
    assert status_of(site, ADA) is ACTIVE


# === the HTML preview ===============================================================================


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


def test_the_preview_page_shows_this_weeks_matching_papers(site: Site, papers: None) -> None:
    response = site.post("/preview", site.signup_form(topics="diffusion"))
    assert response.status_code == 200
    assert "<mark>Diffusion</mark> models for text" in response.text
    assert "Old diffusion results" not in response.text
    assert "graph networks" not in response.text
    assert textarea(response.text) == "diffusion"  # the form is kept for the sign-up
    nothing_stored(site)


def test_the_preview_page_with_bad_topics_or_no_csrf(site: Site, papers: None) -> None:
    bad = site.client.post("/preview", data=site.signup_form(topics="diffusion\nagents AND"))
    assert bad.status_code == 400
    assert field_error(bad.text, "topics") == "line 2, column 8: AND needs a term after it"
    nothing = site.client.post("/preview", data=site.signup_form(topics="quantum chromodynamics"))
    assert nothing.status_code == 200
    assert "No paper of the last 7 days matches" in nothing.text
    form = site.signup_form()
    del form[CSRF_FIELD]
    assert_forbidden(site.client.post("/preview", data=form))


# === security ========================================================================================


def test_every_page_carries_the_security_headers(site: Site) -> None:
    tokens = confirmed(site, "grace@example.org")
    pending = pending_with_token(site)
    responses = [
        site.client.get("/"),
        site.client.post("/subscribe", data=site.signup_form(email="nope")),
        site.client.post("/subscribe", data={"email": ADA}),  # 403
        site.client.get(f"/confirm/{pending}"),
        site.client.get("/confirm/bad-token"),
        site.client.get(f"/manage/{tokens['manage']}"),
        site.client.get(f"/unsubscribe/{tokens['unsubscribe']}"),
        site.client.get("/no-such-page"),
        site.client.get("/api/no-such-thing"),
        site.client.get("/api/docs"),
        site.client.get("/api/openapi.json"),
        site.client.get("/static/site.css"),
        site.client.post("/subscribe", content=b"x" * (site.settings.max_body_bytes + 1)),
        _one_click(site, tokens["unsubscribe"], "urlencoded"),
    ]
    assert [r.status_code for r in responses] == [200, 400, 403, 200, 400, 200, 200, 404, 404, 200, 200, 200, 413, 200]
    for response in responses:
        assert_security_headers(response)


def test_the_api_docs_page_works_under_its_own_content_security_policy(site: Site) -> None:
    """The docs page is only useful if the browser may run its scripts: its CSP must allow them."""
    page = site.client.get("/api/docs")
    assert page.status_code == 200
    directives = dict(
        (d.split()[0], d.split()[1:]) for d in page.headers["content-security-policy"].split(";") if d.strip()
    )
    allowed = directives.get("script-src", directives.get("default-src", []))
    off_site = [src for src in re.findall(r'<script[^>]*\ssrc="([^"]+)"', page.text) if urlsplit(src).netloc]
    inline = re.findall(r"<script(?![^>]*\ssrc=)[^>]*>(.*?)</script>", page.text, re.S)
    blocked = [src for src in off_site if not any(src.startswith(source) for source in allowed if "/" in source)]
    for body in inline:
        digest = "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        if body.strip() and "'unsafe-inline'" not in allowed and digest not in allowed:
            blocked.append("an inline <script>")
    assert blocked == [], f"/api/docs loads scripts its CSP (script-src {' '.join(allowed)}) blocks: {blocked}"


def test_the_csrf_cookie_is_httponly_strict_and_secure(site: Site) -> None:
    page = site.new_client().get("/")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "samesite=strict"
    assert "secure" in attributes  # the base URL is https
    assert attributes["path"] == "Path=/"
    client = site.client
    client.get("/")
    assert "set-cookie" not in client.get("/").headers  # kept, not replaced on every visit


def _padded_form(site: Site, size: int) -> bytes:
    form = httpx.QueryParams(site.signup_form())
    return (str(form) + "&padding=" + "x" * size).encode()


def test_a_body_over_the_cap_with_content_length_is_413(site: Site) -> None:
    cap = site.settings.max_body_bytes
    body = _padded_form(site, cap)
    headers = {"content-type": "application/x-www-form-urlencoded"}
    response = site.client.post("/subscribe", content=body, headers=headers)
    assert response.status_code == 413
    api = site.client.post("/api/subscribe", json=json_prefs(email=ADA, topics=["x" * cap]))
    assert api.status_code == 413
    nothing_stored(site)
    small = _padded_form(site, 1000)  # the same form under the cap goes through
    assert site.client.post("/subscribe", content=small, headers=headers).status_code == 200


def _chunks(body: bytes, size: int = 16_384) -> Any:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _multipart(fields: dict[str, str], boundary: str = "digest-test-boundary") -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


@pytest.mark.parametrize("path", ["/subscribe", "/preview", "/resend"])
@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_a_chunked_form_body_over_the_cap_is_413(site: Site, encoding: str, path: str) -> None:
    padding = "x" * site.settings.max_body_bytes
    if encoding == "urlencoded":
        body = _padded_form(site, site.settings.max_body_bytes)
        content_type = "application/x-www-form-urlencoded"
    else:
        body = _multipart({**site.signup_form(), "padding": padding})
        content_type = "multipart/form-data; boundary=digest-test-boundary"
    response = site.client.post(path, content=_chunks(body), headers={"content-type": content_type})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text[:200]
    nothing_stored(site)


def test_a_chunked_form_under_the_cap_goes_through(site: Site) -> None:
    body = _multipart(site.signup_form())
    headers = {"content-type": "multipart/form-data; boundary=digest-test-boundary"}
    response = site.client.post("/subscribe", content=_chunks(body, 10), headers=headers)
    assert response.status_code == 200
    assert status_of(site, ADA) is PENDING


def test_a_chunked_json_body_over_the_cap_is_413(site: Site) -> None:
    body = json.dumps(json_prefs(email=ADA, topics=["x" * site.settings.max_body_bytes])).encode()
    response = site.client.post("/api/subscribe", content=_chunks(body), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    nothing_stored(site)


XSS = "<script>alert(1)</script>"


def test_what_visitors_typed_is_escaped_when_echoed(site: Site) -> None:
    response = site.client.post(
        "/subscribe",
        data=site.signup_form(email='"><script>alert(1)</script>@x', topics=f'"</textarea>{XSS}'),
    )
    assert response.status_code == 400
    assert "<script>alert" not in response.text
    assert "</textarea><script>" not in response.text
    assert textarea(response.text) == f'"</textarea>{XSS}'
    assert input_value(response.text, "email") == '"><script>alert(1)</script>@x'
    preview = site.client.post("/preview", data=site.signup_form(topics=f"{XSS}\n{XSS} AND"))
    assert "<script>alert" not in preview.text
    nothing_stored(site)


def test_stored_topics_are_escaped_on_every_page(site: Site) -> None:
    token = pending_with_token(site, ADA, f'"{XSS}"\ntitle:<b>bold</b>')
    sub = site.subscriber(ADA)
    assert sub is not None and sub.topics == [f'"{XSS}"', "title:<b>bold</b>"]
    confirm_page = site.client.get(f"/confirm/{token}")
    assert confirm_page.status_code == 200
    tokens = site.tokens(ADA)
    assert site.post(f"/confirm/{token}").status_code == 200
    manage_page = site.client.get(f"/manage/{tokens['manage']}")
    assert textarea(manage_page.text) == f'"{XSS}"\ntitle:<b>bold</b>'
    for page in (confirm_page, manage_page):
        assert "<script>alert" not in page.text
        assert "<b>bold" not in page.text


REDIRECT_PROBES = [
    "/?next=https://evil.example/",
    "/?redirect=//evil.example",
    "//evil.example/",
    "//evil.example",
    "/\\evil.example/",
    "/%2F%2Fevil.example/",
    "/%5Cevil.example",
    "/static",
    "/static//evil.example",
    "/api/docs/",
    "/api/",
    "/confirm/x/",
    "/confirm//evil.example/",
    "/manage/x/",
    "/manage///evil.example/",
    "/unsubscribe/x/",
    "/unsubscribe/https:%2F%2Fevil.example/",
    "/api/manage/x/",
    "/api/unsubscribe/x/",
    "/subscribe/",
    "/subscribe?next=https://evil.example",
    "/resend?return=https://evil.example",
]


@pytest.mark.parametrize("path", REDIRECT_PROBES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_no_route_redirects_off_site(site: Site, method: str, path: str) -> None:
    url = f"https://testserver{path}"  # keep the path as typed (httpx would read //host as a host)
    if method == "GET":
        response = site.client.get(url)
    else:
        response = site.client.post(url, data={**site.signup_form(), "next": "https://evil.example/"})
    assert_not_off_site(response)
    assert_security_headers(response)


def test_the_token_routes_never_redirect(site: Site) -> None:
    tokens = confirmed(site)
    pending = pending_with_token(site, "grace@example.org")
    for url in (f"/confirm/{pending}", f"/manage/{tokens['manage']}", f"/unsubscribe/{tokens['unsubscribe']}"):
        form = manage_form() if url.startswith("/manage/") else {}
        for response in (site.client.get(url), site.post(url, form)):
            assert 200 <= response.status_code < 300, (url, response.status_code)
            assert "location" not in response.headers


def test_health_endpoints(site: Site) -> None:
    assert site.client.get("/healthz").json() == {"status": "ok"}
    ready = site.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok"}


# === the JSON API ====================================================================================


def test_api_subscribe_answers_the_same_for_every_state(site: Site) -> None:
    addresses = _four_addresses(site)
    answers = {}
    for state, address in addresses.items():
        response = site.client.post("/api/subscribe", json=json_prefs(email=address.upper(), topics=["diffusion"]))
        answers[state] = (response.status_code, response.json())
    assert answers["new"] == (202, {"status": "accepted", "message": ACCEPTED})
    assert answers["pending"] == answers["active"] == answers["unsubscribed"] == answers["new"]
    kinds = {state: [n.kind for n in site.notices(address)] for state, address in addresses.items()}
    assert kinds == {
        "new": [NoticeKind.CONFIRM],
        "pending": [NoticeKind.CONFIRM],
        "active": [NoticeKind.ALREADY],
        "unsubscribed": [NoticeKind.CONFIRM],
    }
    new = site.subscriber(addresses["new"])
    assert new is not None and (new.status, new.topics) == (PENDING, ["diffusion"])


def test_api_subscribe_stores_the_preferences(site: Site) -> None:
    body = json_prefs(
        email="Ada@Example.org", topics=["Schrödinger bridge", "数学"], frequency="weekdays", send_hour=6,
        timezone="Asia/Tokyo", min_upvotes=2, max_papers=5,
    )  # fmt: skip
    response = site.client.post("/api/subscribe", json=body)
    assert response.status_code == 202
    sub = site.subscriber(ADA)
    assert sub is not None
    assert sub.topics == ["Schrödinger bridge", "数学"]
    assert (sub.frequency.value, sub.send_hour, sub.timezone, sub.min_upvotes, sub.max_papers) == (
        "weekdays", 6, "Asia/Tokyo", 2, 5,
    )  # fmt: skip
    assert [n.kind for n in site.notices(ADA)] == [NoticeKind.CONFIRM]


BAD_API_SIGNUPS = [
    ({"email": "nope"}, "email", "Enter a valid email address"),
    ({"email": ""}, "email", "Enter a valid email address"),
    ({"email": "ada@example.org\r\nBcc: eve@example.org"}, "email", "line breaks"),
    ({"topics": ["agents AND"]}, "topics", "column 8: AND needs a term after it"),
    ({"topics": ["diffusion", '"long context']}, "topics", "line 2, column 1: this quote is never closed"),
    ({"topics": ["-survey"]}, "topics", "column 1"),
    ({"topics": [""]}, "topics", "Add at least one topic"),
    ({"topics": ["x " * 50_000]}, "topics", "too much text"),
    ({"timezone": "UTC\r\nX-Injected: 1"}, "timezone", ""),
    ({"timezone": "Mars/Base"}, "timezone", "time zone"),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_API_SIGNUPS)
def test_api_subscribe_with_bad_input_is_422_with_errors(
    site: Site, change: dict[str, Any], field: str, message: str
) -> None:
    response = site.client.post("/api/subscribe", json={**json_prefs(email=ADA), **change})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert message in errors[field], errors
    nothing_stored(site)


@pytest.mark.parametrize(
    "body",
    [{}, {"email": ADA}, {"email": ADA, "topics": []}, {"email": ADA, "topics": "diffusion"},
     json_prefs(email=ADA, send_hour=24), json_prefs(email=ADA, frequency="hourly"),
     json_prefs(email=ADA, max_papers=0), json_prefs(email="a" * 300 + "@example.org")],
)  # fmt: skip
def test_api_subscribe_with_a_malformed_body_is_422(site: Site, body: dict[str, Any]) -> None:
    response = site.client.post("/api/subscribe", json=body)
    assert response.status_code == 422
    nothing_stored(site)


def test_api_resend(site: Site) -> None:
    site.clock.advance(hours=-30)
    assert site.client.post("/api/subscribe", json=json_prefs(email=ADA)).status_code == 202
    site.clock.advance(hours=30)
    answers = [site.client.post("/api/resend", json={"email": e}) for e in (ADA, "nobody@example.org", "bad")]
    assert {(r.status_code, r.json()["message"]) for r in answers} == {(202, ACCEPTED)}
    assert [n.kind for n in site.notices(ADA)] == [NoticeKind.CONFIRM, NoticeKind.CONFIRM]
    assert len(site.notices()) == 2
    assert site.client.post("/api/resend", json={}).status_code == 422


def test_api_preview_returns_this_weeks_matches_with_title_segments(site: Site, papers: None) -> None:
    response = site.client.post("/api/preview", json={"topics": ["diffusion"]})
    assert response.status_code == 200
    body = response.json()
    assert body["more"] == 0
    [found] = body["papers"]
    assert "".join(s["text"] for s in found["title"]) == "Diffusion models for text"
    assert {"text": "Diffusion", "hit": True} in found["title"]
    assert found["url"] == "https://arxiv.org/abs/2611.00001"
    assert found["topics"] == ["diffusion"]
    titles = [
        "".join(s["text"] for s in p["title"])
        for p in site.client.post("/api/preview", json={"topics": ["diffusion", "graph"]}).json()["papers"]
    ]
    assert sorted(titles) == ["A survey of graph networks", "Diffusion models for text"]
    assert site.client.post("/api/preview", json={"topics": ["quantum"]}).json() == {"papers": [], "more": 0}
    nothing_stored(site)


@pytest.mark.parametrize(
    ("body", "message"),
    [({"topics": ["agents AND"]}, "column 8"), ({"topics": ["ok", "(x"]}, "line 2, column 1"), ({"topics": []}, None),
     ({}, None), ({"topics": [" "]}, "Add at least one topic")],
)  # fmt: skip
def test_api_preview_with_bad_topics_is_422(site: Site, body: dict[str, Any], message: str | None) -> None:
    response = site.client.post("/api/preview", json=body)
    assert response.status_code == 422
    if message:
        assert message in response.json()["errors"]["topics"]


def test_api_confirm(site: Site) -> None:
    assert site.client.post("/api/subscribe", json=json_prefs(email=ADA)).status_code == 202
    token = site.confirm_token(ADA)
    tokens = site.tokens(ADA)
    for bad in (tamper(token), tokens["manage"], tokens["unsubscribe"], "nope"):
        response = site.client.post(f"/api/confirm/{bad}")
        assert response.status_code == 400
        assert response.json() == {"detail": "This link is not valid."}
    assert status_of(site, ADA) is PENDING
    assert site.client.post(f"/api/confirm/{token}").json() == {"status": "active", "message": ""}
    assert site.client.post(f"/api/confirm/{token}").json() == {"status": "active", "message": ""}
    assert status_of(site, ADA) is ACTIVE


@pytest.mark.parametrize("kind", ["expired", "replayed-after-new-signup", "after-unsubscribing"])
def test_api_confirm_refuses_dead_links(site: Site, kind: str) -> None:
    token = bad_confirm_token(site, kind)
    before = status_of(site, ADA)
    assert site.client.post(f"/api/confirm/{token}").status_code == 400
    assert status_of(site, ADA) is before


def test_api_manage_round_trip(site: Site) -> None:
    tokens = confirmed(site, ADA, "diffusion")
    url = f"/api/manage/{tokens['manage']}"
    got = site.client.get(url)
    assert got.status_code == 200
    assert got.json() == {
        "email": ADA, "status": "active", "topics": ["diffusion"], "frequency": "daily", "send_hour": 8,
        "timezone": "UTC", "weekly_day": 0, "min_upvotes": None, "max_papers": 25,
    }  # fmt: skip
    new = json_prefs(topics=['"long context"', "cat:cs.CL"], frequency="weekly", weekly_day=3, send_hour=21,
                     timezone="America/New_York", min_upvotes=10, max_papers=50)  # fmt: skip
    put = site.client.put(url, json=new)
    assert put.status_code == 200
    assert put.json() == {**new, "email": ADA, "status": "active"}
    assert site.client.get(url).json() == put.json()
    sub = site.subscriber(ADA)
    assert sub is not None
    assert (sub.topics, sub.timezone, sub.weekly_day) == (['"long context"', "cat:cs.CL"], "America/New_York", 3)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [({"topics": ["agents AND"]}, "topics", "column 8"), ({"topics": ["a", "b AND"]}, "topics", "line 2, column 3"),
     ({"timezone": "Nowhere"}, "timezone", "time zone"), ({"timezone": "UTC\n"}, "timezone", "line breaks")],
)  # fmt: skip
def test_api_manage_put_with_bad_values_is_422_and_changes_nothing(
    site: Site, change: dict[str, Any], field: str, message: str
) -> None:
    tokens = confirmed(site, ADA, "diffusion")
    before = site.subscriber(ADA)
    response = site.client.put(f"/api/manage/{tokens['manage']}", json={**json_prefs(), **change})
    assert response.status_code == 422
    assert message in response.json()["errors"][field]
    after = site.subscriber(ADA)
    assert after is not None and before is not None
    assert after.model_dump() == before.model_dump()


def test_api_manage_with_bad_tokens_is_400(site: Site) -> None:
    tokens = confirmed(site)
    for bad in (tamper(tokens["manage"]), tokens["unsubscribe"], "x"):
        assert site.client.get(f"/api/manage/{bad}").status_code == 400
        assert site.client.put(f"/api/manage/{bad}", json=json_prefs(topics=["x"])).status_code == 400
        assert site.client.post(f"/api/manage/{bad}/pause").status_code == 400
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.status, sub.topics) == (ACTIVE, ["diffusion"])


def test_api_pause_and_resume(site: Site) -> None:
    tokens = confirmed(site)
    url = f"/api/manage/{tokens['manage']}"
    paused = site.client.post(f"{url}/pause")
    assert paused.status_code == 200
    assert paused.json()["status"] == "paused"
    assert status_of(site, ADA) is PAUSED
    site.clock.advance(days=1)
    resumed = site.client.post(f"{url}/resume")
    assert resumed.json()["status"] == "active"
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.status, sub.confirmed_at) == (ACTIVE, NOW + timedelta(days=1))
    assert site.client.post(f"{url}/explode").status_code == 404
    assert status_of(site, ADA) is ACTIVE


def test_api_pause_of_a_pending_reader_is_refused(site: Site) -> None:
    assert site.signup(ADA).status_code == 200
    tokens = site.tokens(ADA)
    assert site.client.post(f"/api/manage/{tokens['manage']}/pause").status_code == 409
    assert status_of(site, ADA) is PENDING


def test_api_unsubscribe(site: Site) -> None:
    tokens = confirmed(site)
    for bad in (tamper(tokens["unsubscribe"]), tokens["manage"], "x"):
        assert site.client.post(f"/api/unsubscribe/{bad}").status_code == 400
    assert status_of(site, ADA) is ACTIVE
    first = site.client.post(f"/api/unsubscribe/{tokens['unsubscribe']}")
    assert (first.status_code, first.json()) == (200, {"status": "unsubscribed", "message": ""})
    second = site.client.post(f"/api/unsubscribe/{tokens['unsubscribe']}")
    assert (second.status_code, second.json()["status"]) == (200, "unsubscribed")
    assert status_of(site, ADA) is UNSUBSCRIBED
    put = site.client.put(f"/api/manage/{tokens['manage']}", json=json_prefs(topics=["back"]))
    assert put.status_code == 409
    assert site.client.post(f"/api/manage/{tokens['manage']}/resume").status_code == 409
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.status, sub.topics) == (UNSUBSCRIBED, ["diffusion"])


def test_openapi_lists_the_api_and_only_the_api(site: Site) -> None:
    response = site.client.get("/api/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/api/subscribe": {"post"},
        "/api/resend": {"post"},
        "/api/preview": {"post"},
        "/api/confirm/{token}": {"post"},
        "/api/manage/{token}": {"get", "put"},
        "/api/manage/{token}/{action}": {"post"},
        "/api/unsubscribe/{token}": {"post"},
    } == {path: set(methods) for path, methods in paths.items()}
    docs = site.client.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/openapi.json" in docs.text
