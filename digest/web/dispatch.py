"""Getting queued notices sent without ever sending inside a web request.

With a broker, a Celery task is prompted (and beat sweeps every minute anyway). Without one, a
background thread in the web process drains the queue: prompted at once, and every 30 s."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from celery import Celery
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.db import open_session
from digest.notices import send_notices
from digest.send import make_transport

log = logging.getLogger(__name__)


class NoticeThread:
    """Sends queued notices from a daemon thread of the web process (the embedded, broker-less mode)."""

    def __init__(self, settings: Settings, engine: Engine, clock: Callable[[], datetime], every: float = 30.0) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.every = every
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="notice-sender", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        self.thread.join(timeout=10)

    def kick(self) -> None:
        """Ask for a pass now (called after a request commits a notice)."""
        self.wake.set()

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(self.every)
            self.wake.clear()
            if self.stopping.is_set():
                return
            try:
                with open_session(self.engine) as session:
                    send_notices(session, self.settings, make_transport(self.settings), self.clock(), self.clock)
            except Exception:  # keep the thread alive: the next pass retries what is due
                log.exception("sending notices failed")


SEND_NOTICES = "digest.send_notices"  # the worker's task (workers/tasks.py), sent by name


def celery_client(settings: Settings) -> Celery:
    """A Celery app that only sends: JSON messages onto the workers' queue (no import of workers.*)."""
    # The same broker fallback as workers/celery_app.py: without a broker URL, the local Redis.
    client = Celery("paper_digest", broker=settings.celery_broker, set_as_current=False)
    client.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.celery_queue,
    )
    return client


def celery_kick(settings: Settings) -> Callable[[], None]:
    """A kick that enqueues the `digest.send_notices` task (best effort; beat sweeps anyway)."""
    client = celery_client(settings)

    def kick() -> None:
        try:
            client.send_task(SEND_NOTICES, retry=False)
        except Exception as exc:
            log.warning("could not enqueue %s (beat will pick it up): %s", SEND_NOTICES, exc)

    return kick


TRAIN_READER = "digest.train_reader"  # the worker's task that retrains one reader's ranking, by name


def reader_trainer(settings: Settings) -> Callable[[int], None]:
    """What the web app calls after a reader's votes change: with a broker, enqueue
    `digest.train_reader` for them (best effort); without one, nothing — the send run retrains
    stale models itself."""
    if not settings.broker_url:
        return lambda _subscriber_id: None
    client = celery_client(settings)

    def train(subscriber_id: int) -> None:
        try:
            client.send_task(TRAIN_READER, args=[subscriber_id], retry=False)
        except Exception as exc:
            log.warning("could not enqueue %s (the send run retrains stale models): %s", TRAIN_READER, exc)

    return train
