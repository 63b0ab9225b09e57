"""Planning: which readers are due now, for which period, and over which window of papers.

Pure decisions (`slot_for`, `window_start`) over the reader's schedule and `now`, and the few reads
that planning a page or a chunk of readers needs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from digest import deliveries
from digest.config import Settings
from digest.learning import learned_for
from digest.match import TRENDING_GRACE
from digest.models import Frequency, Subscriber, SubscriberStatus
from digest.rank import Learned
from digest.schedule import Schedule, ScheduleError, Slot, latest_slot, previous_slot, slot_back
from digest.subscribers import active_pages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """The papers of one digest: first seen in [start, end)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Due:
    """A reader whose digest for `slot` is to be composed from the papers of `window`."""

    sub: Subscriber
    slot: Slot
    window: Window


@dataclass(frozen=True)
class ChunkPlan:
    """A chunk of readers: who they are, whose digest is to be composed, and the papers all of them
    (and any of their rows waiting for a resend) need: first seen in [since, end)."""

    subs: dict[int, Subscriber]
    due: list[Due]
    since: datetime
    end: datetime
    # Hugging Face papers from this far back may still trend or meet a minimum in these windows.
    popular_since: datetime
    sent: dict[int, set[str]]  # what each due reader was already sent, from that far back on
    learned: dict[int, Learned]  # what the votes of those who voted teach (models retrained if stale)


def schedule_of(sub: Subscriber) -> Schedule:
    """A subscriber's delivery schedule."""
    return Schedule(Frequency(sub.frequency), sub.send_hour, sub.timezone, sub.weekly_day)


def slot_for(sub: Subscriber, now: datetime) -> Slot | None:
    """The slot to fill now, if any: a slot from before the reader joined is not owed to them."""
    try:
        slot = latest_slot(schedule_of(sub), now)
    except ScheduleError as exc:
        log.warning("subscriber %s has an unusable schedule: %s", sub.id, exc)
        return None
    joined = sub.confirmed_at or sub.created_at
    return slot if slot.due >= joined else None


def window_end(settings: Settings, now: datetime) -> datetime:
    """Where digests composed at `now` stop: a little before now, so a paper whose fetch is still
    committing (first seen a moment ago) lands in the next digest instead of between two."""
    return now - timedelta(seconds=settings.window_lag_seconds)


def window_start(sub: Subscriber, last_end: datetime | None, now: datetime) -> datetime:
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


def _unrecorded(session: Session, subs: Iterable[Subscriber], now: datetime) -> dict[int, Slot]:
    """The slot owed now to each of these readers whose period has no delivery row yet."""
    slots = {sub.id: slot for sub in subs if sub.id is not None and (slot := slot_for(sub, now))}
    rows = deliveries.existing_keys(session, ((sid, s.period) for sid, s in slots.items()))
    return {sid: slot for sid, slot in slots.items() if (sid, slot.period) not in rows}


def plan_due(session: Session, now: datetime, page_size: int) -> Iterator[list[int]]:
    """Ids of active subscribers whose digest is due (or due again), a page at a time."""
    for page in active_pages(session, page_size):
        due = set(_unrecorded(session, page, now))
        due |= {sid for _id, sid, _start in deliveries.waiting_rows(session, [s.id for s in page if s.id], now)}
        if due:
            yield sorted(due)


def plan_chunk(session: Session, settings: Settings, ids: Sequence[int], now: datetime) -> ChunkPlan:
    """The active readers among `ids`, and the digests to compose for those whose period has no row yet."""
    query = select(Subscriber).where(col(Subscriber.id).in_(ids), Subscriber.status == SubscriberStatus.ACTIVE)
    subs = {s.id: s for s in session.exec(query) if s.id is not None}
    owed = _unrecorded(session, subs.values(), now)
    ends = deliveries.last_window_end(session, list(owed))
    end = window_end(settings, now)
    due = [Due(subs[sid], slot, Window(window_start(subs[sid], ends.get(sid), end), end)) for sid, slot in owed.items()]
    resend_starts = [start for _id, _sid, start in deliveries.waiting_rows(session, list(subs), now)]
    since = min([*(d.window.start for d in due), *resend_starts], default=end)
    popular_since = since - popular_reach(settings)
    sent = deliveries.sent_papers(session, list(owed), popular_since)
    return ChunkPlan(subs, due, since, end, popular_since, sent, learned_for(session, settings, list(subs), now))


def popular_reach(settings: Settings) -> timedelta:
    """How long before a window a Hugging Face paper may have arrived and still be picked in it:
    by its upvotes meeting a minimum late, or by trending just after it arrived."""
    return max(timedelta(days=settings.upvote_lookback_days), TRENDING_GRACE)


def due_now(session: Session, settings: Settings, sub: Subscriber, now: datetime) -> Due:
    """The digest this reader would be due right now (for a preview: nothing is read but their
    previous window, nothing is recorded)."""
    assert sub.id is not None
    last = deliveries.last_window_end(session, [sub.id]).get(sub.id)
    end = window_end(settings, now)
    return Due(sub, latest_slot(schedule_of(sub), now), Window(window_start(sub, last, end), end))
