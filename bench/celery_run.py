"""The end-to-end send through real Celery worker processes on the real Redis.

Workers are started the way tests/harness.py starts them (`celery -A workers.celery_app worker`,
configured only through DIGEST_* variables), on a queue of their own, in a dedicated Redis db.
The run is the production path: `digest.plan_sends` pages through the readers and fans out
`digest.send_digests` chunks; we watch the delivery table until every reader has a settled row.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine

from digest.config import PROJECT_ROOT
from digest.models import Delivery

TERMINAL = ("sent", "empty", "failed", "unknown", "skipped")


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
class Worker:
    """One `celery worker -c 1` process (a main process and one pool child)."""

    name: str
    env: dict[str, str]
    folder: Path
    popen: subprocess.Popen[bytes] | None = None
    peak: dict[int, float] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    def start(self) -> Worker:
        queue = self.env["DIGEST_CELERY_QUEUE"]
        args = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", queue, "-c", "1"]
        args += ["--loglevel=INFO", "--without-mingle", "--without-gossip", "-n", f"{self.name}-{queue}@%h"]
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(args, cwd=self.folder, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def ready(self) -> bool:
        if self.popen is not None and self.popen.poll() is not None:
            raise RuntimeError(f"worker {self.name} exited: {self.log.read_text()[-3000:]}")
        return " ready." in self.log.read_text(errors="replace")

    def processes(self) -> list[psutil.Process]:
        if self.popen is None:
            return []
        try:
            main = psutil.Process(self.popen.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def sample(self) -> None:
        """Remember each process's peak RSS and CPU so far (read again right before stopping)."""
        for proc in self.processes():
            try:
                times = proc.cpu_times()
                self.cpu[proc.pid] = times.user + times.system
                self.peak[proc.pid] = max(self.peak.get(proc.pid, 0.0), _hwm_mb(proc.pid))
            except psutil.NoSuchProcess:
                continue

    def stop(self, *, cold: bool = False, timeout: float = 60) -> None:
        """Warm shutdown (SIGTERM: the running chunk finishes), or cold (SIGQUIT: at once) when a run
        was cut at its time budget: its rows are deleted before the next run anyway."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGQUIT if cold else signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for proc in self.processes()[1:]:
                proc.kill()
            self.popen.kill()
            self.popen.wait(timeout=10)


def worker_env(database_url: str, broker_url: str, queue: str, smtp_url: str, batch_size: int) -> dict[str, str]:
    """The DIGEST_* environment the workers share (no .env: they run in the bench's work folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        DIGEST_DATABASE_URL=database_url,
        DIGEST_BROKER_URL=broker_url,
        DIGEST_CELERY_QUEUE=queue,
        DIGEST_SMTP_URL=smtp_url,
        DIGEST_SMTP_CONNECTIONS="4",
        DIGEST_FROM="Paper Digest <digest@example.org>",
        DIGEST_BASE_URL="https://digest.example.org",
        DIGEST_SECRET_KEY="bench-secret-key",
        DIGEST_SOURCES="[]",
        DIGEST_SEND_BATCH_SIZE=str(batch_size),
        PYTHONPATH=str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far; 0 if there is none."""
    if pid is None:
        return 0.0
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


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


def run(
    workers: int,
    *,
    engine: Engine,
    database_url: str,
    broker_url: str,
    smtp_url: str,
    now_iso: str,
    expected: int,
    folder: Path,
    budget: float,
    batch_size: int = 200,
    sink_pid: int | None = None,
) -> dict[str, Any]:
    """Send the whole day with `workers` worker processes; the delivery table must start empty."""
    from digest.config import Settings
    from workers.celery_app import make_celery

    queue = f"digest-bench-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    env = worker_env(database_url, broker_url, queue, smtp_url, batch_size)
    client = redis.Redis.from_url(broker_url)
    _clear_queue(client, queue)
    pool = [Worker(f"w{i + 1}-of-{workers}", env, folder).start() for i in range(workers)]
    stopped_early = False
    startup_cpu = 0.0
    try:
        deadline = time.monotonic() + 90
        while not all(w.ready() for w in pool):
            if time.monotonic() > deadline:
                raise RuntimeError("celery workers did not become ready in 90 s")
            time.sleep(0.2)
        for w in pool:  # CPU spent starting up is not the send's
            w.sample()
        startup_cpu = sum(sum(w.cpu.values()) for w in pool)
        machine_before, sink_before = psutil.cpu_times(), _cpu_s(sink_pid)
        app = make_celery(Settings(_env_file=None, broker_url=broker_url, celery_queue=queue, sources=[]))
        started = time.perf_counter()
        app.send_task("digest.plan_sends", args=[now_iso], queue=queue)
        first_row: float | None = None
        done, counts = 0, dict[str, int]()
        while True:
            time.sleep(1.0)  # each look is a GROUP BY over the day's rows: keep the watcher's CPU small
            counts = _counts(engine)
            elapsed = time.perf_counter() - started
            if first_row is None and any(counts.values()):
                first_row = elapsed
            done = sum(counts.get(s, 0) for s in TERMINAL)
            for w in pool:
                w.sample()
            if done >= expected:
                break
            # Past the budget, stop once at least one chunk has settled (a rate needs something to count).
            if budget and elapsed > budget and (done >= min(expected, batch_size) or elapsed > 10 * budget):
                stopped_early = True
                break
        wall = time.perf_counter() - started
        for w in pool:
            w.sample()
        machine = _busy_cores(machine_before, psutil.cpu_times())
        sink_cores = (_cpu_s(sink_pid) - sink_before) / max(wall, 1e-9)
    finally:
        _clear_queue(client, queue)
        for w in pool:
            w.stop(cold=stopped_early)
        app_logs = {w.name: w.log.read_text(errors="replace")[-2000:] for w in pool}
    sent = counts.get("sent", 0)
    first = first_row or wall
    steady = done / max(1e-9, wall - first) if wall > first else 0.0
    projected = wall if not stopped_early else first + expected / max(steady, 1e-9)
    cpu = sum(sum(w.cpu.values()) for w in pool) - startup_cpu
    peaks = {f"{w.name}:{pid}": mb for w in pool for pid, mb in w.peak.items()}
    failed = {k: v for k, v in counts.items() if k in ("failed", "unknown", "retry")}
    return {
        "workers": workers,
        "queue": queue,
        "subscribers": expected,
        "settled": done,
        "counts": counts,
        "digests_sent": sent,
        "wall_s": round(wall, 2),
        "plan_s_until_first_row": round(first, 2),
        "digests_per_s": round(sent / wall, 1),
        "subscribers_per_s": round(done / wall, 1),
        "steady_subscribers_per_s": round(steady, 1),
        "projected_wall_s": round(projected, 1),
        "stopped_at_budget": stopped_early,
        "worker_cpu_s": round(cpu, 2),
        # Where the machine's cores went while the run lasted: the workers, smtp-sink, the rest.
        "cores_busy": round(machine, 2),
        "worker_cores": round(cpu / max(wall, 1e-9), 2),
        "sink_cores": round(sink_cores, 2),
        "cpu_ms_per_digest": round(1000 * cpu / max(1, sent), 3),
        "peak_rss_mb_by_process": peaks,
        "peak_rss_mb": max(peaks.values(), default=0.0),
        "problems": failed,
        "log_tails": app_logs if failed or (done < expected and not stopped_early) else {},
    }


if __name__ == "__main__":  # a manual run against an already generated database
    print(json.dumps({"usage": "python -m bench (this module is driven by bench.run)"}))
