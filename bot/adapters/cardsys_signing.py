"""HMAC request signing of cardsys/1 (docs/card-system.md) and of the bank protocol (``bot/adapters/bank.py``), used by
both sides: the bot's clients and its ``/integration`` endpoint, the emulator's card system and sandbox bank, and the
conformance checker. One implementation; each protocol is a ``Scheme``: its header prefix and its nonces' namespace.

``{prefix}-Signature`` = hex HMAC-SHA256(secret, METHOD \\n PATH \\n TIMESTAMP \\n NONCE \\n BODY), PATH being the
request target exactly as sent (path and query string) and BODY the raw bytes, with ``{prefix}-Timestamp`` and
``{prefix}-Nonce`` beside it. A receiver refuses (401) a timestamp more than 300 s off or a nonce it has seen in the
last 600 s, so a captured request cannot be replayed. The module-level names are cardsys/1's (``X-Cardsys-*``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

    from bot.adapters.store import Store

WINDOW_SECONDS = 300
NONCE_TTL_SECONDS = 600
NONCE = re.compile(r"^[A-Za-z0-9]{16,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def signature(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = "\n".join((method.upper(), path, timestamp, nonce)).encode() + b"\n" + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Scheme:
    """One protocol's headers (``{prefix}-Timestamp`` / ``-Nonce`` / ``-Signature``) and its nonces' Redis namespace,
    kept apart so a nonce seen by one protocol does not block the other."""

    prefix: str
    nonce_namespace: str

    @property
    def timestamp_header(self) -> str:
        return f"{self.prefix}-Timestamp"

    @property
    def nonce_header(self) -> str:
        return f"{self.prefix}-Nonce"

    @property
    def signature_header(self) -> str:
        return f"{self.prefix}-Signature"

    def sign(
        self, secret: str, method: str, path: str, body: bytes = b"", *, timestamp: int | None = None, nonce: str | None = None
    ) -> dict[str, str]:
        """The three headers for one request; a fresh nonce each call (a retry is signed afresh)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or new_nonce()
        return {
            self.timestamp_header: ts,
            self.nonce_header: nonce,
            self.signature_header: signature(secret, method, path, ts, nonce, body),
        }

    def verify(
        self,
        secret: str,
        method: str,
        path: str,
        headers: Mapping[str, str] | Headers,
        body: bytes,
        claim_nonce: Callable[[str], bool],
        *,
        now: float | None = None,
    ) -> str | None:
        """None when the request is authentic, fresh and new; otherwise why not (for the log, never for the caller).

        ``claim_nonce`` records the nonce and answers False when it was already seen; it is called last, so
        forged requests cannot use up nonces.
        """
        ts, nonce, sent = (headers.get(h, "") for h in (self.timestamp_header, self.nonce_header, self.signature_header))
        if not ts.isdigit() or len(ts) > 12 or not NONCE.match(nonce) or not _HEX64.match(sent):
            return "missing or malformed signature headers"
        if abs((time.time() if now is None else now) - int(ts)) > WINDOW_SECONDS:
            return "timestamp outside the 300 s window"
        if not hmac.compare_digest(signature(secret, method, path, ts, nonce, body), sent):
            return "bad signature"
        if not claim_nonce(nonce):
            return "nonce already used"
        return None

    def nonce_claimer(self, store: Store, scope: str) -> Callable[[str], bool]:
        """Claims nonces in Redis (``SET NX EX 600``), shared by every process of one receiver."""

        def claim(nonce: str) -> bool:
            return bool(store.r.set(store.key(self.nonce_namespace, scope, nonce), "1", nx=True, ex=NONCE_TTL_SECONDS))

        return claim


CARDSYS = Scheme("X-Cardsys", "cardsys-nonce")
BANK = Scheme("X-Bank", "bank-nonce")
POWER = Scheme("X-Power", "power-nonce")

TIMESTAMP_HEADER = CARDSYS.timestamp_header
NONCE_HEADER = CARDSYS.nonce_header
SIGNATURE_HEADER = CARDSYS.signature_header
sign = CARDSYS.sign
verify = CARDSYS.verify
nonce_claimer = CARDSYS.nonce_claimer


def request_target(environ: Mapping[str, object]) -> str:
    """The path and query string of a WSGI request as the client sent them (what the signature covers)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw.startswith("/"):
        return raw
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    query = str(environ.get("QUERY_STRING", ""))
    target = quote(path.encode("latin-1").decode("utf-8", "replace"), safe="/;=,:@!$&'()*+~")
    return target + ("?" + query if query else "")
