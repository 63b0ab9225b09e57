"""Sign-up with double opt-in, confirmation, preferences by link, pause and unsubscribe.

Every outcome a stranger could observe is the same whatever state the address is in: the
differences only show in the email that the address's owner receives. That includes the work a
request does: a sign-up (and a request for a new link) runs the same SQL statements, in the same
order, for every state of an address, and writes a row in every state, so its timing says nothing
either (see `_look_up` and `_record`).

Rule for an address whose sign-up is still pending: the first request's settings stand. Signing
up again never changes them; after the cooldown it only sends the confirmation link again (like
"send me a new link"). The reader sees and changes their topics on the manage page once confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import Boolean, bindparam, delete, insert, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from digest.config import Settings
from digest.db import upsert_insert
from digest.models import (
    DEFAULT_PREFERENCES,
    DeliveryStatus,
    Notice,
    NoticeKind,
    Preferences,
    Subscriber,
    SubscriberStatus,
    Suppression,
)
from digest.subscribers import apply, check_preferences, normalize_email
from digest.suppress import address_hash
from digest.tokens import Purpose, TokenError, email_tag, make_token, read_token


class LinkError(ValueError):
    """A link that does not work (tampered, expired, replayed, or for someone gone); details are for logs."""


class Requested(StrEnum):
    """What a sign-up request did (for logs and tests; the visitor always sees the same page)."""

    CONFIRMATION_QUEUED = "confirmation-queued"
    REMINDER_QUEUED = "already-subscribed-queued"
    COOLING_DOWN = "cooling-down"  # an email went to this address in the last 24 h: nothing more
    SUPPRESSED = "suppressed"  # bounced or asked to be forgotten: never mailed again
    NOTHING = "nothing"  # a new link was asked for an address that has no pending sign-up


@dataclass(frozen=True)
class SignupResult:
    subscriber_id: int
    outcome: Requested


def stamp_of(moment: datetime | None) -> int:
    """The integer stamp of a confirmation request, carried by its link."""
    return int(moment.timestamp()) if moment else 0


def confirm_url(settings: Settings, sub: Subscriber, now: datetime) -> str:
    """The link in a confirmation email: only the latest request's link confirms, and its lifetime
    counts from that request (`now` stands in for a row that never recorded one)."""
    signed_at = sub.requested_at or now
    token = make_token(settings.signing_keys, Purpose.CONFIRM, sub.handle, stamp_of(sub.requested_at), now=signed_at)
    return f"{settings.base_url}/confirm/{token}"


def link_max_age(settings: Settings, purpose: Purpose) -> int | None:
    """How long a link works, in seconds: a confirmation link for DIGEST_CONFIRM_LINK_HOURS, a manage
    link for DIGEST_MANAGE_LINK_DAYS (every email carries a fresh one), an unsubscribe link for ever."""
    if purpose is Purpose.CONFIRM:
        return settings.confirm_link_hours * 3600
    if purpose is Purpose.MANAGE:
        return settings.manage_link_days * 86_400
    return None


def next_link_at(settings: Settings, now: datetime) -> datetime:
    """When a new link can be sent, as every visitor is told: at most one email goes to an address
    per cooldown, so after this time one can, whatever state the address is in (and the answer is
    the same for every address, since it depends on nothing but `now`)."""
    return now + timedelta(hours=settings.confirm_cooldown_hours)


# --- one sign-up: the same reads and writes for every state of an address -----------------------


@dataclass(frozen=True)
class _Seen:
    """What the database holds about one address."""

    suppressed: bool
    sub: Subscriber | None
    recent: bool  # an email went to it within the cooldown


@dataclass(frozen=True)
class _Plan:
    """What a request does: the address's row afterwards (if it may have one) and the email to queue."""

    outcome: Requested
    prefs: Preferences
    status: SubscriberStatus
    requested_at: datetime | None
    notice: NoticeKind | None = None
    may_write_row: bool = True  # never for a suppressed address: its row is not created or changed


def _recent_notice(session: Session, sub_id: int, since: datetime) -> bool:
    """Whether an email was queued for this reader since `since` — one that failed does not count:
    the reader never got it, so they may ask again at once."""
    query = (
        select(Notice.id)
        .where(
            Notice.subscriber_id == sub_id,
            col(Notice.created_at) >= since,
            col(Notice.status) != DeliveryStatus.FAILED,
        )
        .limit(1)
    )
    return session.exec(query).first() is not None


def _look_up(session: Session, settings: Settings, email: str, now: datetime) -> _Seen:
    """The three reads, always all three (a missing subscriber is looked up as id 0)."""
    hashed = address_hash(email)
    suppressed = session.exec(select(Suppression.address_hash).where(Suppression.address_hash == hashed)).first()
    query = select(Subscriber).where(Subscriber.email == email).execution_options(populate_existing=True)
    sub = session.exec(query).first()
    cooldown = settings.confirm_cooldown_hours
    recent = _recent_notice(session, sub.id if sub and sub.id else 0, now - timedelta(hours=cooldown))
    return _Seen(suppressed is not None, sub, recent and cooldown > 0)


def _unchanged(seen: _Seen, outcome: Requested, notice: NoticeKind | None = None) -> _Plan:
    """A plan that keeps the row as it is (it is still written, with its own values)."""
    sub = seen.sub
    if sub is None:
        return _Plan(outcome, DEFAULT_PREFERENCES, SubscriberStatus.PENDING, None, notice, may_write_row=False)
    return _Plan(outcome, sub.preferences, sub.status, sub.requested_at, notice, may_write_row=not seen.suppressed)


def _signup_plan(seen: _Seen, prefs: Preferences, now: datetime) -> _Plan:
    sub = seen.sub
    if seen.suppressed:
        return _unchanged(seen, Requested.SUPPRESSED)
    if sub is None:
        return _Plan(Requested.CONFIRMATION_QUEUED, prefs, SubscriberStatus.PENDING, now, NoticeKind.CONFIRM)
    if seen.recent:
        return _unchanged(seen, Requested.COOLING_DOWN)
    if sub.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED):
        # Never change a confirmed reader's settings on a stranger's word: tell the owner instead.
        return _unchanged(seen, Requested.REMINDER_QUEUED, NoticeKind.ALREADY)
    if sub.status is SubscriberStatus.PENDING:
        prefs = sub.preferences  # the first request's settings stand: only the link is sent again
    return _Plan(Requested.CONFIRMATION_QUEUED, prefs, SubscriberStatus.PENDING, now, NoticeKind.CONFIRM)


def _resend_plan(seen: _Seen, now: datetime) -> _Plan:
    sub = seen.sub
    if seen.suppressed or sub is None or sub.status is not SubscriberStatus.PENDING:
        return _unchanged(seen, Requested.NOTHING)
    if seen.recent:
        return _unchanged(seen, Requested.COOLING_DOWN)
    return _Plan(Requested.CONFIRMATION_QUEUED, sub.preferences, sub.status, now, NoticeKind.CONFIRM)


# The columns a sign-up sets on an existing row (created_at, confirmed_at and the rest are kept).
_SIGNUP_COLUMNS = ("status", "topics", "frequency", "send_hour", "timezone", "weekly_day", "min_upvotes",
                   "max_papers", "trending", "requested_at")  # fmt: skip


@lru_cache(maxsize=4)
def _row_statement(dialect: str) -> Any:
    """INSERT … SELECT … WHERE :may_write ON CONFLICT (email) DO UPDATE: one statement that creates
    the row, rewrites it (with its own values when nothing changes) or, for a suppressed address,
    touches nothing — the same SQL in every case."""
    table: Any = Subscriber.__table__  # type: ignore[attr-defined]
    columns = [c for c in table.columns if c.name != "id"]
    values = core_select(*[bindparam(f"v_{c.name}", type_=c.type) for c in columns])
    statement = upsert_insert(dialect, table).from_select(
        [c.name for c in columns], values.where(bindparam("may_write", type_=Boolean()))
    )
    changed = {name: statement.excluded[name] for name in _SIGNUP_COLUMNS}
    return statement.on_conflict_do_update(index_elements=[table.c.email], set_=changed).returning(table.c.id)


@lru_cache(maxsize=1)
def _notice_statement() -> Any:
    """INSERT INTO notice … SELECT the address's id … WHERE :send: queues the email, or nothing."""
    notice: Any = Notice.__table__  # type: ignore[attr-defined]
    subscriber: Any = Subscriber.__table__  # type: ignore[attr-defined]
    columns = [c for c in notice.columns if c.name not in ("id", "subscriber_id")]
    rows = core_select(subscriber.c.id, *[bindparam(f"n_{c.name}", type_=c.type) for c in columns]).where(
        subscriber.c.email == bindparam("n_address"), bindparam("send", type_=Boolean())
    )
    return insert(notice).from_select(["subscriber_id", *[c.name for c in columns]], rows)


@lru_cache(maxsize=1)
def _touch_statement() -> Any:
    """Rewrites a suppressed address's entry with its own values: the one row a request for a
    suppressed address writes (for any other address it matches no row; their row is written)."""
    table: Any = Suppression.__table__  # type: ignore[attr-defined]
    return update(table).where(table.c.address_hash == bindparam("hashed")).values(reason=table.c.reason)


def _values(table: Any, template: Any, prefix: str, skip: tuple[str, ...]) -> dict[str, Any]:
    return {f"{prefix}{c.name}": getattr(template, c.name) for c in table.columns if c.name not in skip}


def _record(session: Session, email: str, plan: _Plan, now: datetime) -> int:
    """The three writes of a request, always all three, then the commit; returns the row's id (0 if none)."""
    session.execute(_touch_statement(), {"hashed": address_hash(email)})
    row = Subscriber(email=email, status=plan.status, created_at=now, requested_at=plan.requested_at)
    apply(row, plan.prefs)
    subscribers: Any = Subscriber.__table__  # type: ignore[attr-defined]
    values = _values(subscribers, row, "v_", ("id",))
    dialect = session.get_bind().dialect.name
    sub_id = session.execute(_row_statement(dialect), {**values, "may_write": plan.may_write_row}).scalar()
    queued = Notice(subscriber_id=0, kind=plan.notice or NoticeKind.CONFIRM, created_at=now)
    notices: Any = Notice.__table__  # type: ignore[attr-defined]
    params = {**_values(notices, queued, "n_", ("id", "subscriber_id")), "n_address": email}
    session.execute(_notice_statement(), {**params, "send": plan.notice is not None})
    session.commit()
    return int(sub_id or 0)


def _request(
    session: Session, settings: Settings, email: str, now: datetime, prefs: Preferences | None
) -> SignupResult:
    """A sign-up (with preferences) or a request for a new link (without): read, plan, write."""
    seen = _look_up(session, settings, email, now)
    plan = _signup_plan(seen, prefs, now) if prefs is not None else _resend_plan(seen, now)
    sub_id = _record(session, email, plan, now)
    if seen.sub is not None:
        session.expire(seen.sub)  # written by a Core statement: read it again when next used
    return SignupResult(sub_id, plan.outcome)


def request_signup(
    session: Session, settings: Settings, address: str, prefs: Preferences, now: datetime
) -> SignupResult:
    """Record a sign-up and queue the right email; raises SubscriberError for invalid input."""
    return _request(session, settings, normalize_email(address), now, check_preferences(prefs))


def request_new_link(session: Session, settings: Settings, address: str, now: datetime) -> Requested | None:
    """'Send me a new link': re-queue a confirmation for a pending address (same cooldown, and the
    same work as a sign-up for every address); None when there is no pending sign-up to send."""
    outcome = _request(session, settings, normalize_email(address), now, None).outcome
    return None if outcome is Requested.NOTHING else outcome


def subscriber_for(session: Session, settings: Settings, purpose: Purpose, token: str, *, now: datetime) -> Subscriber:
    """The subscriber a link is for at `now`, or LinkError if the link is not valid for them any more
    (tampered, for another purpose, past its lifetime, or for a row that is gone)."""
    try:
        data = read_token(settings.signing_keys, purpose, token, now=now, max_age=link_max_age(settings, purpose))
    except TokenError as exc:
        raise LinkError(str(exc)) from exc
    if data.handle is not None:
        sub = session.exec(select(Subscriber).where(Subscriber.handle == data.handle)).first()
    else:  # a link from before handles: the row id, and a tag of the address it was made for
        sub = session.get(Subscriber, data.subscriber_id)
        sub = sub if sub is not None and email_tag(sub.email) == data.email_tag else None
    if sub is None:
        raise LinkError("no such subscriber")
    if purpose is Purpose.CONFIRM and data.stamp != stamp_of(sub.requested_at):
        raise LinkError("superseded by a newer request")
    return sub


def confirm(session: Session, settings: Settings, token: str, now: datetime) -> Subscriber:
    """Activate the pending subscriber a confirmation link names (idempotent once active)."""
    sub = subscriber_for(session, settings, Purpose.CONFIRM, token, now=now)
    if sub.status is SubscriberStatus.PENDING:
        sub.status = SubscriberStatus.ACTIVE
        sub.confirmed_at = now
        sub.unsubscribed_at = None
        session.add(sub)
        session.commit()
    elif sub.status is SubscriberStatus.UNSUBSCRIBED:
        raise LinkError("unsubscribed since; signing up again is needed")
    return sub


def update_preferences(session: Session, sub: Subscriber, prefs: Preferences) -> Subscriber:
    """Save new preferences (validated); raises SubscriberError."""
    if sub.status is SubscriberStatus.UNSUBSCRIBED:
        raise LinkError("unsubscribed")
    apply(sub, check_preferences(prefs))
    session.add(sub)
    session.commit()
    return sub


def set_paused(session: Session, sub: Subscriber, paused: bool, now: datetime) -> Subscriber:
    """Pause or resume digests. Resuming starts afresh: no flood of what came out meanwhile."""
    if sub.status not in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED):
        raise LinkError(f"cannot pause or resume a {sub.status.value} subscriber")
    if paused:
        sub.status = SubscriberStatus.PAUSED
    elif sub.status is SubscriberStatus.PAUSED:
        sub.status = SubscriberStatus.ACTIVE
        sub.confirmed_at = now
    session.add(sub)
    session.commit()
    return sub


def cleanup_pending(session: Session, now: datetime, retention: timedelta) -> int:
    """Forget sign-ups never confirmed within `retention`; a returning reader who did not confirm
    goes back to unsubscribed. Returns how many rows were dropped or reverted."""
    cutoff = now - retention
    stale = list(
        session.exec(
            select(Subscriber).where(
                Subscriber.status == SubscriberStatus.PENDING, col(Subscriber.requested_at) < cutoff
            )
        )
    )
    never = [s.id for s in stale if s.confirmed_at is None]
    returning = [s.id for s in stale if s.confirmed_at is not None]
    if never:
        session.execute(delete(Notice).where(col(Notice.subscriber_id).in_(never)))
        session.execute(delete(Subscriber).where(col(Subscriber.id).in_(never)))
    if returning:
        session.execute(
            update(Subscriber).where(col(Subscriber.id).in_(returning)).values(status=SubscriberStatus.UNSUBSCRIBED)
        )
    session.commit()
    return len(stale)
