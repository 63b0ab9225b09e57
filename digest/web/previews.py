"""The live preview: what a visitor's settings would have brought in the last 7 days — the trending
papers and the papers on their topics (the papers they liked among them), chosen by the same
`match.pick` the digests are."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.db import open_session
from digest.index import load_index
from digest.match import Match, PaperIndex, pick
from digest.models import Preferences
from digest.render import PaperView, matched_why, paper_view, trending_why
from digest.semantic import Semantics
from digest.web.forms import NO_EMBEDDINGS, NOT_READ, NOT_STORED, LikedPaper, split_examples

PREVIEW_DAYS = 7
INDEX_TTL = timedelta(minutes=5)


@dataclass(frozen=True)
class Window:
    """An index of the papers of [start, end), and of those popular since `start - lookback`."""

    index: PaperIndex
    start: datetime
    end: datetime
    lookback: timedelta


@dataclass
class IndexCache:
    """The last 7 days of papers, indexed, rebuilt every few minutes (for the live preview)."""

    engine: Engine
    semantics: Semantics | None = None  # for `like:` topics (None: embedding is off)
    built_at: datetime | None = None
    window: Window | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, now: datetime, lookback: timedelta) -> Window:
        """The window as of `now`, rebuilt if it is older than INDEX_TTL (or for another lookback)."""
        with self.lock:
            stale = self.built_at is None or now - self.built_at > INDEX_TTL
            if self.window is None or stale or self.window.lookback != lookback:
                start, end = now - timedelta(days=PREVIEW_DAYS), now + timedelta(minutes=1)
                if self.semantics is not None:  # an example paper we did not have may have arrived since
                    self.semantics.examples.clear()
                with open_session(self.engine) as session:
                    index = load_index(session, start, end, popular_since=start - lookback, semantics=self.semantics)
                self.window, self.built_at = Window(index, start, end, lookback), now
            return self.window


@dataclass(frozen=True)
class PreviewPaper:
    """One paper of the preview and why it is there: '#3 · 120 upvotes', or the topics it matched."""

    view: PaperView
    why: str
    rank: int | None = None

    def json(self) -> dict[str, object]:
        """The API's shape of it: the paper view's fields, its one-line facts, rank and reason."""
        return {**asdict(self.view), "meta": self.view.meta, "rank": self.rank, "why": self.why}


@dataclass(frozen=True)
class Preview:
    """The trending papers (None when the settings ask for none), the papers on the topics, how
    many more the topics matched beyond the cap, and the papers the reader liked (each a topic)."""

    trending: list[PreviewPaper] | None
    papers: list[PreviewPaper]
    more: int
    has_topics: bool
    examples: list[LikedPaper] = field(default_factory=list)
    only_examples: bool = False  # every topic is a paper the reader liked


def lookback_of(settings: Settings) -> timedelta:
    """How far back a paper's upvotes count (DIGEST_UPVOTE_LOOKBACK_DAYS)."""
    return timedelta(days=settings.upvote_lookback_days)


def _trending(match: Match) -> PreviewPaper:
    """'#3 · 120 upvotes', and the reader's topics it also matched (as the digest's card says it)."""
    view = paper_view(match)
    return PreviewPaper(view, trending_why(match, view.topics), match.rank)


def _topical(match: Match) -> PreviewPaper:
    view = paper_view(match)
    return PreviewPaper(view, matched_why(view.topics))


def liked_papers(semantics: Semantics | None, ids: list[str]) -> list[LikedPaper]:
    """The reader's example papers with their titles, each saying so when it cannot bring papers yet:
    not among ours, or not embedded yet."""
    if semantics is None:
        return [LikedPaper(i, None, NO_EMBEDDINGS) for i in ids]
    found = {i: semantics.example(i) for i in ids}  # each looked up once per index build
    return [
        LikedPaper(i, e.title, "" if e.vector is not None else NOT_READ) if e else LikedPaper(i, None, NOT_STORED)
        for i, e in found.items()
    ]


def preview(cache: IndexCache, prefs: Preferences, now: datetime, lookback: timedelta) -> Preview:
    """What `prefs` would have received over the last 7 days: the trending papers first, then those
    on the topics (minimum upvotes and the cap honoured), never a paper twice."""
    window = cache.get(now, lookback)
    picked = pick(window.index, prefs, window.start, window.end, lookback=lookback)
    trending = [_trending(m) for m in picked.trending] if prefs.trending is not None else None
    topical = [_topical(m) for m in picked.topical.matches]
    words, ids = split_examples(prefs.topics)
    examples = liked_papers(window.index.semantics, ids)
    return Preview(trending, topical, picked.topical.more, bool(prefs.topics), examples, bool(ids) and not words)
