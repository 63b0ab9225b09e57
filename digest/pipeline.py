"""The pipeline: fetch → match → render → send, as the CLI, the demo and the Celery tasks run it."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from digest import deliveries, dkim
from digest.config import Settings
from digest.deliveries import NewDelivery
from digest.ingest import SourceReport, fetch_all
from digest.match import PaperIndex, PaperRecord, annotate
from digest.match import select as select_papers
from digest.mime import Headers, build_message, domain_of, envelope_sender, make_message_id
from digest.models import Delivery, DeliveryStatus, Frequency, Notice, Paper, Subscriber, SubscriberStatus
from digest.render import DigestContext, RenderedDigest, render_digest
from digest.schedule import Schedule, ScheduleError, Slot, latest_slot, previous_slot, slot_back, zone
from digest.send import (
    LocalRateGate,
    OutboxTransport,
    Outcome,
    Outgoing,
    RateGate,
    RedisRateGate,
    Result,
    SmtpTransport,
    Transport,
)
from digest.subscribers import active_pages
from digest.suppress import suppress
from digest.tokens import Purpose, make_token

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, aware, in UTC (only the edges call this)."""
    return datetime.now(UTC)


@dataclass
class DigestLine:
    """One reader's line in a run report."""

    email: str
    period: str
    papers: int
    status: str
    subject: str = ""
    file: str = ""


@dataclass
class SendReport:
    """Counts by outcome, and a line per reader handled."""

    counts: Counter[str] = field(default_factory=Counter)
    lines: list[DigestLine] = field(default_factory=list)

    def merge(self, other: SendReport) -> None:
        """Add another chunk's report to this one."""
        self.counts.update(other.counts)
        self.lines.extend(other.lines)


def run_fetch(session: Session, settings: Settings, now: datetime, only: str | None = None) -> list[SourceReport]:
    """Fetch every configured source and store what is new."""
    return fetch_all(session, settings, now, only)


def schedule_of(sub: Subscriber) -> Schedule:
    """A subscriber's delivery schedule."""
    return Schedule(Frequency(sub.frequency), sub.send_hour, sub.timezone, sub.weekly_day)


def _slot(sub: Subscriber, now: datetime) -> Slot | None:
    """The slot to fill now, if any: a slot from before the reader joined is not owed to them."""
    try:
        slot = latest_slot(schedule_of(sub), now)
    except ScheduleError as exc:
        log.warning("subscriber %s has an unusable schedule: %s", sub.id, exc)
        return None
    joined = sub.confirmed_at or sub.created_at
    return slot if slot.due >= joined else None


def plan_due(session: Session, now: datetime, page_size: int) -> Iterator[list[int]]:
    """Ids of active subscribers whose digest is due (or due again), a page at a time."""
    for page in active_pages(session, page_size):
        slots = {sub.id: slot for sub in page if sub.id is not None and (slot := _slot(sub, now))}
        rows = deliveries.existing_rows(session, ((sid, s.period) for sid, s in slots.items()))
        due = {sid for sid, slot in slots.items() if (sid, slot.period) not in rows}
        due |= {sid for _id, sid, _start in deliveries.waiting_rows(session, [s.id for s in page if s.id], now)}
        if due:
            yield sorted(due)


def make_transport(settings: Settings) -> Transport:
    """SMTP when DIGEST_SMTP_URL is set, else the outbox folder."""
    smtp = settings.smtp
    if smtp is None:
        return OutboxTransport(settings.outbox_dir)
    gate: RateGate | None = None
    if settings.smtp_rate_per_second:
        rate = settings.smtp_rate_per_second
        gate = RedisRateGate(settings.broker_url, rate) if settings.broker_url else LocalRateGate(rate)
    return SmtpTransport(smtp, timeout=settings.smtp_timeout, connections=settings.smtp_connections, gate=gate)


def load_index(session: Session, since: datetime, until: datetime) -> PaperIndex:
    """Index the papers first seen in [since, until)."""
    query = select(Paper).where(col(Paper.first_seen) >= since, col(Paper.first_seen) < until)
    # Plain, slotted records: the index outlives this session, and matching and rendering read
    # these attributes millions of times (ORM-instrumented access costs several times more).
    return PaperIndex([PaperRecord.of(paper) for paper in session.exec(query)])


_INDEXES: dict[str, tuple[datetime, datetime, float, PaperIndex]] = {}
INDEX_REUSE_SECONDS = 300.0


def shared_index(session: Session, since: datetime, until: datetime) -> PaperIndex:
    """The index for [since, until), reused by every chunk of one planning pass in this process:
    they share `until` (the pass's window end), and a wider index serves a narrower window."""
    key = str(session.get_bind().engine.url)
    cached = _INDEXES.get(key)
    if cached is not None:
        start, end, built, index = cached
        if end == until and start <= since and time.monotonic() - built < INDEX_REUSE_SECONDS:
            return index
    index = load_index(session, since, until)
    _INDEXES[key] = (since, until, time.monotonic(), index)
    return index


def window_end(settings: Settings, now: datetime) -> datetime:
    """Where digests composed at `now` stop: a little before now, so a paper whose fetch is still
    committing (first seen a moment ago) lands in the next digest instead of between two."""
    return now - timedelta(seconds=settings.window_lag_seconds)


def _window_start(sub: Subscriber, last_end: datetime | None, now: datetime) -> datetime:
    """Where this digest's papers start: where the last one ended. A first digest — or the first
    after resuming or re-subscribing — starts at the slot the reader would last have been sent
    before (re)joining: it catches them up on one period, not on everything they were away for."""
    joined = sub.confirmed_at or sub.created_at
    if last_end is not None and last_end >= joined:
        return min(last_end, now)
    schedule = schedule_of(sub)
    start = min(previous_slot(schedule, now).due, latest_slot(schedule, joined).due)
    # Never more than two periods back (readers imported long ago, before any digest ran).
    start = max(start, slot_back(schedule, now, 2).due)
    return min(max(start, last_end) if last_end else start, now)


def _new_row(
    settings: Settings,
    sub: Subscriber,
    slot: Slot,
    index: PaperIndex,
    start: datetime,
    end: datetime,
    now: datetime,
) -> NewDelivery:
    assert sub.id is not None
    chosen = select_papers(
        index,
        sub.topics,
        candidates=index.window(start, end),
        min_upvotes=sub.min_upvotes,
        cap=sub.max_papers,
    )
    domain = domain_of(settings.from_address)
    return NewDelivery(
        subscriber_id=sub.id,
        period=slot.period,
        status=DeliveryStatus.PENDING if chosen.matches else DeliveryStatus.EMPTY,
        paper_ids=[m.paper.id for m in chosen.matches],
        more_count=chosen.more,
        window_start=start,
        window_end=end,
        message_id=make_message_id(settings.secret_key, sub.id, slot.period, domain),
        created_at=now,
    )


@dataclass
class _Chunk:
    subs: dict[int, Subscriber]
    slots: dict[int, Slot]
    index: PaperIndex
    new_rows: list[NewDelivery]


def _prepare(session: Session, settings: Settings, ids: Sequence[int], now: datetime) -> _Chunk:
    query = select(Subscriber).where(col(Subscriber.id).in_(ids), Subscriber.status == SubscriberStatus.ACTIVE)
    subs = {s.id: s for s in session.exec(query) if s.id is not None}
    slots = {sid: slot for sid, sub in subs.items() if (slot := _slot(sub, now))}
    rows = deliveries.existing_rows(session, ((sid, s.period) for sid, s in slots.items()))
    ends = deliveries.last_window_end(session, list(slots))
    end = window_end(settings, now)
    starts = {
        sid: _window_start(subs[sid], ends.get(sid), end) for sid in slots if (sid, slots[sid].period) not in rows
    }
    resend_starts = [start for _id, _sid, start in deliveries.waiting_rows(session, list(subs), now)]
    since = min([*starts.values(), *resend_starts], default=end)
    index = shared_index(session, since, end)
    new_rows = [_new_row(settings, subs[sid], slots[sid], index, start, end, now) for sid, start in starts.items()]
    return _Chunk(subs, slots, index, new_rows)


def send_chunk(
    session: Session,
    settings: Settings,
    transport: Transport,
    subscriber_ids: Sequence[int],
    now: datetime,
    *,
    clock: Clock | None = None,
    dry_run: bool = False,
) -> SendReport:
    """Compose, claim, render and send the digests of these subscribers for their current period.

    `now` decides periods and windows; `clock` stamps claims, retries and sends (default: `now`,
    for simulations and tests; the Celery task passes the real clock).

    Safe to run twice, and concurrently: rows are inserted with "ignore on conflict" and each is
    claimed by exactly one caller before any SMTP.
    """
    clock = clock or (lambda: now)
    chunk = _prepare(session, settings, subscriber_ids, now)
    if dry_run:
        return _dry_run_report(settings, chunk)
    report = SendReport()
    inserted = deliveries.insert_many(session, chunk.new_rows)
    session.commit()
    if empty := sum(
        1 for row in chunk.new_rows if row.status is DeliveryStatus.EMPTY and row.subscriber_id in inserted
    ):
        report.counts["empty"] += empty
    waiting = [row_id for row_id, _sid, _start in deliveries.waiting_rows(session, list(chunk.subs), now)]
    claimed = deliveries.claim_many(session, waiting, clock())
    lost = [rid for rid in waiting if rid not in set(claimed)]
    if skipped := deliveries.skip_inactive(session, lost):
        report.counts["skipped"] += skipped
    _send_claimed(session, settings, transport, chunk, claimed, report, clock)
    return report


def _send_claimed(
    session: Session, settings: Settings, transport: Transport, chunk: _Chunk, claimed: list[int],
    report: SendReport, clock: Clock,
) -> None:  # fmt: skip
    rows = {r.id: r for r in session.exec(select(Delivery).where(col(Delivery.id).in_(claimed)))}
    session.commit()  # hold no snapshot open while sending (loaded objects stay readable)
    # Each message's status check and outcome go through one Core connection held for the chunk:
    # a Session commit per message costs several times the statement itself.
    with _own_connection(session) as conn:
        _compose_and_deliver(session, conn, settings, transport, chunk, rows, report, clock)


@contextmanager
def _own_connection(session: Session) -> Iterator[Connection]:
    """A connection of the session's engine for this block (the session's own when it is bound to one)."""
    bind = session.get_bind()
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.connect() as conn:
        yield conn


def _compose_and_deliver(
    session: Session, conn: Connection, settings: Settings, transport: Transport, chunk: _Chunk,
    rows: dict[int | None, Delivery], report: SendReport, clock: Clock,
) -> None:  # fmt: skip
    active = ActiveReaders(conn)
    outgoing: list[Outgoing] = []
    for row in rows.values():
        sub = chunk.subs[row.subscriber_id]
        try:
            outgoing.append(replace(compose_message(settings, sub, row, chunk.index), veto=active.veto(sub)))
        except Exception as exc:  # one unrenderable digest must not stop the batch
            log.exception("could not compose delivery %s", row.id)
            _settle(
                conn,
                settings,
                row,
                Result(row.id or 0, Outcome.FAILED, f"could not compose: {exc}"[:300]),
                report,
                clock,
            )
    names = {m.key: m for m in outgoing}

    def on_result(result: Result) -> None:
        row = rows[result.key]
        _settle(conn, settings, row, result, report, clock)
        sub = chunk.subs[row.subscriber_id]
        if result.permanent_recipient:
            suppress(session, sub.email, f"hard bounce: {result.detail}", clock())
            report.counts["suppressed"] += 1
        message = names[result.key]
        report.lines.append(
            DigestLine(sub.email, row.period, len(row.paper_ids), result.outcome.value, file=message.name)
        )

    transport.deliver(outgoing, on_result)
    for row in rows.values():
        session.expire(row)  # settled by bulk updates: re-read on next access


_READERS: Any = Subscriber.__table__  # type: ignore[attr-defined]
_STATUS_OF = sa_select(_READERS.c.status).where(_READERS.c.id == bindparam("sid"))


class ActiveReaders:
    """Asked right before each message goes out: is its reader still active? One primary-key read
    per message (a statement built once), so an unsubscribe arriving mid-batch stops the very next
    email."""

    def __init__(self, db: Session | Connection) -> None:
        self.db = db

    def veto(self, sub: Subscriber) -> Callable[[], str | None]:
        """The check for one reader's message."""

        def check() -> str | None:
            status = self.db.execute(_STATUS_OF, {"sid": sub.id}).scalar()
            self.db.commit()  # hold no transaction open while the message is on the wire
            return None if status == SubscriberStatus.ACTIVE else f"subscriber {status} before sending"

        return check


def _settle(
    db: Session | Connection, settings: Settings, row: Delivery, result: Result, report: SendReport, clock: Clock
) -> None:
    give_up = row.created_at + timedelta(days=7 if row.period[5:6] == "W" else 1)
    deliveries.settle(db, result, clock(), row.attempts, give_up, policy=settings.retry_policy)
    report.counts[result.outcome.value] += 1
    if result.outcome is not Outcome.SENT:
        log.warning(
            "delivery %s to subscriber %s: %s (%s)",
            row.id,
            row.subscriber_id,
            result.outcome,
            result.detail,
        )


def _dry_run_report(settings: Settings, chunk: _Chunk) -> SendReport:
    report = SendReport()
    for row in chunk.new_rows:
        sub = chunk.subs[row.subscriber_id]
        subject = ""
        if row.paper_ids:
            subject = render_for(settings, sub, row, chunk.index).subject
        report.counts["would-send" if row.paper_ids else "empty"] += 1
        report.lines.append(DigestLine(sub.email, row.period, len(row.paper_ids), "dry-run", subject))
    return report


def signed(settings: Settings, message: bytes) -> bytes:
    """The message with a DKIM signature when a key is configured."""
    key = settings.dkim_key
    return dkim.sign(message, key) if key is not None else message


def links(settings: Settings, sub: Subscriber) -> tuple[str, str]:
    """The signed manage and unsubscribe URLs for a subscriber."""
    assert sub.id is not None
    keys = settings.signing_keys
    manage = make_token(keys, Purpose.MANAGE, sub.id, sub.email)
    leave = make_token(keys, Purpose.UNSUBSCRIBE, sub.id, sub.email)
    return f"{settings.base_url}/manage/{manage}", f"{settings.base_url}/unsubscribe/{leave}"


def render_for(
    settings: Settings,
    sub: Subscriber,
    row: Delivery | NewDelivery,
    index: PaperIndex,
    urls: tuple[str, str] | None = None,
) -> RenderedDigest:
    """Render a delivery row's digest for its subscriber."""
    manage_url, unsubscribe_url = urls or links(settings, sub)
    local_date = row.created_at.astimezone(zone(sub.timezone))
    context = DigestContext(
        recipient=sub.email,
        topics=sub.topics,
        date=local_date,
        manage_url=manage_url,
        unsubscribe_url=unsubscribe_url,
        list_name=settings.list_name,
        base_url=settings.base_url,
    )
    matches = annotate(index, sub.topics, row.paper_ids)
    return render_digest(settings.templates_dir, context, matches, row.more_count)


def compose_message(settings: Settings, sub: Subscriber, row: Delivery, index: PaperIndex) -> Outgoing:
    """The ready-to-send message for one claimed delivery row."""
    urls = links(settings, sub)
    rendered = render_for(settings, sub, row, index, urls)
    unsubscribe_url = urls[1]
    domain = domain_of(settings.from_address)
    headers = Headers(
        sender=settings.from_address,
        recipient=sub.email,
        date=row.created_at,
        message_id=row.message_id,
        list_id=f"{settings.list_name} <digest.{domain}>",
        unsubscribe_url=unsubscribe_url,
    )
    return Outgoing(
        key=row.id or 0,
        sender=envelope_sender(settings.from_address),
        recipient=sub.email,
        data=signed(settings, build_message(rendered, headers)),
        name=f"{sub.email}-{row.period}",
        html=rendered.html,
    )


def run_send(
    session: Session,
    settings: Settings,
    transport: Transport,
    now: datetime,
    *,
    dry_run: bool = False,
    clock: Clock | None = None,
    progress: Callable[[int], None] | None = None,
) -> SendReport:
    """Send every due digest in this process, chunk by chunk (what `digest send` runs)."""
    report = SendReport()
    for ids in plan_due(session, now, settings.send_batch_size):
        report.merge(send_chunk(session, settings, transport, ids, now, clock=clock, dry_run=dry_run))
        if progress:
            progress(len(ids))
    return report


def preview(session: Session, settings: Settings, sub: Subscriber, now: datetime) -> RenderedDigest | None:
    """What this subscriber's next digest would contain right now (nothing is recorded)."""
    assert sub.id is not None
    slot = latest_slot(schedule_of(sub), now)
    last = deliveries.last_window_end(session, [sub.id]).get(sub.id)
    end = window_end(settings, now)
    start = _window_start(sub, last, end)
    index = load_index(session, start, end)
    row = _new_row(settings, sub, slot, index, start, end, now)
    if not row.paper_ids:
        return None
    return render_for(settings, sub, row, index)


@dataclass(frozen=True)
class Sweep:
    """What the sweeper did: rows whose worker died turned `unknown`, readers with rows due again."""

    expired: int
    due: list[list[int]]


def sweep(session: Session, settings: Settings, now: datetime) -> Sweep:
    """Close rows stuck in `sending`, and find readers whose pending/retry rows are due (in chunks)."""
    stale = timedelta(seconds=settings.stale_sending_seconds)
    expired = deliveries.expire_stale(session, now, stale) + deliveries.expire_stale(session, now, stale, Notice)
    ids = deliveries.due_subscribers(session, now)
    size = settings.send_batch_size
    return Sweep(expired, [ids[i : i + size] for i in range(0, len(ids), size)])
