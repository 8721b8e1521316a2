"""In-memory state of the emulated WeChat platform (one per app; guarded by a lock).

Time comes from ``now()`` so tests can move it (``clock_offset``) to expire tokens, codes and windows.
``faults`` lets tests make an endpoint fail: ``faults["template"] = 45009`` (an errcode), ``"5xx"``, ``"timeout"``,
``"garbage"`` (a 200 that is not JSON) or ``"hang"`` (held until ``released`` is set, then -1, nothing done); a list
(``[45009, 0]``) is consumed one entry per call (0 = behave normally). Template sends also know ``template_slow``
(sent, answered too late), ``template_status`` (the delivery report's status) and ``template_report_first`` (the
report is pushed before the send is answered).
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

CODE_TTL_SECONDS = 300
KEEP_PER_USER = 500  # inbox and transcript lines kept per openid
_BEIJING = timedelta(hours=8)  # WeChat's daily quotas reset at midnight Beijing time


def pop_fault(faults: dict[str, Any], name: str) -> Any:
    """A fault set as a value applies to every call; set as a list, one item per call until it runs out."""
    fault = faults.get(name)
    if isinstance(fault, list):
        value = fault.pop(0) if fault else None
        if not fault:
            faults.pop(name, None)
        return value
    return fault


@dataclass
class Token:
    value: str
    expires_at: float
    invalid_after: float | None = None  # set when a newer token replaces it (grace period)


@dataclass
class OAuthCode:
    openid: str
    appid: str
    scope: str
    issued_at: float
    used: bool = False


@dataclass
class EmulatorState:
    token_ttl: int = 7200
    token_grace: int = 300
    lock: threading.RLock = field(default_factory=threading.RLock)
    tokens: list[Token] = field(default_factory=list)
    token_fetches: int = 0
    # openid -> list of messages the "phone" received (replies are not here; CS and template messages are)
    inbox: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    followers: set[str] = field(default_factory=set)
    # (openid, template_id) a user refused in the chat ("拒收"): sends answer 43101
    refused_templates: set[tuple[str, str]] = field(default_factory=set)
    last_user_message: dict[str, float] = field(default_factory=dict)
    last_click: dict[str, float] = field(default_factory=dict)
    cs_sent: dict[str, list[float]] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)
    released: threading.Event = field(default_factory=threading.Event)  # ends every "hang" fault
    clock_offset: float = 0.0
    daily: dict[tuple[str, str], int] = field(default_factory=dict)
    menu: dict[str, Any] | None = None
    conditional_menus: list[dict[str, Any]] = field(default_factory=list)  # {menuid, button, matchrule}, oldest first
    tags: dict[int, str] = field(default_factory=dict)  # user tags: id -> name
    user_tags: dict[str, set[int]] = field(default_factory=dict)  # openid -> tag ids
    oauth_codes: dict[str, OAuthCode] = field(default_factory=dict)
    pushes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))  # events pushed back to /wechat
    push_mode: str = "plain"  # the account's message encryption mode, as chosen in the simulator
    chat: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # the simulator's transcript per openid
    transfers: list[dict[str, Any]] = field(default_factory=list)  # chats handed to customer service (transfer_customer_service)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _msgids: Any = field(default_factory=lambda: itertools.count(int(time.time()) % 10**6 * 1000 + 2_000_000_000))

    def now(self) -> float:
        return time.time() + self.clock_offset

    def menu_for(self, openid: str) -> dict[str, Any] | None:
        """The menu WeChat shows this user: the newest conditional menu matching one of its tags, else the default."""
        with self.lock:
            tags = self.user_tags.get(openid, set())
            for menu in reversed(self.conditional_menus):
                tag = menu["matchrule"].get("tag_id", "")
                if tag.isdigit() and int(tag) in tags:
                    return {"button": menu["button"]}
            return self.menu

    def observe_reply(self, openid: str, reply: Any) -> None:
        """WeChat reads every reply: a ``transfer_customer_service`` one hands the chat to customer service."""
        if getattr(reply, "transferred", False):
            with self.lock:
                self.transfers.append({"openid": openid, "kf_account": reply.kf_account, "at": self.now()})

    def day(self) -> str:
        return (datetime.fromtimestamp(self.now(), UTC) + _BEIJING).strftime("%Y-%m-%d")

    def count_call(self, api: str, limit: int) -> bool:
        """Count one call against ``api``'s daily quota; False (and not counted) when the quota is used up."""
        with self.lock:
            key = (api, self.day())
            used = self.daily.get(key, 0)
            if used >= limit:
                return False
            self.daily[key] = used + 1
            return True

    def calls_today(self, api: str) -> int:
        with self.lock:
            return self.daily.get((api, self.day()), 0)

    def take_fault(self, name: str) -> Any:
        """The fault to inject for this call of ``name`` (None or 0 = none)."""
        with self.lock:
            return pop_fault(self.faults, name)

    # --- access tokens --------------------------------------------------
    def issue_token(self, force: bool = False) -> Token:
        with self.lock:
            self.token_fetches += 1
            now = self.now()
            current = self.current_token()
            if current and not force:
                return current
            if current:
                current.invalid_after = now + self.token_grace
            tok = Token("EMU" + secrets.token_hex(20), now + self.token_ttl)
            self.tokens.append(tok)
            return tok

    def current_token(self) -> Token | None:
        now = self.now()
        for tok in reversed(self.tokens):
            if tok.invalid_after is None and tok.expires_at > now:
                return tok
        return None

    def check_token(self, value: str | None) -> int:
        """0 if valid; 40001 unknown/invalidated; 42001 expired; 41001 missing."""
        if not value:
            return 41001
        now = self.now()
        with self.lock:
            for tok in self.tokens:
                if tok.value == value:
                    if tok.expires_at <= now:
                        return 42001
                    if tok.invalid_after is not None and tok.invalid_after <= now:
                        return 40001
                    return 0
        return 40001

    # --- the user's side -------------------------------------------------
    def user_pushed(self, openid: str, kind: str = "message") -> None:
        """Record what the user just did: a message opens the 48 h window, a menu click or a follow the
        1-minute one; subscribe/unsubscribe change the follower set."""
        with self.lock:
            now = self.now()
            if kind == "unsubscribe":
                self.followers.discard(openid)
                self.last_user_message.pop(openid, None)
                self.last_click.pop(openid, None)
                return
            self.followers.add(openid)
            if kind in ("click", "subscribe"):
                self.last_click[openid] = now
            elif kind == "message":
                self.last_user_message[openid] = now

    def deliver(self, openid: str, item: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            item = {"id": next(self._ids), "at": self.now(), **item}
            box = self.inbox.setdefault(openid, [])
            box.append(item)
            del box[:-KEEP_PER_USER]  # a phone shows recent messages; a long benchmark must not grow without bound
            return item

    def inbox_since(self, openid: str, since: int) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.inbox.get(openid, []) if m["id"] > since]

    def record_chat(self, openid: str, item: dict[str, Any]) -> dict[str, Any]:
        """A line of the simulator's transcript (the user's messages, passive replies); ids shared with the inbox."""
        with self.lock:
            item = {"id": next(self._ids), "at": self.now(), **item}
            chat = self.chat.setdefault(openid, [])
            chat.append(item)
            del chat[:-KEEP_PER_USER]
            return item

    def transcript_since(self, openid: str, since: int) -> list[dict[str, Any]]:
        """Everything the phone shows for ``openid`` after ``since``: transcript and inbox, in order."""
        with self.lock:
            items = [m for m in self.chat.get(openid, []) + self.inbox.get(openid, []) if m["id"] > since]
        return sorted(items, key=lambda m: m["id"])

    def next_msgid(self) -> int:
        with self.lock:
            return next(self._msgids)

    # --- OAuth -----------------------------------------------------------
    def issue_code(self, openid: str, appid: str, scope: str) -> str:
        code = secrets.token_hex(16)
        with self.lock:
            self.oauth_codes[code] = OAuthCode(openid, appid, scope, self.now())
        return code

    def redeem_code(self, code: str, appid: str) -> tuple[int, OAuthCode | None]:
        """(0, code) once; 40163 when used again; 42003 after 5 minutes; 40029 unknown or another app's."""
        with self.lock:
            entry = self.oauth_codes.get(code)
            if entry is None or entry.appid != appid:
                return 40029, None
            if entry.used:
                return 40163, None
            if self.now() - entry.issued_at > CODE_TTL_SECONDS:
                return 42003, None
            entry.used = True
            return 0, entry
