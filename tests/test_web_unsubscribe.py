"""Unsubscribing: the page's button (CSRF-checked) and RFC 8058 one-click (no cookies, 200).

Each test gets its own database, a clock it controls and an in-memory rate limiter (tests/webclient.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from digest.web.security import CSRF_FIELD
from tests.conftest import NOW
from tests.webclient import (  # noqa: F401  (clock, site: fixtures)
    ACTIVE,
    ADA,
    UNSUBSCRIBED,
    Site,
    assert_bad_link,
    assert_forbidden,
    bad_link_tokens,
    clock,
    confirmed,
    one_click,
    site,
    status_of,
    tamper,
)


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


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_rfc8058_one_click_unsubscribes_without_cookies_and_answers_200(site: Site, encoding: str) -> None:
    tokens = confirmed(site)
    first = one_click(site, tokens["unsubscribe"], encoding)
    assert first.status_code == 200, first.text
    assert "location" not in first.headers
    assert status_of(site, ADA) is UNSUBSCRIBED
    second = one_click(site, tokens["unsubscribe"], encoding)
    assert second.status_code == 200
    assert "location" not in second.headers
    assert status_of(site, ADA) is UNSUBSCRIBED


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_with_a_tampered_token_is_400_and_unsubscribes_nobody(site: Site, encoding: str) -> None:
    tokens = confirmed(site)
    for token in (tamper(tokens["unsubscribe"]), tokens["manage"], "x"):
        response = one_click(site, token, encoding)
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
    token = bad_link_tokens(site, ADA, confirmed(site), "unsubscribe")[kind]
    assert_bad_link(site.client.get(f"/unsubscribe/{token}"))
    assert_bad_link(site.post(f"/unsubscribe/{token}"))
    assert status_of(site, ADA) is ACTIVE
