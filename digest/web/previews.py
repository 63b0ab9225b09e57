"""The live preview: the papers of the last week that a visitor's topics would have brought."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from digest.db import open_session
from digest.index import load_index
from digest.match import PaperIndex, select
from digest.render import PaperView, paper_view

PREVIEW_DAYS = 7
PREVIEW_CAP = 20
INDEX_TTL = timedelta(minutes=5)


@dataclass
class IndexCache:
    """The last 7 days of papers, indexed, rebuilt every few minutes (for the live preview)."""

    engine: Engine
    built_at: datetime | None = None
    index: PaperIndex | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, now: datetime) -> PaperIndex:
        """The index as of `now`, rebuilt if it is older than INDEX_TTL."""
        with self.lock:
            if self.index is None or self.built_at is None or now - self.built_at > INDEX_TTL:
                with open_session(self.engine) as session:
                    self.index = load_index(session, now - timedelta(days=PREVIEW_DAYS), now + timedelta(minutes=1))
                self.built_at = now
            return self.index


def preview(cache: IndexCache, topics: Sequence[str], now: datetime) -> tuple[list[PaperView], int]:
    """Papers of the last 7 days matching topics as typed: the views, and how many more."""
    index = cache.get(now)
    chosen = select(index, topics, candidates=index.all, cap=PREVIEW_CAP)
    return [paper_view(m) for m in chosen.matches], chosen.more
