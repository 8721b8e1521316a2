"""The school's wall clock (Asia/Shanghai). Tests and the simulator may freeze or shift it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

SCHOOL_TZ = ZoneInfo("Asia/Shanghai")


class Clock:
    def __init__(self) -> None:
        self._frozen: datetime | None = None
        self._offset = timedelta()

    def now(self) -> datetime:
        """Aware local time."""
        base = self._frozen or datetime.now(SCHOOL_TZ)
        return (base + self._offset).astimezone(SCHOOL_TZ)

    def utcnow(self) -> datetime:
        """Naive UTC, as stored in the database."""
        return self.now().astimezone(UTC).replace(tzinfo=None)

    def today(self) -> date:
        return self.now().date()

    def freeze(self, at: datetime | None) -> None:
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=SCHOOL_TZ)
        self._frozen = at
        self._offset = timedelta()

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def shift(self, delta: timedelta) -> None:
        self._offset += delta


def to_local(naive_utc: datetime) -> datetime:
    return naive_utc.replace(tzinfo=UTC).astimezone(SCHOOL_TZ)
