"""When a reader's digest is due: pure functions of their schedule and `now`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.models import Frequency


class ScheduleError(ValueError):
    """An invalid time zone or hour."""


@dataclass(frozen=True)
class Schedule:
    """A reader's delivery schedule."""

    frequency: Frequency
    send_hour: int
    timezone: str
    weekly_day: int = 0


class Period(str):
    """A delivery period's key, as stored: `2026-11-29` (one day) or `2026-W48` (one ISO week)."""

    __slots__ = ()

    @property
    def weekly(self) -> bool:
        """Whether this period is a week."""
        return self[4:6] == "-W"

    @property
    def length(self) -> timedelta:
        """How long the period lasts: past it, its digest is no longer worth sending."""
        return timedelta(days=7 if self.weekly else 1)


@dataclass(frozen=True)
class Slot:
    """One scheduled send: its period, the UTC instant it was due, and the local day."""

    period: Period
    due: datetime
    local_day: date


def zone(name: str) -> ZoneInfo:
    """The IANA time zone, or ScheduleError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {name!r} (use an IANA name like Europe/Paris)") from exc


def validate(schedule: Schedule) -> None:
    """Raise ScheduleError if the schedule cannot be used."""
    zone(schedule.timezone)
    if not 0 <= schedule.send_hour <= 23:
        raise ScheduleError("send hour must be between 0 and 23")
    if not 0 <= schedule.weekly_day <= 6:
        raise ScheduleError("weekly day must be 0 (Monday) to 6 (Sunday)")


def _sends_on(schedule: Schedule, day: date) -> bool:
    if schedule.frequency is Frequency.WEEKDAYS:
        return day.weekday() < 5
    if schedule.frequency is Frequency.WEEKLY:
        return day.weekday() == schedule.weekly_day
    return True


def period_key(frequency: Frequency, day: date) -> Period:
    """`2026-11-29` for daily and weekday digests, `2026-W48` for weekly ones."""
    if frequency is Frequency.WEEKLY:
        year, week, _ = day.isocalendar()
        return Period(f"{year}-W{week:02d}")
    return Period(day.isoformat())


def _slots_before(schedule: Schedule, now: datetime, skip: int = 0) -> Slot:
    tz = zone(schedule.timezone)
    today = now.astimezone(tz).date()
    found = 0
    for back in range(0, 15):
        day = today - timedelta(days=back)
        due = datetime.combine(day, time(schedule.send_hour), tzinfo=tz).astimezone(UTC)
        if due > now or not _sends_on(schedule, day):
            continue
        if found == skip:
            return Slot(period_key(schedule.frequency, day), due, day)
        found += 1
    raise ScheduleError("no send day in the last two weeks")  # unreachable for valid schedules


def latest_slot(schedule: Schedule, now: datetime) -> Slot:
    """The most recent scheduled send at or before `now` (a missed one is still due)."""
    return _slots_before(schedule, now)


def previous_slot(schedule: Schedule, now: datetime) -> Slot:
    """The scheduled send before the latest one: where a first digest's window starts."""
    return _slots_before(schedule, now, skip=1)


def slot_back(schedule: Schedule, now: datetime, n: int) -> Slot:
    """The slot `n` sends before the latest one (0 is the latest)."""
    return _slots_before(schedule, now, skip=n)
