"""Composing: from a reader and their papers (or a notice) to a message ready for the wire.

The one place where links are signed, headers are chosen, the MIME message is built and DKIM signs
it — digests, sign-up notices and the benchmark all go through here. Pure but for the templates
folder it reads (once per process).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import NamedTuple, Protocol

from digest import archive, dkim
from digest.config import Settings
from digest.match import Match, PaperIndex, annotate
from digest.mime import Headers, build_message, domain_of, envelope_sender, make_message_id
from digest.models import Frequency, NoticeKind, Subscriber
from digest.rank import Learned
from digest.render import DigestContext, FeedbackLinks, RenderedDigest, render_digest, render_pair, topic_label
from digest.schedule import zone
from digest.send import Outcome, Outgoing, Result
from digest.signup import confirm_url
from digest.tokens import MAX_TOKEN_CHARS, FeedbackSigner, Purpose, feedback_signer, make_token, topic_tag

log = logging.getLogger(__name__)
Veto = Callable[[], str | None]
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Links(NamedTuple):
    """The signed links every email carries."""

    manage: str
    unsubscribe: str


class DigestRow(Protocol):
    """What composing reads of a delivery row (a stored `Delivery` or a planned `NewDelivery`)."""

    @property
    def period(self) -> str: ...
    @property
    def paper_ids(self) -> list[str]: ...
    @property
    def more_count(self) -> int: ...
    @property
    def trending_count(self) -> int: ...
    @property
    def recommended_count(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def message_id(self) -> str: ...


def links(settings: Settings, sub: Subscriber, now: datetime) -> Links:
    """The signed manage and unsubscribe URLs for a subscriber, signed at `now`."""
    keys = settings.signing_keys
    manage = make_token(keys, Purpose.MANAGE, sub.handle, now=now)
    leave = make_token(keys, Purpose.UNSUBSCRIBE, sub.handle, now=now)
    return Links(f"{settings.base_url}/manage/{manage}", f"{settings.base_url}/unsubscribe/{leave}")


def feedback_url(
    settings: Settings, sub: Subscriber, paper_id: str, value: int, topic: str | None, now: datetime
) -> str | None:
    """A signed "More like this" (value +1) or "Less like this" (-1) link for this reader and paper,
    naming the topic it matched by a short tag; None for a paper whose id is too long for a link."""
    return _feedback_url(settings.base_url, feedback_signer(settings.signing_keys, sub.handle, now=now))(
        paper_id, value, topic
    )


def _feedback_url(base_url: str, sign: FeedbackSigner) -> Callable[[str, int, str | None], str | None]:
    def url(paper_id: str, value: int, topic: str | None) -> str | None:
        token = sign(paper_id, value, topic_tag(topic) if topic else None)
        return f"{base_url}/feedback/{token}" if len(token) <= MAX_TOKEN_CHARS else None

    return url


def feedback_links(settings: Settings, sub: Subscriber, now: datetime) -> FeedbackLinks:
    """For rendering: each card's (more, less) links, signed at `now` for the first topic it matched."""
    url = _feedback_url(settings.base_url, feedback_signer(settings.signing_keys, sub.handle, now=now))

    def card_links(match: Match) -> tuple[str, str] | None:
        topic = match.topics[0] if match.topics else None
        more, less = url(match.paper.id, 1, topic), url(match.paper.id, -1, topic)
        return (more, less) if more and less else None

    return card_links


def signed(settings: Settings, message: bytes) -> bytes:
    """The message with a DKIM signature when a key is configured."""
    key = settings.dkim_key
    return dkim.sign(message, key) if key is not None else message


def digest_message_id(settings: Settings, subscriber_id: int, period: str) -> str:
    """The Message-ID of a reader's digest for a period: the same on every resend."""
    return make_message_id(settings.secret_key, subscriber_id, period, domain_of(settings.from_address))


def context(settings: Settings, sub: Subscriber, date: datetime, urls: Links, view_url: str = "") -> DigestContext:
    """What the templates need about the reader and the day besides the papers (`view_url`: the
    digest's own page, for a digest that has a delivery row)."""
    return DigestContext(
        recipient=sub.email,
        topics=sub.topics,
        date=date,
        manage_url=urls.manage,
        unsubscribe_url=urls.unsubscribe,
        list_name=settings.list_name,
        base_url=settings.base_url,
        weekly=Frequency(sub.frequency) is Frequency.WEEKLY,
        trending=sub.trending,
        view_url=view_url,
    )


def headers(
    settings: Settings, sub: Subscriber, date: datetime, message_id: str, unsubscribe_url: str | None, *, listed: bool
) -> Headers:
    """The headers of one email: a digest is `listed` (List-Id); any email with an
    `unsubscribe_url` gets one-click List-Unsubscribe."""
    domain = domain_of(settings.from_address)
    return Headers(
        sender=settings.from_address,
        recipient=sub.email,
        date=date,
        message_id=message_id,
        list_id=f"{settings.list_name} <digest.{domain}>" if listed else None,
        unsubscribe_url=unsubscribe_url,
    )


def outgoing(settings: Settings, key: int, name: str, rendered: RenderedDigest, head: Headers) -> Outgoing:
    """The MIME message built, DKIM-signed and addressed for the transport."""
    return Outgoing(
        key=key,
        sender=envelope_sender(settings.from_address),
        recipient=head.recipient,
        data=signed(settings, build_message(rendered, head)),
        name=name,
        html=rendered.html,
    )


def digest_context(
    settings: Settings, sub: Subscriber, row: DigestRow, urls: Links, view_url: str = ""
) -> DigestContext:
    """A delivery row's context as its digest is rendered: the reader's day, their signed links and a
    signed feedback link pair on every card."""
    ctx = context(settings, sub, row.created_at.astimezone(zone(sub.timezone)), urls, view_url)
    return replace(ctx, feedback=feedback_links(settings, sub, row.created_at))


def render_for(
    settings: Settings,
    sub: Subscriber,
    row: DigestRow,
    index: PaperIndex,
    urls: Links | None = None,
    learned: Learned | None = None,
    view_url: str = "",
) -> RenderedDigest:
    """Render a delivery row's digest for its subscriber (`learned`: what their votes teach, for
    the reasons of the recommended papers; `view_url`: the stored row's "view in browser" link)."""
    ctx = digest_context(settings, sub, row, urls or links(settings, sub, row.created_at), view_url)
    matches = annotate(index, sub.topics, row.paper_ids, row.trending_count, row.recommended_count, learned)
    return render_digest(settings.templates_dir, ctx, matches, row.more_count)


def digest_message(
    settings: Settings, sub: Subscriber, key: int, row: DigestRow, index: PaperIndex, learned: Learned | None = None
) -> Outgoing:
    """The ready-to-send digest of one delivery row (`key`: its id), with a link to its own page."""
    urls = links(settings, sub, row.created_at)
    view = archive.view_url(settings, sub, key, row.created_at)
    rendered = render_for(settings, sub, row, index, urls, learned, view)
    head = headers(settings, sub, row.created_at, row.message_id, urls.unsubscribe, listed=True)
    return outgoing(settings, key, f"{sub.email}-{row.period}", rendered, head)


def schedule_text(sub: Subscriber) -> str:
    """'every day at 08:00 (Europe/Paris)' — how the reader's schedule reads in a sentence."""
    when = {
        Frequency.DAILY: "every day",
        Frequency.WEEKDAYS: "every weekday",
        Frequency.WEEKLY: f"every {DAYS[sub.weekly_day]}",
    }[Frequency(sub.frequency)]
    return f"{when} at {sub.send_hour:02d}:00 ({sub.timezone})"


def choice_text(sub: Subscriber) -> str:
    """'on 2 topics', 'with the 10 trending papers', or both — counts only, never the text typed."""
    count = len(sub.topics)
    parts = [f"on {count} topic{'s' if count != 1 else ''}"] if count else []
    if sub.trending:
        parts.append(f"with the {sub.trending} trending paper{'s' if sub.trending != 1 else ''} of Hugging Face")
    return " and ".join(parts)


def render_notice(settings: Settings, sub: Subscriber, kind: NoticeKind, now: datetime) -> RenderedDigest:
    """The subject, HTML and text of one notice."""
    values: dict[str, object] = {
        "ctx": context(settings, sub, now, links(settings, sub, now)),
        "topics": [topic_label(t) for t in sub.topics],
        "schedule": schedule_text(sub),
        "what": choice_text(sub),
        "link_hours": settings.confirm_link_hours,
    }
    if kind is NoticeKind.CONFIRM:
        values["action_url"] = confirm_url(settings, sub, now)
        subject = f"Confirm your subscription to {settings.list_name}"
        return render_pair(settings.templates_dir, "confirm", subject, values)
    return render_pair(settings.templates_dir, "already", f"You are already subscribed to {settings.list_name}", values)


def notice_message(settings: Settings, sub: Subscriber, key: int, kind: NoticeKind, now: datetime) -> Outgoing:
    """The ready-to-send message for a claimed notice. A confirmation is not a list email: the
    reader is not on the list yet, so it carries no List-Unsubscribe for that header to undo."""
    assert sub.id is not None
    message_id = make_message_id(settings.secret_key, sub.id, f"notice-{key}", domain_of(settings.from_address))
    unsubscribe_url = None if kind is NoticeKind.CONFIRM else links(settings, sub, now).unsubscribe
    head = headers(settings, sub, now, message_id, unsubscribe_url, listed=False)
    return outgoing(settings, key, f"{sub.email}-{kind.value}-{key}", render_notice(settings, sub, kind, now), head)


def compose_each(
    jobs: Iterable[tuple[int, Callable[[], Outgoing], Veto]], fail: Callable[[Result], None]
) -> list[Outgoing]:
    """Build each (key, build, veto) message and give it its last-moment check; one that cannot be
    built is reported to `fail` as `failed`, with its reason, and the rest of the batch goes on."""
    outgoing = []
    for key, build, veto in jobs:
        try:
            outgoing.append(replace(build(), veto=veto))
        except Exception as exc:  # one unbuildable message must not strand the others
            log.exception("could not compose message %s", key)
            fail(Result(key, Outcome.FAILED, f"could not compose: {type(exc).__name__}: {exc}"[:300]))
    return outgoing
