"""What operators rely on: status, forget me, suppression, send-rate limits, and no stray network use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis
from sqlmodel import Session, select

from digest.config import Settings, SourceConfig, SourceKind
from digest.deliveries import MARK_RIDERS_MAX, InFlight, own_connection, sweep
from digest.health import status
from digest.models import (
    Delivery,
    DeliveryStatus,
    Notice,
    Preferences,
    SourceState,
    Subscriber,
    SubscriberStatus,
    Suppression,
)
from digest.pipeline import run_send
from digest.render import TemplateShapeError, inline_css
from digest.retry import DEFAULT_RETRY
from digest.send import LocalRateGate, OutboxTransport, Outcome, RedisRateGate, Result
from digest.signup import Requested, request_signup
from digest.subscribers import SubscriberError, subscribe_active, unsubscribe
from digest.suppress import address_hash, forget, is_suppressed, suppress, unsuppress
from tests.conftest import NOW, port_open, require
from tests.factories import add_papers, paper, subscriber
from tests.httpserver import HTTPTestServer, http_server_fixture  # noqa: F401

JOINED = NOW - timedelta(days=30)


def test_status_flags_a_failing_source_and_counts_the_last_day(session: Session, settings: Settings) -> None:
    settings = settings.model_copy(
        update={
            "sources": [
                SourceConfig(name="ok", kind=SourceKind.RSS, url="http://127.0.0.1:9/a"),
                SourceConfig(name="broken", kind=SourceKind.RSS, url="http://127.0.0.1:9/b"),
            ]
        }
    )
    session.add(SourceState(name="ok", last_success=NOW, consecutive_failures=0))
    session.add(SourceState(name="broken", last_error="HTTP 500", consecutive_failures=3))
    session.commit()
    add_papers(session, paper("2611.1", "Cache", first_seen=NOW - timedelta(hours=2)))
    subscriber(session, "a@example.org", ["cache"], joined=JOINED)
    subscriber(session, "b@example.org", ["nothing matches this"], joined=JOINED)
    run_send(session, settings, OutboxTransport(settings.outbox_dir), NOW)
    suppress(session, "gone@example.org", "hard bounce: 550", NOW)

    report = status(session, settings, NOW + timedelta(hours=1))
    flags = {s.name: (s.flagged, s.consecutive_failures, s.last_error) for s in report.sources}
    assert flags == {"ok": (False, 0, None), "broken": (True, 3, "HTTP 500")}
    assert report.deliveries == {"sent": 1, "empty": 1}
    assert (report.suppressed, report.suppressed_recently) == (1, 1)
    assert status(session, settings, NOW + timedelta(days=2)).deliveries == {}


def test_forget_me_deletes_everything_but_a_hash(session: Session, settings: Settings) -> None:
    add_papers(session, paper("2611.1", "Cache", first_seen=NOW - timedelta(hours=2)))
    sub = subscriber(session, "ada@example.org", ["cache"], joined=JOINED)
    run_send(session, settings, OutboxTransport(settings.outbox_dir), NOW)
    session.add(Notice(subscriber_id=sub.id, kind="already", created_at=NOW))  # type: ignore[arg-type]
    session.commit()
    forget(session, sub, NOW)
    session.expire_all()
    assert session.exec(select(Subscriber)).all() == []
    assert session.exec(select(Delivery)).all() == []
    assert session.exec(select(Notice)).all() == []
    (row,) = session.exec(select(Suppression))
    assert row.address_hash == address_hash("ada@example.org") and "ada" not in row.address_hash
    # Never mailed again: a web sign-up is ignored (the visitor sees the usual page), the admin is told.
    assert request_signup(session, settings, "Ada@Example.org", Preferences(["x"]), NOW).outcome is Requested.SUPPRESSED
    assert session.exec(select(Notice)).all() == []
    with pytest.raises(SubscriberError, match="suppression list"):
        subscribe_active(session, "ada@example.org", Preferences(["x"]), NOW)
    assert unsuppress(session, "ada@example.org") and not is_suppressed(session, "ada@example.org")
    assert subscribe_active(session, "ada@example.org", Preferences(["x"]), NOW).status is SubscriberStatus.ACTIVE


def test_sweeper_closes_rows_whose_worker_died_and_finds_due_ones(session: Session, settings: Settings) -> None:
    a = subscriber(session, "a@example.org", ["cache"], joined=JOINED)
    b = subscriber(session, "b@example.org", ["cache"], joined=JOINED)
    window = {"window_start": NOW - timedelta(days=1), "window_end": NOW, "created_at": NOW, "message_id": "<m>"}
    stuck = Delivery(subscriber_id=a.id, period="2026-11-29", status=DeliveryStatus.SENDING, claimed_at=NOW, **window)  # type: ignore[arg-type]
    due = Delivery(subscriber_id=b.id, period="2026-11-29", status=DeliveryStatus.RETRY, due_at=NOW, **window)  # type: ignore[arg-type]
    session.add_all([stuck, due])
    session.commit()
    early = sweep(session, settings, NOW + timedelta(minutes=10))
    assert (early.expired, early.due) == (0, [[b.id]])
    late = sweep(session, settings, NOW + timedelta(seconds=settings.stale_sending_seconds + 1))
    assert late.expired == 1
    session.refresh(stuck)
    assert stuck.status is DeliveryStatus.UNKNOWN and "stopped mid-send" in (stuck.error or "")


def _claimed_rows(session: Session, prefix: str, count: int) -> tuple[list[Subscriber], list[int]]:
    """`count` readers, each with a digest row a sender has claimed: the readers and the rows' ids."""
    readers = [subscriber(session, f"{prefix}{n}@example.org", ["cache"], joined=JOINED) for n in range(count)]
    window = {"window_start": NOW - timedelta(days=1), "window_end": NOW, "created_at": NOW, "message_id": "<m>"}
    rows = [
        Delivery(subscriber_id=r.id, period="2026-11-29", status=DeliveryStatus.CLAIMED, claimed_at=NOW, **window)  # type: ignore[arg-type]
        for r in readers
    ]
    session.add_all(rows)
    session.commit()
    return readers, [row.id or 0 for row in rows]


def _committed(session: Session, ids: list[int]) -> Callable[[], list[DeliveryStatus]]:
    """The rows' statuses as another process sees them: committed state only."""

    def stored() -> list[DeliveryStatus]:
        with Session(session.get_bind()) as other:
            by_id = {row.id: row.status for row in other.exec(select(Delivery))}
        return [by_id[i] for i in ids]

    return stored


def test_outcomes_ride_with_the_next_mark_and_the_tail_is_written_at_once(session: Session) -> None:
    """One commit per message: a message's outcome is written in the transaction that marks the next
    one in flight (its row stays `sending` meanwhile, as a moment before); once no mark is to come,
    each outcome is written at once, so a slow last message never leaves the others `sending`."""
    readers, ids = _claimed_rows(session, "r", 3)
    stored = _committed(session, ids)

    S = DeliveryStatus
    with own_connection(session) as conn:
        in_flight = InFlight(conn, lambda: NOW)
        marks = [in_flight.veto(row_id, reader.id or 0) for row_id, reader in zip(ids, readers, strict=True)]
        in_flight.expect(3)
        assert marks[0]() is None
        in_flight.settle(Result(ids[0], Outcome.SENT, "250 ok"), 1, None, DEFAULT_RETRY)
        assert stored() == [S.SENDING, S.CLAIMED, S.CLAIMED]  # waits for the next mark
        assert marks[1]() is None
        assert stored() == [S.SENT, S.SENDING, S.CLAIMED]  # written with it
        in_flight.settle(Result(ids[1], Outcome.RETRY, "451 later"), 1, None, DEFAULT_RETRY)
        assert marks[2]() is None  # the last mark
        assert stored() == [S.SENT, S.RETRY, S.SENDING]
        in_flight.settle(Result(ids[2], Outcome.SENT, "250 ok"), 1, None, DEFAULT_RETRY)
        assert stored() == [S.SENT, S.RETRY, S.SENT]  # no mark to come: written at once


def test_many_outcomes_ride_with_one_mark_and_a_refused_mark_still_writes_them(session: Session) -> None:
    """On PostgreSQL a mark and the outcomes it takes along are one statement (on SQLite one
    transaction): up to MARK_RIDERS_MAX outcomes ride in it, more are written just before it, and a
    mark refused because its reader left still writes the outcomes it carried."""
    count = MARK_RIDERS_MAX + 6
    readers, ids = _claimed_rows(session, "m", count)
    stored = _committed(session, ids)

    S = DeliveryStatus

    def sent(n: int) -> Result:
        return Result(ids[n], Outcome.SENT, "250 ok")

    with own_connection(session) as conn:
        in_flight = InFlight(conn, lambda: NOW)
        assert in_flight.one_statement is (session.get_bind().dialect.name == "postgresql")
        marks = [in_flight.veto(row_id, reader.id or 0) for row_id, reader in zip(ids, readers, strict=True)]
        in_flight.expect(count)
        for n in range(3):  # three in flight at once (as on three connections)
            assert marks[n]() is None
        for n in range(3):
            in_flight.settle(sent(n), 1, None, DEFAULT_RETRY)
        assert marks[3]() is None
        assert stored()[:5] == [S.SENT, S.SENT, S.SENT, S.SENDING, S.CLAIMED]  # three rode with one mark
        for n in range(4, count - 2):
            assert marks[n]() is None
        for n in range(3, count - 2):  # more than one statement takes along
            in_flight.settle(sent(n), 1, None, DEFAULT_RETRY)
        assert len(in_flight.pending) == MARK_RIDERS_MAX + 1
        assert marks[count - 2]() is None
        assert stored() == [S.SENT] * (count - 2) + [S.SENDING, S.CLAIMED]
        in_flight.settle(sent(count - 2), 1, None, DEFAULT_RETRY)
        unsubscribe(session, readers[-1], NOW)
        assert marks[count - 1]() == "subscriber unsubscribed before sending"
        assert stored() == [S.SENT] * (count - 1) + [S.CLAIMED]  # the outcome it carried is written


def test_sweeper_releases_rows_claimed_but_never_in_flight(session: Session, settings: Settings) -> None:
    a = subscriber(session, "a@example.org", ["cache"], joined=JOINED)
    assert a.id is not None
    held = Delivery(
        subscriber_id=a.id, period="2026-11-29", status=DeliveryStatus.CLAIMED, claimed_at=NOW, attempts=1,
        window_start=NOW - timedelta(days=1), window_end=NOW, created_at=NOW, message_id="<m>",
    )  # fmt: skip
    session.add(held)
    session.commit()
    assert sweep(session, settings, NOW + timedelta(minutes=10)).released == 0  # its worker may still be at it
    late = sweep(session, settings, NOW + timedelta(seconds=settings.stale_sending_seconds + 1))
    assert (late.expired, late.released, late.due) == (0, 1, [[a.id]])
    session.refresh(held)
    assert held.status is DeliveryStatus.PENDING and held.due_at is None
    assert "stopped before sending it" in (held.error or "")


def test_local_rate_gate_spaces_messages() -> None:
    async def run() -> float:
        gate = LocalRateGate(20)
        start = time.monotonic()
        for _ in range(11):
            await gate.wait()
        return time.monotonic() - start

    assert run_elapsed(run) >= 0.45  # 11 messages at 20/s need at least 10 intervals of 50 ms


def run_elapsed(run: object) -> float:
    return float(asyncio.run(run()))  # type: ignore[operator]


def test_redis_rate_gate_is_shared_by_every_process() -> None:
    require("Redis on 127.0.0.1:6379", port_open("127.0.0.1", 6379))
    url = "redis://127.0.0.1:6379/12"
    key = f"digest:test-rate:{time.time_ns()}"

    async def run() -> list[int]:
        # Two gates (as in two worker processes) with a shared limit of 5 per second.
        gates = [RedisRateGate(url, 5, key=key), RedisRateGate(url, 5, key=key)]
        seconds: list[int] = []

        async def send(gate: RedisRateGate) -> None:
            granted = await gate.wait()
            assert granted is not None
            seconds.append(granted)

        await asyncio.gather(*(send(gates[i % 2]) for i in range(12)))
        return seconds

    seconds = asyncio.run(run())
    per_second = [seconds.count(s) for s in set(seconds)]
    assert max(per_second) <= 5 and len(seconds) == 12 and len(per_second) >= 3
    redis.Redis.from_url(url).flushdb()


def test_premailer_never_fetches_anything(http_server: HTTPTestServer) -> None:
    http_server.route("/evil.css", b"p { color: red }", headers={"Content-Type": "text/css"})
    source = (
        f'<!doctype html><html><head><link rel="stylesheet" href="{http_server.url("/evil.css")}">'
        f'<style>.a {{ color: blue; background: url("{http_server.url("/bg.png")}") }}</style></head>'
        f'<body><p class="a">x</p><img src="{http_server.url("/pixel.png")}"></body></html>'
    )
    out = inline_css(source)
    assert 'style="color:blue;' in out
    with_import = source.replace("<style>", f'<style>@import url("{http_server.url("/imported.css")}");')
    with pytest.raises(TemplateShapeError, match="@import"):
        inline_css(with_import)
    assert http_server.requests == []
