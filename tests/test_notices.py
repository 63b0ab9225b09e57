"""Queued notices over a real SMTP server: one that cannot be built never strands the others."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlmodel import Session, col, select

from digest import compose, notices
from digest.config import Settings, parse_smtp_url
from digest.models import DeliveryStatus, Notice, NoticeKind, Preferences, Subscriber
from digest.send import Outgoing, SmtpTransport
from digest.signup import Requested, request_signup
from tests.conftest import NOW
from tests.smtpserver import SmtpServer, smtp_server  # noqa: F401

READERS = ["ada@example.org", "bad@example.org", "grace@example.org"]


def test_a_notice_that_cannot_be_built_fails_with_its_reason_and_the_rest_go_out(
    session: Session, settings: Settings, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for address in READERS:
        request_signup(session, settings, address, Preferences(["diffusion"]), NOW)
    real = compose.notice_message

    def built(settings: Settings, sub: Subscriber, key: int, kind: NoticeKind, now: datetime) -> Outgoing:
        if sub.email == "bad@example.org":  # what a lone surrogate in stored text does to the encoder
            "\ud800".encode()
        return real(settings, sub, key, kind, now)

    monkeypatch.setattr(compose, "notice_message", built)
    transport = SmtpTransport(parse_smtp_url(smtp_server.url))

    counts = notices.send_notices(session, settings, transport, NOW)

    assert counts == {"sent": 2, "failed": 1}
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == ["ada@example.org", "grace@example.org"]
    session.expire_all()
    rows = {sub.email: notice for notice, sub in session.exec(select(Notice, Subscriber).join(Subscriber))}
    assert rows["bad@example.org"].status is DeliveryStatus.FAILED
    assert (rows["bad@example.org"].error or "").startswith("could not compose: UnicodeEncodeError")
    assert {rows[a].status for a in ("ada@example.org", "grace@example.org")} == {DeliveryStatus.SENT}
    # Nothing is left claimed: a later pass has nothing to do and nothing turns `unknown`.
    assert not list(session.exec(select(Notice).where(col(Notice.status) == DeliveryStatus.SENDING)))
    assert notices.send_notices(session, settings, transport, NOW) == {}
    # The reader whose email failed never got it: the 24 h cooldown does not stop them asking again.
    again = request_signup(session, settings, "bad@example.org", Preferences(["diffusion"]), NOW)
    assert again.outcome is Requested.CONFIRMATION_QUEUED
    assert request_signup(session, settings, "ada@example.org", Preferences(["diffusion"]), NOW).outcome is (
        Requested.COOLING_DOWN
    )
