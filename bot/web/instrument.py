"""What every answer gets, from Flask's hooks and from the plain-WSGI ``/wechat`` alike: a request id for the logs
and the answer, the request metrics, and the hardening headers."""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING

from bot.logs import openid_hash, request_id

if TYPE_CHECKING:
    from bot.runtime import Runtime

# A caller's X-Request-Id is kept only when short and plain (it goes into every log line and back as a header).
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# On every answer: nothing personal is cached, framed by another site (the simulator frames pages of its own
# origin) or leaked in a Referer; a header a view sets itself wins.
HARDENING = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "SAMEORIGIN",
    "Content-Security-Policy": "frame-ancestors 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def begin(sent_id: str) -> float:
    """Start a request: its id (the caller's, when plain) in the log context; returns the start time."""
    request_id.set(sent_id if sent_id and REQUEST_ID.fullmatch(sent_id) else uuid.uuid4().hex[:16])
    openid_hash.set("-")
    return time.perf_counter()


def observe(services: Runtime, endpoint: str, method: str, status: int, t0: float) -> None:
    services.metrics.requests.labels(endpoint=endpoint, method=method, status=status).inc()
    services.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - t0)
