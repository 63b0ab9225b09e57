"""Tables for delivery schedules: which slot is due at a given instant, in the reader's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from digest.models import Frequency
from digest.schedule import (
    Period,
    Schedule,
    ScheduleError,
    latest_slot,
    period_key,
    previous_slot,
    validate,
    zone,
)

DAILY, WEEKDAYS, WEEKLY = Frequency.DAILY, Frequency.WEEKDAYS, Frequency.WEEKLY


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# Each row: schedule, now, then the latest slot (period, due UTC, local day) and the previous slot's due.
SLOTS = [
    # Daily, UTC. 2026-11-30 is a Monday.
    pytest.param(
        Schedule(DAILY, 8, "UTC"),
        utc(2026, 11, 30, 9),
        "2026-11-30",
        utc(2026, 11, 30, 8),
        date(2026, 11, 30),
        utc(2026, 11, 29, 8),
        id="daily after the hour",
    ),
    pytest.param(
        Schedule(DAILY, 8, "UTC"),
        utc(2026, 11, 30, 8),
        "2026-11-30",
        utc(2026, 11, 30, 8),
        date(2026, 11, 30),
        utc(2026, 11, 29, 8),
        id="daily exactly at the hour",
    ),
    pytest.param(
        Schedule(DAILY, 8, "UTC"),
        utc(2026, 11, 30, 7, 59),
        "2026-11-29",
        utc(2026, 11, 29, 8),
        date(2026, 11, 29),
        utc(2026, 11, 28, 8),
        id="daily before the hour is yesterday",
    ),
    pytest.param(
        Schedule(DAILY, 0, "UTC"),
        utc(2026, 1, 1, 0, 30),
        "2026-01-01",
        utc(2026, 1, 1, 0),
        date(2026, 1, 1),
        utc(2025, 12, 31, 0),
        id="daily at midnight across a new year",
    ),
    pytest.param(
        Schedule(DAILY, 23, "UTC"),
        utc(2026, 3, 1, 22),
        "2026-02-28",
        utc(2026, 2, 28, 23),
        date(2026, 2, 28),
        utc(2026, 2, 27, 23),
        id="daily before the hour on the first of the month",
    ),
    # Weekdays: Saturday and Sunday fall back to Friday.
    pytest.param(
        Schedule(WEEKDAYS, 8, "UTC"),
        utc(2026, 11, 30, 9),
        "2026-11-30",
        utc(2026, 11, 30, 8),
        date(2026, 11, 30),
        utc(2026, 11, 27, 8),
        id="weekdays Monday, previous is Friday",
    ),
    pytest.param(
        Schedule(WEEKDAYS, 8, "UTC"),
        utc(2026, 11, 28, 12),
        "2026-11-27",
        utc(2026, 11, 27, 8),
        date(2026, 11, 27),
        utc(2026, 11, 26, 8),
        id="weekdays Saturday is Friday",
    ),
    pytest.param(
        Schedule(WEEKDAYS, 8, "UTC"),
        utc(2026, 11, 29, 23),
        "2026-11-27",
        utc(2026, 11, 27, 8),
        date(2026, 11, 27),
        utc(2026, 11, 26, 8),
        id="weekdays Sunday is Friday",
    ),
    pytest.param(
        Schedule(WEEKDAYS, 8, "UTC"),
        utc(2026, 11, 30, 7),
        "2026-11-27",
        utc(2026, 11, 27, 8),
        date(2026, 11, 27),
        utc(2026, 11, 26, 8),
        id="weekdays Monday before the hour is Friday",
    ),
    pytest.param(
        Schedule(WEEKDAYS, 8, "UTC"),
        utc(2026, 12, 2, 9),
        "2026-12-02",
        utc(2026, 12, 2, 8),
        date(2026, 12, 2),
        utc(2026, 12, 1, 8),
        id="weekdays Wednesday",
    ),
    # Weekly: ISO week keys.
    pytest.param(
        Schedule(WEEKLY, 8, "UTC"),
        utc(2026, 11, 30, 9),
        "2026-W49",
        utc(2026, 11, 30, 8),
        date(2026, 11, 30),
        utc(2026, 11, 23, 8),
        id="weekly Monday on the day",
    ),
    pytest.param(
        Schedule(WEEKLY, 8, "UTC"),
        utc(2026, 11, 30, 7),
        "2026-W48",
        utc(2026, 11, 23, 8),
        date(2026, 11, 23),
        utc(2026, 11, 16, 8),
        id="weekly Monday before the hour is last week",
    ),
    pytest.param(
        Schedule(WEEKLY, 8, "UTC", weekly_day=2),
        utc(2026, 11, 30, 9),
        "2026-W48",
        utc(2026, 11, 25, 8),
        date(2026, 11, 25),
        utc(2026, 11, 18, 8),
        id="weekly Wednesday seen on a Monday",
    ),
    pytest.param(
        Schedule(WEEKLY, 18, "UTC", weekly_day=6),
        utc(2026, 12, 6, 18),
        "2026-W49",
        utc(2026, 12, 6, 18),
        date(2026, 12, 6),
        utc(2026, 11, 29, 18),
        id="weekly Sunday belongs to its ISO week",
    ),
    pytest.param(
        Schedule(WEEKLY, 8, "UTC", weekly_day=3),
        utc(2027, 1, 2, 12),
        "2026-W53",
        utc(2026, 12, 31, 8),
        date(2026, 12, 31),
        utc(2026, 12, 24, 8),
        id="weekly ISO week 53",
    ),
    pytest.param(
        Schedule(WEEKLY, 8, "UTC", weekly_day=4),
        utc(2027, 1, 2, 12),
        "2026-W53",
        utc(2027, 1, 1, 8),
        date(2027, 1, 1),
        utc(2026, 12, 25, 8),
        id="weekly ISO year differs from calendar year",
    ),
    # Time zones: Tokyo 08:00 is 23:00 UTC the day before.
    pytest.param(
        Schedule(DAILY, 8, "Asia/Tokyo"),
        utc(2026, 11, 30, 9),
        "2026-11-30",
        utc(2026, 11, 29, 23),
        date(2026, 11, 30),
        utc(2026, 11, 28, 23),
        id="Tokyo daily",
    ),
    pytest.param(
        Schedule(DAILY, 8, "Asia/Tokyo"),
        utc(2026, 11, 29, 22, 59),
        "2026-11-29",
        utc(2026, 11, 28, 23),
        date(2026, 11, 29),
        utc(2026, 11, 27, 23),
        id="Tokyo a minute before its hour",
    ),
    pytest.param(
        Schedule(WEEKDAYS, 8, "Asia/Tokyo"),
        utc(2026, 11, 29, 23, 30),
        "2026-11-30",
        utc(2026, 11, 29, 23),
        date(2026, 11, 30),
        utc(2026, 11, 26, 23),
        id="Tokyo Monday while it is still Sunday in UTC",
    ),
    pytest.param(
        Schedule(DAILY, 20, "America/Los_Angeles"),
        utc(2026, 12, 1, 4, 30),
        "2026-11-30",
        utc(2026, 12, 1, 4),
        date(2026, 11, 30),
        utc(2026, 11, 30, 4),
        id="Los Angeles evening is the next UTC day",
    ),
    # New York across DST: spring forward 2026-03-08, fall back 2026-11-01.
    pytest.param(
        Schedule(DAILY, 8, "America/New_York"),
        utc(2026, 3, 8, 15),
        "2026-03-08",
        utc(2026, 3, 8, 12),
        date(2026, 3, 8),
        utc(2026, 3, 7, 13),
        id="New York spring forward",
    ),
    pytest.param(
        Schedule(DAILY, 8, "America/New_York"),
        utc(2026, 3, 8, 12, 30),
        "2026-03-08",
        utc(2026, 3, 8, 12),
        date(2026, 3, 8),
        utc(2026, 3, 7, 13),
        id="New York spring forward, due an hour earlier in UTC",
    ),
    pytest.param(
        Schedule(DAILY, 8, "America/New_York"),
        utc(2026, 11, 1, 15),
        "2026-11-01",
        utc(2026, 11, 1, 13),
        date(2026, 11, 1),
        utc(2026, 10, 31, 12),
        id="New York fall back",
    ),
    pytest.param(
        Schedule(DAILY, 8, "America/New_York"),
        utc(2026, 11, 1, 12, 30),
        "2026-10-31",
        utc(2026, 10, 31, 12),
        date(2026, 10, 31),
        utc(2026, 10, 30, 12),
        id="New York fall back, not yet due an hour later in UTC",
    ),
    pytest.param(
        Schedule(WEEKLY, 9, "Europe/Paris", weekly_day=0),
        utc(2026, 3, 30, 12),
        "2026-W14",
        utc(2026, 3, 30, 7),
        date(2026, 3, 30),
        utc(2026, 3, 23, 8),
        id="Paris weekly across the EU change",
    ),
]


@pytest.mark.parametrize(("schedule", "now", "period", "due", "local_day", "previous_due"), SLOTS)
def test_slots(
    schedule: Schedule, now: datetime, period: str, due: datetime, local_day: date, previous_due: datetime
) -> None:
    latest = latest_slot(schedule, now)
    assert (latest.period, latest.due, latest.local_day) == (period, due, local_day)
    assert latest.due.tzinfo is UTC
    previous = previous_slot(schedule, now)
    assert previous.due == previous_due
    assert previous.due < latest.due <= now


@pytest.mark.parametrize(
    ("frequency", "day", "expected"),
    [
        (DAILY, date(2026, 11, 29), "2026-11-29"),
        (WEEKDAYS, date(2026, 11, 27), "2026-11-27"),
        (WEEKLY, date(2026, 11, 30), "2026-W49"),
        (WEEKLY, date(2026, 12, 6), "2026-W49"),
        (WEEKLY, date(2026, 12, 7), "2026-W50"),
        (WEEKLY, date(2026, 1, 5), "2026-W02"),
        (WEEKLY, date(2026, 1, 1), "2026-W01"),
        (WEEKLY, date(2025, 12, 29), "2026-W01"),
        (WEEKLY, date(2027, 1, 3), "2026-W53"),
        (WEEKLY, date(2027, 1, 4), "2027-W01"),
    ],
)
def test_period_key(frequency: Frequency, day: date, expected: str) -> None:
    period = period_key(frequency, day)
    assert period == expected
    assert period.weekly is (frequency is WEEKLY)
    assert period.length == timedelta(days=7 if frequency is WEEKLY else 1)


@pytest.mark.parametrize(("key", "weekly"), [("2026-W49", True), ("2026-12-01", False), ("2027-W01", True)])
def test_a_stored_period_key_knows_whether_it_is_a_week(key: str, weekly: bool) -> None:
    assert Period(key).weekly is weekly


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "Not A Zone", "../etc/passwd", "Europe/Nowhere"])
def test_unknown_time_zone(name: str) -> None:
    with pytest.raises(ScheduleError, match="unknown time zone"):
        zone(name)
    with pytest.raises(ScheduleError, match="unknown time zone"):
        latest_slot(Schedule(DAILY, 8, name), utc(2026, 11, 30, 9))
    with pytest.raises(ScheduleError, match="unknown time zone"):
        validate(Schedule(DAILY, 8, name))


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (Schedule(DAILY, 24, "UTC"), "send hour must be between 0 and 23"),
        (Schedule(DAILY, -1, "UTC"), "send hour must be between 0 and 23"),
        (Schedule(WEEKLY, 8, "UTC", weekly_day=7), "weekly day must be 0"),
        (Schedule(WEEKLY, 8, "UTC", weekly_day=-1), "weekly day must be 0"),
        (Schedule(DAILY, 8, "Nowhere/City"), "unknown time zone 'Nowhere/City'"),
    ],
)
def test_validate_rejects(schedule: Schedule, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        validate(schedule)


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule(DAILY, 0, "UTC"),
        Schedule(DAILY, 23, "Asia/Tokyo"),
        Schedule(WEEKDAYS, 8, "America/New_York"),
        Schedule(WEEKLY, 8, "Europe/Paris", weekly_day=6),
    ],
)
def test_validate_accepts(schedule: Schedule) -> None:
    validate(schedule)  # raises ScheduleError if refused
