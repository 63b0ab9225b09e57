"""Subscribers: validating what a reader asks for, and the few writes the CLI and web app share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlmodel import Session, col, select

from digest.models import TRENDING_DEFAULT, TRENDING_MAX, Preferences, Subscriber, SubscriberStatus
from digest.query import QueryError, parse_query
from digest.schedule import Schedule, ScheduleError, validate
from digest.suppress import is_suppressed

MAX_TOPICS = 20
MAX_CAP = 100


class SubscriberError(ValueError):
    """Something a reader or admin typed that we cannot accept; the message says what."""


def normalize_email(address: str) -> str:
    """The canonical, lowercased form of an address, or SubscriberError saying why it is not one."""
    if "\r" in address or "\n" in address:
        raise SubscriberError("an email address cannot contain line breaks")
    try:
        result = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"{address.strip()!r} is not a valid email address: {exc}") from exc
    if not result.normalized.isascii():
        raise SubscriberError("internationalised email addresses are not supported yet")
    return result.normalized.lower()


def check_topics(topics: Sequence[str]) -> list[str]:
    """The cleaned topics, or SubscriberError naming the first bad one, its column and reason."""
    cleaned = list(dict.fromkeys(t.strip() for t in topics if t.strip()))
    if not cleaned:
        raise SubscriberError("give at least one topic")
    if len(cleaned) > MAX_TOPICS:
        raise SubscriberError(f"at most {MAX_TOPICS} topics")
    for topic in cleaned:
        try:
            parse_query(topic)
        except QueryError as exc:
            raise SubscriberError(f"topic {topic[:80]!r}: {exc}") from exc
    return cleaned


def check_preferences(prefs: Preferences) -> Preferences:
    """Validate everything; returns the preferences with cleaned topics."""
    try:
        validate(Schedule(prefs.frequency, prefs.send_hour, prefs.timezone, prefs.weekly_day))
    except ScheduleError as exc:
        raise SubscriberError(str(exc)) from exc
    if prefs.min_upvotes is not None and prefs.min_upvotes < 0:
        raise SubscriberError("minimum upvotes cannot be negative")
    if not 1 <= prefs.max_papers <= MAX_CAP:
        raise SubscriberError(f"papers per email must be between 1 and {MAX_CAP}")
    if prefs.trending is not None and not 1 <= prefs.trending <= TRENDING_MAX:
        raise SubscriberError(f"trending papers per email must be between 1 and {TRENDING_MAX}")
    topics = [t.strip() for t in prefs.topics if t.strip()]
    if not topics:  # no topics: what most people come for, the day's trending papers
        return replace(prefs, topics=[], trending=prefs.trending or TRENDING_DEFAULT)
    return replace(prefs, topics=check_topics(topics))


def by_email(session: Session, email: str) -> Subscriber | None:
    """The subscriber with this (normalized) address."""
    return session.exec(select(Subscriber).where(Subscriber.email == email)).first()


def apply(sub: Subscriber, prefs: Preferences) -> None:
    """Copy validated preferences onto a subscriber row."""
    sub.topics = list(prefs.topics)
    sub.frequency = prefs.frequency
    sub.send_hour = prefs.send_hour
    sub.timezone = prefs.timezone
    sub.weekly_day = prefs.weekly_day
    sub.min_upvotes = prefs.min_upvotes
    sub.max_papers = prefs.max_papers
    sub.trending = prefs.trending


def subscribe_active(session: Session, address: str, prefs: Preferences, now: datetime) -> Subscriber:
    """Admin subscribe: create or update the subscriber and make it active at once."""
    email = normalize_email(address)
    prefs = check_preferences(prefs)
    if is_suppressed(session, email):
        raise SubscriberError(
            f"{email} is on the suppression list (bounced or forgotten); `digest unsuppress` it first"
        )
    sub = by_email(session, email) or Subscriber(email=email, created_at=now)
    apply(sub, prefs)
    if sub.status is not SubscriberStatus.ACTIVE:
        sub.status = SubscriberStatus.ACTIVE
        sub.confirmed_at = now
        sub.unsubscribed_at = None
    session.add(sub)
    session.commit()
    session.refresh(sub)
    return sub


def unsubscribe(session: Session, sub: Subscriber, now: datetime) -> bool:
    """Mark a subscriber unsubscribed (idempotent). True if this call changed it."""
    if sub.status is SubscriberStatus.UNSUBSCRIBED:
        return False
    sub.status = SubscriberStatus.UNSUBSCRIBED
    sub.unsubscribed_at = now
    session.add(sub)
    session.commit()
    return True


def active_pages(session: Session, size: int) -> Iterator[list[Subscriber]]:
    """Active subscribers in id order, a page at a time (never the whole table in memory)."""
    last = 0
    while True:
        query = (
            select(Subscriber)
            .where(Subscriber.status == SubscriberStatus.ACTIVE, col(Subscriber.id) > last)
            .order_by(col(Subscriber.id))
            .limit(size)
        )
        page = list(session.exec(query))
        if not page:
            return
        yield page
        last = page[-1].id or last
