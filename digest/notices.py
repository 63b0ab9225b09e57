"""Transactional emails (confirm your subscription, you are already subscribed): queued as rows by
the web app, sent here by a worker — never inline in a web request."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import Session, col, or_, select

from digest import deliveries
from digest.config import Settings
from digest.mime import Headers, build_message, domain_of, envelope_sender, make_message_id
from digest.models import DeliveryStatus, Frequency, Notice, NoticeKind, Subscriber, SubscriberStatus
from digest.pipeline import links, signed
from digest.render import DigestContext, RenderedDigest, render_pair, topic_label
from digest.send import Outcome, Outgoing, Result, Transport
from digest.signup import confirm_url
from digest.suppress import suppress

log = logging.getLogger(__name__)
BATCH = 500
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Who a notice may still go to when it is claimed.
READERS = {
    NoticeKind.CONFIRM: [SubscriberStatus.PENDING],
    NoticeKind.ALREADY: [SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED],
}


def schedule_text(sub: Subscriber) -> str:
    """'every day at 08:00 (Europe/Paris)' — how the reader's schedule reads in a sentence."""
    when = {
        Frequency.DAILY: "every day",
        Frequency.WEEKDAYS: "every weekday",
        Frequency.WEEKLY: f"every {DAYS[sub.weekly_day]}",
    }[Frequency(sub.frequency)]
    return f"{when} at {sub.send_hour:02d}:00 ({sub.timezone})"


def render_notice(settings: Settings, sub: Subscriber, kind: NoticeKind, now: datetime) -> RenderedDigest:
    """The subject, HTML and text of one notice."""
    manage_url, unsubscribe_url = links(settings, sub)
    context = DigestContext(
        recipient=sub.email,
        topics=sub.topics,
        date=now,
        manage_url=manage_url,
        unsubscribe_url=unsubscribe_url,
        list_name=settings.list_name,
        base_url=settings.base_url,
    )
    values: dict[str, object] = {
        "ctx": context,
        "topics": [topic_label(t) for t in sub.topics],
        "schedule": schedule_text(sub),
        "link_hours": settings.confirm_link_hours,
    }
    if kind is NoticeKind.CONFIRM:
        values["action_url"] = confirm_url(settings, sub)
        return render_pair(
            settings.templates_dir, "confirm", f"Confirm your subscription to {settings.list_name}", values
        )
    return render_pair(settings.templates_dir, "already", f"You are already subscribed to {settings.list_name}", values)


def notice_message(settings: Settings, sub: Subscriber, notice: Notice, now: datetime) -> Outgoing:
    """The ready-to-send message for a claimed notice. A confirmation carries no List-Unsubscribe:
    the reader is not on the list yet, so there is nothing for that header to undo."""
    assert sub.id is not None and notice.id is not None
    rendered = render_notice(settings, sub, notice.kind, now)
    domain = domain_of(settings.from_address)
    _manage, unsubscribe_url = links(settings, sub)
    headers = Headers(
        sender=settings.from_address,
        recipient=sub.email,
        date=now,
        message_id=make_message_id(settings.secret_key, sub.id, f"notice-{notice.id}", domain),
        unsubscribe_url=None if notice.kind is NoticeKind.CONFIRM else unsubscribe_url,
    )
    return Outgoing(
        key=notice.id,
        sender=envelope_sender(settings.from_address),
        recipient=sub.email,
        data=signed(settings, build_message(rendered, headers)),
        name=f"{sub.email}-{notice.kind.value}-{notice.id}",
        html=rendered.html,
    )


def _waiting(session: Session, now: datetime) -> list[Notice]:
    query = (
        select(Notice)
        .where(
            col(Notice.status).in_(deliveries.RESENDABLE),
            or_(col(Notice.due_at).is_(None), col(Notice.due_at) <= now),
        )
        .order_by(col(Notice.id))
        .limit(BATCH)
    )
    return list(session.exec(query))


def send_notices(
    session: Session,
    settings: Settings,
    transport: Transport,
    now: datetime,
    clock: Callable[[], datetime] | None = None,
) -> Counter[str]:
    """Send every notice that is due; each is claimed first, so two workers never send one twice."""
    clock = clock or (lambda: now)
    counts: Counter[str] = Counter()
    claimed: dict[int, tuple[Notice, Subscriber]] = {}
    for notice in _waiting(session, now):
        assert notice.id is not None
        if deliveries.claim(session, notice.id, clock(), table=Notice, readers=READERS[notice.kind]):
            sub = session.get(Subscriber, notice.subscriber_id)
            assert sub is not None
            session.refresh(notice)
            claimed[notice.id] = (notice, sub)
        else:
            _skip_if_moot(session, notice)
    outgoing = [notice_message(settings, sub, notice, clock()) for notice, sub in claimed.values()]

    def on_result(result: Result) -> None:
        notice, sub = claimed[result.key]
        give_up = notice.created_at + timedelta(days=1)
        deliveries.settle(session, result, clock(), notice.attempts, give_up, Notice, settings.retry_policy)
        counts[result.outcome.value] += 1
        if result.permanent_recipient:
            suppress(session, sub.email, f"hard bounce: {result.detail}", clock())
        if result.outcome is not Outcome.SENT:
            log.warning("notice %s (%s): %s (%s)", notice.id, notice.kind.value, result.outcome, result.detail)

    transport.deliver(outgoing, on_result)
    for notice, _sub in claimed.values():
        session.expire(notice)  # settled by bulk updates: re-read on next access
    return counts


def _skip_if_moot(session: Session, notice: Notice) -> None:
    """A notice whose reader moved on (confirmed, left) is closed instead of waiting forever."""
    session.refresh(notice)
    sub = session.get(Subscriber, notice.subscriber_id)
    if notice.status in deliveries.RESENDABLE and (sub is None or sub.status not in READERS[notice.kind]):
        notice.status = DeliveryStatus.SKIPPED
        notice.error = "no longer relevant"
        session.add(notice)
        session.commit()
