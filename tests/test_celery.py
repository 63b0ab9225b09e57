"""A real Celery worker process on the real Redis fetches fixture feeds over loopback HTTP and sends
the digests to a real SMTP server: the whole hourly and quarter-hourly cycle, end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlmodel import Session, func, select

from digest.config import PROJECT_ROOT, Settings
from digest.db import init_db, make_engine, open_session
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


def _wait(what: str, check: Callable[[], bool], log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()[-4000:]}")


def _count(session: Session, query: object) -> int:
    session.expire_all()
    return int(session.exec(query).one())  # type: ignore[call-overload]


def test_worker_fetches_and_sends_end_to_end(
    tmp_path: Path, http_server: HTTPTestServer, smtp_server: SmtpServer, broker: str, fresh_database: FreshDatabase
) -> None:
    http_server.feed("/rss/cs.AI+cs.CL", (SAMPLES / "arxiv-listing.rss").read_bytes(), etag='"v1"')
    http_server.route("/api/daily_papers", (SAMPLES / "hf-daily-papers.json").read_bytes())
    sources = [
        {"name": "arxiv", "kind": "arxiv-rss", "url": http_server.url("/rss/cs.AI+cs.CL")},
        {"name": "hf", "kind": "hf-json", "url": http_server.url("/api/daily_papers") + "?date={date}"},
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
        secret_key="worker-test",
    )
    engine = make_engine(settings.database_url)
    init_db(engine)
    joined = datetime.now(UTC) - timedelta(days=30)
    with open_session(engine) as session:
        # Send hour 00:00 UTC: whatever time the test runs, today's slot has passed.
        subscriber(session, "ada@example.org", ['"KV cache" OR "long context"'], joined=joined, send_hour=0)
        subscriber(session, "grace@example.org", ['"in-context learning"'], joined=joined, send_hour=0)
        subscriber(session, "nobody@example.org", ["quantum chromodynamics"], joined=joined, send_hour=0)

    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        DIGEST_DATABASE_URL=settings.database_url,
        DIGEST_BROKER_URL=broker,
        DIGEST_CELERY_QUEUE=queue,
        DIGEST_SMTP_URL=smtp_server.url,
        DIGEST_FROM=settings.from_address,
        DIGEST_BASE_URL=settings.base_url,
        DIGEST_SECRET_KEY=settings.secret_key,
        DIGEST_SOURCES=json.dumps(sources),
        DIGEST_ARXIV_MIN_INTERVAL="0",
        DIGEST_WINDOW_LAG_SECONDS="0",  # send what was fetched a second ago (production waits 10 min)
    )
    log = tmp_path / "worker.log"
    command = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", queue, "-c", "2"]
    command += ["--loglevel=INFO", "--without-mingle", "--without-gossip", "-n", f"{queue}@%h"]
    with log.open("w") as out:
        worker = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _run_cycle(settings, engine, smtp_server, http_server, log)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        engine.dispose()


def _run_cycle(settings: Settings, engine: object, smtp: SmtpServer, http: HTTPTestServer, log: Path) -> None:
    from workers.celery_app import make_celery

    client = make_celery(settings)
    client.send_task("digest.fetch_sources")
    with open_session(engine) as session:  # type: ignore[arg-type]
        _wait("both sources fetched", lambda: _count(session, select(func.count()).select_from(SourceState)) == 2, log)
        states = {s.name: s for s in session.exec(select(SourceState))}
        assert states["arxiv"].last_error is None and states["arxiv"].etag == '"v1"'
        assert states["hf"].last_error is None
        assert _count(session, select(func.count()).select_from(Paper)) == 54
        today = datetime.now(UTC).date().isoformat()
        assert f"/api/daily_papers?date={today}" in http.paths()

        # The quarter-hourly planner, enqueued three times (as overlapping beats would): one email each.
        for _ in range(3):
            client.send_task("digest.plan_sends")
        _wait("two digests sent", lambda: len(smtp.messages) >= 2, log)
        _wait(
            "every delivery settled",
            lambda: (
                _count(
                    session,
                    select(func.count()).select_from(Delivery).where(Delivery.status.in_(["sent", "empty"])),  # type: ignore[attr-defined]
                )
                == 3
            ),
            log,
        )
        time.sleep(2)  # let any duplicate that would have been sent arrive before counting
        assert sorted(r for m in smtp.messages for r in m.rcpt_tos) == ["ada@example.org", "grace@example.org"]
        rows = {r.subscriber_id: r for r in session.exec(select(Delivery))}
        assert sorted(r.status for r in rows.values()) == [
            DeliveryStatus.EMPTY, DeliveryStatus.SENT, DeliveryStatus.SENT,
        ]  # fmt: skip
    ada = smtp.to("ada@example.org")[0].message
    today = datetime.now(UTC)
    assert re.fullmatch(rf"\d+ new papers on KV cache — {today.day} {today:%b}", ada["Subject"]), ada["Subject"]
    assert ada["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "KV Cache" in ada.get_body(("plain",)).get_content()  # type: ignore[union-attr]
