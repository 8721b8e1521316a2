"""Retried pushes: the first claim runs the handler; a retry gets the same answer, even while it still runs."""

from __future__ import annotations

import time

from bot.adapters.store import Store

PENDING = "pending"
TTL_SECONDS = 60


class Dedup:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _k(self, key: str) -> str:
        return self.store.key("dedup", key)

    def claim(self, key: str) -> bool:
        """Atomically take the key; False means another request has (or had) it."""
        return bool(self.store.r.set(self._k(key), PENDING, nx=True, ex=TTL_SECONDS))

    def finish(self, key: str, reply_xml: str) -> None:
        self.store.r.set(self._k(key), "R" + reply_xml, xx=True, keepttl=True)

    def wait(self, key: str, timeout: float) -> str | None:
        """The first request's reply, waiting up to ``timeout`` seconds for it; None if still running."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            value = self.store.r.get(self._k(key))
            if value is None or value != PENDING:
                return value[1:] if value else None
            if time.monotonic() >= deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)
