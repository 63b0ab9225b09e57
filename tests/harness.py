"""What the fault-injection tests need besides the Celery processes (bench/celery_process.py starts
those, for the tests and the benchmark alike): a private redis-server, polling, and the invariant
every scenario ends with (every active reader: one message, or one unknown/failed row)."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from digest.config import PROJECT_ROOT
from digest.db import open_session
from digest.models import Delivery, DeliveryStatus, Subscriber, SubscriberStatus
from tests.smtpserver import SmtpServer

RESULTS = PROJECT_ROOT / "test-output" / "delivery-results.jsonl"
TERMINAL = {
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.UNKNOWN,
    DeliveryStatus.EMPTY,
    DeliveryStatus.SKIPPED,
}


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120.0, every: float = 0.25) -> None:
    """Poll until `check()` is true, or fail the test naming what never happened."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


@dataclass
class RedisServer:
    """A private redis-server on a spare port, which a test may stop and start again."""

    port: int
    folder: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.folder)]
        self.popen = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("redis-server to answer", self.answers, timeout=20)
        return self

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Stop it hard: everything queued in it is lost, as in a crash without persistence."""
        if self.popen is not None:
            self.popen.kill()
            self.popen.wait(timeout=10)
            self.popen = None


@dataclass
class Figures:
    """What one scenario delivered, for the results file the README links."""

    scenario: str
    readers: int
    expected: int = 0
    delivered: int = 0
    duplicated: int = 0
    lost: int = 0
    unknown: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)


def invariant(engine: Engine, smtp: SmtpServer, scenario: str) -> Figures:
    """Every reader active at the end (or suppressed by a bounce during it): exactly one message,
    or none and exactly one `unknown` or `failed` row with a reason; an `unknown` row may also have
    arrived (the body went out). No address gets two messages; one row per (reader, period)."""
    received = Counter(r for m in smtp.messages for r in m.rcpt_tos)
    with open_session(engine) as session:
        # Hard-bounced readers were active when the run began: they must end with one `failed` row.
        wanted = [SubscriberStatus.ACTIVE, SubscriberStatus.SUPPRESSED]
        subs = list(session.exec(select(Subscriber).where(col(Subscriber.status).in_(wanted))))
        rows = list(session.exec(select(Delivery)))
    by_sub: dict[int, list[Delivery]] = {}
    for row in rows:
        by_sub.setdefault(row.subscriber_id, []).append(row)
    figures = Figures(scenario, readers=len(subs), expected=len(subs))
    for sub in subs:
        assert sub.id is not None
        mine = by_sub.get(sub.id, [])
        got = received.get(sub.email, 0)
        figures.duplicated += max(0, got - 1)
        statuses = [r.status for r in mine]
        if got >= 1 and statuses in ([DeliveryStatus.SENT], [DeliveryStatus.UNKNOWN]):
            figures.delivered += 1
            figures.unknown += statuses == [DeliveryStatus.UNKNOWN]
        elif got == 0 and len(mine) == 1 and mine[0].status in (DeliveryStatus.UNKNOWN, DeliveryStatus.FAILED):
            assert mine[0].error, f"{sub.email}: {mine[0].status} without a reason"
            figures.unknown += mine[0].status is DeliveryStatus.UNKNOWN
            figures.failed += mine[0].status is DeliveryStatus.FAILED
        else:
            figures.lost += 1
            figures.notes.append(f"{sub.email}: {got} messages, rows {[(r.period, r.status.value) for r in mine]}")
    _record(figures)
    return figures


def all_settled(engine: Engine) -> bool:
    """No delivery row is still pending, retrying or being sent."""
    with open_session(engine) as session:
        return all(row.status in TERMINAL for row in session.exec(select(Delivery)))


def _record(figures: Figures) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(asdict(figures)) + "\n")
