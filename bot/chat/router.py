"""Message router in the style of WxJava's WxMpMessageRouter, with routes declared like Flask blueprints.

Each handler module declares what it answers on its own ``Routes``::

    routes = Routes()

    @routes.click("BALANCE")
    @routes.text("余额", "balance")
    @routes.needs_card()
    def balance(msg, ctx): ...

``bot.chat.routes.build_router`` composes every module's ``Routes`` into the one ``Router`` an app dispatches
through. ``dispatch`` picks exactly one route, trying the kinds in ``ORDER``: cancel words, the active dialog
state (for text), the menu click key, the event type, the keyword, the expired-dialog notice, then what the
message means (``bot.chat.understand``: a scam warning, a person, an intent's menu action or the FAQ), the message
type, and finally the fallback. A route that needs a card answers its text key instead of running the handler when
the user has none. A handler returns a reply (``str``, ``Text``, ``Article``) or None for no reply.

A handler that only reads and writes the database and Redis runs in the request's own thread (their timeouts keep
it inside WeChat's 5 s); one that may wait for an outside system declares ``calls_out`` and runs on the pool, where
the webhook can answer "processing" at the budget and send the reply later.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.chat.replies import Reply, Text
from bot.chat.understand import Kind, Understanding, load_faq, understanding_for
from bot.texts import zh

if TYPE_CHECKING:
    from bot.chat.context import Context
    from bot.runtime import Runtime

Handler = Callable[[Any, "Context"], "Reply | str | None"]
CallsOut = Callable[["Runtime"], bool]
_BUILDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="understand")  # one index build at a time
ORDER = ("cancel", "state", "click", "event", "text", "expired", "understood", "msgtype", "fallback")


def remote_card_system(services: Runtime) -> bool:
    """``calls_out`` for handlers that ask the card system: outside only when it is a remote one."""
    return services.card_system.remote


def normalize(text: str) -> str:
    """Full-width to half-width, case-folded, inner whitespace squeezed: '  Ｂａｌａｎｃｅ ' → 'balance'."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split()).casefold()


def handler_name(fn: Handler) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


@dataclass(frozen=True)
class Route:
    kind: str
    keys: tuple[str, ...]
    handler: Handler
    needs_card: str | None = None
    """Text key answered instead of running the handler when the user has bound no card."""
    calls_out: CallsOut | None = None
    """Whether, with these services, the handler may wait for an outside system (None: never)."""
    reads_card: bool = False
    """The handler reads the card itself, with what it shows, and raises ``NotBound`` when there is none."""

    def inline(self, services: Runtime) -> bool:
        """Whether the handler runs in the request's thread (see the module's docstring)."""
        return self.calls_out is None or not self.calls_out(services)


class NotBound(Exception):
    """Raised by a ``needs_card(reads_card=True)`` handler that found no card: answered with the route's text."""


class Routes:
    """One handler module's declarations; nothing is answered until ``build_router`` composes them."""

    def __init__(self) -> None:
        self._declared: list[tuple[str, tuple[str, ...], Handler]] = []
        self._guards: dict[Handler, str] = {}
        self._reads_card: set[Handler] = set()
        self._outside: dict[Handler, CallsOut] = {}

    def _declare(self, kind: str, keys: tuple[str, ...]) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self._declared.append((kind, tuple(dict.fromkeys(keys)), fn))  # '？' and '?' are one word
            return fn

        return deco

    def click(self, *keys: str) -> Callable[[Handler], Handler]:
        return self._declare("click", keys)

    def event(self, *names: str) -> Callable[[Handler], Handler]:
        return self._declare("event", tuple(n.lower() for n in names))

    def text(self, *words: str) -> Callable[[Handler], Handler]:
        return self._declare("text", tuple(normalize(w) for w in words))

    def state(self, *names: str) -> Callable[[Handler], Handler]:
        """Answer text while the user's dialog is in one of these states."""
        return self._declare("state", names)

    def msgtype(self, *types: str) -> Callable[[Handler], Handler]:
        return self._declare("msgtype", types)

    def cancel(self, *words: str) -> Callable[[Handler], Handler]:
        return self._declare("cancel", tuple(normalize(w) for w in words))

    def expired(self, fn: Handler) -> Handler:
        return self._declare("expired", ("",))(fn)

    def fallback(self, fn: Handler) -> Handler:
        return self._declare("fallback", ("",))(fn)

    def understood(self, fn: Handler) -> Handler:
        """Answer what ``bot.chat.understand`` read from a message no word matched (``ctx.meaning``)."""
        return self._declare("understood", ("",))(fn)

    def needs_card(self, reply: str = "not_bound", *, reads_card: bool = False) -> Callable[[Handler], Handler]:
        """Every route of the handler answers text key ``reply`` to a user without a bound card. With ``reads_card``
        the handler looks the card up itself, in the statement that reads what it shows (the balance's one round
        trip), and raises ``NotBound``; else the router looks it up before the handler runs."""
        if reply not in zh.TEXTS:
            raise ValueError(f"needs_card: no text {reply!r} in bot/texts")

        def deco(fn: Handler) -> Handler:
            self._guards[fn] = reply
            if reads_card:
                self._reads_card.add(fn)
            return fn

        return deco

    def calls_out(self, when: CallsOut = lambda services: True) -> Callable[[Handler], Handler]:
        """The handler may wait for an outside system (``when`` these services make it so): it runs on the pool."""

        def deco(fn: Handler) -> Handler:
            self._outside[fn] = when
            return fn

        return deco

    def routes(self) -> list[Route]:
        stray = (self._guards.keys() | self._outside.keys()) - {fn for _, _, fn in self._declared}
        if stray:
            raise ValueError(f"needs_card or calls_out on {', '.join(sorted(map(handler_name, stray)))}, which has no route")
        return [Route(kind, keys, fn, self._guards.get(fn), self._outside.get(fn), fn in self._reads_card) for kind, keys, fn in self._declared]


class Router:
    """The composed routes of an app, looked up by kind and key; a key answered by two handlers is refused."""

    def __init__(self, *declarations: Routes) -> None:
        self._routes: list[Route] = []
        self._by_kind: dict[str, dict[str, Route]] = {kind: {} for kind in ORDER}
        self._understanding: Future[Understanding] | None = None
        for routes in declarations:
            for route in routes.routes():
                self._add(route)

    def _add(self, route: Route) -> None:
        table = self._by_kind[route.kind]
        for key in route.keys:
            other = table.get(key)
            if other is not None and other.handler is not route.handler:
                raise ValueError(f"{route.kind} {key!r} is answered by both {handler_name(other.handler)} and {handler_name(route.handler)}")
            table[key] = route
        self._routes.append(route)

    def table(self) -> list[Route]:
        """Every route, in the order ``pick`` tries the kinds (within a kind, as declared)."""
        return sorted(self._routes, key=lambda r: ORDER.index(r.kind))

    def understand(self, faq_path: str) -> Router:
        """Read messages no word matched with the FAQ at ``faq_path`` and the words of every routed menu action.

        The file is read now (a broken one stops the start); the index is built once per process and file in the
        background (jieba's dictionary takes a second or two), so the server answers at once and only a message
        arriving in that second waits for it."""
        load_faq(Path(faq_path))
        handlers = {route.handler: key for key, route in self._by_kind["click"].items()}
        words: dict[str, list[str]] = {}
        for route in self._routes:
            if route.kind == "text" and route.handler in handlers:
                words.setdefault(handlers[route.handler], []).extend(route.keys)
        self._understanding = _BUILDER.submit(understanding_for, faq_path, tuple((k, tuple(v)) for k, v in sorted(words.items())))
        return self

    @property
    def understanding(self) -> Understanding | None:
        return self._understanding.result() if self._understanding is not None else None

    def keys(self, kind: str) -> list[str]:
        return list(self._by_kind[kind])

    def _one(self, kind: str, key: str = "") -> Route | None:
        return self._by_kind[kind].get(key)

    def pick(self, msg: Any, ctx: Context) -> Route | None:
        """Choose the one route for this message (no side effects besides reading the dialog)."""
        if msg.type == "event":
            event = (getattr(msg, "event", "") or "").lower()
            if event == "click":
                return self._one("click", getattr(msg, "key", "") or "") or self._one("fallback")
            base = {"subscribe_scan": "subscribe"}.get(event, event)
            return self._one("event", event) or self._one("event", base)
        if msg.type == "text":
            words = normalize(msg.content)
            dialog = ctx.dialog
            return (
                self._one("cancel", words)
                or (self._one("state", dialog.state) if dialog is not None else None)
                or self._one("text", words)
                or (self._one("expired") if dialog is None and ctx.expired_dialog else None)
                or self._understood(msg.content, ctx)
                or self._one("fallback")
            )
        return self._one("msgtype", msg.type) or self._one("msgtype", "*") or self._one("fallback")

    def _understood(self, text: str, ctx: Context) -> Route | None:
        """The route for what the message means; the meaning is left on ``ctx`` for the ``understood`` handler."""
        understanding = self.understanding
        if understanding is None:
            return None
        ctx.meaning = understanding.read(text)
        if ctx.meaning.kind is Kind.ROUTE:
            return self._one("click", ctx.meaning.key)
        if ctx.meaning.kind is Kind.NONE:
            return None
        return self._one("understood")

    def dispatch(self, msg: Any, ctx: Context) -> Reply | None:
        return self.run(self.pick(msg, ctx), msg, ctx)

    def run(self, route: Route | None, msg: Any, ctx: Context) -> Reply | None:
        """Answer ``msg`` with ``route`` (from ``pick``): a route that needs a card without one answers its text."""
        if ctx.dialog is not None and msg.type == "event" and (getattr(msg, "event", "") or "").lower() == "click":
            ctx.end_dialog()  # a menu click means the user left the dialog
        if route is None:
            return None
        ctx.handler_name = handler_name(route.handler)
        if route.needs_card is not None and not route.reads_card and ctx.card() is None:
            return Text(ctx.t(route.needs_card))
        try:
            result = route.handler(msg, ctx)
        except NotBound:
            if route.needs_card is None:
                raise
            return Text(ctx.t(route.needs_card))
        if isinstance(result, str):
            return Text(result)
        return result
