"""Structured (JSON) logs with a request id and a hashed openid; secrets are scrubbed before output."""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import re
import sys
import time

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
openid_hash: contextvars.ContextVar[str] = contextvars.ContextVar("openid_hash", default="-")

_SECRET_PATTERNS = [
    re.compile(r"(access_token|secret|password|passwd|apiv3_key|paySign|code)=([^&\s\"']+)", re.I),
    re.compile(r"(\"(?:access_token|secret|password|apiv3_key|paySign)\"\s*:\s*\")([^\"]+)", re.I),
]


def hash_openid(openid: str) -> str:
    return hashlib.sha256(("cardbot:" + (openid or "")).encode()).hexdigest()[:12]


def scrub(text: str) -> str:
    for pat in _SECRET_PATTERNS:
        text = pat.sub(lambda m: m.group(1) + ("=" if "=" in m.group(0)[: len(m.group(1)) + 1] else "") + "***", text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
            "request_id": getattr(record, "request_id", "-"),
            "user": getattr(record, "user", "-"),
        }
        for key in ("handler", "event", "order_no", "status", "duration_ms"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        if record.exc_info:
            payload["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)


_base_factory = logging.getLogRecordFactory()


def _record_factory(*args: object, **kwargs: object) -> logging.LogRecord:
    """Stamp the request id and hashed openid when the record is made, in the thread that logs."""
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id.get()
    record.user = openid_hash.get()
    return record


def setup_logging(level: str = "INFO") -> None:
    if logging.getLogRecordFactory() is not _record_factory:
        logging.setLogRecordFactory(_record_factory)
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
