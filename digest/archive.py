"""The archive: every digest a reader was sent (or, feed only, would have been), kept
DIGEST_ARCHIVE_DAYS and then removed by the daily clean-up; the signed links that open one digest
in the browser and the reader's personal feed; and each digest as sent, rebuilt from its delivery
row — with the papers the cap cut, recomputed from the inputs the row keeps.

A delivery row is the digest: its papers in order and its sections' sizes, its window, and the
reader's topics and minimum of upvotes when it was composed. The papers' text is read again from
the `paper` table (upvotes are today's); the cut papers are those the row's topics match in its
window that no digest of the reader up to this one carried, in ranking order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from digest.config import Settings
from digest.deliveries import HELD, RESENDABLE
from digest.match import Match, PaperIndex, PaperRecord, annotate, pick
from digest.models import Delivery, DeliveryStatus, Paper, Preferences, Subscriber, SubscriberStatus
from digest.render import PaperView, matched_why, paper_view, trending_why
from digest.semantic import Semantics
from digest.signup import LinkError
from digest.tokens import Purpose, TokenError, make_token, read_token

# What the archive, the view-in-browser pages and the feed show: digests that reached the reader
# (or may have: `unknown`), and those a feed-only reader's run recorded instead of mailing.
ARCHIVED = (DeliveryStatus.SENT, DeliveryStatus.FEED, DeliveryStatus.UNKNOWN)
# Rows of these states never reached the reader: their papers may still come in a later digest.
NOT_SENT = (DeliveryStatus.EMPTY, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
PER_PAGE = 10
FEED_READERS = (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED)  # whose feed answers


# --- links -----------------------------------------------------------------------------------------


def view_url(settings: Settings, sub: Subscriber, delivery_id: int, now: datetime) -> str:
    """The signed "view in browser" link of one delivery, signed at `now`."""
    token = make_token(settings.signing_keys, Purpose.VIEW, sub.handle, delivery_id, now=now)
    return f"{settings.base_url}/view/{token}"


def feed_stamp(sub: Subscriber) -> int:
    """Which feed address is current: the microsecond of the reader's last reset (0: never reset)."""
    return int(sub.feed_reset_at.timestamp() * 1_000_000) if sub.feed_reset_at else 0


def feed_url(settings: Settings, sub: Subscriber) -> str:
    """The reader's personal feed address: the same every time it is shown, until a reset."""
    signed_at = sub.feed_reset_at or sub.created_at
    token = make_token(settings.signing_keys, Purpose.FEED, sub.handle, feed_stamp(sub), now=signed_at)
    return f"{settings.base_url}/feed/{token}"


def _reader(session: Session, handle: str | None) -> Subscriber:
    sub = session.exec(select(Subscriber).where(Subscriber.handle == handle)).first() if handle else None
    if sub is None:
        raise LinkError("no such subscriber")
    return sub


def feed_reader(session: Session, settings: Settings, token: str, now: datetime) -> Subscriber:
    """The reader whose current feed address this is, or LinkError (tampered, reset, or a reader
    who left or never confirmed)."""
    try:
        data = read_token(settings.signing_keys, Purpose.FEED, token, now=now)
    except TokenError as exc:
        raise LinkError(str(exc)) from exc
    sub = _reader(session, data.handle)
    if data.stamp != feed_stamp(sub) or sub.status not in FEED_READERS:
        raise LinkError("reset, or the reader is not subscribed")
    return sub


def viewed_digest(session: Session, settings: Settings, token: str, now: datetime) -> tuple[Subscriber, Delivery]:
    """The reader and the archived digest a view link opens, or LinkError (tampered, older than the
    archive, signed before the reader's last reset, or a digest no longer kept)."""
    keys, kept = settings.signing_keys, settings.archive_days * 86_400
    try:
        data = read_token(keys, Purpose.VIEW, token, now=now, max_age=kept)
        sub = _reader(session, data.handle)
        if sub.feed_reset_at is not None:  # links signed before the reset's second are dead
            since_reset = int(now.timestamp()) - int(sub.feed_reset_at.timestamp())
            read_token(keys, Purpose.VIEW, token, now=now, max_age=max(0, since_reset))
    except TokenError as exc:
        raise LinkError(str(exc)) from exc
    row = session.get(Delivery, data.stamp) if data.stamp is not None else None
    if row is None or row.subscriber_id != sub.id or row.status not in ARCHIVED:
        raise LinkError("no such digest")
    return sub, row


# --- the reader's choices ------------------------------------------------------------------------


def reset_feed(session: Session, sub: Subscriber, now: datetime) -> Subscriber:
    """A new feed address: the old one, and every view link signed before now, stop working."""
    last = sub.feed_reset_at
    sub.feed_reset_at = now if last is None or now > last else last + timedelta(microseconds=1)
    session.add(sub)
    session.commit()
    return sub


def set_feed_only(session: Session, sub: Subscriber, feed_only: bool) -> Subscriber:
    """Feed only (no email: the send run records the digests for the feed), or email again."""
    if sub.status is SubscriberStatus.UNSUBSCRIBED:
        raise LinkError("unsubscribed")
    sub.feed_only = feed_only
    session.add(sub)
    session.commit()
    return sub


# --- the rows ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchivePage:
    """One page of a reader's past digests, newest first."""

    rows: list[Delivery]
    page: int
    has_next: bool


def past_digests(session: Session, sub: Subscriber, page: int = 1, per_page: int = PER_PAGE) -> ArchivePage:
    """Page `page` (from 1) of the reader's archived digests, newest first."""
    page = max(1, page)
    query = (
        select(Delivery)
        .where(Delivery.subscriber_id == sub.id, col(Delivery.status).in_(ARCHIVED))
        .order_by(col(Delivery.created_at).desc(), col(Delivery.id).desc())
        .offset((page - 1) * per_page)
        .limit(per_page + 1)
    )
    rows = list(session.exec(query))
    return ArchivePage(rows[:per_page], page, len(rows) > per_page)


def remove_old(session: Session, now: datetime, retention: timedelta) -> int:
    """The daily clean-up: delete the digests composed more than `retention` ago — their pages, archive
    entries and feed entries go with them — and nothing else (a row still waiting or held by a
    sender is left to the sweeper). Returns how many were removed."""
    statement = delete(Delivery).where(
        col(Delivery.created_at) < now - retention, col(Delivery.status).not_in((*RESENDABLE, *HELD))
    )
    removed = int(session.execute(statement).rowcount)  # type: ignore[attr-defined]
    session.commit()
    return removed


# --- a digest as sent --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentDigest:
    """One archived digest: its papers as sent (trending ranked first, then on the topics, then
    recommended) and the papers the cap cut, best first."""

    row: Delivery
    topics: list[str]
    matches: list[Match]
    cut: list[Match]


@dataclass(frozen=True)
class Shown:
    """One paper as a page or a feed shows it, with its card's last line: why it is there."""

    match: Match
    view: PaperView
    why: str


def shown(match: Match, period_word: str) -> Shown:
    """A paper of a digest as its card says it: '#3 today · 120 upvotes', 'Matched: KV cache', or
    (recommended) its reason."""
    view = paper_view(match)
    if match.recommended:
        why = match.reasons[0] if match.reasons else ""
    elif match.rank is not None:
        why = trending_why(match, view.topics, period_word)
    else:
        why = matched_why(view.topics)
    return Shown(match, view, why)


def topics_of(row: Delivery, sub: Subscriber) -> list[str]:
    """The topics the digest was composed for (rows recorded before they were kept: the reader's own)."""
    return list(row.topics) or list(sub.topics)


def paper_index(session: Session, ids: Sequence[str], semantics: Semantics | None = None) -> PaperIndex:
    """An index of just these papers (what a digest or a feed needs to say why each is there)."""
    papers = list(session.exec(select(Paper).where(col(Paper.id).in_(list(ids))))) if ids else []
    return PaperIndex([PaperRecord.of(p) for p in papers], semantics)


def as_sent(index: PaperIndex, row: Delivery, topics: Sequence[str]) -> list[Match]:
    """The digest's papers in their stored order and sections, each with why it matched."""
    return annotate(index, topics, row.paper_ids, row.trending_count, row.recommended_count)


def carried_before(session: Session, row: Delivery) -> set[str]:
    """The papers this reader's digests up to and including this one carried."""
    query = select(Delivery.paper_ids).where(
        Delivery.subscriber_id == row.subscriber_id,
        col(Delivery.window_end) <= row.window_end,
        col(Delivery.status).not_in(NOT_SENT),
    )
    return {pid for ids in session.exec(query) for pid in ids}


def cut_papers(
    index: PaperIndex, row: Delivery, topics: Sequence[str], lookback: timedelta, carried: set[str]
) -> list[Match]:
    """The papers the cap cut: those `topics` match in the row's window (with its minimum of
    upvotes) that no digest in `carried` had, ranked by hits, at most `row.more_count`. `index`
    must hold the row's window and the Hugging Face papers `lookback` before it."""
    if not row.more_count or not topics:
        return []
    prefs = Preferences(topics=list(topics), min_upvotes=row.min_upvotes, max_papers=max(1, len(index.papers)))
    chosen = pick(index, prefs, row.window_start, row.window_end, lookback=lookback, exclude=index.mask_of_ids(carried))
    return chosen.topical.matches[: row.more_count]


WindowIndex = Callable[[Delivery], PaperIndex]


def sent_digest(
    session: Session, sub: Subscriber, row: Delivery, *, semantics: Semantics | None, window: WindowIndex,
    lookback: timedelta,
) -> SentDigest:  # fmt: skip
    """The digest of `row` as sent to `sub`; `window(row)` (an index of its window, see
    `cut_papers`) is only asked for when the cap cut papers."""
    topics = topics_of(row, sub)
    matches = as_sent(paper_index(session, row.paper_ids, semantics), row, topics)
    cut = cut_papers(window(row), row, topics, lookback, carried_before(session, row)) if row.more_count else []
    return SentDigest(row, topics, matches, cut)
