"""The merchant's side of WeChat Pay refunds for the tests: a notify server that keeps what it receives."""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import Flask, request
from werkzeug.serving import make_server


class Receiver:
    """The merchant's notify server: keeps every notify as received (headers, body); answers 500 to the first
    ``failures`` refund notifies (payment notifies are always taken)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.paths: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        app = Flask("refund-receiver")

        @app.post("/pay/notify")
        @app.post("/pay/refund-notify")  # PayClient.refund's default: the sibling of ``[pay] notify_url``
        def notify() -> Any:
            body = request.get_data()
            with self.lock:
                self.got.append((dict(request.headers), body))
                self.paths.append((request.path, json.loads(body)["event_type"]))
                refunds = sum(json.loads(b)["event_type"].startswith("REFUND.") for _, b in self.got)
            failed = json.loads(body)["event_type"].startswith("REFUND.") and refunds <= self.failures
            return ("", 500) if failed else ("", 204)

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/pay/notify"

    def events(self, event_type: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for h, b in self.got if json.loads(b)["event_type"] == event_type]
