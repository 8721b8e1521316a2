"""In-memory state of the emulated WeChat platform (one per app; guarded by a lock)."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Token:
    value: str
    expires_at: float
    invalid_after: float | None = None  # set when a newer token replaces it (grace period)


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
    last_user_message: dict[str, float] = field(default_factory=dict)
    cs_sent: dict[str, list[float]] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)
    clock_offset: float = 0.0

    def now(self) -> float:
        return time.time() + self.clock_offset

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
        """0 if valid; 40001 unknown/invalidated; 42001 expired."""
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

    def deliver(self, openid: str, item: dict[str, Any]) -> None:
        with self.lock:
            item = {"at": self.now(), **item}
            self.inbox.setdefault(openid, []).append(item)
