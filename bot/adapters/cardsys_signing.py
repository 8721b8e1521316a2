"""cardsys/1 request signing (docs/card-system.md), used by both sides: the bot's client and its ``/integration``
endpoint, the emulator's card system and the conformance checker.

``X-Cardsys-Signature`` = hex HMAC-SHA256(secret, METHOD \\n PATH \\n TIMESTAMP \\n NONCE \\n BODY), PATH being the
request target exactly as sent (path and query string) and BODY the raw bytes. A receiver refuses (401) a
timestamp more than 300 s off or a nonce it has seen in the last 600 s, so a captured request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

    from bot.adapters.store import Store

TIMESTAMP_HEADER = "X-Cardsys-Timestamp"
NONCE_HEADER = "X-Cardsys-Nonce"
SIGNATURE_HEADER = "X-Cardsys-Signature"
WINDOW_SECONDS = 300
NONCE_TTL_SECONDS = 600
NONCE = re.compile(r"^[A-Za-z0-9]{16,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def signature(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = "\n".join((method.upper(), path, timestamp, nonce)).encode() + b"\n" + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(16)


def sign(secret: str, method: str, path: str, body: bytes = b"", *, timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The three headers for one request; a fresh nonce each call (a retry is signed afresh)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    return {TIMESTAMP_HEADER: ts, NONCE_HEADER: nonce, SIGNATURE_HEADER: signature(secret, method, path, ts, nonce, body)}


def verify(
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
    ts, nonce, sent = (headers.get(h, "") for h in (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER))
    if not ts.isdigit() or len(ts) > 12 or not NONCE.match(nonce) or not _HEX64.match(sent):
        return "missing or malformed signature headers"
    if abs((time.time() if now is None else now) - int(ts)) > WINDOW_SECONDS:
        return "timestamp outside the 300 s window"
    if not hmac.compare_digest(signature(secret, method, path, ts, nonce, body), sent):
        return "bad signature"
    if not claim_nonce(nonce):
        return "nonce already used"
    return None


def nonce_claimer(store: Store, scope: str) -> Callable[[str], bool]:
    """Claims nonces in Redis (``SET NX EX 600``), shared by every process of one receiver."""

    def claim(nonce: str) -> bool:
        return bool(store.r.set(store.key("cardsys-nonce", scope, nonce), "1", nx=True, ex=NONCE_TTL_SECONDS))

    return claim


def request_target(environ: Mapping[str, object]) -> str:
    """The path and query string of a WSGI request as the client sent them (what the signature covers)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw.startswith("/"):
        return raw
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    query = str(environ.get("QUERY_STRING", ""))
    target = quote(path.encode("latin-1").decode("utf-8", "replace"), safe="/;=,:@!$&'()*+~")
    return target + ("?" + query if query else "")
