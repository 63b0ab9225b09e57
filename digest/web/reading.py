"""Reading what was sent: a past digest in the browser (its signed "view in browser" link), the
reader's personal Atom feed at its secret address, and the public trending page and feed. Every
page works without JavaScript; a link that does not work answers 404, the same for a tampered link,
a reset one, one for a digest no longer kept and one for a reader who does not exist."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlmodel import Session

from digest import archive, feeds
from digest.archive import SentDigest, Shown, WindowIndex
from digest.config import Settings
from digest.index import load_index
from digest.match import PaperIndex
from digest.models import Delivery, DeliveryStatus, Subscriber
from digest.plan import popular_reach
from digest.render import topic_label
from digest.schedule import Period, zone
from digest.signup import LinkError
from digest.web.deps import LINKS_LIMITED, LimitsDep, NowDep, SessionDep, SettingsDep, Web, WebDep
from digest.web.html import PageDep, Renderer
from digest.web.previews import PREVIEW_DAYS, lookback_of

router = APIRouter(include_in_schema=False)
ATOM_TYPE = "application/atom+xml; charset=utf-8"
NOT_FOUND = "Nothing here. This link does not work (any more)."
TRENDING_CACHE = "public, max-age=300"


def not_found(page: Renderer) -> HTMLResponse:
    """The one answer to every view link that does not work: it says nothing about who it was for."""
    return page.render("message.html", 404, title="Nothing here", text=NOT_FOUND)


def limit_feeds(limits: LimitsDep, settings: SettingsDep) -> None:
    """Count one personal-feed request (DIGEST_FEED_RATE_LIMIT: feed readers poll, many from one address)."""
    limits.check("feed", settings.feed_rate_limit)


FEEDS_LIMITED = Depends(limit_feeds)


# --- conditional GET -----------------------------------------------------------------------------------


def _fresh(request: Request, etag: str, updated: datetime) -> bool:
    """Whether the client's copy is current: If-None-Match when sent (it wins), else If-Modified-Since."""
    tags = request.headers.get("if-none-match")
    if tags is not None:
        given = {tag.strip().removeprefix("W/") for tag in tags.split(",")}
        return "*" in given or etag in given
    since = request.headers.get("if-modified-since")
    if not since:
        return False
    try:
        their = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    return their.tzinfo is not None and updated.replace(microsecond=0) <= their


def conditional(
    request: Request, body: bytes, updated: datetime, media_type: str, cache: str | None = None
) -> Response:
    """The body with its ETag and Last-Modified — or 304 Not Modified when the client has it."""
    headers = {
        "ETag": f'"{hashlib.sha256(body).hexdigest()[:32]}"',
        "Last-Modified": format_datetime(updated.astimezone(UTC).replace(microsecond=0), usegmt=True),
    }
    if cache:
        headers["Cache-Control"] = cache
    if _fresh(request, headers["ETag"], updated):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


# --- one past digest -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestPage:
    """A past digest as its page shows it: the email's sections, then the papers the cap cut."""

    date_label: str
    period_word: str
    topics: list[str]
    trending: list[Shown]
    cards: list[Shown]
    recommended: list[Shown]
    cut: list[Shown]
    more: int
    feed_only: bool  # recorded for the reader's feed: no email was sent


def date_label(moment: datetime, sub: Subscriber) -> str:
    """'Monday 30 November 2026', in the reader's time zone."""
    local = moment.astimezone(zone(sub.timezone))
    return f"{local:%A} {local.day} {local:%B %Y}"


def digest_page(sent: SentDigest, sub: Subscriber) -> DigestPage:
    """The page of a digest as sent."""
    row = sent.row
    word = "this week" if Period(row.period).weekly else "today"
    items = [archive.shown(m, word) for m in sent.matches]
    return DigestPage(
        date_label=date_label(row.created_at, sub), period_word=word,
        topics=list(dict.fromkeys(topic_label(t) for t in sent.topics)),
        trending=[i for i in items if i.match.rank is not None],
        cards=[i for i in items if i.match.rank is None and not i.match.recommended],
        recommended=[i for i in items if i.match.recommended],
        cut=[archive.shown(m, word) for m in sent.cut], more=row.more_count,
        feed_only=row.status is DeliveryStatus.FEED,
    )  # fmt: skip


def window_index(web: Web, session: Session, now: datetime) -> WindowIndex:
    """How a digest's window is indexed to find the papers its cap cut: the live preview's index of
    the last week when it holds the window, else the window's papers read for this request."""
    settings = web.settings
    lookback = lookback_of(settings)

    def index(row: Delivery) -> PaperIndex:
        if row.window_start >= now - timedelta(days=PREVIEW_DAYS):  # else the week's index cannot hold it
            week = web.previews.get(now, lookback)
            if week.start <= row.window_start and row.window_end <= week.end:
                return week.index
        since = row.window_start - popular_reach(settings)
        return load_index(
            session, row.window_start, row.window_end, popular_since=since, semantics=web.previews.semantics
        )

    return index


@router.get("/view/{token}", response_class=HTMLResponse, dependencies=[LINKS_LIMITED])
def view_page(token: str, page: PageDep, session: SessionDep, web: WebDep, now: NowDep) -> HTMLResponse:
    """One past digest, as sent, with the papers the cap cut (404 for any link that does not work)."""
    try:
        sub, row = archive.viewed_digest(session, web.settings, token, now)
    except LinkError:
        return not_found(page)
    sent = archive.sent_digest(
        session, sub, row, semantics=web.previews.semantics, window=window_index(web, session, now),
        lookback=lookback_of(web.settings),
    )  # fmt: skip
    return page.render("view.html", d=digest_page(sent, sub))


# --- the archive, on the manage page ----------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveItem:
    """One past digest in the manage page's list: when, what it held, and its page."""

    date: str
    what: str
    url: str


@dataclass(frozen=True)
class ArchiveView:
    """A page of the list, newest first, and whether there are newer and older pages."""

    items: list[ArchiveItem]
    page: int
    has_next: bool


def _what(row: Delivery) -> str:
    """'12 papers', '25 papers, 4 more matched', '· feed only'."""
    count = len(row.paper_ids)
    what = f"{count} paper{'s' if count != 1 else ''}"
    if row.more_count:
        what += f", {row.more_count} more matched"
    return what + (" · feed only" if row.status is DeliveryStatus.FEED else "")


def past_digests(session: Session, settings: Settings, sub: Subscriber, page: int, now: datetime) -> ArchiveView:
    """Page `page` of the reader's past digests, each with a view link signed now."""
    found = archive.past_digests(session, sub, page)
    items = [
        ArchiveItem(date_label(row.created_at, sub), _what(row), archive.view_url(settings, sub, row.id or 0, now))
        for row in found.rows
    ]
    return ArchiveView(items, found.page, found.has_next)


# --- the personal feed -----------------------------------------------------------------------------------


@router.get("/feed/{token}", response_model=None, dependencies=[FEEDS_LIMITED])
def personal_feed(token: str, request: Request, session: SessionDep, web: WebDep, now: NowDep) -> Response:
    """The reader's Atom feed: one entry per paper they were sent (304 when the client has it)."""
    settings = web.settings
    try:
        sub = archive.feed_reader(session, settings, token, now)
    except LinkError:
        return PlainTextResponse(NOT_FOUND, status_code=404)
    entries = feeds.personal_entries(session, sub, web.previews.semantics)
    feed = feeds.personal_feed(settings, sub, entries, f"{settings.base_url}/feed/{token}")
    return conditional(request, feeds.atom(feed), feed.updated, ATOM_TYPE)


# --- trending, for everyone ----------------------------------------------------------------------------


def _trending(web: Web, now: datetime) -> feeds.Feed:
    lookback = lookback_of(web.settings)
    papers = feeds.trending_papers(web.previews.get(now, lookback).index, now, lookback)
    return feeds.trending_feed(web.settings, papers, now)


@router.get("/trending", response_class=HTMLResponse)
def trending_page(page: PageDep, web: WebDep, now: NowDep) -> HTMLResponse:
    """The day's most upvoted papers on Hugging Face, for anyone (no sign-up)."""
    lookback = lookback_of(web.settings)
    papers = feeds.trending_papers(web.previews.get(now, lookback).index, now, lookback)
    items = [archive.shown(m, "today") for m in papers]
    return page.render("trending.html", papers=items, feed_url=f"{web.settings.base_url}/trending.atom")


@router.get("/trending.atom", response_model=None)
def trending_feed(request: Request, web: WebDep, now: NowDep) -> Response:
    """The same papers as an Atom feed (304 when the client has it)."""
    feed = _trending(web, now)
    return conditional(request, feeds.atom(feed), feed.updated, ATOM_TYPE, TRENDING_CACHE)
