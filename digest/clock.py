"""The one place the wall clock is read. The core takes `now` as a parameter; the edges (the CLI,
the Celery tasks, the web app) call `utcnow` and pass it down."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, aware, in UTC (only the edges call this)."""
    return datetime.now(UTC)
