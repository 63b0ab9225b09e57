"""Sign-up with double opt-in, confirmation, preferences by link, pause and unsubscribe.

Every outcome a stranger could observe is the same whatever state the address is in: the
differences only show in the email that the address's owner receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from digest.config import Settings
from digest.models import Notice, NoticeKind, Preferences, Subscriber, SubscriberStatus
from digest.subscribers import apply, by_email, check_preferences, normalize_email
from digest.suppress import is_suppressed
from digest.tokens import Purpose, TokenError, email_tag, make_token, read_token


class LinkError(ValueError):
    """A link that does not work (tampered, expired, replayed, or for someone gone); details are for logs."""


class Requested(StrEnum):
    """What a sign-up request did (for logs and tests; the visitor always sees the same page)."""

    CONFIRMATION_QUEUED = "confirmation-queued"
    REMINDER_QUEUED = "already-subscribed-queued"
    COOLING_DOWN = "cooling-down"  # an email went to this address in the last 24 h: nothing more
    SUPPRESSED = "suppressed"  # bounced or asked to be forgotten: never mailed again


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
    assert sub.id is not None
    signed_at = sub.requested_at or now
    token = make_token(
        settings.signing_keys, Purpose.CONFIRM, sub.id, sub.email, stamp_of(sub.requested_at), now=signed_at
    )
    return f"{settings.base_url}/confirm/{token}"


def confirm_max_age(settings: Settings) -> int:
    """How long a confirmation link works, in seconds."""
    return settings.confirm_link_hours * 3600


def _recent_notice(session: Session, sub_id: int, since: datetime) -> bool:
    query = select(Notice.id).where(Notice.subscriber_id == sub_id, col(Notice.created_at) >= since).limit(1)
    return session.exec(query).first() is not None


def _queue(session: Session, sub: Subscriber, kind: NoticeKind, now: datetime) -> None:
    assert sub.id is not None
    session.add(Notice(subscriber_id=sub.id, kind=kind, created_at=now))


def request_signup(
    session: Session, settings: Settings, address: str, prefs: Preferences, now: datetime
) -> SignupResult:
    """Record a sign-up and queue the right email; raises SubscriberError for invalid input."""
    email = normalize_email(address)
    prefs = check_preferences(prefs)
    if is_suppressed(session, email):
        return SignupResult(0, Requested.SUPPRESSED)
    sub = by_email(session, email)
    if sub is None:
        sub = Subscriber(email=email, status=SubscriberStatus.PENDING, created_at=now)
        session.add(sub)
        session.flush()
    assert sub.id is not None
    cooldown = now - timedelta(hours=settings.confirm_cooldown_hours)
    if settings.confirm_cooldown_hours and _recent_notice(session, sub.id, cooldown):
        if sub.status is SubscriberStatus.PENDING:
            apply(sub, prefs)  # a corrected form still counts; the link already sent stays valid
            session.add(sub)
        session.commit()
        return SignupResult(sub.id, Requested.COOLING_DOWN)
    if sub.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED):
        # Never change a confirmed reader's settings on a stranger's word: tell the owner instead.
        _queue(session, sub, NoticeKind.ALREADY, now)
        session.commit()
        return SignupResult(sub.id, Requested.REMINDER_QUEUED)
    apply(sub, prefs)
    sub.status = SubscriberStatus.PENDING
    sub.requested_at = now
    session.add(sub)
    _queue(session, sub, NoticeKind.CONFIRM, now)
    session.commit()
    return SignupResult(sub.id, Requested.CONFIRMATION_QUEUED)


def request_new_link(session: Session, settings: Settings, address: str, now: datetime) -> Requested | None:
    """'Send me a new link': re-queue a confirmation for a pending address (same cooldown)."""
    email = normalize_email(address)
    sub = by_email(session, email)
    if sub is None or sub.id is None or is_suppressed(session, email):
        return None
    if sub.status is not SubscriberStatus.PENDING:
        return None
    cooldown = now - timedelta(hours=settings.confirm_cooldown_hours)
    if settings.confirm_cooldown_hours and _recent_notice(session, sub.id, cooldown):
        return Requested.COOLING_DOWN
    sub.requested_at = now
    session.add(sub)
    _queue(session, sub, NoticeKind.CONFIRM, now)
    session.commit()
    return Requested.CONFIRMATION_QUEUED


def subscriber_for(
    session: Session, settings: Settings, purpose: Purpose, token: str, *, now: datetime, max_age: int | None = None
) -> Subscriber:
    """The subscriber a link is for at `now`, or LinkError if the link is not valid for them any more."""
    try:
        data = read_token(settings.signing_keys, purpose, token, now=now, max_age=max_age)
    except TokenError as exc:
        raise LinkError(str(exc)) from exc
    sub = session.get(Subscriber, data.subscriber_id)
    if sub is None or email_tag(sub.email) != data.email_tag:
        raise LinkError("no such subscriber")
    if purpose is Purpose.CONFIRM and data.stamp != stamp_of(sub.requested_at):
        raise LinkError("superseded by a newer request")
    return sub


def confirm(session: Session, settings: Settings, token: str, now: datetime) -> Subscriber:
    """Activate the pending subscriber a confirmation link names (idempotent once active)."""
    sub = subscriber_for(session, settings, Purpose.CONFIRM, token, now=now, max_age=confirm_max_age(settings))
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
