"""Sending over real SMTP: an aiosmtpd server on loopback receives the digests; we read the MIME it got."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from digest.config import Settings, parse_smtp_url
from digest.models import Delivery, DeliveryStatus, Subscriber, SubscriberStatus
from digest.pipeline import run_send
from digest.send import (
    OutboxTransport,
    Outcome,
    Outgoing,
    Result,
    SmtpTransport,
    classify,
    make_transport,
    safe_filename,
)
from digest.suppress import is_suppressed
from tests.conftest import NOW, free_port
from tests.factories import add_papers, paper, subscriber
from tests.smtpserver import SmtpServer, smtp_server  # noqa: F401

JOINED = NOW - timedelta(days=30)


def _seed(session: Session) -> None:
    seen = NOW - timedelta(hours=4)
    add_papers(
        session,
        paper("2611.00001", "Efficient KV Cache Compression", "We compress the <b>KV cache</b>.", first_seen=seen),
        paper("2611.00002", "<script>alert(1)</script> Agents", "Agents that plan.", first_seen=seen, upvotes=12),
    )


def _smtp_settings(settings: Settings, server: SmtpServer) -> Settings:
    return settings.model_copy(update={"smtp_url": server.url, "smtp_timeout": 5.0, "smtp_connections": 2})


def _statuses(session: Session) -> dict[int, DeliveryStatus]:
    session.expire_all()
    return {r.subscriber_id: r.status for r in session.exec(select(Delivery))}


def test_digest_arrives_as_a_well_formed_multipart_message(
    session: Session, settings: Settings, smtp_server: SmtpServer
) -> None:
    _seed(session)
    subscriber(session, "ada@example.org", ['"KV cache"', "agent"], joined=JOINED)
    settings = _smtp_settings(settings, smtp_server)
    report = run_send(session, settings, make_transport(settings), NOW)

    assert report.counts["sent"] == 1
    (received,) = smtp_server.messages
    assert received.mail_from == "digest@example.org"
    assert received.rcpt_tos == ["ada@example.org"]
    msg = received.message
    assert msg["From"] == "Paper Digest <digest@example.org>"
    assert msg["To"] == "ada@example.org"
    assert msg["Subject"] == "2 new papers on KV cache, agent — 30 Nov"
    assert msg["Date"] == "Mon, 30 Nov 2026 09:00:00 +0000"
    assert msg["Message-ID"].startswith("<digest.2026-11-30.") and msg["Message-ID"].endswith("@example.org>")
    assert msg["List-Id"] == "Paper Digest <digest.example.org>"
    assert msg["List-Unsubscribe"].startswith("<https://digest.example.org/unsubscribe/")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # Feed text is data: escaped in HTML, never markup.
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; Agents" in html
    assert "<b>KV cache</b>" not in html
    assert "Efficient KV Cache Compression" in text and "https://arxiv.org/abs/2611.00001" in text
    assert "https://digest.example.org/manage/" in html and "https://digest.example.org/manage/" in text
    (row,) = session.exec(select(Delivery))
    assert row.status is DeliveryStatus.SENT and row.message_id == msg["Message-ID"]


def test_connections_are_reused_across_many_messages(
    session: Session, settings: Settings, smtp_server: SmtpServer
) -> None:
    _seed(session)
    for n in range(12):
        subscriber(session, f"reader{n}@example.org", ["agent"], joined=JOINED)
    settings = _smtp_settings(settings, smtp_server)
    report = run_send(session, settings, make_transport(settings), NOW)
    assert report.counts["sent"] == 12
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == sorted(
        f"reader{n}@example.org" for n in range(12)
    )
    assert len({m.session for m in smtp_server.messages}) <= 2  # smtp_connections=2, each reused


def test_replies_are_classified_and_recorded_per_reader(
    session: Session, settings: Settings, smtp_server: SmtpServer
) -> None:
    _seed(session)
    ok = subscriber(session, "ok@example.org", ["agent"], joined=JOINED)
    busy = subscriber(session, "tempfail-1@example.org", ["agent"], joined=JOINED)
    bounce = subscriber(session, "reject@example.org", ["agent"], joined=JOINED)
    dropped = subscriber(session, "drop@example.org", ["agent"], joined=JOINED)
    settings = _smtp_settings(settings, smtp_server)
    report = run_send(session, settings, make_transport(settings), NOW)

    assert _statuses(session) == {
        ok.id: DeliveryStatus.SENT,
        busy.id: DeliveryStatus.RETRY,
        bounce.id: DeliveryStatus.FAILED,
        dropped.id: DeliveryStatus.UNKNOWN,
    }
    assert report.counts == {"sent": 1, "retry": 1, "failed": 1, "unknown": 1, "suppressed": 1}
    # The hard bounce puts the address on the suppression list: it is never mailed again.
    session.expire_all()
    assert session.get(Subscriber, bounce.id).status is SubscriberStatus.SUPPRESSED  # type: ignore[union-attr]
    assert is_suppressed(session, "reject@example.org")
    rows = {r.subscriber_id: r for r in session.exec(select(Delivery))}
    assert bounce.id is not None and busy.id is not None
    error = rows[bounce.id].error
    assert error is not None and "550" in error
    # The retry goes out once it is due; the unknown one is never resent automatically.
    due = rows[busy.id].due_at
    assert due is not None and due > NOW
    again = run_send(session, settings, make_transport(settings), due + timedelta(seconds=1))
    assert again.counts == {"sent": 1}
    assert _statuses(session)[busy.id] is DeliveryStatus.SENT
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ok@example.org"], ["tempfail-1@example.org"]]


def test_dead_server_means_retry_later_not_loss(session: Session, settings: Settings) -> None:
    _seed(session)
    sub = subscriber(session, "ada@example.org", ["agent"], joined=JOINED)
    settings = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{free_port()}", "smtp_timeout": 2.0})
    report = run_send(session, settings, make_transport(settings), NOW)
    assert report.counts == {"retry": 1}
    (row,) = session.exec(select(Delivery))
    assert row.subscriber_id == sub.id and row.status is DeliveryStatus.RETRY
    assert row.error is not None and row.error.startswith("connect:")


def test_transport_reports_one_result_per_message(smtp_server: SmtpServer) -> None:
    transport = SmtpTransport(parse_smtp_url(smtp_server.url), timeout=5, connections=3)
    data = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n.\r\n..dots\r\n"
    messages = [Outgoing(n, "a@example.org", f"r{n}@example.org", data, f"m{n}") for n in range(7)]
    results: list[Result] = []
    transport.deliver(messages, results.append)
    assert sorted(r.key for r in results) == list(range(7))
    assert {r.outcome for r in results} == {Outcome.SENT}
    # Dot-stuffing round-trips: the body arrives exactly as sent.
    assert all(m.data.endswith(b"hello\r\n.\r\n..dots\r\n") for m in smtp_server.messages)


def test_plain_and_other_addresses_arrive_and_a_refused_sender_is_told_apart(smtp_server: SmtpServer) -> None:
    """A plain address goes on MAIL and RCPT as it is; any other (an apostrophe, a quoted local
    part) through aiosmtplib's own parsing; a sender the relay refuses is a `mail` failure."""
    transport = SmtpTransport(parse_smtp_url(smtp_server.url), timeout=5, connections=1)
    data = b"Subject: hi\r\n\r\nhello\r\n"
    messages = [
        Outgoing(1, "digest@example.org", "ada.l+papers@example.org", data, "plain"),
        Outgoing(2, "digest@example.org", "o'brien@example.org", data, "apostrophe"),
        Outgoing(3, "refused@example.org", "ada@example.org", data, "refused sender"),
        Outgoing(4, "digest@example.org", "grace@example.org", data, "after the refusal"),
    ]
    got: list[Result] = []
    transport.deliver(messages, got.append)
    results = {r.key: r for r in got}
    assert len(got) == 4 and {k: r.outcome for k, r in results.items()} == {
        1: Outcome.SENT, 2: Outcome.SENT, 3: Outcome.RETRY, 4: Outcome.SENT
    }  # fmt: skip
    assert results[3].detail.startswith("mail: 553") and results[3].code == 553
    assert [(m.mail_from, m.rcpt_tos) for m in smtp_server.messages] == [
        ("digest@example.org", ["ada.l+papers@example.org"]),
        ("digest@example.org", ["o'brien@example.org"]),
        ("digest@example.org", ["grace@example.org"]),
    ]


@pytest.mark.parametrize(
    ("code", "body_sent", "stage", "expected"),
    [
        (None, False, "mail", Outcome.RETRY),  # connection lost before the body: safe to retry
        (None, True, "data", Outcome.UNKNOWN),  # lost after the body: it may have been delivered
        (421, False, "rcpt", Outcome.RETRY),
        (450, False, "rcpt", Outcome.RETRY),
        (451, True, "data", Outcome.RETRY),  # an explicit 4xx reply means it was not taken
        (452, False, "rcpt", Outcome.RETRY),
        (550, False, "rcpt", Outcome.FAILED),
        (554, True, "data", Outcome.FAILED),
        (530, False, "mail", Outcome.RETRY),  # our relay refused us: not the reader's fault
    ],
)
def test_classify(code: int | None, body_sent: bool, stage: str, expected: Outcome) -> None:
    assert classify(code, body_sent=body_sent, stage=stage) is expected


@pytest.mark.parametrize(
    ("url", "host", "port", "user", "password", "implicit", "starttls"),
    [
        ("smtp://127.0.0.1:2525", "127.0.0.1", 2525, None, None, False, False),
        ("smtp://user:p%40ss@mail.example.org:587", "mail.example.org", 587, "user", "p@ss", False, True),
        ("smtps://u:p@mail.example.org", "mail.example.org", 465, "u", "p", True, False),
        ("smtp://mail.example.org", "mail.example.org", 25, None, None, False, False),
    ],
)
def test_parse_smtp_url(
    url: str, host: str, port: int, user: str | None, password: str | None, implicit: bool, starttls: bool
) -> None:
    cfg = parse_smtp_url(url)
    assert (cfg.host, cfg.port, cfg.username, cfg.password, cfg.implicit_tls, cfg.starttls) == (
        host, port, user, password, implicit, starttls,
    )  # fmt: skip


def test_bad_smtp_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="smtp://user:pass@host:port"):
        parse_smtp_url("http://example.org")


def test_sending_works_from_a_thread_that_already_runs_an_event_loop(smtp_server: SmtpServer) -> None:
    import asyncio

    transport = SmtpTransport(parse_smtp_url(smtp_server.url), timeout=5, connections=1)
    message = Outgoing(1, "a@example.org", "b@example.org", b"Subject: hi\r\n\r\nhello\r\n", "m1")
    results: list[Result] = []

    async def inside_a_loop() -> None:
        transport.deliver([message], results.append)

    asyncio.run(inside_a_loop())
    assert [r.outcome for r in results] == [Outcome.SENT]
    assert len(smtp_server.messages) == 1


def test_the_outbox_keeps_every_file_of_long_addresses_apart(tmp_path: Path) -> None:
    """Issue 11 #14: names were cut at 120 characters after the suffix was added, so a long
    address's .html overwrote its .eml, and two long addresses with one start shared a file."""
    long = "a" * 150
    first, second = f"{long}1@example.org", f"{long}2@example.org"
    outbox = OutboxTransport(tmp_path)
    messages = [
        Outgoing(key=n, sender="d@example.org", recipient=who, data=f"To: {who}\r\n\r\nbody".encode(),
                 name=f"{who}-2026-11-30", html=f"<p>{who}</p>")
        for n, who in enumerate((first, second))
    ]  # fmt: skip
    results: list[Result] = []
    outbox.deliver(messages, results.append)
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 4 and all(len(f) <= 125 for f in files)
    for who in (first, second):
        stem = safe_filename(f"{who}-2026-11-30")
        assert (tmp_path / f"{stem}.eml").read_bytes().startswith(f"To: {who}".encode())
        assert (tmp_path / f"{stem}.html").read_text() == f"<p>{who}</p>"
