"""The suppression list: hashes of addresses we must never mail again, and "forget me"."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Session, col, select

from digest.models import Delivery, Notice, ReaderModel, Subscriber, SubscriberStatus, Suppression, Vote

_SALT = b"paper-digest/suppression/v1:"


def address_hash(email: str) -> str:
    """A stable hash of a normalized address (not keyed by the secret, so key rotation keeps it)."""
    return hashlib.sha256(_SALT + email.strip().lower().encode()).hexdigest()


def is_suppressed(session: Session, email: str) -> bool:
    """Whether this address is on the suppression list."""
    return session.get(Suppression, address_hash(email)) is not None


def suppress(session: Session, email: str, reason: str, now: datetime) -> None:
    """Put an address on the list (idempotent) and stop its subscriber, if any."""
    digest = address_hash(email)
    if session.get(Suppression, digest) is None:
        session.add(Suppression(address_hash=digest, reason=reason[:200], created_at=now))
    for sub in session.exec(select(Subscriber).where(Subscriber.email == email.strip().lower())):
        sub.status = SubscriberStatus.SUPPRESSED
        session.add(sub)
    session.commit()


def forget(session: Session, sub: Subscriber, now: datetime) -> None:
    """Delete a subscriber and every row about them (their votes and learned ranking included); keep
    only the hash so they are never mailed."""
    assert sub.id is not None
    digest = address_hash(sub.email)
    session.execute(delete(Vote).where(col(Vote.subscriber_id) == sub.id))
    session.execute(delete(ReaderModel).where(col(ReaderModel.subscriber_id) == sub.id))
    session.execute(delete(Delivery).where(col(Delivery.subscriber_id) == sub.id))
    session.execute(delete(Notice).where(col(Notice.subscriber_id) == sub.id))
    session.execute(delete(Subscriber).where(col(Subscriber.id) == sub.id))
    if session.get(Suppression, digest) is None:
        session.add(Suppression(address_hash=digest, reason="forgotten on request", created_at=now))
    session.commit()


def unsuppress(session: Session, email: str) -> bool:
    """Take an address off the list (an operator's decision). True if it was on it."""
    row = session.get(Suppression, address_hash(email))
    if row is None:
        return False
    session.delete(row)
    session.commit()
    return True
