"""Fixtures of the reliability suite: breakable proxies and the ledger invariant checked after every test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.support.reliability import FIGURES, TcpProxy, assert_books_balance


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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for kind, n in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{kind}: {n}")
    path = os.environ.get("CARDBOT_RELIABILITY_FIGURES")
    if path and FIGURES:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(dict(FIGURES), fh, indent=1, ensure_ascii=False)
