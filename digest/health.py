"""What operators look at: each source's health and the recent delivery counts (`digest status`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from digest.config import Settings
from digest.models import Delivery, Notice, SourceState, Suppression


@dataclass(frozen=True)
class SourceHealth:
    name: str
    last_success: datetime | None
    last_error: str | None
    consecutive_failures: int
    flagged: bool


@dataclass(frozen=True)
class Status:
    sources: list[SourceHealth]
    deliveries: Counter[str]
    notices: Counter[str]
    suppressed: int
    suppressed_recently: int


def source_health(session: Session, settings: Settings) -> list[SourceHealth]:
    """Every configured source (and any with history), flagged after N failed runs in a row."""
    states = {s.name: s for s in session.exec(select(SourceState))}
    names = [s.name for s in settings.sources] + sorted(set(states) - {s.name for s in settings.sources})
    out = []
    for name in names:
        state = states.get(name) or SourceState(name=name)
        failures = state.consecutive_failures
        out.append(
            SourceHealth(
                name, state.last_success, state.last_error, failures, failures >= settings.source_alert_failures
            )
        )
    return out


def _counts(session: Session, table: type[Delivery] | type[Notice], since: datetime) -> Counter[str]:
    query = sa_select(col(table.status), func.count()).where(col(table.created_at) >= since).group_by(col(table.status))
    return Counter({str(status): int(n) for status, n in session.execute(query)})


def status(session: Session, settings: Settings, now: datetime, window: timedelta = timedelta(hours=24)) -> Status:
    """Sources, and what happened to the deliveries and notices created in the last `window`."""
    since = now - window
    total = session.execute(sa_select(func.count()).select_from(Suppression)).scalar_one()
    recent = session.execute(
        sa_select(func.count()).select_from(Suppression).where(col(Suppression.created_at) >= since)
    ).scalar_one()
    return Status(
        sources=source_health(session, settings),
        deliveries=_counts(session, Delivery, since),
        notices=_counts(session, Notice, since),
        suppressed=int(total),
        suppressed_recently=int(recent),
    )
