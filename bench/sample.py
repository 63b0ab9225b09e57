"""The sample the digest and naive stages share: real readers with a non-empty digest, each with the
delivery row the pipeline would record for them, and the pipeline's own composition calls on it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from digest import archive, compose, pipeline
from digest.config import Settings
from digest.db import open_session
from digest.index import load_index, set_aside
from digest.match import PaperIndex
from digest.mime import Headers
from digest.models import Delivery, Subscriber
from digest.plan import Due, Window, schedule_of, window_end
from digest.render import DigestContext
from digest.schedule import latest_slot, previous_slot
from digest.send import Outgoing, Result, Transport

Sample = list[tuple[Subscriber, Delivery]]


def _planned_row(settings: Settings, sub: Subscriber, index: PaperIndex, now: datetime) -> Delivery | None:
    """The delivery row the pipeline would record for a reader due now (None: an empty digest),
    keyed 0 and kept in memory, never inserted."""
    end = window_end(settings, now)
    start = previous_slot(schedule_of(sub), now).due  # where yesterday's digest ended
    due = Due(sub, latest_slot(schedule_of(sub), now), Window(start, end))
    planned = pipeline.select_for(settings, due, index, now)
    return Delivery(id=0, **planned.values()) if planned.paper_ids else None


def digest_sample(settings: Settings, engine: Engine, now: datetime, count: int) -> tuple[PaperIndex, Sample]:
    """The first `count` subscribers whose digest is not empty, each with the delivery row the
    pipeline would compose for them (in memory, keyed 1..count)."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        low, high = conn.execute(sa_select(func.min(table.c.id), func.max(table.c.id))).one()
    # The first readers in id order, as a fresh worker meets them chunk after chunk (the readers'
    # topics are drawn at random, so a contiguous block is a random sample).
    wanted = list(range(low, min(high, low + 2 * count + 100) + 1))
    picked: Sample = []
    with open_session(engine) as session:
        index = load_index(session, now - timedelta(days=3650), window_end(settings, now))
        for sub in _subscribers(session, wanted):
            row = _planned_row(settings, sub, index, now)
            if row is not None:
                row.id = len(picked) + 1
                picked.append((sub, row))
                if len(picked) >= count:
                    break
    set_aside()  # as a worker does once it has the index (`shared_index`)
    return index, picked


def _subscribers(session: Session, ids: list[int]) -> Iterator[Subscriber]:
    """The subscribers with these ids, in id order, read 500 at a time."""
    for i in range(0, len(ids), 500):
        query = select(Subscriber).where(col(Subscriber.id).in_(ids[i : i + 500])).order_by(col(Subscriber.id))
        yield from session.exec(query)


def reader_context(settings: Settings, sub: Subscriber, row: Delivery) -> DigestContext:
    """The context the pipeline renders this row's digest with: the reader's signed links, the link to
    the digest's own page and every card's feedback links (what the real email carries, byte for byte)."""
    urls = compose.links(settings, sub, row.created_at)
    view = archive.view_url(settings, sub, row.id or 0, row.created_at)
    return compose.digest_context(settings, sub, row, urls, view)


def digest_headers(settings: Settings, sub: Subscriber, row: Delivery, unsubscribe_url: str) -> Headers:
    return compose.headers(settings, sub, row.created_at, row.message_id, unsubscribe_url, listed=True)


def deliver(transport: Transport, messages: list[Outgoing]) -> Counter[str]:
    outcomes: Counter[str] = Counter()

    def report(result: Result) -> None:
        outcomes[result.outcome.value] += 1

    transport.deliver(messages, report)
    return outcomes
