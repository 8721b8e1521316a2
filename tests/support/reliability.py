"""Helpers of the reliability suite: a TCP proxy to break Redis/PostgreSQL on purpose, the ledger invariant, and a
tally of faults, inputs and races for the closing figures (README.md)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from models import Binding, Cardholder, LedgerEntry, OutboxNotice, TopupOrder, ledger_sum
from models.db import make_engine
from tests.support.factories import bind, make_cardholder

FIGURES: Counter[str] = Counter()


def tally(kind: str, n: int = 1) -> None:
    """Count what the suite did (faults injected, inputs tried, races run) for the closing figures."""
    FIGURES[kind] += n


def on_postgres(url: str) -> bool:
    return url.startswith("postgresql")


class TcpProxy:
    """A loopback TCP proxy in front of a real server, which a test can break on purpose.

    ``down()``: refuse new connections and cut the open ones (the server is gone); ``up()``: listen again on the
    same port; ``reset()``: cut the open connections but keep listening (the server restarted);
    ``blackhole()``: accept connections but never forward a byte (a hung server or a dropped network).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = _free_port()
        self.mode = "up"
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.up()

    def url_for(self, url: str) -> str:
        """``url`` with host and port replaced by the proxy's."""
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def up(self) -> None:
        if self.mode == "blackhole":
            self.reset()
        self.mode = "up"
        if self._listener is None:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", self.port))
            s.listen(128)
            self._listener = s
            threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def down(self) -> None:
        self.mode = "down"
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self.reset()

    def blackhole(self) -> None:
        self.up()
        self.mode = "blackhole"
        self.reset()

    def reset(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:  # shutdown first: a bare close() would not wake the pump thread blocked in recv()
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()

    def close(self) -> None:
        self.down()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(client)
            if self.mode == "blackhole":
                continue  # hold it open, say nothing
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.append(upstream)
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the invariant every test ends with ------------------------------------------------------
def ledger_problems(db: Session) -> list[str]:
    """Everything that would mean money was lost or doubled; empty when the books are right."""
    problems = []
    for card in db.execute(select(Cardholder).where(Cardholder.balance_as_of.is_(None))).scalars():  # not a remote card system's
        total = ledger_sum(db, card.id)
        if card.balance_fen != total:
            problems.append(f"card {card.student_no}: balance {card.balance_fen} != ledger {total}")
    credits = dict(db.execute(select(LedgerEntry.ref, func.count()).where(LedgerEntry.kind == "topup").group_by(LedgerEntry.ref)).all())
    for ref, n in credits.items():
        if n != 1:
            problems.append(f"order {ref} credited {n} times")
    remote = set(db.execute(select(Cardholder.id).where(Cardholder.balance_as_of.is_not(None))).scalars())  # credited at the card system
    for order in db.execute(select(TopupOrder).where(TopupOrder.product == "card")).scalars():
        if order.cardholder_id in remote:
            continue
        n = credits.get(order.order_no, 0)
        if order.status == "paid" and n != 1:
            problems.append(f"paid order {order.order_no} has {n} credits")
        if order.status != "paid" and n:
            problems.append(f"{order.status} order {order.order_no} was credited")
    dup = db.execute(select(OutboxNotice.dedup_key).group_by(OutboxNotice.dedup_key).having(func.count() > 1)).all()
    problems += [f"notice {k} queued twice" for (k,) in dup]
    return problems


def assert_books_balance(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with Session(engine) as db:
            problems = ledger_problems(db)
    finally:
        engine.dispose()
    assert not problems, "; ".join(problems)
    tally("invariant checks")


# --- people and cards ---------------------------------------------------------------------------
REDIS_URL = os.environ.get("CARDBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ID_NUMBER = "11010120000101123X"
PASSWORD = "011230"  # the last six of ID_NUMBER, X written as 0
_event_times = itertools.count(int(time.time()))


def new_card(live: Any, student_no: str = "20230001", balance_fen: int = 10050, name: str = "张三") -> int:
    with live.session() as db:
        card = make_cardholder(db, student_no, name, ID_NUMBER, balance_fen=balance_fen)
        db.commit()
        return card.id


def bound(live: Any, openid: str, card_id: int) -> None:
    with live.session() as db:
        bind(db, openid, db.get(Cardholder, card_id))
        db.commit()


def click(wx: Any, openid: str, key: str) -> Any:
    """A click with its own CreateTime: WeChat dedups events on sender + CreateTime + key."""
    return wx.click(openid, key, create_time=next(_event_times))


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.monotonic()
    out = fn(*args, **kwargs)
    return out, time.monotonic() - t0


def bindings_of(live: Any, openid: str) -> int:
    with live.session() as db:
        return db.execute(select(func.count()).select_from(Binding).where(Binding.openid == openid)).scalar_one()


class BadGateway(BaseHTTPRequestHandler):
    """A WeChat API behind a broken gateway: 502 with an HTML body to every request."""

    def _answer(self) -> None:
        body = b"<html><body>502 Bad Gateway</body></html>"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


class Spy(BaseHTTPRequestHandler):
    """Records every path fetched from it (``hits``) and serves an entity, as an attacker's DTD server would."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        Spy.hits.append(self.path)
        body = b'<!ENTITY x "pwned">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a loopback port for the block; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def toml_text(sections: dict[str, dict[str, Any]]) -> str:
    return "".join(
        f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()) + "\n" for name, values in sections.items()
    )
