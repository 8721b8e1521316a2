"""Conversation state per openid in Redis, as explicit named states with a TTL.

A second key outlives the dialog so that, at the user's next message, we can say it expired
instead of silently treating their answer as a new command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bot.adapters.store import Store

EXPIRED_MEMORY_SECONDS = 24 * 3600


@dataclass
class Dialog:
    state: str
    data: dict[str, Any] = field(default_factory=dict)


class Dialogs:
    def __init__(self, store: Store, ttl_seconds: int) -> None:
        self.store = store
        self.ttl = ttl_seconds

    def _k(self, openid: str) -> str:
        return self.store.key("dialog", openid)

    def _seen(self, openid: str) -> str:
        return self.store.key("dialog-seen", openid)

    def get(self, openid: str) -> Dialog | None:
        raw = self.store.r.get(self._k(openid))
        if raw is None:
            return None
        obj = json.loads(raw)
        return Dialog(obj["state"], obj.get("data", {}))

    def set(self, openid: str, state: str, data: dict[str, Any] | None = None) -> Dialog:
        d = Dialog(state, dict(data or {}))
        pipe = self.store.r.pipeline()
        pipe.set(self._k(openid), json.dumps({"state": d.state, "data": d.data}, ensure_ascii=False), ex=self.ttl)
        pipe.set(self._seen(openid), state, ex=self.ttl + EXPIRED_MEMORY_SECONDS)
        pipe.execute()
        return d

    def clear(self, openid: str) -> bool:
        """End the dialog; True if one was active."""
        pipe = self.store.r.pipeline()
        pipe.delete(self._k(openid))
        pipe.delete(self._seen(openid))
        removed, _ = pipe.execute()
        return bool(removed)

    def take_expired(self, openid: str) -> str | None:
        """If a dialog ran out since the user's last message, forget it and return its state name."""
        if self.store.r.exists(self._k(openid)):
            return None
        pipe = self.store.r.pipeline()
        pipe.get(self._seen(openid))
        pipe.delete(self._seen(openid))
        state, _ = pipe.execute()
        return state
