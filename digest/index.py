"""The paper index that matching reads: loaded from the database for a window of first-seen times,
and reused across the chunks of one planning pass in a process."""

from __future__ import annotations

import gc
import hashlib
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from digest.clock import utcnow
from digest.config import Settings
from digest.db import upsert_insert
from digest.embed import NONE, from_bytes, load_embedder, to_bytes
from digest.match import PaperIndex, PaperRecord
from digest.models import Paper, TextVector
from digest.semantic import Example, Semantics, Vector

REUSE_SECONDS = 300.0
IN_BATCH = 500  # keys per IN (…) list
_INDEXES: dict[str, tuple[datetime, datetime, datetime, float, PaperIndex]] = {}


def load_index(
    session: Session,
    since: datetime,
    until: datetime,
    *,
    popular_since: datetime | None = None,
    semantics: Semantics | None = None,
) -> PaperIndex:
    """Index the papers first seen in [since, until) — and, with `popular_since`, the Hugging Face
    papers first seen from then on: their upvotes keep counting, so they may still become
    eligible for a minimum, or trend, after the window they arrived in."""
    arrived = col(Paper.first_seen) >= since
    if popular_since is not None and popular_since < since:
        arrived = or_(arrived, and_(col(Paper.on_hf), col(Paper.first_seen) >= popular_since))
    query = select(Paper).where(arrived, col(Paper.first_seen) < until)
    # Plain, slotted records: the index outlives this session, and matching and rendering read
    # these attributes millions of times (ORM-instrumented access costs several times more).
    return PaperIndex([PaperRecord.of(paper) for paper in session.exec(query)], semantics)


def shared_index(
    session: Session, since: datetime, until: datetime, popular_since: datetime, semantics: Semantics | None = None
) -> PaperIndex:
    """The index for [since, until), reused by every chunk of one planning pass in this process:
    they share `until` (the pass's window end), and a wider index serves a narrower window."""
    key = str(session.get_bind().engine.url)
    cached = _INDEXES.get(key)
    if cached is not None:
        start, popular, end, built, index = cached
        if end == until and start <= since and popular <= popular_since and time.monotonic() - built < REUSE_SECONDS:
            return index
    index = load_index(session, since, until, popular_since=popular_since, semantics=semantics)
    _INDEXES[key] = (since, popular_since, until, time.monotonic(), index)
    set_aside()
    return index


def set_aside() -> None:
    """Take what this process holds now, the index above all (hundreds of thousands of objects
    that live for a whole planning pass), out of the cyclic garbage collector's sight: each full
    collection would walk all of it again, and composing a digest allocates enough to set one off
    every few dozen digests (about a tenth of composing's time). What an earlier call set aside,
    the index this one replaces among it, is put back first and its garbage collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def semantics_for(settings: Settings, engine: Engine) -> Semantics | None:
    """What `like:` terms need: the configured model (loaded on the first `like:"…"` text) and the
    stored vectors of example papers, looked up in this database; None when embedding is off
    (DIGEST_EMBEDDING_MODEL=none)."""
    model = settings.embedding_model
    if model == NONE:
        return None

    def embed_texts(texts: Sequence[str]) -> dict[str, Vector]:
        return text_vectors(engine, model, texts)

    def embed_text(text: str) -> Vector:
        return embed_texts([text])[text]

    def lookup(ids: Sequence[str]) -> dict[str, Example]:
        query = select(Paper.id, Paper.title, Paper.embedding, Paper.embedding_model).where(col(Paper.id).in_(ids))
        with Session(engine) as own:
            rows = own.exec(query).all()
        return {
            pid: Example(title, from_bytes(vector) if vector is not None and made_by == model else None)
            for pid, title, vector, made_by in rows
        }

    return Semantics(model, embed_text, lookup, embed_texts)


def text_hash(text: str) -> str:
    """How a `like:"…"` text is keyed in `TextVector`."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def text_vectors(engine: Engine, model: str, texts: Sequence[str]) -> dict[str, Vector]:
    """The vectors of these topic texts: those stored, and the others embedded now (in one call)
    and stored, so that no later run embeds them again. Safe to run concurrently: a text two
    workers embed at once is stored once."""
    keys = {text_hash(t): t for t in texts}
    found: dict[str, Vector] = {}
    with Session(engine) as own:
        for start in range(0, len(keys), IN_BATCH):
            chunk = list(keys)[start : start + IN_BATCH]
            query = select(TextVector.text_hash, TextVector.vector).where(
                col(TextVector.embedding_model) == model, col(TextVector.text_hash).in_(chunk)
            )
            found.update((keys[h], from_bytes(blob)) for h, blob in own.exec(query))
        missing = [t for t in keys.values() if t not in found]
        if missing:
            embedder = load_embedder(model)
            assert embedder is not None
            made = dict(zip(missing, embedder.embed(missing), strict=True))
            now = utcnow()
            rows = [
                {"embedding_model": model, "text_hash": text_hash(t), "vector": to_bytes(v), "created_at": now}
                for t, v in made.items()
            ]
            own.execute(_insert_new(own.get_bind().dialect.name), rows)
            own.commit()
            found.update(made)
    return found


def _insert_new(dialect: str) -> Any:
    table = TextVector.__table__  # type: ignore[attr-defined]
    return upsert_insert(dialect, table).on_conflict_do_nothing(index_elements=["embedding_model", "text_hash"])
