"""The retry policy for temporary delivery failures (its own module: Settings builds one)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

MAX_ATTEMPTS = 5
BACKOFF_BASE = timedelta(minutes=2)
BACKOFF_CAP = timedelta(hours=2)


@dataclass(frozen=True)
class RetryPolicy:
    """How temporary failures are retried: exponential back-off with full jitter, bounded."""

    base: timedelta = BACKOFF_BASE
    cap: timedelta = BACKOFF_CAP
    max_attempts: int = MAX_ATTEMPTS

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """Uniform in [base/4, min(cap, base * 2**(attempt-1))): spread out, never immediate."""
        ceiling = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        jitter: float = (rng or random.Random()).random()
        delay: timedelta = ceiling * jitter
        return max(delay, self.base / 4)


DEFAULT_RETRY = RetryPolicy()
