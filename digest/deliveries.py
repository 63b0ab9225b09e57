"""Delivery rows: one per (subscriber, period), claimed, marked in flight, settled by the result.

The row is the source of truth: it is inserted with "ignore on conflict", moved to `claimed` by a
conditional update that only one worker can win, then — right before its own MAIL FROM — to
`sending` by another conditional update (its reader still active), committed before any SMTP
traffic. A worker that dies leaves `claimed` rows (nothing went out: resent) and at most one
`sending` row per connection (it may have gone out: `unknown`, never resent).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, func, or_, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, CursorResult
from sqlmodel import Session, col, select

from digest.config import Settings
from digest.db import upsert_insert
from digest.models import Delivery, DeliveryStatus, Notice, Subscriber, SubscriberStatus, UtcDateTime
from digest.retry import DEFAULT_RETRY, RetryPolicy
from digest.schedule import Period
from digest.send import Outcome, Result

# Bulk UPDATEs skip matching the statement against every object in the session (which costs
# milliseconds per row with a few thousand objects loaded); callers expire what they re-read.
NO_SYNC = {"synchronize_session": False}
RESENDABLE = (DeliveryStatus.PENDING, DeliveryStatus.RETRY)
HELD = (DeliveryStatus.CLAIMED, DeliveryStatus.SENDING)  # a sender holds the row
Outbound = type[Delivery] | type[Notice]


def waiting_and_due(table: Outbound, now: datetime) -> ColumnElement[bool]:
    """SQL condition: the row waits to be (re)sent, and its time has come (uses the status/due index)."""
    return and_(
        col(table.status).in_(RESENDABLE),
        or_(col(table.due_at).is_(None), col(table.due_at) <= now),
    )


def existing_keys(session: Session, keys: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which of these (subscriber, period) keys already have a row, found in one query."""
    wanted = set(keys)
    if not wanted:
        return set()
    ids = {sid for sid, _ in wanted}
    periods = {period for _, period in wanted}
    query = sa_select(col(Delivery.subscriber_id), col(Delivery.period)).where(
        col(Delivery.subscriber_id).in_(ids), col(Delivery.period).in_(periods)
    )
    return {(sid, period) for sid, period in session.execute(query)} & wanted


def waiting_rows(session: Session, subscriber_ids: Sequence[int], now: datetime) -> list[tuple[int, int, datetime]]:
    """(id, subscriber, window start) of rows waiting to be (re)sent and due, of any period: a
    digest composed yesterday that crashed before its send still goes out."""
    if not subscriber_ids:
        return []
    columns = [col(Delivery.id), col(Delivery.subscriber_id), col(Delivery.window_start)]
    query = sa_select(*columns).where(col(Delivery.subscriber_id).in_(subscriber_ids), waiting_and_due(Delivery, now))
    return [(row_id, sid, start) for row_id, sid, start in session.execute(query)]


def last_window_end(session: Session, subscriber_ids: Sequence[int]) -> dict[int, datetime]:
    """Where each subscriber's previous digest window ended (their next one starts there)."""
    if not subscriber_ids:
        return {}
    query = (
        select(Delivery.subscriber_id, func.max(Delivery.window_end))
        .where(col(Delivery.subscriber_id).in_(subscriber_ids))
        .group_by(col(Delivery.subscriber_id))
    )
    return {sid: end for sid, end in session.exec(query) if end is not None}


# Rows whose papers never reached the reader: those papers may still be sent to them.
_NOT_SENT = (DeliveryStatus.EMPTY, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)


def sent_papers(session: Session, subscriber_ids: Sequence[int], after: datetime) -> dict[int, set[str]]:
    """The papers each reader was sent (or is being sent) in digests whose window ended after
    `after`: a paper whose popularity made it eligible again is never sent to them twice."""
    if not subscriber_ids:
        return {}
    query = select(Delivery.subscriber_id, Delivery.paper_ids).where(
        col(Delivery.subscriber_id).in_(subscriber_ids),
        col(Delivery.window_end) > after,
        col(Delivery.status).not_in(_NOT_SENT),
    )
    sent: dict[int, set[str]] = {}
    for sid, ids in session.exec(query):
        sent.setdefault(sid, set()).update(ids)
    return sent


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery row about to be inserted, as plain data (building an ORM object per reader costs
    more than inserting it)."""

    subscriber_id: int
    period: str
    status: DeliveryStatus
    paper_ids: list[str]
    more_count: int
    window_start: datetime
    window_end: datetime
    message_id: str
    created_at: datetime
    trending_count: int = 0
    recommended_count: int = 0

    def values(self) -> dict[str, Any]:
        """Every column but the key, as the INSERT takes them."""
        return {
            "subscriber_id": self.subscriber_id,
            "period": self.period,
            "status": self.status,
            "paper_ids": self.paper_ids,
            "more_count": self.more_count,
            "trending_count": self.trending_count,
            "recommended_count": self.recommended_count,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "message_id": self.message_id,
            "created_at": self.created_at,
            "attempts": 0,
            "error": None,
            "due_at": None,
            "claimed_at": None,
            "sent_at": None,
        }


def insert_many(session: Session, rows: Sequence[NewDelivery]) -> set[int]:
    """Insert delivery rows, skipping any (subscriber, period) that already has one, as one batched
    statement; returns the subscribers whose row this call inserted. Each row keeps its reader's
    topics and minimum of upvotes as they are now (read in one query), so that the archive shows
    the digest as it was composed after the reader changes them."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect
    chosen = _choices(session, {row.subscriber_id for row in rows})
    values = [row.values() | chosen.get(row.subscriber_id, _NO_CHOICE) for row in rows]
    # RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING.
    if dialect.name == "postgresql":
        result = session.execute(_recordset_insert(), {"rows": json.dumps([_as_json(row) for row in values])})
    else:  # one statement compiled once, run with every row's parameters (batched into multi-row INSERTs)
        result = session.execute(_insert_statement(dialect.name), values)
    return {int(sid) for (sid,) in result}


# Every column a new row sets (the others start 0, attempts, or NULL).
_FROM_JSON = (
    "subscriber_id",
    "period",
    "status",
    "paper_ids",
    "more_count",
    "trending_count",
    "recommended_count",
    "topics",
    "min_upvotes",
    "window_start",
    "window_end",
    "message_id",
    "created_at",
)


@lru_cache(maxsize=1)
def _recordset_insert() -> Any:
    """PostgreSQL: the chunk's rows as one JSON document, turned into rows by the server — a
    statement of a few hundred bytes with one parameter, instead of a multi-row VALUES list with
    thousands, which the driver would parse again for every chunk (it caches only short statements)."""
    core: Any = Delivery.__table__  # type: ignore[attr-defined]
    shape = ", ".join(f"{name} {core.c[name].type.compile(_PG)}" for name in _FROM_JSON)
    columns = ", ".join(_FROM_JSON)
    return text(
        f"INSERT INTO {core.name} ({columns}, attempts) SELECT {columns}, 0 FROM "
        f"json_to_recordset(CAST(:rows AS JSON)) AS r({shape}) "
        "ON CONFLICT (subscriber_id, period) DO NOTHING RETURNING subscriber_id"
    )


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A new row's columns as JSON values: a UTC datetime (checked aware) in ISO 8601, an enum as its value."""
    out = {name: row[name] for name in _FROM_JSON}
    for name in ("window_start", "window_end", "created_at"):
        out[name] = _UTC.process_bind_param(out[name], _PG).isoformat()  # type: ignore[union-attr]
    return out


_UTC = UtcDateTime()
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


_NO_CHOICE: dict[str, Any] = {"topics": [], "min_upvotes": None}


def _choices(session: Session, subscriber_ids: set[int]) -> dict[int, dict[str, Any]]:
    """The topics and minimum of upvotes of these readers, as delivery columns."""
    query = sa_select(col(Subscriber.id), col(Subscriber.topics), col(Subscriber.min_upvotes)).where(
        col(Subscriber.id).in_(subscriber_ids)
    )
    return {sid: {"topics": list(topics), "min_upvotes": least} for sid, topics, least in session.execute(query)}


@lru_cache(maxsize=4)
def _insert_statement(dialect: str) -> Any:
    table: Any = Delivery.__table__  # type: ignore[attr-defined]
    return (
        upsert_insert(dialect, table)
        .on_conflict_do_nothing(index_elements=["subscriber_id", "period"])
        .returning(table.c.subscriber_id)
    )


def _reader_in(table: Outbound, statuses: Sequence[SubscriberStatus]) -> Any:
    """SQL condition: the row's subscriber is in one of these states (checked at claim time)."""
    return exists().where(and_(col(Subscriber.id) == table.subscriber_id, col(Subscriber.status).in_(statuses)))


def _reader_active() -> Any:
    """SQL condition: the delivery row's reader is still active."""
    return _reader_in(Delivery, [SubscriberStatus.ACTIVE])


def claim_many(
    session: Session,
    row_ids: Sequence[int],
    now: datetime,
    table: Outbound = Delivery,
    readers: Sequence[SubscriberStatus] = (SubscriberStatus.ACTIVE,),
) -> list[int]:
    """Claim rows in one conditional update (each still waiting, due, and its reader still in
    `readers`), committed before any SMTP; returns the ids this caller won. Digests of feed-only
    readers are never claimed for SMTP: they are filed for the feed instead (`file_for_feed`)."""
    if not row_ids:
        return []
    if table is Delivery:
        file_for_feed(session, row_ids, now)
    statement = (
        update(table)
        .where(col(table.id).in_(row_ids), waiting_and_due(table, now), _reader_in(table, readers))
        .values(status=DeliveryStatus.CLAIMED, claimed_at=now, attempts=col(table.attempts) + 1)
        .returning(col(table.id))
    )
    won = sorted(int(i) for (i,) in session.execute(statement, execution_options=NO_SYNC))
    session.commit()
    return won


def file_for_feed(session: Session, row_ids: Sequence[int], now: datetime) -> int:
    """Settle the waiting, due digests of active feed-only readers among these rows as `feed`: what
    they would have been mailed is recorded for their feed and archive, and no email goes out.
    One conditional update, committed; returns how many rows it filed."""
    feed_only = exists().where(
        and_(
            col(Subscriber.id) == Delivery.subscriber_id,
            col(Subscriber.status) == SubscriberStatus.ACTIVE,
            col(Subscriber.feed_only),
        )
    )
    statement = (
        update(Delivery)
        .where(col(Delivery.id).in_(row_ids), waiting_and_due(Delivery, now), feed_only)
        .values(status=DeliveryStatus.FEED, sent_at=now, error=None, due_at=None)
    )
    result: CursorResult[Any] = session.execute(statement, execution_options=NO_SYNC)  # type: ignore[assignment]
    session.commit()
    return int(result.rowcount)


def claim(
    session: Session,
    row_id: int,
    now: datetime,
    table: Outbound = Delivery,
    readers: Sequence[SubscriberStatus] = (SubscriberStatus.ACTIVE,),
) -> bool:
    """Claim one row (see `claim_many`). True if this caller won it."""
    return bool(claim_many(session, [row_id], now, table, readers))


def skip_inactive(session: Session, delivery_ids: Sequence[int]) -> int:
    """Close waiting rows whose reader left or was suppressed before the send; returns how many."""
    if not delivery_ids:
        return 0
    active = _reader_active()
    statement = (
        update(Delivery)
        .where(col(Delivery.id).in_(delivery_ids), col(Delivery.status).in_(RESENDABLE), ~active)
        .values(status=DeliveryStatus.SKIPPED, error="subscriber no longer active")
    )
    result: CursorResult[Any] = session.execute(statement, execution_options=NO_SYNC)  # type: ignore[assignment]
    session.commit()
    return int(result.rowcount)


def settle(
    db: Session | Connection,
    result: Result,
    now: datetime,
    attempts: int,
    give_up_at: datetime | None,
    table: Outbound = Delivery,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> None:
    """Record a send result on a row we hold (`claimed`, or `sending` once in flight); a retry past
    its limits becomes `failed` (bounded attempts, and never into the next period)."""
    _write_outcomes(db, table, [settle_params(result, now, attempts, give_up_at, policy)])


def _write_outcomes(db: Session | Connection, table: Outbound, params: list[dict[str, Any]]) -> None:
    """Write settled rows' new state, committed."""
    dialect = db.dialect.name if isinstance(db, Connection) else db.get_bind().dialect.name
    if dialect == "postgresql" and not autocommits(db):
        # Recording an outcome need not wait for the disk: if PostgreSQL itself crashes in the next
        # instant, the row stays `sending` and the sweeper calls it `unknown` — never resent.
        db.execute(text("SET LOCAL synchronous_commit TO OFF"))
    db.execute(_settle_statement(table), params)
    db.commit()


def settle_params(
    result: Result, now: datetime, attempts: int, give_up_at: datetime | None, policy: RetryPolicy = DEFAULT_RETRY
) -> dict[str, Any]:
    """The new state of a row we hold, for `settle` (one row) or `InFlight.settle` (ridden along)."""
    error = None if result.outcome is Outcome.SENT else result.detail
    status, sent_at, due_at = DeliveryStatus(result.outcome.value), None, None
    if result.outcome is Outcome.SENT:
        sent_at = now
    elif result.outcome is Outcome.RETRY:
        due = now + policy.delay(attempts)
        if attempts >= policy.max_attempts or (give_up_at is not None and due >= give_up_at):
            status, error = DeliveryStatus.FAILED, f"gave up after {attempts} attempts: {error}"
        else:
            due_at = due
    return {
        "row_id": result.key,
        "new_status": status,
        "new_error": error,
        "new_sent_at": sent_at,
        "new_due_at": due_at,
    }


def _held(core: Any) -> ColumnElement[bool]:
    """The row is held by a sender, as plain comparisons: an IN list would be an "expanding"
    parameter, which executemany (several outcomes written at once) refuses."""
    return or_(*(core.c.status == status for status in HELD))


@lru_cache(maxsize=4)
def _settle_statement(table: Outbound) -> Any:
    """Built once per table and reused with parameters: constructing SQL per message costs more
    than running it."""
    # A Core UPDATE on the table: the ORM's bulk-update machinery costs more than the statement.
    return _outcome_update(table.__table__)  # type: ignore[union-attr]


def _outcome_update(core: Any, suffix: str = "") -> Any:
    """UPDATE a held row to its outcome, its parameters named `row_id<suffix>`, `new_status<suffix>`, …"""
    return (
        update(core)
        .where(core.c.id == bindparam(f"row_id{suffix}"), _held(core))
        .values(
            status=bindparam(f"new_status{suffix}"),
            error=bindparam(f"new_error{suffix}"),
            sent_at=bindparam(f"new_sent_at{suffix}"),
            due_at=bindparam(f"new_due_at{suffix}"),
        )
    )


def autocommits(db: Session | Connection) -> bool:
    """Whether each statement on `db` commits on its own (a connection `own_connection` opened on
    PostgreSQL)."""
    return isinstance(db, Connection) and db.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


def expire_stale(session: Session, now: datetime, stale_after: timedelta, table: Outbound = Delivery) -> int:
    """Rows stuck in `sending` past the timeout (their worker died mid-send) become `unknown`:
    the message may have gone out, so it is reported, never resent automatically."""
    cutoff = now - stale_after
    why = f"its worker stopped mid-send (claimed before {cutoff:%Y-%m-%d %H:%M} UTC)"
    return _move_stale(session, table, DeliveryStatus.SENDING, cutoff, status=DeliveryStatus.UNKNOWN, error=why)


def release_stale(session: Session, now: datetime, stale_after: timedelta, table: Outbound = Delivery) -> int:
    """Rows still `claimed` past the timeout lost their worker before their SMTP transaction began:
    nothing of them went out, so they wait again, due at once (the sweeper queues them)."""
    cutoff = now - stale_after
    why = f"its worker stopped before sending it (claimed before {cutoff:%Y-%m-%d %H:%M} UTC): resent"
    return _move_stale(
        session, table, DeliveryStatus.CLAIMED, cutoff, status=DeliveryStatus.PENDING, due_at=None, error=why
    )


def _move_stale(session: Session, table: Outbound, held: DeliveryStatus, cutoff: datetime, **values: Any) -> int:
    """Rows in `held` claimed before `cutoff` get `values`; committed; returns how many."""
    statement = update(table).where(col(table.status) == held, col(table.claimed_at) < cutoff).values(**values)
    result: CursorResult[Any] = session.execute(statement, execution_options=NO_SYNC)  # type: ignore[assignment]
    session.commit()
    return int(result.rowcount)


def due_subscribers(session: Session, now: datetime, limit: int = 100_000) -> list[int]:
    """Subscribers with a row waiting to be (re)sent whose time has come (uses the status/due index)."""
    query = sa_select(col(Delivery.subscriber_id)).where(waiting_and_due(Delivery, now)).distinct().limit(limit)
    return [int(sid) for (sid,) in session.execute(query)]


def give_up_at(row: Delivery) -> datetime:
    """Past this, a digest is not retried any more: it would arrive in the next period."""
    return row.created_at + Period(row.period).length


_READERS: Any = Subscriber.__table__  # type: ignore[attr-defined]
_STATUS_OF = sa_select(_READERS.c.status).where(_READERS.c.id == bindparam("sid"))


@lru_cache(maxsize=8)
def _in_flight_statement(table: Outbound, readers: tuple[SubscriberStatus, ...]) -> Any:
    """Built once per table and readers: `claimed` → `sending`, only while the reader is one of them."""
    core: Any = table.__table__  # type: ignore[union-attr]
    wanted = exists().where(_READERS.c.id == core.c.subscriber_id, _READERS.c.status.in_(readers))
    return (
        update(core)
        .where(core.c.id == bindparam("row_id"), core.c.status == DeliveryStatus.CLAIMED, wanted)
        .values(status=DeliveryStatus.SENDING, claimed_at=bindparam("at"))
    )


MARK_RIDERS_MAX = 8  # outcomes one PostgreSQL mark statement takes along (more: written just before it)
_RIDER_KEYS = ("row_id", "new_status", "new_error", "new_sent_at", "new_due_at")


@lru_cache(maxsize=64)
def _mark_with_outcomes(table: Outbound, readers: tuple[SubscriberStatus, ...], riders: int) -> str:
    """PostgreSQL: one statement that marks a row in flight and writes `riders` outcomes with it, each
    outcome a data-modifying WITH clause (PostgreSQL runs every one, once, in the statement's single
    transaction): one round trip and one commit per message instead of BEGIN, UPDATE, UPDATE, COMMIT.
    The statements of `_in_flight_statement` and `_outcome_update` as the driver's own SQL: it is run
    on the driver's cursor, once per message, where SQLAlchemy's execution costs twice the driver's."""
    name, who = table.__tablename__, Subscriber.__tablename__
    held = " OR ".join(f"{name}.status = '{status.value}'" for status in HELD)
    wanted = ", ".join(f"'{status.value}'" for status in readers)
    outcomes = [
        f"outcome_{n} AS (UPDATE {name} SET status = %(new_status_{n})s, error = %(new_error_{n})s, "
        f"sent_at = %(new_sent_at_{n})s, due_at = %(new_due_at_{n})s "
        f"WHERE {name}.id = %(row_id_{n})s AND ({held}) RETURNING {name}.id)"
        for n in range(riders)
    ]
    mark = (
        f"UPDATE {name} SET status = '{DeliveryStatus.SENDING.value}', claimed_at = %(at)s "
        f"WHERE {name}.id = %(row_id)s AND {name}.status = '{DeliveryStatus.CLAIMED.value}' AND EXISTS "
        f"(SELECT 1 FROM {who} WHERE {who}.id = {name}.subscriber_id AND {who}.status IN ({wanted}))"
    )
    return f"WITH {', '.join(outcomes)} {mark}" if outcomes else mark


def _rider_params(pending: list[dict[str, Any]]) -> dict[str, Any]:
    """The outcomes' parameters as the driver takes them (a status as its value)."""
    params = {f"{key}_{n}": outcome[key] for n, outcome in enumerate(pending) for key in _RIDER_KEYS}
    for n in range(len(pending)):
        params[f"new_status_{n}"] = DeliveryStatus(params[f"new_status_{n}"]).value
    return params


class InFlight:
    """Asked right before each message's MAIL FROM: one conditional UPDATE (a statement built once)
    marks its row in flight, committed — only while the row is still this sender's and its reader
    still wants it. An unsubscribe arriving mid-batch stops the very next email, and a worker that
    dies leaves in flight only the messages whose SMTP transaction had begun."""

    def __init__(self, db: Session | Connection, clock: Callable[[], datetime], table: Outbound = Delivery) -> None:
        self.db = db
        self.clock = clock
        self.table = table
        self.pending: list[dict[str, Any]] = []  # outcomes not yet written: they ride with the next mark
        self.marks_left: int | None = None  # marks still to come in this batch, once told
        self.one_statement = isinstance(db, Connection) and autocommits(db) and db.dialect.name == "postgresql"
        self.cursor: Any = None

    def expect(self, messages: int) -> None:
        """How many messages of this batch will still be marked (every one is, sent or vetoed)."""
        self.marks_left = messages

    def settle(self, result: Result, attempts: int, give_up_at: datetime | None, policy: RetryPolicy) -> None:
        """Record a message's outcome in the transaction of the next mark (one commit, and one wait
        for the disk, per message instead of two). Until then its row is `sending`, as it was a
        moment before, so a crash in between leaves it `unknown`, never resent; once no mark is to
        come (the batch's tail, however slow its last messages are) each outcome is written at once,
        so no row that went out waits in `sending` for the stale-row sweeper to call it `unknown`."""
        self.pending.append(settle_params(result, self.clock(), attempts, give_up_at, policy))
        if self.marks_left is None or self.marks_left <= 0:
            self.flush()

    def flush(self) -> None:
        """Write the outcomes no mark took along (the batch's last ones), committed."""
        if self.pending:
            _write_outcomes(self.db, self.table, self.pending)
            self.pending = []

    def _driver_cursor(self) -> Any:
        """The driver's cursor on this autocommit connection (a statement is durable when it returns)."""
        if self.cursor is None:
            assert isinstance(self.db, Connection)
            self.cursor = self.db.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        return self.cursor

    def _write_pending(self) -> None:
        if self.pending:
            self.db.execute(_settle_statement(self.table), self.pending)

    def veto(
        self, row_id: int, subscriber_id: int, readers: tuple[SubscriberStatus, ...] = (SubscriberStatus.ACTIVE,)
    ) -> Callable[[], str | None]:
        """The mark for one message: None to go ahead, or why it must not go out."""

        def mark() -> str | None:
            params: dict[str, Any] = {"row_id": row_id, "at": self.clock()}
            if self.one_statement and len(self.pending) <= MARK_RIDERS_MAX:
                sql = _mark_with_outcomes(self.table, readers, len(self.pending))
                marked = self._driver_cursor().execute(sql, params | _rider_params(self.pending)).rowcount == 1
            else:
                self._write_pending()
                marked = self.db.execute(_in_flight_statement(self.table, readers), params).rowcount == 1  # type: ignore[attr-defined]
                self.db.commit()  # durable before the message is on the wire (with the outcomes before it)
            self.pending = []
            if self.marks_left is not None:
                self.marks_left -= 1
            return None if marked else self._why_not(subscriber_id)

        return mark

    def _why_not(self, subscriber_id: int) -> str:
        status = self.db.execute(_STATUS_OF, {"sid": subscriber_id}).scalar()
        self.db.commit()
        return f"subscriber {status} before sending" if status else "the row was taken back before sending"


@contextmanager
def own_connection(session: Session) -> Iterator[Connection]:
    """A connection of the session's engine for this block (the session's own when it is bound to
    one): each message's status check and outcome go through it, as a Session round per message
    costs several times the statement itself."""
    bind = session.get_bind()
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.connect() as conn:
        # On PostgreSQL each statement commits on its own: a mark (with the outcomes it takes along)
        # is one round trip, durable when it returns. SQLite keeps its transactions (no round trips).
        yield conn.execution_options(isolation_level="AUTOCOMMIT") if conn.dialect.name == "postgresql" else conn


@dataclass(frozen=True)
class Sweep:
    """What the sweeper did: rows whose worker died mid-send turned `unknown`, rows whose worker died
    before sending them released to be resent, and readers with rows due (again)."""

    expired: int
    released: int
    due: list[list[int]]


def sweep(session: Session, settings: Settings, now: datetime) -> Sweep:
    """Close rows stuck in `sending`, release rows stuck in `claimed`, and find readers whose
    pending/retry rows are due (in chunks)."""
    stale = timedelta(seconds=settings.stale_sending_seconds)
    expired = sum(expire_stale(session, now, stale, table) for table in (Delivery, Notice))
    released = sum(release_stale(session, now, stale, table) for table in (Delivery, Notice))
    ids = due_subscribers(session, now)
    size = settings.send_batch_size
    return Sweep(expired, released, [ids[i : i + size] for i in range(0, len(ids), size)])
