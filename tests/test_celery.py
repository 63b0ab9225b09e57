"""A real Celery worker process on the real Redis fetches fixture feeds over loopback HTTP, embeds
the new papers in a task of its own and sends the digests to a real SMTP server: the whole hourly
and quarter-hourly cycle, end to end."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from bench import celery_process
from bench.celery_process import CeleryProcess
from digest.config import PROJECT_ROOT, Settings, SourceConfig, SourceKind
from digest.db import init_db, make_engine, open_session
from digest.embed import from_bytes
from digest.models import Delivery, DeliveryStatus, Paper, SourceState
from tests.conftest import FreshDatabase, port_open, require
from tests.factories import subscriber
from tests.httpserver import HTTPTestServer, http_server_fixture  # noqa: F401
from tests.smtpserver import SmtpServer, smtp_server  # noqa: F401

SAMPLES = PROJECT_ROOT / "digest" / "samples"
REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def broker() -> Iterator[str]:
    require("Redis on 127.0.0.1:6379", port_open("127.0.0.1", 6379))
    yield REDIS_URL
    redis.Redis.from_url(REDIS_URL).flushdb()


def _wait(what: str, check: Callable[[], bool], worker: CeleryProcess, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{worker.text()[-4000:]}")


def _count(session: Session, query: object) -> int:
    session.expire_all()
    return int(session.exec(query).one())  # type: ignore[call-overload]


def test_a_worker_environment_gives_the_worker_these_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    sources = [SourceConfig(name="feed", kind=SourceKind.RSS, url="http://127.0.0.1:1/{date}.rss")]
    settings = Settings(
        _env_file=None, database_url="sqlite:///w.sqlite3", broker_url=REDIS_URL, celery_queue="q", sources=sources,
        from_address="Paper Digest <digest@example.org>", beat_every_seconds=1.5, window_lag_seconds=0,
    )  # fmt: skip
    env = celery_process.environment(settings, EXTRA="yes")
    assert env["DIGEST_FROM"] == settings.from_address and env["EXTRA"] == "yes"
    for name in [k for k in os.environ if k.startswith("DIGEST_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None) == settings  # what the worker's own Settings() reads


def test_worker_fetches_and_sends_end_to_end(
    tmp_path: Path, http_server: HTTPTestServer, smtp_server: SmtpServer, broker: str, fresh_database: FreshDatabase
) -> None:
    http_server.feed("/rss/cs.AI+cs.CL", (SAMPLES / "arxiv-listing.rss").read_bytes(), etag='"v1"')
    http_server.route("/api/daily_papers", (SAMPLES / "hf-daily-papers.json").read_bytes())
    empty_atom = b'<feed xmlns="http://www.w3.org/2005/Atom"><title>arXiv Query</title></feed>'
    http_server.route("/api/query", empty_atom, headers={"Content-Type": "application/atom+xml"})
    sources = [
        SourceConfig(name="arxiv", kind=SourceKind.ARXIV_RSS, url=http_server.url("/rss/cs.AI+cs.CL")),
        SourceConfig(name="hf", kind=SourceKind.HF_JSON, url=http_server.url("/api/daily_papers") + "?date={date}"),
    ]
    queue = f"digest-test-{uuid.uuid4().hex[:10]}"
    settings = Settings(
        _env_file=None,
        database_url=fresh_database("worker"),
        broker_url=broker,
        celery_queue=queue,
        smtp_url=smtp_server.url,
        from_address="Paper Digest <digest@example.org>",
        base_url="https://digest.example.org",
        secret_key="worker-test-secret-key-of-32-bytes-at-least",
        sources=sources,
        arxiv_min_interval=0,
        arxiv_api_url=http_server.url("/api/query"),  # the worker asks "arXiv" about HF-only papers
        window_lag_seconds=0,  # send what was fetched a second ago (production waits 10 min)
    )
    engine = make_engine(settings.database_url)
    init_db(engine)
    joined = datetime.now(UTC) - timedelta(days=30)
    with open_session(engine) as session:
        # Send hour 00:00 UTC: whatever time the test runs, today's slot has passed.
        subscriber(session, "ada@example.org", ['"KV cache" OR "long context"'], joined=joined, send_hour=0)
        subscriber(session, "grace@example.org", ['"in-context learning"'], joined=joined, send_hour=0)
        subscriber(session, "nobody@example.org", ["quantum chromodynamics"], joined=joined, send_hour=0)

    worker = celery_process.worker(settings, "worker", tmp_path, concurrency=2).start()
    try:
        _run_cycle(settings, engine, smtp_server, http_server, worker)
    finally:
        worker.stop()
        engine.dispose()


def _run_cycle(
    settings: Settings, engine: Engine, smtp: SmtpServer, http: HTTPTestServer, worker: CeleryProcess
) -> None:
    from workers.celery_app import make_celery

    client = make_celery(settings)
    client.send_task("digest.fetch_sources")
    with open_session(engine) as session:
        fetched = select(func.count()).select_from(SourceState)
        _wait("both sources fetched", lambda: _count(session, fetched) == 2, worker)
        states = {s.name: s for s in session.exec(select(SourceState))}
        assert states["arxiv"].last_error is None and states["arxiv"].etag == '"v1"'
        assert states["hf"].last_error is None
        assert _count(session, select(func.count()).select_from(Paper)) == 54
        today = datetime.now(UTC).date().isoformat()
        assert f"/api/daily_papers?date={today}" in http.paths()
        # The fetch queued `digest.embed_papers`: the real model embeds every new paper, meanwhile.
        embedded = select(func.count()).select_from(Paper).where(Paper.embedding_model == "minilm-int8")

        # The quarter-hourly planner, enqueued three times (as overlapping beats would): one email each.
        for _ in range(3):
            client.send_task("digest.plan_sends")
        _wait("two digests sent", lambda: len(smtp.messages) >= 2, worker)
        _wait(
            "every delivery settled",
            lambda: (
                _count(
                    session,
                    select(func.count()).select_from(Delivery).where(Delivery.status.in_(["sent", "empty"])),  # type: ignore[attr-defined]
                )
                == 3
            ),
            worker,
        )
        time.sleep(2)  # let any duplicate that would have been sent arrive before counting
        _wait("every paper embedded", lambda: _count(session, embedded) == 54, worker)
        vectors = [from_bytes(p.embedding) for p in session.exec(select(Paper)) if p.embedding is not None]
        assert len(vectors) == 54 and all(v.shape == (384,) and abs(np.linalg.norm(v) - 1) < 1e-3 for v in vectors)
        assert "Task digest.embed_papers" in worker.text()
        assert sorted(r for m in smtp.messages for r in m.rcpt_tos) == ["ada@example.org", "grace@example.org"]
        rows = {r.subscriber_id: r for r in session.exec(select(Delivery))}
        assert sorted(r.status for r in rows.values()) == [
            DeliveryStatus.EMPTY, DeliveryStatus.SENT, DeliveryStatus.SENT,
        ]  # fmt: skip
    ada = smtp.to("ada@example.org")[0].message
    now = datetime.now(UTC)
    assert re.fullmatch(rf"\d+ new papers on KV cache — {now.day} {now:%b}", ada["Subject"]), ada["Subject"]
    assert ada["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "KV Cache" in ada.get_body(("plain",)).get_content()  # type: ignore[union-attr]
