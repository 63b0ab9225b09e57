"""Feedback from the email: a reader's "more like this" (+1) and "less like this" (-1) on a paper.

A vote is the reader's own data: one row per (reader, paper), written by one upsert (safe twice,
and concurrent POSTs of the same link never make two rows), removed by "undo" and by "forget me",
kept on unsubscribe (the reader may come back), never counted in metrics nor shown to anyone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from digest.config import Settings
from digest.db import upsert_insert
from digest.models import Paper, Subscriber, SubscriberStatus, Vote
from digest.signup import LinkError
from digest.tokens import TokenError, read_feedback_token, topic_tag

# A feedback link works as long as a manage link, from the digest that carries it: long enough to
# act on a digest read late, short enough that the token of an old email dies.
FEEDBACK_LINK_DAYS = 90
VOTERS = (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED)  # an unsubscribed reader's links are dead


@dataclass(frozen=True)
class Feedback:
    """What one feedback link asks: this reader's vote `value` on this paper, for this topic."""

    sub: Subscriber
    paper: Paper
    value: int
    topic: str | None

    @property
    def more(self) -> bool:
        return self.value > 0


def topic_for(sub: Subscriber, tag: str | None) -> str | None:
    """The reader's topic a link's tag names (None if none does any more: the topics changed)."""
    return next((t for t in sub.topics if tag is not None and topic_tag(t) == tag), None)


def read_feedback(session: Session, settings: Settings, token: str, now: datetime) -> Feedback:
    """The vote a feedback link asks for at `now`, or LinkError (tampered, expired, for another
    purpose, for a reader who has left or been forgotten, or for a paper that is gone)."""
    try:
        data = read_feedback_token(settings.signing_keys, token, now=now, max_age=FEEDBACK_LINK_DAYS * 86_400)
    except TokenError as exc:
        raise LinkError(str(exc)) from exc
    sub = session.exec(select(Subscriber).where(Subscriber.handle == data.handle)).first()
    if sub is None or SubscriberStatus(sub.status) not in VOTERS:
        raise LinkError("no such reader")
    paper = session.get(Paper, data.paper_id)
    if paper is None:
        raise LinkError("no such paper")
    return Feedback(sub, paper, data.value, topic_for(sub, data.topic_tag))


def _upsert(dialect: str) -> Any:
    table = Vote.__table__  # type: ignore[attr-defined]
    statement = upsert_insert(dialect, table)
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["subscriber_id", "paper_id"],
        set_={"value": new.value, "topic": new.topic, "created_at": new.created_at},
        where=table.c.value != new.value,  # the same vote again changes nothing
    ).returning(table.c.id)  # a row back: inserted or replaced; none: it was there already


def record(session: Session, fb: Feedback, now: datetime) -> bool:
    """Record the vote (one statement); a vote the other way on the same paper is replaced. True if
    this changed anything (a second POST of the same link does not)."""
    values = {"subscriber_id": fb.sub.id, "paper_id": fb.paper.id, "value": fb.value, "topic": fb.topic}
    changed = session.execute(_upsert(session.get_bind().dialect.name).values(**values, created_at=now)).first()
    session.commit()
    return changed is not None


def undo(session: Session, fb: Feedback) -> bool:
    """Remove this link's vote (only if it is still this way round: undoing an old "more" leaves a
    newer "less" alone). True if a row went."""
    result: Any = session.execute(
        delete(Vote).where(
            col(Vote.subscriber_id) == fb.sub.id, col(Vote.paper_id) == fb.paper.id, col(Vote.value) == fb.value
        )
    )
    session.commit()
    return bool(result.rowcount)


def recorded(session: Session, fb: Feedback) -> bool:
    """Whether this link's vote is the one on record."""
    vote = session.exec(select(Vote).where(Vote.subscriber_id == fb.sub.id, Vote.paper_id == fb.paper.id)).first()
    return vote is not None and vote.value == fb.value
