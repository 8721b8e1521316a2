"""A JSON-over-HTTP server on real sockets that fails call by call as ``plan`` says, for the clients of the systems
the bot delivers money to (power/1, cardsys/1):

- ``reset``: the connection reset once the request is read, nothing done (a kept-alive connection the server closed
  as the client reused it);
- ``lost``: the work done, then the connection reset;
- ``silent``: no answer within the client's timeout;
- then, and once the plan is used up, it answers as ``respond`` says.

``respond(server, method, path, body, act)`` returns ``(status, answer)``; ``act`` is False for a ``reset`` (nothing
may be done). What was done is kept by ``respond`` in ``server.made``; every request line is in ``server.seen``.
"""

from __future__ import annotations

import json
import re
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Respond = Callable[["Flaky", str, str, Any, bool], tuple[int, dict[str, Any]]]
REASONS = {200: b"OK", 404: b"Not Found"}


class Flaky(socketserver.ThreadingTCPServer):
    daemon_threads = allow_reuse_address = True

    def __init__(self, plan: list[str], respond: Respond, prefix: str = "") -> None:
        self.plan, self.respond, self.prefix = plan, respond, prefix
        self.seen: list[str] = []
        self.made: dict[str, Any] = {}
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(socketserver.StreamRequestHandler):
    server: Flaky

    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += self.rfile.read(1)
        method, path = head.decode().split(" ")[:2]
        length = re.search(r"(?i)content-length: *(\d+)", head.decode())
        body = json.loads(self.rfile.read(int(length.group(1)))) if length else None
        self.server.seen.append(f"{method} {path.removeprefix(self.server.prefix)}")
        step = self.server.plan.pop(0) if self.server.plan else "answer"
        if step == "silent":
            time.sleep(1)
            return
        status, answer = self.server.respond(self.server, method, path, body, step != "reset")
        if step in ("reset", "lost"):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # closed with RST
            return
        data = json.dumps(answer).encode()
        self.wfile.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (status, REASONS.get(status, b"Error"), len(data), data)
        )


@contextmanager
def serving(plan: list[str], respond: Respond, prefix: str = "") -> Iterator[Flaky]:
    server = Flaky(plan, respond, prefix)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
