"""The manage page: current preferences shown, saved, paused, resumed, unsubscribed; bad values and
bad links change nothing.

Each test gets its own database, a clock it controls and an in-memory rate limiter (tests/webclient.py)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from digest.tokens import Purpose, make_token
from tests.conftest import NOW
from tests.webclient import (  # noqa: F401  (clock, site: fixtures)
    ACTIVE,
    ADA,
    PAUSED,
    UNSUBSCRIBED,
    Site,
    all_errors,
    assert_bad_link,
    assert_forbidden,
    bad_link_tokens,
    clock,
    confirmed,
    field_error,
    input_value,
    is_checked,
    json_prefs,
    manage_form,
    selected,
    site,
    status_of,
    tamper,
    textarea,
)


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
    assert not is_checked(page.text, "trending")
    assert input_value(page.text, "trending_count") == "10"


def test_manage_shows_a_trending_readers_choice(site: Site) -> None:
    assert site.signup(ADA, "", trending_count="7").status_code == 200
    assert site.post(f"/confirm/{site.confirm_token(ADA)}").status_code == 200
    page = site.client.get(f"/manage/{site.tokens(ADA)['manage']}").text
    assert textarea(page) == ""
    assert is_checked(page, "trending")
    assert input_value(page, "trending_count") == "7"


@pytest.mark.parametrize(
    ("change", "stored"),
    [
        ({"trending": "on"}, (['"long context"', "cat:cs.CL retrieval"], 10)),  # switched on: both
        ({"trending": "on", "trending_count": "3"}, (['"long context"', "cat:cs.CL retrieval"], 3)),
        ({}, (['"long context"', "cat:cs.CL retrieval"], None)),  # unticked: topics only
        ({"topics": ""}, ([], 10)),  # every topic removed: the trending papers
        ({"topics": "", "trending_count": "20"}, ([], 20)),
        ({"topics": " \n ", "trending": "on", "trending_count": "1"}, ([], 1)),
    ],
)
def test_manage_switches_trending_on_and_off(
    site: Site, change: dict[str, str], stored: tuple[list[str], int | None]
) -> None:
    tokens = confirmed(site)
    url = f"/manage/{tokens['manage']}"
    response = site.post(url, manage_form(**change))
    assert response.status_code == 200, all_errors(response.text)
    assert "Saved" in response.text
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.topics, sub.trending) == stored
    page = site.client.get(url).text
    assert is_checked(page, "trending") is (stored[1] is not None)
    assert input_value(page, "trending_count") == str(stored[1] or 10)


def test_a_trending_reader_switches_to_topics_only(site: Site) -> None:
    tokens = confirmed(site, ADA, "")
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.topics, sub.trending) == ([], 10)
    assert site.post(f"/manage/{tokens['manage']}", manage_form(topics="agents")).status_code == 200
    sub = site.subscriber(ADA)
    assert sub is not None and (sub.topics, sub.trending) == (["agents"], None)


@pytest.mark.parametrize(("value", "message"), [("0", "from 1 to 50"), ("51", "from 1 to 50"), ("x", "whole number")])
def test_manage_with_a_bad_number_of_trending_papers_changes_nothing(site: Site, value: str, message: str) -> None:
    tokens = confirmed(site)
    before = site.subscriber(ADA)
    response = site.post(f"/manage/{tokens['manage']}", manage_form(trending="on", trending_count=value))
    assert response.status_code == 400
    error = field_error(response.text, "trending_count")
    assert error and message in error, all_errors(response.text)
    assert is_checked(response.text, "trending")
    after = site.subscriber(ADA)
    assert after is not None and before is not None
    assert after.model_dump() == before.model_dump()


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
    token = bad_link_tokens(site, ADA, confirmed(site), "manage")[kind]
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
    # Signed with the real key but naming a handle no reader has (a guess, or a forgotten reader's).
    forged = make_token(site.settings.signing_keys, Purpose.MANAGE, "not-a-handle", now=site.clock())
    assert_bad_link(site.client.get(f"/manage/{forged}"))
    assert_bad_link(site.client.get(f"/manage/{tokens['manage'][:-1]}"))
