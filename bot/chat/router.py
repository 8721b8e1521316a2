"""Message router in the style of WxJava's WxMpMessageRouter.

Handlers declare what they answer::

    @on.click("BALANCE")
    @on.text("余额", "balance")
    def balance(msg, ctx): ...

``dispatch`` picks exactly one handler: cancel words first, then the active dialog state (for text),
then the menu click key, event type, keyword, message type, and finally the fallback.
A handler returns a reply (``str``, ``Text``, ``Article``) or None for no reply.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.chat.replies import Reply, Text

if TYPE_CHECKING:
    from bot.chat.context import Context

Handler = Callable[[Any, "Context"], "Reply | str | None"]


def normalize(text: str) -> str:
    """Full-width to half-width, case-folded, inner whitespace squeezed: '  Ｂａｌａｎｃｅ ' → 'balance'."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split()).casefold()


@dataclass
class Router:
    clicks: dict[str, Handler] = field(default_factory=dict)
    events: dict[str, Handler] = field(default_factory=dict)
    keywords: dict[str, Handler] = field(default_factory=dict)
    states: dict[str, Handler] = field(default_factory=dict)
    msgtypes: dict[str, Handler] = field(default_factory=dict)
    cancel_words: set[str] = field(default_factory=set)
    cancel_handler: Handler | None = None
    expired_handler: Handler | None = None
    fallback_handler: Handler | None = None

    def _register(self, table: dict[str, Handler], keys: tuple[str, ...], kind: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            for k in keys:
                if k in table and table[k] is not fn:
                    raise ValueError(f"{kind} {k!r} is already answered by {table[k].__qualname__}")
                table[k] = fn
            return fn

        return deco

    def click(self, *keys: str) -> Callable[[Handler], Handler]:
        return self._register(self.clicks, keys, "click")

    def event(self, *names: str) -> Callable[[Handler], Handler]:
        return self._register(self.events, tuple(n.lower() for n in names), "event")

    def text(self, *words: str) -> Callable[[Handler], Handler]:
        return self._register(self.keywords, tuple(normalize(w) for w in words), "keyword")

    def state(self, *names: str) -> Callable[[Handler], Handler]:
        """Answer text while the user's dialog is in one of these states."""
        return self._register(self.states, names, "state")

    def msgtype(self, *types: str) -> Callable[[Handler], Handler]:
        return self._register(self.msgtypes, types, "message type")

    def cancel(self, *words: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.cancel_words.update(normalize(w) for w in words)
            self.cancel_handler = fn
            return fn

        return deco

    def expired(self, fn: Handler) -> Handler:
        self.expired_handler = fn
        return fn

    def fallback(self, fn: Handler) -> Handler:
        self.fallback_handler = fn
        return fn

    def pick(self, msg: Any, ctx: Context) -> Handler | None:
        """Choose the one handler for this message (no side effects besides reading the dialog)."""
        if msg.type == "event":
            event = (getattr(msg, "event", "") or "").lower()
            if event == "click":
                key = getattr(msg, "key", "") or ""
                return self.clicks.get(key) or self.fallback_handler
            base = {"subscribe_scan": "subscribe"}.get(event, event)
            return self.events.get(event) or self.events.get(base)
        if msg.type == "text":
            words = normalize(msg.content)
            if words in self.cancel_words:
                return self.cancel_handler
            dialog = ctx.dialog
            if dialog is not None and dialog.state in self.states:
                return self.states[dialog.state]
            if words in self.keywords:
                return self.keywords[words]
            if dialog is None and ctx.expired_dialog and self.expired_handler:
                return self.expired_handler
            return self.fallback_handler
        return self.msgtypes.get(msg.type) or self.msgtypes.get("*") or self.fallback_handler

    def dispatch(self, msg: Any, ctx: Context) -> Reply | None:
        handler = self.pick(msg, ctx)
        if ctx.dialog is not None and msg.type == "event" and (getattr(msg, "event", "") or "").lower() == "click":
            ctx.end_dialog()  # a menu click means the user left the dialog
        if handler is None:
            return None
        ctx.handler_name = f"{handler.__module__}.{handler.__qualname__}"
        result = handler(msg, ctx)
        if isinstance(result, str):
            return Text(result)
        return result


on = Router()
