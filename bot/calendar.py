"""School-day and month arithmetic. The school's day and month are local (Asia/Shanghai); the database stores naive UTC."""

from __future__ import annotations

import calendar as _stdlib_calendar
from datetime import UTC, date, datetime, time

from bot.clock import SCHOOL_TZ


def day_start_utc(day: date) -> datetime:
    """Local midnight of ``day`` as naive UTC, the way the database stores times."""
    return datetime.combine(day, time(0), tzinfo=SCHOOL_TZ).astimezone(UTC).replace(tzinfo=None)


def month_start(day: date, back: int = 0) -> date:
    """The 1st of ``day``'s month, ``back`` months earlier (negative: later)."""
    total = day.year * 12 + day.month - 1 - back
    return date(total // 12, total % 12 + 1, 1)


def add_months(day: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (2026-11-30 + 3 → 2027-02-28)."""
    first = month_start(day, back=-months)
    return first.replace(day=min(day.day, _stdlib_calendar.monthrange(first.year, first.month)[1]))


def month_bounds_utc(first: date) -> tuple[datetime, datetime]:
    """[start, end) of the local month beginning on ``first``, as naive UTC."""
    return day_start_utc(first), day_start_utc(month_start(first, back=-1))
