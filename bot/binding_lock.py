"""Lockout after too many wrong binding attempts, per card and per openid, in Redis.

A try is *reserved* (atomic HINCRBY in a Lua script) before the password is checked, so however many
wrong attempts arrive at once, at most ``max_failures`` passwords are ever checked in one lockout window.
A correct answer clears the counters. Nothing about the password itself is kept here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import SCHOOL_TZ
from bot.services import Services

# KEYS[1] counter hash; ARGV: max_failures, until (unix seconds if this try is the last), window seconds.
_RESERVE = """
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if n == tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'until', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {n, redis.call('HGET', KEYS[1], 'until')}
"""


@dataclass(frozen=True)
class Attempt:
    """The outcome of reserving a try: ``allowed`` False means locked, ``left`` tries remain after this one."""

    allowed: bool
    left: int
    until: datetime | None


class BindingLock:
    def __init__(self, services: Services) -> None:
        self.svc = services
        self.store = services.store
        self.max = services.cfg.binding.max_failures
        self.window = services.cfg.binding.lockout_minutes * 60
        self._reserve = self.store.r.register_script(_RESERVE)

    def _k(self, subject: str) -> str:
        return self.store.key("bindfail", subject)

    @staticmethod
    def card_subject(student_no: str) -> str:
        """Keyed by the number typed, so an unknown number counts exactly like a real one (no existence oracle)."""
        return f"card:{student_no}"

    @staticmethod
    def openid_subject(openid: str) -> str:
        return f"openid:{openid}"

    def _until(self, raw: str | None) -> datetime:
        if raw:
            return datetime.fromtimestamp(int(raw), SCHOOL_TZ)
        return self.svc.clock.now() + timedelta(seconds=self.window)

    def locked_until(self, *subjects: str) -> datetime | None:
        """The latest lock end among ``subjects``, or None when none is locked (reserves nothing)."""
        ends = []
        for subject in subjects:
            n, until = self.store.r.hmget(self._k(subject), "n", "until")
            if n is not None and int(n) >= self.max:
                ends.append(self._until(until))
        return max(ends) if ends else None

    def reserve(self, *subjects: str) -> Attempt:
        """Take one try on every subject; refused when any of them has none left."""
        until_ts = str(int((self.svc.clock.now() + timedelta(seconds=self.window)).timestamp()))
        worst_n, ends = 0, []
        for subject in subjects:
            n, until = self._reserve(keys=[self._k(subject)], args=[self.max, until_ts, self.window])
            n = int(n)
            worst_n = max(worst_n, n)
            if n >= self.max:
                ends.append(self._until(until))
        if worst_n > self.max:
            return Attempt(False, 0, max(ends))
        return Attempt(True, self.max - worst_n, max(ends) if ends else None)

    def clear(self, *subjects: str) -> None:
        self.store.r.delete(*(self._k(s) for s in subjects))
