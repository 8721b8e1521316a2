"""Lockout after too many wrong card passwords, in Redis: per WeChat account and, higher, per card.

Wrong passwords lock the account that sent them (``max_failures``), so a stranger cannot lock the owner out.
Guessing one card from many accounts meets the per-card limit (``card_max_failures``), which locks the card for
everyone until it runs out or ``cardbot binding unlock`` lifts it; its owners are told by the caller.

A try is *reserved* (atomic HINCRBY in a Lua script) before the password is checked, so however many wrong
attempts arrive at once, at most the limit's passwords are ever checked in one window. A correct password
clears the account's counter but only gives its own try back to the card: the wrong ones stay counted, or a
guesser could reset the card's counter with one bound account. Nothing about the password itself is kept here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import SCHOOL_TZ
from bot.runtime import Runtime

# KEYS[1] counter hash; ARGV: max, until (unix seconds if this try is the last), window seconds.
_RESERVE = """
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if n == tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'until', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return {n, redis.call('HGET', KEYS[1], 'until')}
"""
# KEYS[1] counter hash: give one try back, unless the window ended meanwhile (never a counter without a TTL).
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HINCRBY', KEYS[1], 'n', -1) end
return 0
"""


@dataclass(frozen=True)
class Lock:
    until: datetime
    card: bool  # the card is locked (guessing from many accounts), not only this account


@dataclass(frozen=True)
class Attempt:
    """A reserved try: ``allowed`` False means refused unchecked; ``left`` tries remain after this one.

    ``lock`` is set when this try used the last one; ``card_tripped`` when it locked the card (tell its owners).
    """

    allowed: bool
    left: int
    lock: Lock | None
    card_tripped: bool = False


class BindingLock:
    def __init__(self, services: Runtime) -> None:
        cfg = services.cfg.binding
        self.svc = services
        self.store = services.store
        self.limits = {
            "openid": (cfg.max_failures, cfg.lockout_minutes * 60),
            "card": (cfg.card_max_failures, cfg.card_lockout_minutes * 60),
        }
        self._reserve = self.store.r.register_script(_RESERVE)
        self._give_back = self.store.r.register_script(_GIVE_BACK)

    def _k(self, kind: str, subject: str) -> str:
        """Cards are keyed by the number typed, so an unknown number counts exactly like a real one (no oracle)."""
        return self.store.key("bindfail", f"{kind}:{subject}")

    def _until(self, kind: str, raw: str | None) -> datetime:
        if raw:
            return datetime.fromtimestamp(int(raw), SCHOOL_TZ)
        return self.svc.clock.now() + timedelta(seconds=self.limits[kind][1])

    def failures(self, kind: str, subject: str) -> int:
        return int(self.store.r.hget(self._k(kind, subject), "n") or 0)

    def _locked(self, kind: str, subject: str) -> Lock | None:
        n, until = self.store.r.hmget(self._k(kind, subject), "n", "until")
        if n is not None and int(n) >= self.limits[kind][0]:
            return Lock(self._until(kind, str(until) if until is not None else None), card=kind == "card")
        return None

    def locked(self, openid: str, student_no: str | None = None) -> Lock | None:
        """The account's lock, else the card's; None when neither is locked (reserves nothing)."""
        return self._locked("openid", openid) or (self.card_lock(student_no) if student_no else None)

    def card_lock(self, student_no: str) -> Lock | None:
        return self._locked("card", student_no)

    def _take(self, kind: str, subject: str) -> tuple[int, int, Lock | None]:
        limit, window = self.limits[kind]
        until_ts = str(int((self.svc.clock.now() + timedelta(seconds=window)).timestamp()))
        n, until = self._reserve(keys=[self._k(kind, subject)], args=[limit, until_ts, window])
        n = int(n)
        return n, limit, Lock(self._until(kind, until), card=kind == "card") if n >= limit else None

    def reserve(self, openid: str, student_no: str) -> Attempt:
        """One try on the account, then on the card; an account already out of tries costs the card nothing."""
        n, limit, lock = self._take("openid", openid)
        if n > limit:
            return Attempt(False, 0, lock)
        card_n, card_limit, card_lock = self._take("card", student_no)
        if card_n > card_limit:
            return Attempt(False, 0, card_lock)
        return Attempt(True, min(limit - n, card_limit - card_n), card_lock or lock, card_tripped=card_n == card_limit)

    def succeeded(self, openid: str, student_no: str) -> None:
        """The account gave the right password: its counter goes, the card gets this try back."""
        self.store.r.delete(self._k("openid", openid))
        self._give_back(keys=[self._k("card", student_no)])

    def give_back(self, openid: str, student_no: str) -> None:
        """The password could not be checked (the card system did not answer): the try counts on neither."""
        self._give_back(keys=[self._k("openid", openid)])
        self._give_back(keys=[self._k("card", student_no)])

    def unlock(self, student_no: str, openids: list[str]) -> dict[str, int]:
        """Lift the card's counter and its bound accounts' (the help desk has seen the owner): what was counted."""
        lifted = {f"card {student_no}": self.failures("card", student_no)}
        lifted.update({f"account {i + 1}": self.failures("openid", o) for i, o in enumerate(openids)})
        self.store.r.delete(self._k("card", student_no), *(self._k("openid", o) for o in openids))
        return lifted
