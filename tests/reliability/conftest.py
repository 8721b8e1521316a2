"""Fixtures of the reliability suite: breakable proxies and apps behind them, hostile servers, production config
files, and the ledger invariant checked after every test."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy.engine import make_url

from tests.support.reliability import (
    FIGURES,
    REDIS_URL,
    BadGateway,
    Spy,
    TcpProxy,
    assert_books_balance,
    on_postgres,
    serving,
    toml_text,
)


class Proxies:
    """Factory ``proxies(url) -> TcpProxy`` (for a redis:// or postgresql:// URL)."""

    def __init__(self) -> None:
        self.made: list[TcpProxy] = []

    def __call__(self, url: str) -> TcpProxy:
        u = make_url(url)
        p = TcpProxy(u.host or "127.0.0.1", u.port or (6379 if url.startswith("redis") else 5432))
        self.made.append(p)
        return p

    def restore(self) -> None:
        for p in self.made:
            p.up()


@pytest.fixture
def proxies() -> Iterator[Proxies]:
    """Set up before ``make_live`` (see ``books_balance``) so the apps behind them are cleaned up first."""
    pool = Proxies()
    yield pool
    for p in pool.made:
        p.close()


@pytest.fixture(autouse=True)
def books_balance(proxies: Proxies, make_live: Any, database_url: str) -> Iterator[None]:
    """After every reliability test, before the database is cleaned: balances equal ledgers, nothing credited twice.

    Broken proxies are mended first, so the apps behind them can clean their Redis keys and tables afterwards.
    """
    yield
    proxies.restore()
    assert_books_balance(database_url)


@pytest.fixture
def redis_proxied(proxies: Proxies, make_live: Any) -> tuple[Any, TcpProxy]:
    """The app talks to the real Redis through a proxy the test can break."""
    proxy = proxies(REDIS_URL)
    return make_live(redis={"url": proxy.url_for(REDIS_URL)}), proxy


@pytest.fixture
def db_live(make_live: Any, proxies: Proxies, database_url: str) -> tuple[Any, TcpProxy | None]:
    """On PostgreSQL the app reaches the database through a breakable proxy."""
    if not on_postgres(database_url):
        return make_live(), None
    proxy = proxies(database_url)
    return make_live(database={"url": proxy.url_for(database_url)}), proxy


@pytest.fixture
def bad_wechat(proxies: Proxies) -> Iterator[dict[str, str]]:
    """``{"502": url, "silent": url}``: a WeChat API that answers 502, and one that accepts and never answers."""
    silent = proxies(REDIS_URL)
    silent.blackhole()
    with serving(BadGateway) as url:
        yield {"502": url, "silent": f"http://127.0.0.1:{silent.port}"}


@pytest.fixture
def spy() -> Iterator[tuple[str, list[str]]]:
    """``(url, hits)``: a server that records what an XML parser tried to fetch from it."""
    Spy.hits = []
    with serving(Spy) as url:
        yield url, Spy.hits


@pytest.fixture
def prod_config(tmp_path: Path, database_url: str, keys_dir: Path) -> Iterator[Any]:
    """``prod_config(**sections)`` → path of a production config file (emulator off) on the test database and Redis."""
    prefixes: list[str] = []

    def write(**sections: dict[str, Any]) -> Path:
        prefix = f"t{uuid.uuid4().hex[:10]}:"
        prefixes.append(prefix)
        base: dict[str, dict[str, Any]] = {
            "database": {"url": database_url},
            "redis": {"url": REDIS_URL, "key_prefix": prefix, "embedded_path": str(tmp_path / "redis.db")},
            "pay": {"private_key_path": str(keys_dir / "merchant_private.pem"), "public_key_path": str(keys_dir / "platform_public.pem")},
            "emulator": {"enabled": False},
        }
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        path = tmp_path / f"config-{prefix[:-1]}.toml"
        path.write_text(toml_text(base), encoding="utf-8")
        return path

    yield write
    r = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    for prefix in prefixes:
        keys = list(r.scan_iter(match=prefix + "*", count=1000))
        if keys:
            r.delete(*keys)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for kind, n in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{kind}: {n}")
    path = os.environ.get("CARDBOT_RELIABILITY_FIGURES")
    if path and FIGURES:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(dict(FIGURES), fh, indent=1, ensure_ascii=False)
