"""Learning from votes, the effects around `rank`: read a reader's votes and the vectors of the
papers they voted on, train and keep their model (`ReaderModel`), and hand the send run what each
reader's votes teach (`Learned`). Run by the `digest.train_reader` task when votes change, and by
the send run for models whose votes are newer (never by a web request).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, delete, func, select

from digest.config import Settings
from digest.embed import NONE, from_bytes
from digest.models import Paper, ReaderModel, Vote
from digest.rank import WEAK_NEGATIVES, Example, Learned, Matrix, train, weak_choice
from digest.rank import from_bytes as weights_from_bytes
from digest.rank import to_bytes as weights_to_bytes

POOL_DAYS = 30  # weak negatives are drawn from the papers of the last month
POOL_MAX = 2_000


def _voted(session: Session, model: str, ids: Sequence[int]) -> dict[int, list[tuple[int, Example]]]:
    """Each reader's votes with the voted papers' titles and vectors (papers without one are left out)."""
    query = (
        sa_select(col(Vote.subscriber_id), col(Vote.value), col(Paper.id), col(Paper.title), col(Paper.embedding))
        .join(Paper, col(Paper.id) == col(Vote.paper_id))
        .where(col(Vote.subscriber_id).in_(ids), col(Paper.embedding_model) == model)
        .order_by(col(Vote.subscriber_id), col(Vote.id))
    )
    found: dict[int, list[tuple[int, Example]]] = {}
    for sid, value, pid, title, blob in session.execute(query).all():
        found.setdefault(sid, []).append((value, Example(pid, title, from_bytes(blob))))
    return found


def _split(votes: Sequence[tuple[int, Example]]) -> tuple[list[Example], list[Example]]:
    """A reader's votes as the papers they liked and those they disliked."""
    return [e for value, e in votes if value > 0], [e for value, e in votes if value < 0]


def _matrix(examples: Sequence[Example], dim: int) -> Matrix:
    return np.array([e.vector for e in examples], dtype=np.float32).reshape(len(examples), dim)


def _weak(session: Session, model: str, now: datetime, leave_out: set[str], count: int, seed: int) -> Matrix:
    """`count` random recent embedded papers the reader did not vote on (weak negatives): their ids
    drawn from the last month's, then only those vectors read."""
    query = (
        select(Paper.id)
        .where(col(Paper.embedding_model) == model, col(Paper.first_seen) >= now - timedelta(days=POOL_DAYS))
        .order_by(col(Paper.first_seen).desc())
        .limit(POOL_MAX)
    )
    pool = [pid for pid in session.exec(query) if pid not in leave_out]
    chosen = [pool[n] for n in weak_choice(len(pool), count, seed)]
    rows = dict(session.exec(select(Paper.id, Paper.embedding).where(col(Paper.id).in_(chosen))).all())
    vectors = [from_bytes(blob) for blob in (rows.get(pid) for pid in chosen) if blob is not None]
    return np.array(vectors, dtype=np.float32)


def retrain(session: Session, settings: Settings, subscriber_id: int, now: datetime) -> ReaderModel | None:
    """Train the reader's model from their votes now and keep it (or drop it below MIN_LIKES)."""
    model = settings.embedding_model
    votes = _voted(session, model, [subscriber_id]).get(subscriber_id, []) if model != NONE else []
    liked, disliked = _split(votes)
    dim = len(votes[0][1].vector) if votes else 0
    weights = None
    if dim:
        seed = zlib.crc32(str(subscriber_id).encode())
        voted = {e.paper_id for _v, e in votes}
        unvoted = _weak(session, model, now, voted, WEAK_NEGATIVES * len(liked), seed).reshape(-1, dim)
        weights = train(_matrix(liked, dim), _matrix(disliked, dim), unvoted)
    session.exec(delete(ReaderModel).where(col(ReaderModel.subscriber_id) == subscriber_id))
    row = None
    if weights is not None:
        row = ReaderModel(subscriber_id=subscriber_id, embedding_model=model, weights=weights_to_bytes(weights),
                          votes=len(votes), trained_at=now)  # fmt: skip
        session.add(row)
    session.commit()
    return row


def _stale(session: Session, ids: Sequence[int]) -> list[int]:
    """Readers whose votes are newer than their model (or who have votes and no model)."""
    latest = (
        select(Vote.subscriber_id, func.max(Vote.created_at), func.count())
        .where(col(Vote.subscriber_id).in_(ids))
        .group_by(col(Vote.subscriber_id))
    )
    models = {
        m.subscriber_id: m for m in session.exec(select(ReaderModel).where(col(ReaderModel.subscriber_id).in_(ids)))
    }
    stale = []
    for sid, newest, count in session.exec(latest):
        model = models.get(sid)
        if model is None or model.trained_at < newest or model.votes != count:
            stale.append(sid)
    return stale


def learned_for(session: Session, settings: Settings, ids: Sequence[int], now: datetime) -> dict[int, Learned]:
    """What the votes of these readers teach, retraining the models that are out of date."""
    model = settings.embedding_model
    if model == NONE or not ids:
        return {}
    for sid in _stale(session, ids):
        retrain(session, settings, sid, now)
    voted = _voted(session, model, ids)
    query = select(ReaderModel).where(
        col(ReaderModel.subscriber_id).in_(list(voted)), col(ReaderModel.embedding_model) == model
    )
    weights = {m.subscriber_id: weights_from_bytes(m.weights) for m in session.exec(query)}
    learned = {}
    for sid, votes in voted.items():
        liked, disliked = _split(votes)
        dim = len(votes[0][1].vector)
        learned[sid] = Learned(weights.get(sid), liked, _matrix(disliked, dim))
    return learned
