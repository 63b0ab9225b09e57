"""The beat schedule: fetch every hour, look for due digests every 15 minutes."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Periodic tasks. Run exactly one beat process for the whole deployment."""
    return {
        "fetch-sources-hourly": {"task": "digest.fetch_sources", "schedule": crontab(minute="5")},
        # Every 15 minutes: readers whose local send time has passed and who have no delivery for
        # their current period get one, so a worker that was down at 08:00 still sends when back.
        "plan-sends-quarter-hourly": {"task": "digest.plan_sends", "schedule": crontab(minute="*/15")},
        # The web app prompts this at once; the sweep catches anything a lost prompt left behind.
        "send-notices-every-minute": {"task": "digest.send_notices", "schedule": crontab()},
        "cleanup-pending-daily": {"task": "digest.cleanup_pending", "schedule": crontab(minute="30", hour="3")},
    }
