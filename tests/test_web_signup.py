"""The sign-up form and its live preview: good and bad input, the honeypot, and answers that never
say what state an address is in.

Each test gets its own database, a clock it controls and an in-memory rate limiter (tests/webclient.py)."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import numpy as np
import pytest
from sqlmodel import select

from digest.db import open_session
from digest.embed import to_bytes
from digest.models import NoticeKind, Subscriber
from digest.web.forms import ExampleError, example_id, resolve_title
from digest.web.security import CSRF_FIELD
from tests.conftest import NOW
from tests.factories import add_papers, paper
from tests.webclient import (  # noqa: F401  (clock, site, papers, trending_papers: fixtures)
    ACTIVE,
    ADA,
    CHECK_INBOX,
    PENDING,
    Site,
    all_errors,
    assert_forbidden,
    clock,
    confirmed,
    csrf_of,
    every_state,
    field_error,
    four_addresses,
    input_value,
    is_checked,
    json_prefs,
    manage_form,
    nothing_stored,
    page_text,
    papers,
    preview_text,
    selected,
    site,
    status_of,
    textarea,
    trending_papers,
    without_csrf,
)


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
    assert sub.topics == ["diffusion"]  # the first request's settings stand while it is pending


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


# --- trending papers: on when the topic box is empty ----------------------------------------------


def test_the_signup_page_offers_the_trending_papers_on_when_topics_are_empty(site: Site) -> None:
    page = site.client.get("/").text
    assert "Trending papers on Hugging Face — on when you leave topics and papers empty" in page_text(page)
    assert input_value(page, "trending_count") == "10"
    assert not is_checked(page, "trending")  # JavaScript ticks it while the topic box is empty
    textarea_tag = re.search(r"<textarea[^>]*>", page)
    assert textarea_tag and "required" not in textarea_tag.group(0)


@pytest.mark.parametrize(
    ("topics", "fields", "stored"),
    [
        ("", {}, ([], 10)),  # nothing ticked, nothing typed: the trending papers, 10 of them
        ("  \n \r\n ", {}, ([], 10)),
        ("", {"trending": "on"}, ([], 10)),
        ("", {"trending_count": "5"}, ([], 5)),  # the number typed counts even without the tick (no JavaScript)
        ("", {"trending_count": ""}, ([], 10)),
        ("diffusion", {}, (["diffusion"], None)),  # topics typed, box unticked: topics only
        ("diffusion", {"trending": "on"}, (["diffusion"], 10)),  # both
        ("diffusion\nagents", {"trending": "on", "trending_count": "50"}, (["diffusion", "agents"], 50)),
        ("diffusion", {"trending_count": "999"}, (["diffusion"], None)),  # no box, no trending: the number is unused
    ],
)
def test_the_trending_choice_is_stored(
    site: Site, topics: str, fields: dict[str, str], stored: tuple[list[str], int | None]
) -> None:
    response = site.signup(ADA, topics, **fields)
    assert response.status_code == 200, all_errors(response.text)
    assert CHECK_INBOX in response.text
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.topics, sub.trending) == stored
    [mail] = site.send()
    assert "Confirm your subscription" in mail.subject


def test_the_confirm_page_of_a_trending_signup_says_what_it_is_for(site: Site) -> None:
    assert site.signup(ADA, "", trending_count="7").status_code == 200
    page = site.client.get(f"/confirm/{site.confirm_token(ADA)}")
    assert "the top 7 trending papers" in page.text


@pytest.mark.parametrize(("topics", "ticked"), [("", ""), ("", "on"), ("diffusion", "on")])
@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "Enter a number from 1 to 50."), ("51", "Enter a number from 1 to 50."), ("-3", "from 1 to 50"),
     ("ten", "Enter a whole number."), ("5\r\nX: 1", "line breaks")],
)  # fmt: skip
def test_a_bad_number_of_trending_papers_is_refused_next_to_it(
    site: Site, topics: str, ticked: str, value: str, message: str
) -> None:
    response = site.client.post("/subscribe", data=site.signup_form(ADA, topics, trending=ticked, trending_count=value))
    assert response.status_code == 400
    error = field_error(response.text, "trending_count")
    assert error is not None and message in error, all_errors(response.text)
    assert 'aria-describedby="trending_count-error"' in response.text
    assert is_checked(response.text, "trending") is bool(ticked)  # the form as it was sent
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


def test_the_honeypot_gets_the_same_page_and_stores_nothing(site: Site) -> None:
    trapped = site.signup(ADA, website="https://spam.example")
    assert trapped.status_code == 200
    assert CHECK_INBOX in trapped.text
    nothing_stored(site)
    real = site.signup("grace@example.org")
    assert (real.status_code, without_csrf(real.text)) == (trapped.status_code, without_csrf(trapped.text))
    assert [s.email for s in site.subscribers()] == ["grace@example.org"]


# --- the answer never says what state an address is in --------------------------------------------


def _emails_by_kind(site: Site) -> dict[str, list[str]]:
    sent: dict[str, list[str]] = {}
    for mail in site.send():
        sent.setdefault(mail.to, []).append(mail.subject)
    return sent


def test_signup_answers_the_same_for_new_pending_active_and_unsubscribed(site: Site) -> None:
    addresses = four_addresses(site)
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


# --- the preview of the last week's papers --------------------------------------------------------


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


def _preview(site: Site, topics: str = "", **fields: str) -> str:
    response = site.post("/preview", site.signup_form(topics=topics, **fields))
    assert response.status_code == 200, all_errors(response.text)
    return preview_text(response.text)


def _order(text: str, *titles: str) -> list[int]:
    where = [text.find(t) for t in titles]
    assert all(w >= 0 for w in where), (titles, text)
    return where


def test_the_preview_with_no_topics_is_the_trending_papers_by_upvotes(site: Site, trending_papers: None) -> None:
    shown = _preview(site, "", trending_count="3")
    assert "Trending on Hugging Face" in shown and "On your topics" not in shown
    where = _order(shown, "Diffusion transformers at scale", "#1 · 120 upvotes", "Agents that use tools",
                   "#2 · 80 upvotes", "Diffusion for proteins", "#3 · 45 upvotes")  # fmt: skip
    assert where == sorted(where)
    for absent in ("A survey of graphs", "Small diffusion tricks", "An old favourite", "Diffusion without votes"):
        assert absent not in shown  # beyond the top 3, older than the week, or not on Hugging Face
    assert "#1 · 120 upvotes" in _preview(site, "")  # the default, 10, shows all five of the week
    assert "#5 · 4 upvotes" in _preview(site, "") and "#6" not in _preview(site, "")
    nothing_stored(site)


def test_the_preview_honours_the_minimum_upvotes(site: Site, trending_papers: None) -> None:
    shown = _preview(site, "diffusion", min_upvotes="40")
    assert "Trending" not in shown  # topics typed, box unticked: topics only
    where = _order(shown, "Diffusion transformers at scale", "Diffusion for proteins")  # by upvotes
    assert where == sorted(where)
    assert "Small diffusion tricks" not in shown and "Diffusion without votes" not in shown
    everything = _preview(site, "diffusion")
    assert "Small diffusion tricks" in everything and "Diffusion without votes" in everything


def test_the_preview_honours_the_papers_per_email(site: Site, trending_papers: None) -> None:
    shown = _preview(site, "diffusion", max_papers="2")
    assert "Diffusion transformers at scale" in shown and "Diffusion for proteins" in shown
    assert "Small diffusion tricks" not in shown and "Diffusion without votes" not in shown
    assert "…and 2 more." in shown


def test_the_preview_with_topics_and_trending_shows_both_and_never_a_paper_twice(
    site: Site, trending_papers: None
) -> None:
    shown = _preview(site, "diffusion", trending="on", trending_count="2")
    trending, _, topical = shown.partition("On your topics")
    assert "Trending on Hugging Face" in trending
    where = _order(trending, "#1 · 120 upvotes", "#2 · 80 upvotes")
    assert where == sorted(where)
    assert "Diffusion transformers at scale" in trending and "Agents that use tools" in trending
    assert "#1 · 120 upvotes · also on your topic diffusion" in trending
    assert "#2 · 80 upvotes also" not in trending and "#2 · 80 upvotes ·" not in trending  # agents: no topic of theirs
    assert "Diffusion transformers at scale" not in topical  # already in the trending section
    for title in ("Diffusion for proteins", "Small diffusion tricks", "Diffusion without votes"):
        assert title in topical
    assert "Matched: diffusion" in topical


def test_the_preview_with_a_bad_setting_shows_its_error_and_no_papers(site: Site, trending_papers: None) -> None:
    for name, value in (("min_upvotes", "-1"), ("max_papers", "0"), ("trending_count", "51")):
        response = site.client.post("/preview", data=site.signup_form(topics="", **{name: value}))
        assert response.status_code == 400
        assert field_error(response.text, name)
        assert "Diffusion transformers" not in response.text
    kept = site.client.post("/preview", data=site.signup_form(topics="", timezone="Mars/Base"))
    assert kept.status_code == 200  # a bad time zone changes nothing about the last week's papers
    assert field_error(kept.text, "timezone") and "#1 · 120 upvotes" in preview_text(kept.text)


# --- the confirmation email carries nothing a stranger typed (issue 11 #10) -------------------------

HOSTILE_TOPICS = '"https://evil.example/verify"\n"call +1 555 0100" now\ndiffusion'


def test_the_confirmation_email_shows_no_text_from_the_form(site: Site) -> None:
    """Anyone can fill the form in with anyone's address: the email it sends shows only what was
    chosen from fixed lists (the schedule) and counts, never the topics or any other typed text."""
    address = "ada+visit-evil.example@example.org"
    response = site.signup(address, HOSTILE_TOPICS, frequency="weekdays", send_hour="7", timezone="Europe/Paris")
    assert response.status_code == 200
    [mail] = site.send()
    html_part = mail.message.get_body(preferencelist=("html",))
    assert html_part is not None
    for part in (mail.text, html_part.get_content()):
        body = " ".join(part.split())
        for typed in ("evil", "verify", "555", "0100", "call", "diffusion", "visit"):
            assert typed not in body.lower(), (typed, body)
        assert "every weekday at 07:00 (Europe/Paris)" in body
        assert "on 3 topics" in body
        assert "change your choices on your manage page" in body
    assert "confirm" in mail.tokens


def test_a_new_signup_for_a_pending_address_changes_nothing_it_asked_for(site: Site) -> None:
    """Rule: the pending request's settings stand. A later sign-up only sends the link again (after
    the cooldown); the reader changes topics on the manage page once confirmed."""
    assert site.signup(ADA, "diffusion", send_hour="6", timezone="Asia/Tokyo").status_code == 200
    first = site.confirm_token(ADA)
    for hours in (1, 30):
        site.clock.now = NOW + timedelta(hours=hours)
        assert site.signup(ADA, '"https://evil.example/verify"', send_hour="3", timezone="UTC").status_code == 200
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.topics, sub.send_hour, sub.timezone) == (["diffusion"], 6, "Asia/Tokyo")
    second = site.confirm_token(ADA)  # the link again, 30 hours later (nothing within the cooldown)
    assert second != first
    assert site.post(f"/confirm/{second}").status_code == 200
    assert status_of(site, ADA) is ACTIVE


# --- the answer says when a new link can be sent, the same for every state (issue 11 #11) -----------


def test_every_signup_answer_says_when_a_new_link_can_be_sent_whatever_the_state(site: Site) -> None:
    """Asking again within the cooldown sends nothing: the page says so truthfully for everyone —
    an email is on its way or went out recently, and the time after which a new one can be sent."""
    answers = {}
    for state, address in every_state(site).items():
        response = site.signup(address, "diffusion", timezone="Europe/Paris")
        answers[state] = (response.status_code, without_csrf(response.text))
    assert len(set(answers.values())) == 1, answers.keys()
    status, page = answers["new"]
    assert status == 200 and CHECK_INBOX in page
    assert "or one was sent in the last 24 hours" in page
    assert "If you don't see it, look in your spam folder." in page
    assert "A new link can be sent after 10:00 on Tuesday 1 December (Europe/Paris time)." in page
    assert "Check your inbox" in page and "is on its way" in page


def test_the_resend_answer_has_the_same_words_in_utc(site: Site) -> None:
    answers = {
        state: without_csrf(site.post("/resend", {"email": address}).text)
        for state, address in every_state(site).items()
    }
    assert len(set(answers.values())) == 1
    assert "A new link can be sent after 09:00 on Tuesday 1 December (UTC)." in answers["new"]


# --- papers you liked (issue 13 #5): each one a `like:ID` topic, in the form, the preview, the API ---

EXAMPLE_ID, EXAMPLE_TITLE = "2611.30001", "Sparse attention for long documents"
CLOSE_TITLE = "Reading whole books at once"  # no word of any topic: only the example brings it
TWIN_TITLE = "A twin title"


def _unit(*values: float) -> bytes:
    vector = np.array(values, dtype=np.float32)
    return to_bytes(vector / np.linalg.norm(vector))


@pytest.fixture
def liked(site: Site) -> None:
    """Papers with fixed vectors of the configured model: the example (20 days old, outside the
    preview's week, inside the title look-up's 90 days), one close to it and one far from it this
    week, two papers with the same title, one too old to be found by title, one not embedded yet."""
    rows = [
        (EXAMPLE_ID, EXAMPLE_TITLE, "Attention over long inputs.", 20, (1, 0, 0, 0)),
        ("2611.30002", CLOSE_TITLE, "Memory for transformers.", 1, (0.95, 0.3, 0, 0)),
        ("2611.30003", "Protein folding with diffusion", "Diffusion for proteins.", 1, (0, 0, 1, 0)),
        ("2611.30004", TWIN_TITLE, "One of two.", 3, (0, 0, 0, 1)),
        ("2611.30005", TWIN_TITLE, "The other one.", 4, (0, 0, 0, 1)),
        ("2607.30006", "An old paper nobody remembers", "Old.", 120, (1, 0, 0, 0)),
        ("2611.30007", "Fresh off the feed", "Not read yet.", 0, None),
    ]
    papers = []
    for pid, title, abstract, days, vector in rows:
        row = paper(pid, title, abstract, first_seen=NOW - timedelta(days=days, hours=1))
        if vector is not None:
            row.embedding, row.embedding_model = _unit(*vector), site.settings.embedding_model
        papers.append(row)
    with open_session(site.engine) as session:
        add_papers(session, *papers)


def examples_box(page: str) -> str:
    found = re.search(r'<textarea id="examples"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, "no 'Papers you liked' box"
    return html.unescape(found.group(1))


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("2406.12345", "2406.12345"),
        ("2406.1234", "2406.1234"),  # a 4-digit number (before 2015)
        ("arXiv:2406.12345v2", "2406.12345"),
        ("arxiv: 2406.12345", "2406.12345"),
        ("https://arxiv.org/abs/2406.12345v3", "2406.12345"),
        ("http://arxiv.org/pdf/2406.12345v1.pdf", "2406.12345"),
        ("arxiv.org/pdf/2406.12345", "2406.12345"),
        ("https://www.arxiv.org/abs/2406.12345?context=cs.CL", "2406.12345"),
        ("https://arxiv.org/html/2406.12345v1/", "2406.12345"),
        ("https://huggingface.co/papers/2406.12345", "2406.12345"),
        ("hep-th/9901001", "hep-th/9901001"),
        ("arXiv:MATH.gt/0309136v2", "math.GT/0309136"),
        (EXAMPLE_TITLE, None),  # a title
        ("1.5-Pints Technical Report", None),  # a title that starts with a number
        ("GPT-4 Technical Report", None),
    ],
)
def test_an_example_entry_is_an_arxiv_id_or_a_title(entry: str, expected: str | None) -> None:
    assert example_id(entry) == expected


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("2406.123", "'2406.123' is not an arXiv id like 2406.12345"),
        ("2406.123456", "is not an arXiv id like 2406.12345"),
        ("2406", "is not an arXiv id"),
        ("arXiv:24x6.12345", "is not an arXiv id"),
        ("2413.12345", "it starts with the year and month (2406 is June 2024)"),
        ("https://openreview.net/forum?id=abc", "is not a link to an arXiv paper: paste its arXiv id"),
        ("https://arxiv.org/list/cs.CL/new", "is not a link to an arXiv paper"),
    ],
)
def test_a_malformed_id_or_a_link_to_no_paper_says_so(entry: str, message: str) -> None:
    with pytest.raises(ExampleError, match=re.escape(message)):
        example_id(entry)


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ("xKV: Cross-Layer SVD for KV-Cache Compression", ["a"]),
        ("  xkv:   cross-layer svd FOR kv-cache compression ", ["a"]),  # case and spacing aside
        ("xKV Cross Layer SVD for KV Cache Compressions", ["a"]),  # failing that: the same words
        ("xKV: Cross-Layer SVD", []),  # a part of a title is not the title
        ("A twin title", ["b", "c"]),
    ],
)
def test_a_title_resolves_exactly_first_then_by_its_words(typed: str, found: list[str]) -> None:
    stored = [("a", "xKV: Cross-Layer SVD for KV-Cache Compression"), ("b", "A twin title"), ("c", "a twin  title"),
              ("d", "xKV: Cross-Layer SVD for KV-Cache Compression, revisited")]  # fmt: skip
    assert resolve_title(typed, stored) == found


@pytest.mark.parametrize(
    "entry",
    [EXAMPLE_ID, f"arXiv:{EXAMPLE_ID}v2", f"https://arxiv.org/abs/{EXAMPLE_ID}v3", f"http://arxiv.org/pdf/{EXAMPLE_ID}v1.pdf",
     f"https://huggingface.co/papers/{EXAMPLE_ID}", EXAMPLE_TITLE, f"  {EXAMPLE_TITLE.upper()}  ",
     "Sparse attention for long-documents!"],
)  # fmt: skip
def test_a_paper_you_liked_becomes_one_like_topic(site: Site, liked: None, entry: str) -> None:
    response = site.signup(ADA, "diffusion", examples=entry)
    assert response.status_code == 200, all_errors(response.text)
    assert CHECK_INBOX in response.text
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.topics, sub.trending) == (["diffusion", f"like:{EXAMPLE_ID}"], None)


def test_each_paper_you_liked_is_a_topic_of_its_own(site: Site, liked: None) -> None:
    """One topic per paper, so each card says which example brought it and each can be removed on
    the manage page; a paper named twice is one topic, and an id we do not have yet is kept."""
    examples = f"{EXAMPLE_ID}\r\n{CLOSE_TITLE}\n\narXiv:{EXAMPLE_ID}v2\n2611.99999"
    assert site.signup(ADA, "", examples=examples).status_code == 200
    sub = site.subscriber(ADA)
    assert sub is not None
    assert sub.topics == [f"like:{EXAMPLE_ID}", "like:2611.30002", "like:2611.99999"]
    assert sub.trending is None  # papers you liked are topics: the trending box is left to the reader
    page = site.client.get(f"/confirm/{site.confirm_token(ADA)}")
    chips = page_text(page.text)
    assert f"papers like {EXAMPLE_TITLE}" in chips and f"papers like {CLOSE_TITLE}" in chips
    assert "papers like 2611.99999" in chips


EXAMPLE_ERRORS = [
    # (what was typed in "Papers you liked", words of the error shown next to it)
    ("2611.123", "'2611.123' is not an arXiv id like 2406.12345 (or arXiv:2406.12345v2)"),
    ("2613.12345", "is not an arXiv id: it starts with the year and month"),
    ("https://openreview.net/forum?id=abc", "is not a link to an arXiv paper: paste its arXiv id, like 2406.12345"),
    ("A paper nobody wrote", 'No paper titled "A paper nobody wrote" in the last 90 days; paste its arXiv id instead'),
    ("An old paper nobody remembers", 'No paper titled "An old paper nobody remembers" in the last 90 days'),
    (TWIN_TITLE, f'2 papers are titled "{TWIN_TITLE}": paste the arXiv id of yours (2611.30004 or 2611.30005)'),
    (f"{EXAMPLE_ID}\nA paper nobody wrote", 'line 2: no paper titled "A paper nobody wrote"'),
    ("\n".join(f"2611.3000{n}" for n in range(1, 7)), "At most 5 papers, one per line (there are 6)."),
    ("x" * 700, "too long for a title: paste the paper's arXiv id instead"),
    ("x\n" * 3000, "far too much text"),
]


@pytest.mark.parametrize(("examples", "message"), EXAMPLE_ERRORS)
def test_a_bad_paper_you_liked_is_refused_next_to_it_and_the_form_kept(
    site: Site, liked: None, examples: str, message: str
) -> None:
    form = site.signup_form(ADA, 'diffusion\n"long context"', examples=examples, timezone="Asia/Tokyo", max_papers="7")
    response = site.client.post("/subscribe", data=form)
    assert response.status_code == 400
    error = field_error(response.text, "examples")
    assert error is not None and message in error, all_errors(response.text)
    assert all_errors(response.text) == [error]  # no other field is blamed
    assert 'aria-describedby="examples-help examples-error"' in response.text
    assert "Traceback" not in response.text
    # Nothing typed is lost: the form comes back as it was sent, ready to correct.
    assert examples_box(response.text) == examples.replace("\r\n", "\n")
    assert textarea(response.text) == 'diffusion\n"long context"'
    assert input_value(response.text, "email") == ADA
    assert (selected(response.text, "timezone"), input_value(response.text, "max_papers")) == ("Asia/Tokyo", "7")
    nothing_stored(site)


def test_papers_you_liked_count_toward_the_topic_limit(site: Site, liked: None) -> None:
    topics = "\n".join(f"topic{n}" for n in range(19))
    response = site.client.post("/subscribe", data=site.signup_form(ADA, topics, examples=f"{EXAMPLE_ID}\n2611.30002"))
    assert response.status_code == 400
    assert field_error(response.text, "examples") == (
        "Each paper you liked is a topic, and there can be 20: with your 19 topics, 1 more fit."
    )
    nothing_stored(site)
    assert site.signup(ADA, topics, examples=EXAMPLE_ID).status_code == 200
    sub = site.subscriber(ADA)
    assert sub is not None and len(sub.topics) == 20 and sub.topics[-1] == f"like:{EXAMPLE_ID}"


def test_a_paper_you_liked_needs_the_csrf_token_like_every_form(site: Site, liked: None) -> None:
    for path in ("/subscribe", "/preview"):
        form = site.signup_form(ADA, "", examples=EXAMPLE_ID)
        del form[CSRF_FIELD]
        assert_forbidden(site.client.post(path, data=form))
    nothing_stored(site)


def test_the_preview_shows_what_the_papers_you_liked_bring(site: Site, liked: None) -> None:
    without = _preview(site, "diffusion")
    assert "Protein folding with diffusion" in without and CLOSE_TITLE not in without
    shown = _preview(site, "diffusion", examples=EXAMPLE_TITLE)
    assert f"Papers you liked: {EXAMPLE_TITLE} ({EXAMPLE_ID})" in shown
    assert f"{CLOSE_TITLE} " in shown and f"Matched: close to your example {EXAMPLE_TITLE}" in shown
    assert "Matched: diffusion" in shown  # the topic's paper is still there, saying why
    assert shown.count(EXAMPLE_TITLE) == 2  # the example itself is not a paper of the week (nor like itself)
    assert "Twin" not in shown and "An old paper" not in shown  # far from the example


def test_the_preview_says_which_papers_you_liked_bring_nothing_yet(site: Site, liked: None) -> None:
    shown = _preview(site, "", examples="2611.99999\n2611.30007")
    assert (
        "Papers you liked: 2611.99999 — not among our papers yet: it brings nothing until it is · "
        "Fresh off the feed (2611.30007) — just arrived: it brings papers once it is read, within the hour"
    ) in shown
    assert "No paper of the last 7 days is close to the papers you liked." in shown
    assert "Trending" not in shown  # papers you liked are topics: no trending papers unless ticked


def test_the_preview_with_a_bad_paper_you_liked_shows_its_error_and_no_papers(site: Site, liked: None) -> None:
    response = site.client.post("/preview", data=site.signup_form(ADA, "diffusion", examples=TWIN_TITLE))
    assert response.status_code == 400
    assert "2 papers are titled" in (field_error(response.text, "examples") or "")
    assert "Protein folding" not in response.text and examples_box(response.text) == TWIN_TITLE


def test_the_api_takes_papers_you_liked_as_examples(site: Site, liked: None) -> None:
    preview = site.client.post("/api/preview", json={"topics": [], "examples": [EXAMPLE_TITLE, "2611.99999"]})
    assert preview.status_code == 200
    body = preview.json()
    assert [(p["title"][0]["text"], p["why"]) for p in body["papers"]] == [
        (CLOSE_TITLE, f"Matched: close to your example {EXAMPLE_TITLE}")
    ]
    assert body["examples"] == [
        {"id": EXAMPLE_ID, "title": EXAMPLE_TITLE, "note": ""},
        {"id": "2611.99999", "title": None, "note": "not among our papers yet: it brings nothing until it is"},
    ]
    bad = site.client.post("/api/preview", json={"examples": [TWIN_TITLE]})
    assert bad.status_code == 422 and "2 papers are titled" in bad.json()["errors"]["examples"]
    many = site.client.post("/api/subscribe", json={"email": ADA, "examples": [EXAMPLE_ID] * 6})
    assert many.status_code == 422 and many.json()["errors"] == {
        "examples": "At most 5 papers, one per line (there are 6)."
    }
    nothing_stored(site)
    signed = site.client.post(
        "/api/subscribe", json={"email": ADA, "topics": ["diffusion"], "examples": [EXAMPLE_TITLE]}
    )
    assert signed.status_code == 202
    sub = site.subscriber(ADA)
    assert sub is not None and sub.topics == ["diffusion", f"like:{EXAMPLE_ID}"]


def test_the_manage_page_shows_and_edits_the_papers_you_liked(site: Site, liked: None) -> None:
    """On the manage page the papers you liked are in their own box again, by id, each listed with
    its title; removing a line removes that topic, a title typed there resolves as at sign-up."""
    tokens = confirmed(site, ADA, "diffusion")
    with open_session(site.engine) as session:
        sub = session.exec(select(Subscriber).where(Subscriber.email == ADA)).one()
        sub.topics = ["diffusion", f"like:{EXAMPLE_ID}", "like:2611.99999"]
        session.add(sub)
        session.commit()
    url = f"/manage/{tokens['manage']}"
    page = site.client.get(url).text
    assert textarea(page) == "diffusion" and examples_box(page) == f"{EXAMPLE_ID}\n2611.99999"
    listed = f"You liked: {EXAMPLE_TITLE} ({EXAMPLE_ID}) · 2611.99999 — not among our papers yet: it brings nothing"
    assert listed in page_text(page)
    bad = site.post(url, manage_form(topics="diffusion", examples=f"{EXAMPLE_ID}\nA paper nobody wrote"))
    assert bad.status_code == 400 and "line 2: no paper titled" in (field_error(bad.text, "examples") or "")
    saved = site.post(url, manage_form(topics="diffusion", examples=f"{EXAMPLE_ID}\n{CLOSE_TITLE}"))
    assert saved.status_code == 200 and "Saved" in saved.text
    after = site.subscriber(ADA)
    assert after is not None and after.topics == ["diffusion", f"like:{EXAMPLE_ID}", "like:2611.30002"]
    assert examples_box(saved.text) == f"{EXAMPLE_ID}\n2611.30002"
    api = f"/api/manage/{tokens['manage']}"  # the API's PUT takes them too; its GET lists every topic
    put = site.client.put(api, json=json_prefs(topics=["diffusion"], examples=[CLOSE_TITLE, "arXiv:2611.99999v1"]))
    assert put.status_code == 200 and put.json()["topics"] == ["diffusion", "like:2611.30002", "like:2611.99999"]
    assert site.client.get(api).json() == put.json()
