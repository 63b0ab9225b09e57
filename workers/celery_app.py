"""Builds the Celery app from Settings. Nothing else lives here."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from digest import logs
from digest.config import Settings, links_in_clear
from digest.secret import SecretError, ensure_secret
from workers.beat import beat_schedule

log = logging.getLogger(__name__)

# Tasks must finish well inside the broker's visibility timeout, or Redis would hand an
# unacknowledged message to a second worker while the first is still working on it.
VISIBILITY_TIMEOUT = 60 * 60
TASK_TIME_LIMIT = 30 * 60
TASK_SOFT_TIME_LIMIT = 25 * 60
BEAT_MAX_LOOP = 5  # seconds between beat wake-ups
BEAT_LOCK_TIMEOUT = 30  # a dead beat's lock expires after this; the standby takes over


def make_celery(settings: Settings) -> Celery:
    """The Celery app: JSON only, UTC, late acks, one task prefetched per worker process."""
    broker = settings.celery_broker
    app = Celery("paper_digest", broker=broker, include=["workers.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        timezone="UTC",
        enable_utc=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=TASK_TIME_LIMIT,
        task_soft_time_limit=TASK_SOFT_TIME_LIMIT,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.celery_queue,
        beat_schedule=beat_schedule(settings),
        # RedBeat keeps the schedule in Redis behind a lock: a second beat process waits instead of
        # scheduling everything twice, and takes over if the first one dies.
        beat_scheduler="redbeat.RedBeatScheduler",
        redbeat_redis_url=broker,
        redbeat_key_prefix=f"redbeat:{settings.celery_queue}:",
        redbeat_lock_timeout=BEAT_LOCK_TIMEOUT,
        beat_max_loop_interval=BEAT_MAX_LOOP,
    )
    return app


@signals.setup_logging.connect
def _logging(**_: Any) -> None:
    """Our log format (JSON with DIGEST_LOG_JSON=1, run ids, masked addresses) in workers and beat."""
    settings = Settings()
    logs.configure(settings.log_level, settings.log_json)


@signals.worker_init.connect
@signals.beat_init.connect
def _refuse_a_weak_key(**_: Any) -> None:
    """A worker or beat never starts with a key anyone could forge links with (one line, exit 1),
    and says once when the links it mails would travel unencrypted."""
    settings = Settings()
    try:
        ensure_secret(settings)
    except SecretError as exc:
        raise SystemExit(f"error: {exc}") from None
    if warning := links_in_clear(settings.base_url):
        log.warning(warning)


@signals.task_prerun.connect
def _run_id(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Each task is a run: its log lines carry the task id."""
    logs.new_run(getattr(task, "name", "task"), f"task-{task_id}")


app = make_celery(Settings())
