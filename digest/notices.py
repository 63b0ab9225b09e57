"""Transactional emails (confirm your subscription, you are already subscribed): queued as rows by
the web app, sent here by a worker — never inline in a web request."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from digest import compose, deliveries
from digest.clock import Clock
from digest.config import Settings
from digest.models import DeliveryStatus, Notice, NoticeKind, Subscriber, SubscriberStatus
from digest.send import Outcome, Outgoing, Result, Transport
from digest.suppress import suppress

log = logging.getLogger(__name__)
BATCH = 500
# Who a notice may still go to when it is claimed.
READERS = {
    NoticeKind.CONFIRM: (SubscriberStatus.PENDING,),
    NoticeKind.ALREADY: (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED),
}


def _waiting(session: Session, now: datetime) -> list[Notice]:
    query = select(Notice).where(deliveries.waiting_and_due(Notice, now)).order_by(col(Notice.id)).limit(BATCH)
    return list(session.exec(query))


def send_notices(
    session: Session,
    settings: Settings,
    transport: Transport,
    now: datetime,
    clock: Clock | None = None,
) -> Counter[str]:
    """Send every notice that is due; each is claimed first, so two workers never send one twice."""
    clock = clock or (lambda: now)
    counts: Counter[str] = Counter()
    claimed = _claim(session, now, clock())

    def settle(result: Result) -> None:
        notice, sub = claimed[result.key]
        give_up = notice.created_at + timedelta(days=1)
        deliveries.settle(session, result, clock(), notice.attempts, give_up, Notice, settings.retry_policy)
        counts[result.outcome.value] += 1
        if result.permanent_recipient:
            suppress(session, sub.email, f"hard bounce: {result.detail}", clock())
        if result.outcome is not Outcome.SENT:
            log.warning("notice %s (%s): %s (%s)", notice.id, notice.kind.value, result.outcome, result.detail)

    in_flight = deliveries.InFlight(session, clock, Notice)
    transport.deliver(_compose_all(settings, claimed, clock(), settle, in_flight), settle)
    for notice, _sub in claimed.values():
        session.expire(notice)  # settled by bulk updates: re-read on next access
    return counts


def _claim(session: Session, now: datetime, at: datetime) -> dict[int, tuple[Notice, Subscriber]]:
    """The due notices this caller won, with their readers; the moot ones are closed."""
    claimed: dict[int, tuple[Notice, Subscriber]] = {}
    for notice in _waiting(session, now):
        assert notice.id is not None
        if deliveries.claim(session, notice.id, at, table=Notice, readers=READERS[notice.kind]):
            sub = session.get(Subscriber, notice.subscriber_id)
            assert sub is not None
            session.refresh(notice)
            claimed[notice.id] = (notice, sub)
        else:
            _skip_if_moot(session, notice)
    return claimed


def _compose_all(
    settings: Settings,
    claimed: dict[int, tuple[Notice, Subscriber]],
    now: datetime,
    settle: Callable[[Result], None],
    in_flight: deliveries.InFlight,
) -> list[Outgoing]:
    """The claimed notices' messages, each marked in flight right before its MAIL FROM; one that
    cannot be built is settled `failed` with its reason, and the rest of the batch goes out."""

    def build(notice: Notice, sub: Subscriber, key: int) -> Callable[[], Outgoing]:
        return lambda: compose.notice_message(settings, sub, key, notice.kind, now)

    jobs = [
        (key, build(notice, sub, key), in_flight.veto(key, notice.subscriber_id, READERS[notice.kind]))
        for key, (notice, sub) in claimed.items()
    ]
    return compose.compose_each(jobs, settle)


def _skip_if_moot(session: Session, notice: Notice) -> None:
    """A notice whose reader moved on (confirmed, left) is closed instead of waiting forever."""
    session.refresh(notice)
    sub = session.get(Subscriber, notice.subscriber_id)
    if notice.status in deliveries.RESENDABLE and (sub is None or sub.status not in READERS[notice.kind]):
        notice.status = DeliveryStatus.SKIPPED
        notice.error = "no longer relevant"
        session.add(notice)
        session.commit()
