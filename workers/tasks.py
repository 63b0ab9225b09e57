"""Thin Celery tasks: take ids or ISO times, open a session, call one pipeline function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

from celery import group
from sqlalchemy.engine import Engine

from digest.archive import remove_old
from digest.clock import utcnow
from digest.config import Settings
from digest.db import init_db, make_engine, open_session
from digest.deliveries import sweep
from digest.embed import embed_missing, load_embedder
from digest.learning import retrain
from digest.notices import send_notices
from digest.pipeline import run_fetch, send_chunk
from digest.plan import plan_due
from digest.secret import ensure_secret
from digest.send import make_transport
from digest.signup import cleanup_pending
from workers.celery_app import app


@cache
def _settings() -> Settings:
    return ensure_secret(Settings())


@cache
def _engine() -> Engine:
    # Created lazily in each worker process (after the fork), never shared across processes.
    engine = make_engine(_settings().database_url)
    init_db(engine)
    return engine


def _when(now_iso: str | None) -> datetime:
    return datetime.fromisoformat(now_iso).astimezone(UTC) if now_iso else utcnow()


# Papers per embedding task: well inside the task time limit on a slow CPU. A backlog (a first
# deployment, a new model) is worked through by the task queueing itself again.
EMBED_TASK_LIMIT = 5000


@app.task(name="digest.fetch_sources")
def fetch_sources(only: str | None = None) -> dict[str, str]:
    """Fetch every configured source (or one) and store new papers; their embedding is a task of its own."""
    with open_session(_engine()) as session:
        reports = run_fetch(session, _settings(), utcnow(), only)
    if any(r.new for r in reports) and _settings().embedding_model != "none":
        embed_papers.delay()
    return {r.name: "ok" if r.ok else f"failed: {r.error}" for r in reports}


@app.task(name="digest.embed_papers")
def embed_papers() -> int:
    """Embed the papers not yet embedded by the configured model, newest first (safe to run twice)."""
    embedder = load_embedder(_settings().embedding_model)
    if embedder is None:
        return 0
    with open_session(_engine()) as session:
        stored = embed_missing(session, embedder, limit=EMBED_TASK_LIMIT)
    if stored >= EMBED_TASK_LIMIT:
        embed_papers.delay()  # more wait: the rest in a fresh task
    return stored


@app.task(name="digest.train_reader")
def train_reader(subscriber_id: int) -> int:
    """Retrain one reader's ranking from their votes (queued when a vote changes). Returns how
    many votes the model learned from (0: below the minimum, no model)."""
    with open_session(_engine()) as session:
        model = retrain(session, _settings(), subscriber_id, utcnow())
    return model.votes if model else 0


@app.task(name="digest.plan_sends")
def plan_sends(now_iso: str | None = None) -> int:
    """Find every reader whose digest is due and fan them out as a group of chunk tasks."""
    now = _when(now_iso)
    planned = 0
    with open_session(_engine()) as session:
        # Each chunk is queued as soon as its page is planned: workers start at once, and the
        # planner never holds the whole table's ids.
        for ids in plan_due(session, now, _settings().send_batch_size):
            send_digests.delay(ids, now.isoformat())
            planned += len(ids)
    return planned


@app.task(name="digest.sweep")
def sweep_task() -> dict[str, int]:
    """Turn rows whose worker died mid-send into `unknown`; re-queue pending/retry rows now due."""
    settings = _settings()
    now = utcnow()
    with open_session(_engine()) as session:
        result = sweep(session, settings, now)
    if result.due:
        group(send_digests.s(ids, now.isoformat()) for ids in result.due).apply_async()
    return {"expired": result.expired, "released": result.released, "requeued": sum(len(ids) for ids in result.due)}


@app.task(name="digest.send_digests")
def send_digests(subscriber_ids: list[int], now_iso: str) -> dict[str, int]:
    """Compose, claim and send one chunk of digests (safe to run twice)."""
    settings = _settings()
    with open_session(_engine()) as session:
        report = send_chunk(session, settings, make_transport(settings), subscriber_ids, _when(now_iso), clock=utcnow)
    return dict(report.counts)


@app.task(name="digest.send_notices")
def send_notices_task() -> dict[str, int]:
    """Send queued confirmation and account emails (prompted by the web app; swept every minute)."""
    settings = _settings()
    with open_session(_engine()) as session:
        return dict(send_notices(session, settings, make_transport(settings), utcnow(), utcnow))


@app.task(name="digest.cleanup_pending")
def cleanup_pending_task() -> dict[str, int]:
    """The daily clean-up: forget sign-ups never confirmed within their retention, and remove the
    digests older than the archive keeps them (DIGEST_ARCHIVE_DAYS)."""
    settings, now = _settings(), utcnow()
    with open_session(_engine()) as session:
        pending = cleanup_pending(session, now, timedelta(days=settings.pending_retention_days))
        digests = remove_old(session, now, timedelta(days=settings.archive_days))
    return {"pending": pending, "digests": digests}
