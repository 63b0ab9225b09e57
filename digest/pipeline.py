"""The pipeline, stage by stage, as the CLI, the demo and the Celery tasks run it:

fetch → (ingest) → plan → match → record → claim → compose → send → settle.

Each stage lives in its own module (`ingest`, `plan`, `match`, `compose`, `send`, `deliveries`);
this module only runs them in order for a chunk of readers, and reports what happened.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from digest import compose, deliveries
from digest.clock import Clock
from digest.config import Settings
from digest.deliveries import InFlight, NewDelivery
from digest.index import load_index, semantics_for, shared_index
from digest.ingest import SourceReport, fetch_all
from digest.match import PaperIndex, pick
from digest.models import Delivery, DeliveryStatus, Subscriber
from digest.plan import ChunkPlan, Due, due_now, plan_chunk, plan_due, popular_reach
from digest.rank import Learned, judge_all
from digest.render import RenderedDigest
from digest.semantic import like_texts
from digest.send import Outcome, Outgoing, Result, Transport, safe_filename
from digest.suppress import suppress

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Run:
    """One send run: where it reads and writes, how it sends, and its two clocks — `now` decides
    periods and windows, `clock` stamps claims, retries and sends."""

    session: Session
    settings: Settings
    transport: Transport
    now: datetime
    clock: Clock


@dataclass(frozen=True)
class Claimed:
    """The rows this run won, with their readers and the papers to compose them from."""

    rows: dict[int, Delivery]
    subs: dict[int, Subscriber]
    index: PaperIndex
    learned: dict[int, Learned]


def run_fetch(session: Session, settings: Settings, now: datetime, only: str | None = None) -> list[SourceReport]:
    """Fetch every configured source and store what is new."""
    return fetch_all(session, settings, now, only)


def select_for(
    settings: Settings,
    due: Due,
    index: PaperIndex,
    now: datetime,
    sent: Iterable[str] = (),
    learned: Learned | None = None,
) -> NewDelivery:
    """Match: the papers of the reader's window they get (trending first, then their topics),
    none of those already `sent` to them, as the delivery row to record."""
    sub, window = due.sub, due.window
    assert sub.id is not None
    lookback = timedelta(days=settings.upvote_lookback_days)
    exclude = index.mask_of_ids(sent) if sent else 0
    chosen = pick(
        index, sub.preferences, window.start, window.end, lookback=lookback, exclude=exclude, learned=learned,
        explain=False,  # only the ids are recorded; the cards are annotated when the digest is composed
    )  # fmt: skip
    matches = chosen.matches
    return NewDelivery(
        subscriber_id=sub.id,
        period=due.slot.period,
        status=DeliveryStatus.PENDING if matches else DeliveryStatus.EMPTY,
        paper_ids=[m.paper.id for m in matches],
        more_count=chosen.topical.more,
        window_start=window.start,
        window_end=window.end,
        message_id=compose.digest_message_id(settings, sub.id, due.slot.period),
        created_at=now,
        trending_count=len(chosen.trending),
        recommended_count=len(chosen.recommended),
    )


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
    """Plan, match, record, claim, compose, send and settle the digests of these subscribers.

    `clock` stamps claims, retries and sends (default: `now`, for simulations and tests; the Celery
    task passes the real clock). Safe to run twice, and concurrently: rows are inserted with
    "ignore on conflict" and each is claimed by exactly one caller before any SMTP.
    """
    run = Run(session, settings, transport, now, clock or (lambda: now))
    plan = plan_chunk(session, settings, subscriber_ids, now)
    index = chunk_index(session, settings, plan)
    learned = judge_all(plan.learned, index.vectors.matrix) if index.vectors is not None else plan.learned
    rows = [
        select_for(settings, due, index, now, plan.sent.get(due.sub.id or 0, ()), learned.get(due.sub.id or 0))
        for due in plan.due
    ]
    if dry_run:
        return _dry_run_report(settings, plan, rows, index)
    report = SendReport()
    _record(run, rows, report)
    claimed = _claim(run, plan, index, report)
    with deliveries.own_connection(session) as conn:
        _send(run, conn, claimed, report)
    for row in claimed.rows.values():
        session.expire(row)  # settled by bulk updates: re-read on next access
    return report


def chunk_index(session: Session, settings: Settings, plan: ChunkPlan) -> PaperIndex:
    """The (shared) index for this chunk, with the vectors of its readers' `like:"…"` texts at
    hand: read from the database, the new ones embedded together and stored."""
    semantics = semantics_for(settings, session.get_bind().engine)
    index = shared_index(session, plan.since, plan.end, plan.popular_since, semantics)
    if index.semantics is not None:
        index.semantics.prefetch(like_texts(topic for due in plan.due for topic in due.sub.topics))
    return index


def _record(run: Run, rows: list[NewDelivery], report: SendReport) -> None:
    """Insert the planned rows (a row already there for the period wins); count the empty ones."""
    inserted = deliveries.insert_many(run.session, rows)
    run.session.commit()
    if empty := sum(1 for row in rows if row.status is DeliveryStatus.EMPTY and row.subscriber_id in inserted):
        report.counts["empty"] += empty


def _claim(run: Run, plan: ChunkPlan, index: PaperIndex, report: SendReport) -> Claimed:
    """Claim every row of these readers that waits and is due; close those whose reader left."""
    session = run.session
    waiting = [row_id for row_id, _sid, _start in deliveries.waiting_rows(session, list(plan.subs), run.now)]
    if filed := deliveries.file_for_feed(session, waiting, run.clock()):  # feed-only readers: no email
        report.counts["feed"] += filed
    won = deliveries.claim_many(session, waiting, run.clock())
    if skipped := deliveries.skip_inactive(session, sorted(set(waiting) - set(won))):
        report.counts["skipped"] += skipped
    rows = {r.id: r for r in session.exec(select(Delivery).where(col(Delivery.id).in_(won))) if r.id is not None}
    session.commit()  # hold no snapshot open while sending (loaded objects stay readable)
    return Claimed(rows, plan.subs, index, plan.learned)


def _send(run: Run, conn: Connection, claimed: Claimed, report: SendReport) -> None:
    """Compose every claimed digest, send them, and settle each row as its result comes in."""
    in_flight = InFlight(conn, run.clock)
    outgoing = _compose_all(run, in_flight, claimed, report)
    names = {message.key: message.name for message in outgoing}
    in_flight.expect(len(outgoing))

    def on_result(result: Result) -> None:
        row = claimed.rows[result.key]
        sub = claimed.subs[row.subscriber_id]
        _settle(run, in_flight, row, result, report)
        if result.permanent_recipient:
            suppress(run.session, sub.email, f"hard bounce: {result.detail}", run.clock())
            report.counts["suppressed"] += 1
        line = DigestLine(
            sub.email, row.period, len(row.paper_ids), result.outcome.value, file=safe_filename(names[result.key])
        )
        report.lines.append(line)

    try:
        run.transport.deliver(outgoing, on_result)
    finally:
        in_flight.flush()  # whatever happened, every outcome recorded so far is written


def _compose_all(run: Run, in_flight: InFlight, claimed: Claimed, report: SendReport) -> list[Outgoing]:
    """The messages of the claimed rows, each marked in flight right before its MAIL FROM (or vetoed
    there if its reader left); a digest that cannot be composed is settled `failed` and the rest go on."""

    def build(row: Delivery, key: int) -> Callable[[], Outgoing]:
        learned = claimed.learned.get(row.subscriber_id)
        sub = claimed.subs[row.subscriber_id]
        return lambda: compose.digest_message(run.settings, sub, key, row, claimed.index, learned)

    jobs = [(key, build(row, key), in_flight.veto(key, row.subscriber_id)) for key, row in claimed.rows.items()]
    return compose.compose_each(jobs, lambda failed: _settle(run, in_flight, claimed.rows[failed.key], failed, report))


def _settle(run: Run, in_flight: InFlight, row: Delivery, result: Result, report: SendReport) -> None:
    """Record one message's result on its row (with the next mark, or the batch's flush), and count it."""
    in_flight.settle(result, row.attempts, deliveries.give_up_at(row), run.settings.retry_policy)
    report.counts[result.outcome.value] += 1
    if result.outcome is not Outcome.SENT:
        log.warning("delivery %s to subscriber %s: %s (%s)", row.id, row.subscriber_id, result.outcome, result.detail)


def _dry_run_report(settings: Settings, plan: ChunkPlan, rows: list[NewDelivery], index: PaperIndex) -> SendReport:
    """What would be sent: a line per planned digest with its subject; nothing is recorded."""
    report = SendReport()
    for row in rows:
        sub = plan.subs[row.subscriber_id]
        subject = compose.render_for(settings, sub, row, index).subject if row.paper_ids else ""
        report.counts["would-send" if row.paper_ids else "empty"] += 1
        report.lines.append(DigestLine(sub.email, row.period, len(row.paper_ids), "dry-run", subject))
    return report


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
    due = due_now(session, settings, sub, now)
    index = load_index(
        session, due.window.start, due.window.end, popular_since=due.window.start - popular_reach(settings)
    )
    row = select_for(settings, due, index, now)
    return compose.render_for(settings, sub, row, index) if row.paper_ids else None
