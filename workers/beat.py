"""The beat schedule: fetch hourly, embed what a fetch left unembedded hourly, plan digests every 15
minutes, sweep and send notices every minute, clean up daily (unconfirmed sign-ups, old digests)."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab, schedule

from digest.config import Settings


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Periodic tasks. RedBeat's lock keeps exactly one beat process scheduling them."""
    if settings.beat_every_seconds:  # tests and tiny deployments: everything on one short interval
        every = schedule(settings.beat_every_seconds)
        return {name: {"task": task, "schedule": every} for name, task in TASKS.items()}
    return {
        "fetch-sources-hourly": {"task": "digest.fetch_sources", "schedule": crontab(minute="5")},
        # Each fetch that stores papers queues their embedding; this catches a lost message or a
        # worker that died mid-way.
        "embed-papers-hourly": {"task": "digest.embed_papers", "schedule": crontab(minute="35")},
        # Every 15 minutes: readers whose local send time has passed and who have no delivery for
        # their current period get one, so a worker that was down at 08:00 still sends when back.
        "plan-sends-quarter-hourly": {"task": "digest.plan_sends", "schedule": crontab(minute="*/15")},
        "sweep-every-minute": {"task": "digest.sweep", "schedule": crontab()},
        # The web app prompts this at once; the sweep catches anything a lost prompt left behind.
        "send-notices-every-minute": {"task": "digest.send_notices", "schedule": crontab()},
        "cleanup-pending-daily": {"task": "digest.cleanup_pending", "schedule": crontab(minute="30", hour="3")},
    }


TASKS = {
    "fetch-sources-hourly": "digest.fetch_sources",
    "embed-papers-hourly": "digest.embed_papers",
    "plan-sends-quarter-hourly": "digest.plan_sends",
    "sweep-every-minute": "digest.sweep",
    "send-notices-every-minute": "digest.send_notices",
    "cleanup-pending-daily": "digest.cleanup_pending",
}
