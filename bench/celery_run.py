"""The end-to-end send through real Celery worker processes on the real Redis.

Workers are started by bench/celery_process.py, the same module the tests start theirs with
(`celery -A workers.celery_app worker`, configured only through DIGEST_* variables), on a queue of
their own, in a dedicated Redis db. The run is the production path: `digest.plan_sends` pages
through the readers and fans out `digest.send_digests` chunks; we watch the delivery table until
every reader has a settled row, sampling each worker process's CPU and peak RSS as it goes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import redis
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine

from bench import celery_process
from bench.celery_process import CeleryProcess
from bench.records import CeleryResult
from digest.config import Settings
from digest.models import Delivery

TERMINAL = ("sent", "empty", "failed", "unknown", "skipped")
READY_TIMEOUT = 90.0


@dataclass(frozen=True)
class CeleryConfig:
    """What every Celery run shares: the workers' settings (each run gets a queue of its own), the
    day's clock, how many readers must settle, where the logs go, the time budget, smtp-sink's pid."""

    settings: Settings
    now: datetime
    expected: int
    folder: Path
    budget: float
    sink_pid: int | None = None


def _hwm_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of a live process, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


@dataclass
class Sampled:
    """A worker (a main process and its pool child) with each process's peak RSS and CPU so far."""

    process: CeleryProcess
    peak: dict[int, float] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)

    def sample(self) -> None:
        """Remember each process's peak RSS and CPU so far (read again right before stopping)."""
        for proc in self.process.tree():
            try:
                times = proc.cpu_times()
                self.cpu[proc.pid] = times.user + times.system
                self.peak[proc.pid] = max(self.peak.get(proc.pid, 0.0), _hwm_mb(proc.pid))
            except psutil.NoSuchProcess:
                continue

    def cpu_s(self) -> float:
        return sum(self.cpu.values())


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far; 0 if there is none."""
    if pid is None:
        return 0.0
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


# The services on this machine whose CPU a run is charged with, by process name.
SERVICES = {"database": ("postgres",), "broker": ("redis-server",)}


ServiceCpu = dict[str, dict[int, float]]  # service → pid → CPU seconds so far


def _service_cpu() -> ServiceCpu:
    """CPU seconds so far of every local process of each service (PostgreSQL's backends, Redis)."""
    found: ServiceCpu = {name: {} for name in SERVICES}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info.get("cpu_times")
        for service, names in SERVICES.items():
            if times is not None and (proc.info.get("name") or "").startswith(names):
                found[service][proc.pid] = float(times.user + times.system)
    return found


def _service_cores(before: ServiceCpu, after: ServiceCpu, wall: float) -> dict[str, float]:
    """Cores each service used between two `_service_cpu` looks (a backend that began meanwhile
    counts whole; one that ended meanwhile is not counted)."""
    return {
        service: sum(cpu - before[service].get(pid, 0.0) for pid, cpu in after[service].items()) / max(wall, 1e-9)
        for service in SERVICES
    }


def _busy_cores(before: Any, after: Any) -> float:
    """How many of the machine's cores were busy on average between two psutil.cpu_times()."""
    idle = (after.idle + getattr(after, "iowait", 0.0)) - (before.idle + getattr(before, "iowait", 0.0))
    total = sum(after) - sum(before)
    return (psutil.cpu_count() or 1) * (1 - idle / total) if total > 0 else 0.0


def _counts(engine: Engine) -> dict[str, int]:
    table = Delivery.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(sa_select(table.c.status, func.count()).group_by(table.c.status)).all()
    return {str(status): int(n) for status, n in rows}


def _clear_queue(client: redis.Redis, queue: str) -> None:
    """Drop what this run left in its Redis db: its queue, its binding, kombu's unacked bookkeeping."""
    client.delete(queue, f"_kombu.binding.{queue}", "unacked", "unacked_index", "unacked_mutex")


def _wait_ready(pool: list[Sampled]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not all(w.process.ready() for w in pool):
        if time.monotonic() > deadline:
            raise RuntimeError(f"celery workers did not become ready in {READY_TIMEOUT:.0f} s")
        time.sleep(0.2)


@dataclass
class _Watched:
    """What watching the delivery table saw, from the planner's task to the last settled row."""

    counts: dict[str, int] = field(default_factory=dict)
    done: int = 0
    first_row: float | None = None  # seconds until the planner's first row appeared
    wall: float = 0.0
    stopped_early: bool = False
    startup_cpu: float = 0.0  # the workers' CPU before the send began
    cores_busy: float = 0.0
    sink_cores: float = 0.0
    service_cores: dict[str, float] = field(default_factory=dict)


def _until_settled(pool: list[Sampled], engine: Engine, cfg: CeleryConfig, seen: _Watched, started: float) -> None:
    """Look at the delivery table once a second until every reader settled, or the budget ran out."""
    batch = cfg.settings.send_batch_size
    while True:
        time.sleep(1.0)  # each look is a GROUP BY over the day's rows: keep the watcher's CPU small
        seen.counts = _counts(engine)
        elapsed = time.perf_counter() - started
        if seen.first_row is None and any(seen.counts.values()):
            seen.first_row = elapsed
        seen.done = sum(seen.counts.get(s, 0) for s in TERMINAL)
        for w in pool:
            w.sample()
        if seen.done >= cfg.expected:
            return
        # Past the budget, stop once at least one chunk has settled (a rate needs something to count).
        if cfg.budget and elapsed > cfg.budget and (seen.done >= min(cfg.expected, batch) or elapsed > 10 * cfg.budget):
            seen.stopped_early = True
            return


def _send_day(pool: list[Sampled], engine: Engine, cfg: CeleryConfig, settings: Settings, seen: _Watched) -> None:
    """Enqueue the planner as beat would, and watch the day go out; where the cores went meanwhile."""
    from workers.celery_app import make_celery

    for w in pool:  # CPU spent starting up is not the send's
        w.sample()
    seen.startup_cpu = sum(w.cpu_s() for w in pool)
    machine_before, sink_before, services_before = psutil.cpu_times(), _cpu_s(cfg.sink_pid), _service_cpu()
    app = make_celery(settings)
    started = time.perf_counter()
    app.send_task("digest.plan_sends", args=[cfg.now.isoformat()], queue=settings.celery_queue)
    _until_settled(pool, engine, cfg, seen, started)
    seen.wall = time.perf_counter() - started
    for w in pool:
        w.sample()
    seen.cores_busy = _busy_cores(machine_before, psutil.cpu_times())
    seen.sink_cores = (_cpu_s(cfg.sink_pid) - sink_before) / max(seen.wall, 1e-9)
    seen.service_cores = _service_cores(services_before, _service_cpu(), seen.wall)


def run(workers: int, cfg: CeleryConfig, engine: Engine) -> CeleryResult:
    """Send the whole day with `workers` worker processes; the delivery table must start empty."""
    settings = cfg.settings.model_copy(update={"celery_queue": f"digest-bench-{uuid.uuid4().hex[:8]}"})
    folder = cfg.folder / f"celery-{workers}"
    folder.mkdir(parents=True, exist_ok=True)
    assert settings.broker_url is not None
    client = redis.Redis.from_url(settings.broker_url)
    _clear_queue(client, settings.celery_queue)
    pool = [Sampled(celery_process.worker(settings, f"w{i + 1}-of-{workers}", folder).start()) for i in range(workers)]
    seen = _Watched()
    try:
        _wait_ready(pool)
        _send_day(pool, engine, cfg, settings, seen)
    finally:
        _clear_queue(client, settings.celery_queue)
        for w in pool:
            # A run cut at its budget stops at once (SIGQUIT): its rows are deleted before the next run.
            w.process.stop(cold=seen.stopped_early, timeout=60)
    return _result(workers, settings.celery_queue, cfg.expected, pool, seen)


def _result(workers: int, queue: str, expected: int, pool: list[Sampled], seen: _Watched) -> CeleryResult:
    sent, wall, done = seen.counts.get("sent", 0), seen.wall, seen.done
    first = seen.first_row or wall
    steady = done / max(1e-9, wall - first) if wall > first else 0.0
    cpu = sum(w.cpu_s() for w in pool) - seen.startup_cpu
    peaks = {f"{w.process.name}:{pid}": mb for w in pool for pid, mb in w.peak.items()}
    problems = {k: v for k, v in seen.counts.items() if k in ("failed", "unknown", "retry")}
    show_logs = problems or (done < expected and not seen.stopped_early)
    return CeleryResult(
        workers=workers,
        queue=queue,
        subscribers=expected,
        settled=done,
        counts=seen.counts,
        digests_sent=sent,
        wall_s=round(wall, 2),
        plan_s_until_first_row=round(first, 2),
        digests_per_s=round(sent / wall, 1),
        subscribers_per_s=round(done / wall, 1),
        steady_subscribers_per_s=round(steady, 1),
        projected_wall_s=round(wall if not seen.stopped_early else first + expected / max(steady, 1e-9), 1),
        stopped_at_budget=seen.stopped_early,
        worker_cpu_s=round(cpu, 2),
        cores_busy=round(seen.cores_busy, 2),
        worker_cores=round(cpu / max(wall, 1e-9), 2),
        sink_cores=round(seen.sink_cores, 2),
        database_cores=round(seen.service_cores.get("database", 0.0), 2),
        broker_cores=round(seen.service_cores.get("broker", 0.0), 2),
        cpu_ms_per_digest=round(1000 * cpu / max(1, sent), 3),
        peak_rss_mb_by_process=peaks,
        peak_rss_mb=max(peaks.values(), default=0.0),
        problems=problems,
        log_tails={w.process.name: w.process.text()[-2000:] for w in pool} if show_logs else {},
    )
