"""Retried and replayed pushes: the first claim runs the handler; a retry gets the same answer, even while it still runs.

A push stays correctly signed for ``max_clock_skew_seconds`` either side of its timestamp, so its claim lives twice
that long: a replay inside the window never runs again. The answer itself is kept only for WeChat's retries (three
tries, 5 s apart); a later copy is answered ``success``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bot.adapters.store import Store

if TYPE_CHECKING:
    from redis.client import Pipeline

PENDING = "pending"
DONE = "done"
REPLY_TTL_SECONDS = 60


class Dedup:
    def __init__(self, store: Store, window_seconds: int) -> None:
        self.store = store
        self.ttl = max(REPLY_TTL_SECONDS, 2 * window_seconds)

    def _k(self, key: str) -> str:
        return self.store.key("dedup", key)

    def claim(self, key: str) -> bool:
        """Atomically take the key; False means another request has (or had) it."""
        return bool(self.store.r.set(self._k(key), PENDING, nx=True, ex=self.ttl))

    def claim_on(self, pipe: Pipeline, key: str) -> None:
        """``claim`` as one command of the caller's pipeline (its result: whether the key was taken)."""
        pipe.set(self._k(key), PENDING, nx=True, ex=self.ttl)

    def finish(self, key: str, reply_xml: str) -> None:
        pipe = self.store.r.pipeline(transaction=False)  # in order on one connection: the answer before DONE
        pipe.set(self._k(key) + ":reply", reply_xml, ex=REPLY_TTL_SECONDS)
        pipe.set(self._k(key), DONE, xx=True, keepttl=True)
        pipe.execute()

    def wait(self, key: str, timeout: float) -> str | None:
        """The first request's reply, waiting up to ``timeout`` seconds for it; None if still running or forgotten."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            state, reply = self.store.r.mget(self._k(key), self._k(key) + ":reply")
            if reply is not None or state != PENDING:
                return str(reply) if reply is not None else None
            if time.monotonic() >= deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)
