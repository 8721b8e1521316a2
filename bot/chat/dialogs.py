"""Conversation state per openid in Redis, as explicit named states with a TTL.

A second key outlives the dialog so that, at the user's next message, we can say it expired
instead of silently treating their answer as a new command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.adapters.store import Store

if TYPE_CHECKING:
    from redis.client import Pipeline

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
        return self.parse(self.store.r.get(self._k(openid)))

    def read_on(self, pipe: Pipeline, openid: str) -> None:
        """The dialog and its 'seen' marker as two commands of the caller's pipeline (see ``parse``, ``expired``)."""
        pipe.get(self._k(openid))
        pipe.get(self._seen(openid))

    @staticmethod
    def parse(raw: Any) -> Dialog | None:
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

    def take_expired(self, openid: str, seen: str | None) -> str | None:
        """A dialog ran out since the user's last message (no dialog, but its 'seen' marker read with it): forget the
        marker and return the state name, so the user hears once that it expired."""
        if seen is None:
            return None
        self.store.r.delete(self._seen(openid))
        return seen
