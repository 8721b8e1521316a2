"""Fixtures: a real database (PostgreSQL when CARDBOT_TEST_DATABASE_URL names one, else SQLite), real Redis
with a key prefix per test, the Flask app served over real HTTP on a loopback port with the emulator mounted,
a ``wx`` pusher that sends signed (or AES) pushes as WeChat does, and headless Chromium for the browser tests.

Fixtures live only in conftest.py files (tests/test_house.py checks it); helpers live in tests/support/.
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
from bot.web import device
from models import Base
from tests.support import browser as chromium
from tests.support.refunds import Receiver
from tests.support.topup import emu_pay, logged_in, remembered, student

REDIS_URL = os.environ.get("CARDBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


SERVICE_FIXTURES = {"database_url", "redis_client", "make_live", "keys_dir"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``make test-fast`` runs the ``unit`` tests in seconds on a machine without services: none may ask for one."""
    wrong = [item.nodeid for item in items if item.get_closest_marker("unit") and SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if wrong:
        raise pytest.UsageError("unit tests asking for a database, Redis or the app: " + ", ".join(wrong))


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


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database of the test's kind with no tables, for a migration test to take step by step; dropped at the end."""
    base = os.environ.get("CARDBOT_TEST_DATABASE_URL", "")
    if not base.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    name = f"cardbot_m_{_worker()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


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

        def on_reply(openid: str, reply: Any) -> None:
            if self.emulator is not None:
                self.emulator.observe_reply(openid, reply)

        return Pusher(self.cfg.wechat, post, mode=mode, on_push=on_push, on_reply=on_reply)


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
        live.services.finish_deliveries()  # before the database is cleaned under them
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
def live(make_live: Any, request: pytest.FixtureRequest) -> LiveApp:
    """The app; a module that declares ``ROUTES = [routes, ...]`` gets its own test handlers in the router, one that
    declares ``LIVE_CONFIG = {section: {...}}`` its config overrides (so the browser fixtures can use it too)."""
    return make_live(routes=getattr(request.module, "ROUTES", ()), **getattr(request.module, "LIVE_CONFIG", {}))


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
def ledger_checked(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the test (before the database is cleaned): each card's balance equals the sum of its ledger entries
    (cards whose balance is a remote card system's, remembered with ``balance_as_of``, keep no ledger here).
    Money modules ask for it with ``pytestmark = pytest.mark.usefixtures("ledger_checked")``; their ``unit`` tests
    touch no database, so for them it asks for none."""
    if request.node.get_closest_marker("unit"):
        yield
        return
    request.getfixturevalue("make_live")  # set up first, so the database is cleaned only after this check
    database_url = request.getfixturevalue("database_url")
    yield
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            wrong = conn.execute(
                text(
                    "SELECT c.student_no, c.balance_fen, COALESCE(SUM(e.amount_fen), 0) FROM cardholders c "
                    "LEFT JOIN ledger_entries e ON e.cardholder_id = c.id WHERE c.balance_as_of IS NULL "
                    "GROUP BY c.id, c.student_no, c.balance_fen "
                    "HAVING c.balance_fen <> COALESCE(SUM(e.amount_fen), 0)"
                )
            ).all()
    finally:
        engine.dispose()
    assert not wrong, f"balance != ledger: {wrong}"


# --- the card system over HTTP (cardsys/1, docs/card-system.md) ------------------------------------------------
@pytest.fixture
def cs_live(make_live: Any) -> LiveApp:
    """The app on the ``http`` card-system adapter, talking to the emulator's card system."""
    return make_live(cardsystem={"adapter": "http", "timeout_seconds": 1.0})


@pytest.fixture
def cs(cs_live: LiveApp) -> Any:
    return cs_live.services.card_system


@pytest.fixture(params=["ledger", "http"])
def flow_live(request: pytest.FixtureRequest, make_live: Any) -> LiveApp:
    """The app on each card-system adapter in turn (tests/test_flows_both_adapters.py); the bank open all day, since
    the emulator's card system keeps real time and the bot's clock is therefore not frozen there. No test here waits
    out a timeout, so it is 3 s: the emulator answers from the test's own process, which a loaded machine can hold
    past 1 s (a binding was once answered "the card system did not answer")."""
    return make_live(cardsystem={"adapter": request.param, "timeout_seconds": 3.0}, autodebit={"bank_hours": "00:00-24:00"})


# --- WeChat Pay -------------------------------------------------------------------------------------------
@pytest.fixture
def paid_at_wechat(live: LiveApp) -> tuple[int, str]:
    """``(card_id, order_no)``: an order the student paid, whose notify WeChat has not sent yet (emulator notifies off)."""
    openid = "oTopupNotifyUser00000001"
    emu_pay(live).notify_enabled = False
    card_id = student(live, openid, balance_fen=2000)
    phone = logged_in(live, openid)
    body = phone.order(5000, "quick").json()
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")
    return card_id, body["order_no"]


@pytest.fixture
def rx() -> Iterator[Receiver]:
    """The merchant's notify server, taking every notify."""
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def demo_cfg() -> Config:
    """The built-in demo defaults (no file, no services)."""
    return load_config(None)


# --- headless Chromium (tests marked ``browser``) ---------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium.playwright().sync_playwright() as p:
        b = chromium.launch(p)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, live: LiveApp) -> Iterator[Any]:
    """The chat simulator in a desktop window; fails the test on any uncaught script error."""
    context = browser.new_context(viewport={"width": 900, "height": 860}, locale="zh-CN")
    context.set_default_timeout(chromium.TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(live.url + "/simulator")
    yield pg
    context.close()
    assert errors == [], errors


@pytest.fixture
def phone(browser: Any, live: LiveApp) -> Iterator[Any]:
    """A phone's WeChat web view for ``PHONE_OPENID``: the bridge shim pays through the emulator; script errors fail the test."""
    context = browser.new_context(viewport={"width": 375, "height": 740}, locale="zh-CN")
    context.set_default_timeout(chromium.TIMEOUT_MS)
    verified = {"name": device.COOKIE, "value": remembered(live, chromium.PHONE_OPENID), "url": live.url}  # a phone verified before
    context.add_cookies([{"name": "sim_openid", "value": chromium.PHONE_OPENID, "url": live.url}, verified])
    context.add_init_script(chromium.BRIDGE)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert errors == [], errors


@pytest.fixture
def pay_test_route(live: LiveApp) -> str:
    """A page behind the bot's own OAuth login that asks WeixinJSBridge to pay (registered before the first request)."""
    from flask import session

    from bot.web.auth import login_page

    @login_page
    def view() -> str:
        return chromium.PAY_TEST_PAGE.format(openid=session["openid"])

    live.app.add_url_rule("/_e2e/pay", "e2e_pay", view)
    return live.url + "/_e2e/pay"
