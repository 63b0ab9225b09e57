"""Confirmation links: a GET shows one button, the POST activates; every link that must not work
gets the neutral page; 'send me a new link' answers every address the same.

Each test gets its own database, a clock it controls and an in-memory rate limiter (tests/webclient.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from digest.models import NoticeKind
from digest.web.security import CSRF_FIELD
from tests.conftest import NOW
from tests.webclient import (  # noqa: F401  (clock, site: fixtures)
    ACTIVE,
    ADA,
    CHECK_INBOX,
    PENDING,
    UNSUBSCRIBED,
    Site,
    assert_bad_link,
    assert_forbidden,
    bad_confirm_token,
    clock,
    csrf_of,
    pending_with_token,
    site,
    status_of,
    without_csrf,
)


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


# --- send me a new link ---------------------------------------------------------------------------


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
