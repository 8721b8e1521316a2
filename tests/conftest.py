"""Fixtures: a real database (PostgreSQL when CARDBOT_TEST_DATABASE_URL names one, else SQLite), real Redis
with a key prefix per test, the Flask app served over real HTTP on a loopback port with the emulator mounted,
and a ``wx`` pusher that sends signed (or AES) pushes as WeChat does.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from bot import create_app
from bot.chat.router import Routes
from bot.config import Config, load_config
from bot.emulator.keys import ensure_keys
from bot.emulator.push import Pusher
from bot.migrate import upgrade
from models import Base

pytestmark = pytest.mark.usefixtures("ledger_checked")

REDIS_URL = os.environ.get("CARDBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for this test process; dropped at the end."""
    base = os.environ.get("CARDBOT_TEST_DATABASE_URL", "")
    if base.startswith("postgresql"):
        name = f"cardbot_t_{_worker()}_{uuid.uuid4().hex[:8]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(base).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("db") / "cardbot.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.ping()
    return client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(database_url: str, keys_dir: Path, port: int, prefix: str, **sections: dict[str, Any]) -> Config:
    base = f"http://127.0.0.1:{port}"
    overrides: dict[str, dict[str, Any]] = {
        "database": {"url": database_url},
        "redis": {"url": REDIS_URL, "key_prefix": prefix},
        "wechat": {"api_base_url": base, "oauth_base_url": base, "reply_budget_seconds": 4.0},
        "pay": {
            "api_base_url": base,
            "notify_url": f"{base}/pay/notify",
            "private_key_path": str(keys_dir / "merchant_private.pem"),
            "public_key_path": str(keys_dir / "platform_public.pem"),
        },
        "server": {"public_base_url": base},
        "emulator": {
            "enabled": True,
            "merchant_public_key_path": str(keys_dir / "merchant_public.pem"),
            "platform_private_key_path": str(keys_dir / "platform_private.pem"),
            "keys_dir": str(keys_dir),
            "notify_retry_scale": 0.001,
        },
    }
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_config(None, **overrides)


def clean_database(engine: Any) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


class LiveApp:
    """The app on a real loopback port, plus handy handles."""

    def __init__(self, app: Any, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.services = app.extensions["cardbot"]
        self.router = app.extensions["router"]
        self.cfg = self.services.cfg
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.http = requests.Session()

    @property
    def emulator(self) -> Any:
        return self.app.extensions.get("emulator")

    def session(self) -> Any:
        return self.services.session()

    def pusher(self, mode: str = "plain") -> Pusher:
        def post(path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
            r = self.http.post(self.url + path, data=body, headers=headers, timeout=15)
            return r.status_code, r.text

        def on_push(openid: str) -> None:
            emu = self.emulator
            if emu is not None:
                with emu.lock:
                    emu.last_user_message[openid] = emu.now()
                    emu.followers.add(openid)

        return Pusher(self.cfg.wechat, post, mode=mode, on_push=on_push)


@pytest.fixture
def make_live(database_url: str, keys_dir: Path) -> Iterator[Any]:
    """Factory: ``make_live(topup={...})`` builds an app with config overrides and serves it;
    ``make_live(routes=[...])`` adds a test's own handlers to that app's router."""
    started: list[LiveApp] = []

    def factory(routes: Sequence[Routes] = (), **sections: dict[str, Any]) -> LiveApp:
        port = free_port()
        prefix = f"t{uuid.uuid4().hex[:10]}:"
        cfg = make_config(database_url, keys_dir, port, prefix, **sections)
        app = create_app(cfg, routes=routes)
        app.config["TESTING"] = True
        live = LiveApp(app, port)
        live.thread.start()
        started.append(live)
        return live

    yield factory
    for live in started:
        live.server.shutdown()
        store = live.services.store
        try:
            keys = list(store.r.scan_iter(match=store.prefix + "*", count=1000))
            if keys:
                store.r.delete(*keys)
        except redis.RedisError:
            pass  # a test pointed this app at a Redis that is down
        clean_database(live.services.engine)
        live.services.close()


@pytest.fixture
def live(make_live: Any) -> LiveApp:
    return make_live()


@pytest.fixture
def client(live: LiveApp) -> Any:
    return live.app.test_client()


@pytest.fixture
def wx(live: LiveApp) -> Pusher:
    return live.pusher("plain")


@pytest.fixture
def wx_aes(live: LiveApp) -> Pusher:
    return live.pusher("aes")


@pytest.fixture
def ledger_checked(make_live: Any, database_url: str) -> Iterator[None]:
    """After the test (before the database is cleaned): each card's balance equals the sum of its ledger entries.
    Money modules ask for it with ``pytestmark = pytest.mark.usefixtures("ledger_checked")``."""
    yield
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            wrong = conn.execute(text(
                "SELECT c.student_no, c.balance_fen, COALESCE(SUM(e.amount_fen), 0) FROM cardholders c "
                "LEFT JOIN ledger_entries e ON e.cardholder_id = c.id GROUP BY c.id, c.student_no, c.balance_fen "
                "HAVING c.balance_fen <> COALESCE(SUM(e.amount_fen), 0)"
            )).all()
    finally:
        engine.dispose()
    assert not wrong, f"balance != ledger: {wrong}"
