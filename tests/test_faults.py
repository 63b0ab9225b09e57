"""Nothing lost, nothing sent twice — under crashes, SMTP faults, broker restarts and bad feeds.

Each scenario runs real Celery worker (and beat) processes on a real Redis against a real SMTP
server that misbehaves on cue (see tests/smtpserver.py), then checks the invariant over the mail
received and the delivery table. The figures go to test-output/delivery-results.md.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy.engine import Engine
from sqlmodel import select

from bench import celery_process
from bench.celery_process import CeleryProcess, environment
from digest.config import PROJECT_ROOT, Settings, SourceConfig, SourceKind
from digest.db import init_db, make_engine, open_session
from digest.models import Delivery, DeliveryStatus, Paper, SourceState, Subscriber
from digest.subscribers import unsubscribe
from tests.conftest import FreshDatabase, free_port, port_open, require
from tests.factories import add_papers, paper, subscriber
from tests.harness import RESULTS, Figures, RedisServer, all_settled, invariant, wait_for
from tests.httpserver import HTTPTestServer, http_server_fixture  # noqa: F401
from tests.smtpserver import SmtpServer, running_smtp_server

SHARED_REDIS = "redis://127.0.0.1:6379/13"
SAMPLES = PROJECT_ROOT / "digest" / "samples"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module", autouse=True)
def results_file() -> Iterator[None]:
    """Start a fresh results file; after the scenarios, write the table the README links."""
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.unlink(missing_ok=True)
    yield
    if RESULTS.exists():
        rows = [json.loads(line) for line in RESULTS.read_text().splitlines()]
        (RESULTS.parent / "delivery-results.md").write_text(render_results(rows))


KEYS = ("scenario", "readers", "expected", "delivered", "duplicated", "lost", "unknown", "failed")


def render_results(rows: list[dict[str, object]]) -> str:
    """The Markdown table of scenario figures."""
    head = "| " + " | ".join(KEYS) + " |\n" + "|---" * len(KEYS) + "|\n"
    body = "".join("| " + " | ".join(str(r[k]) for k in KEYS) + " |\n" for r in rows)
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    return f"# Delivery under faults\n\nWritten by `tests/test_faults.py` on {when}.\n\n{head}{body}"


@dataclass
class World:
    """One scenario's world: database, SMTP server, broker, queue, and the processes it started."""

    tmp: Path
    settings: Settings
    engine: Engine
    smtp: SmtpServer
    processes: list[CeleryProcess] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return environment(self.settings)

    def client(self) -> Celery:
        from workers.celery_app import make_celery

        return make_celery(self.settings)

    def worker(self, name: str, concurrency: int = 1) -> CeleryProcess:
        process = celery_process.worker(self.settings, name, self.tmp, concurrency=concurrency).start()
        self.processes.append(process)
        return process

    def beat(self, name: str) -> CeleryProcess:
        process = celery_process.beat(self.settings, name, self.tmp).start()
        self.processes.append(process)
        return process

    def readers(self, emails: list[str]) -> None:
        """Readers due now (send hour 00:00 UTC, joined a month ago) and a paper for all of them."""
        now = datetime.now(UTC)
        with open_session(self.engine) as session:
            add_papers(
                session, paper("2611.77777", "KV cache compression at scale", first_seen=now - timedelta(hours=1))
            )
            for address in emails:
                subscriber(session, address, ["cache"], joined=now - timedelta(days=30), send_hour=0)

    def rows(self) -> list[Delivery]:
        with open_session(self.engine) as session:
            return list(session.exec(select(Delivery)))

    def pump(
        self, client: Celery, done: str, check: Callable[[], bool], every: float = 1.0, plan: bool = False
    ) -> None:
        """Do what beat would: enqueue the sweeper (and the planner) every second until `check()`."""

        def tick() -> bool:
            if plan:
                client.send_task("digest.plan_sends", retry=True)
            client.send_task("digest.sweep", retry=True)
            return check()

        wait_for(done, tick, timeout=180, every=every)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.text()[-3000:]}" for p in self.processes)


def _settings(database: str, smtp: SmtpServer, broker: str, **changes: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database,
        "broker_url": broker,
        "celery_queue": f"faults-{uuid.uuid4().hex[:10]}",
        "smtp_url": smtp.url,
        "smtp_timeout": 30.0,
        "smtp_connections": 2,
        "from_address": "Paper Digest <digest@example.org>",
        "base_url": "https://digest.example.org",
        "secret_key": "faults-test-secret-key-of-32-bytes-at-least",
        "sources": [],
        "send_batch_size": 25,
        "retry_base_seconds": 1.0,
        "stale_sending_seconds": 4,
        "arxiv_min_interval": 0.0,  # the fixture feeds answer at once: no politeness pause between them
        "arxiv_api_url": "",  # no enrichment of Hugging Face papers (tests/test_enrich.py has it)
    }
    values.update(changes)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def world(tmp_path: Path, fresh_database: FreshDatabase) -> Iterator[World]:
    require("Redis on 127.0.0.1:6379", port_open("127.0.0.1", 6379))
    with running_smtp_server() as smtp:
        settings = _settings(fresh_database("faults"), smtp, SHARED_REDIS)
        engine = make_engine(settings.database_url)
        init_db(engine)
        w = World(tmp_path, settings, engine, smtp)
        try:
            yield w
        finally:
            for process in w.processes:
                process.stop()
            engine.dispose()
            redis.Redis.from_url(SHARED_REDIS).flushdb()


def _check(figures: Figures, w: World) -> None:
    assert figures.duplicated == 0, f"duplicates: {figures}\n{w.logs()}"
    assert figures.lost == 0, f"lost: {figures.notes}\n{w.logs()}"


def test_fan_out_enqueued_ten_times_with_two_workers(world: World) -> None:
    normal = [f"reader{n:03d}@example.org" for n in range(480)]
    faulty = [f"{kind}{n}@example.org" for kind in ("tempfail-2-", "closing-", "reject-", "drop-") for n in range(5)]
    world.readers(normal + faulty)
    world.worker("w1")
    world.worker("w2")
    client = world.client()
    now = datetime.now(UTC).isoformat()
    for _ in range(10):
        client.send_task("digest.plan_sends", args=[now])
    world.pump(client, "all 500 digests settled", lambda: len(world.rows()) == 500 and all_settled(world.engine))
    figures = invariant(world.engine, world.smtp, "500 readers, fan-out enqueued 10 times, 2 worker processes")
    _check(figures, world)
    assert (figures.delivered, figures.failed, figures.unknown) == (485, 10, 5)
    statuses = {r.status for r in world.rows()}
    assert statuses == {DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN}


def _killed_in_data(world: World) -> Celery:
    """Start a worker, plan the sends, and SIGKILL its pool child while a slow message waits in
    SMTP DATA; the worker is then stopped. Returns the client that planned."""
    first = world.worker("w-first")
    client = world.client()
    client.send_task("digest.plan_sends")
    wait_for("the slow message's DATA pause", world.smtp.state.slow_started.is_set, timeout=60)
    (child,) = first.children()
    child.kill()
    time.sleep(1)
    first.stop()
    return client


def test_kill_9_during_the_data_pause_then_restart(world: World) -> None:
    world.readers([f"reader{n:02d}@example.org" for n in range(20)] + ["slow-20@example.org"])
    client = _killed_in_data(world)
    world.worker("w-restarted")
    world.pump(client, "all digests settled", lambda: len(world.rows()) == 21 and all_settled(world.engine))
    figures = invariant(world.engine, world.smtp, "kill -9 of a worker child during SMTP DATA, then a restart")
    _check(figures, world)
    slow = next(r for r in world.rows() if r.status is DeliveryStatus.UNKNOWN)
    assert "stopped mid-send" in (slow.error or "")
    assert figures.unknown == 1


@pytest.mark.parametrize("position", [0, 12, 27])
def test_kill_9_at_several_points_of_a_chunk(world: World, position: int) -> None:
    """One chunk of 30 readers on one connection; the worker is killed while the message at
    `position` waits in DATA. Only a message whose SMTP transaction had begun may end `unknown`:
    every row the worker had claimed but not yet put in flight is resent, and none twice."""
    world.settings = world.settings.model_copy(update={"send_batch_size": 30, "smtp_connections": 1})
    emails = [f"reader{n:02d}@example.org" for n in range(30)]
    emails[position] = f"slow-30-{position:02d}@example.org"
    world.readers(emails)
    client = _killed_in_data(world)
    assert len(world.smtp.messages) == position  # everything before the slow one, nothing after
    world.worker("w-restarted")
    world.pump(client, "all digests settled", lambda: len(world.rows()) == 30 and all_settled(world.engine))
    figures = invariant(world.engine, world.smtp, f"kill -9 with the message at position {position} in DATA")
    _check(figures, world)
    rows = {r.subscriber_id: r for r in world.rows()}
    ids = [_id_of(world, email) for email in emails]
    # sent the first time + resent + unknown = every reader; only the message in flight is unknown.
    assert [rows[i].status for i in ids[:position]] == [DeliveryStatus.SENT] * position
    assert rows[ids[position]].status is DeliveryStatus.UNKNOWN
    assert "stopped mid-send" in (rows[ids[position]].error or "")
    after = [rows[i] for i in ids[position + 1 :]]
    assert [(r.status, r.attempts) for r in after] == [(DeliveryStatus.SENT, 2)] * (29 - position), world.logs()
    assert figures.unknown == 1


def _id_of(world: World, email: str) -> int:
    with open_session(world.engine) as session:
        found = session.exec(select(Subscriber.id).where(Subscriber.email == email)).one()
    assert found is not None
    return found


def test_redis_stopped_and_restarted_mid_run(tmp_path: Path, fresh_database: FreshDatabase) -> None:
    with running_smtp_server() as smtp:
        broker = RedisServer(free_port(), tmp_path).start()
        settings = _settings(fresh_database("faults"), smtp, broker.url, send_batch_size=10, smtp_connections=1)
        engine = make_engine(settings.database_url)
        init_db(engine)
        w = World(tmp_path, settings, engine, smtp)
        try:
            smtp.state.pause = 0.05
            w.readers([f"reader{n:03d}@example.org" for n in range(200)])
            w.worker("w")
            client = w.client()
            client.send_task("digest.plan_sends")
            wait_for("the first 20 digests", lambda: len(smtp.messages) >= 20, timeout=60)
            broker.stop()  # everything queued in Redis is gone
            time.sleep(2)
            broker.start()
            w.pump(
                client,
                "all digests settled after the restart",
                lambda: len(w.rows()) == 200 and all_settled(engine),
                every=2.0,
                plan=True,
            )
            figures = invariant(engine, smtp, "Redis stopped and restarted mid-run (queued tasks lost)")
            _check(figures, w)
            assert figures.delivered == 200
        finally:
            for process in w.processes:
                process.stop()
            broker.stop()
            engine.dispose()


def _sent_due_tasks(process: CeleryProcess) -> int:
    return process.text().count("Scheduler: Sending due task")


def test_two_beat_processes_schedule_once(world: World) -> None:
    world.settings = world.settings.model_copy(update={"beat_every_seconds": 1.0})
    world.readers([f"reader{n:03d}@example.org" for n in range(100)])
    world.worker("w", concurrency=2)
    first, second = world.beat("beat-1"), world.beat("beat-2")
    started = time.monotonic()
    wait_for("all digests settled", lambda: len(world.rows()) == 100 and all_settled(world.engine), timeout=120)
    time.sleep(4)
    elapsed = time.monotonic() - started
    figures = invariant(world.engine, world.smtp, "two beat processes at once (RedBeat lock)")
    _check(figures, world)
    counts = sorted([_sent_due_tasks(first), _sent_due_tasks(second)])
    assert counts[0] == 0, f"both beats scheduled tasks: {counts}\n{world.logs()}"
    tasks = 5  # the schedule has five entries, each due every second
    assert counts[1] <= tasks * (elapsed + 6), counts


def test_beat_down_across_the_send_time_then_restarted(world: World) -> None:
    world.settings = world.settings.model_copy(update={"beat_every_seconds": 1.0})
    world.readers([f"reader{n:03d}@example.org" for n in range(100)])  # their 00:00 slot passed with no beat
    world.worker("w", concurrency=2)
    time.sleep(3)
    assert world.smtp.messages == []  # no scheduler, nothing happens
    first = world.beat("beat-before")
    wait_for("the missed digests caught up", lambda: len(world.rows()) == 100 and all_settled(world.engine))
    first.stop()
    world.beat("beat-after-restart")
    time.sleep(6)  # several more planning passes: nothing may go out twice
    figures = invariant(world.engine, world.smtp, "beat down across the send time, then restarted twice")
    _check(figures, world)
    assert figures.delivered == 100 and len(world.smtp.messages) == 100


def test_an_unsubscribe_arriving_mid_run(world: World) -> None:
    world.settings = world.settings.model_copy(update={"send_batch_size": 50, "smtp_connections": 1})
    emails = [f"reader{n:02d}@example.org" for n in range(30)]
    world.readers(emails)
    world.smtp.state.pause = 0.3
    world.worker("w")
    client = world.client()
    client.send_task("digest.plan_sends")
    wait_for("the first digests", lambda: len(world.smtp.messages) >= 3, timeout=60)
    with open_session(world.engine) as session:
        last = session.exec(select(Subscriber).where(Subscriber.email == emails[-1])).one()
        unsubscribe(session, last, datetime.now(UTC))  # the one-click POST, while the batch runs
    world.pump(client, "all digests settled", lambda: len(world.rows()) == 30 and all_settled(world.engine))
    figures = invariant(world.engine, world.smtp, "an unsubscribe arriving mid-run")
    _check(figures, world)
    assert world.smtp.to(emails[-1]) == []
    assert figures.delivered == 29
    row = next(r for r in world.rows() if r.status is DeliveryStatus.SKIPPED)
    assert "unsubscribed" in (row.error or "")


def _feeds(server: HTTPTestServer) -> list[SourceConfig]:
    listing = (SAMPLES / "arxiv-listing.rss").read_bytes()
    cut = listing.index(b"<item>", len(listing) // 2) + 200
    item = b"<item><title>Dup</title><link>https://example.org/a</link><guid>dup-1</guid></item>"
    channel = b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>%s</channel></rss>'
    server.feed("/good.rss", listing, etag='"good-1"')
    server.route("/partial.rss", listing[:cut])
    server.route("/empty.rss", channel % b"")
    server.route("/latin1.rss", channel % "<item><title>Café théorie</title><guid>l-1</guid></item>".encode("latin-1"))
    server.route(
        "/no-ids.rss", channel % b"<item><title>No id or date</title><link>https://example.org/x</link></item>"
    )
    server.route("/dupes.rss", channel % (item + item))
    server.stream("/huge.rss", 60 * 1024 * 1024)
    server.hang("/hang.rss", seconds=30)
    server.route("/limited.json", b"[]", status=429, headers={"Retry-After": "3600"})
    names = ["good", "partial", "empty", "latin1", "no-ids", "dupes", "huge", "hang"]
    kinds = {"good": SourceKind.ARXIV_RSS, "partial": SourceKind.ARXIV_RSS}
    sources = [SourceConfig(name=n, kind=kinds.get(n, SourceKind.RSS), url=server.url(f"/{n}.rss")) for n in names]
    return [*sources, SourceConfig(name="limited", kind=SourceKind.HF_JSON, url=server.url("/limited.json"))]


def test_hostile_feeds_through_the_real_pipeline(world: World, http_server: HTTPTestServer) -> None:
    world.settings = world.settings.model_copy(update={"sources": _feeds(http_server), "fetch_timeout": 1.0})
    world.worker("w")
    client = world.client()

    def states() -> dict[str, SourceState]:
        with open_session(world.engine) as session:
            return {s.name: s for s in session.exec(select(SourceState))}

    client.send_task("digest.fetch_sources")
    wait_for("every source recorded", lambda: len(states()) == 9, timeout=120)
    first = states()
    ok = {n for n, s in first.items() if s.last_error is None}
    assert ok == {"good", "partial", "empty", "latin1", "no-ids", "dupes"}, {n: s.last_error for n, s in first.items()}
    assert first["empty"].consecutive_failures == 0  # an empty, well-formed feed is a healthy run
    assert "larger than" in (first["huge"].last_error or "")
    assert "timed out" in (first["hang"].last_error or "") or "longer than" in (first["hang"].last_error or "")
    assert first["limited"].last_error == "HTTP 429" and first["limited"].not_before is not None
    with open_session(world.engine) as session:
        papers = {p.id: p for p in session.exec(select(Paper))}
    assert len([p for p in papers.values() if "good" in p.sources]) == 38
    assert any("partial" in p.sources for p in papers.values())  # what parsed before the break is kept
    assert any(p.title == "Café théorie" for p in papers.values())
    assert sum(1 for p in papers.values() if p.title == "Dup") == 1
    requests_before = len(http_server.requests_to("/limited.json"))
    client.send_task("digest.fetch_sources")
    before = first["good"].last_attempt
    assert before is not None
    wait_for("the second run", lambda: (states()["good"].last_attempt or before) > before, timeout=120)
    wait_for(
        "the second run to finish", lambda: states()["dupes"].last_attempt != first["dupes"].last_attempt, timeout=120
    )
    assert states()["good"].last_error is None  # 304 Not Modified is a success
    assert len(http_server.requests_to("/limited.json")) == requests_before  # Retry-After honoured
    assert any("If-None-Match" in r.headers for r in http_server.requests_to("/good.rss")[1:])


def test_a_manual_send_racing_the_scheduled_one(world: World) -> None:
    import subprocess
    import sys

    world.readers([f"reader{n:03d}@example.org" for n in range(150)])
    world.worker("w", concurrency=2)
    client = world.client()
    manual = subprocess.Popen(
        [sys.executable, "-m", "digest", "send"], cwd=world.tmp, env=world.env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client.send_task("digest.plan_sends")
    output, _ = manual.communicate(timeout=120)
    assert manual.returncode == 0, output.decode()
    world.pump(client, "all digests settled", lambda: len(world.rows()) == 150 and all_settled(world.engine))
    figures = invariant(world.engine, world.smtp, "a manual `digest send` racing the scheduled one")
    _check(figures, world)
    assert figures.delivered == 150 and len(world.smtp.messages) == 150
