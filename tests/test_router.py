"""The router: routes declared per handler module and composed once, the needs_card rule, ``cardbot routes``."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import event

import menus
from bot.chat.router import Router, Routes
from bot.chat.routes import build_router
from bot.texts import zh
from tests.support.factories import bind, make_cardholder

OID = "oRouter000000000000000001"
GUARDED_CLICKS = {
    "BALANCE": "not_bound",
    "BILLS": "not_bound",
    "TOPUP": "not_bound",
    "POWER": "not_bound",
    "UNBIND": "not_bound",
    "BINDINGS": "not_bound",
    "AUTODEBIT": "autodebit_not_bound",
    "LOSS": "not_bound",
    "ALERTS": "not_bound",
}

seen_cards: list[str] = []
test_routes = Routes()


@test_routes.text("__test_guarded__")
@test_routes.needs_card()
def _guarded(msg, ctx):
    seen_cards.append(ctx.card().student_no)
    return "ran"


@pytest.mark.unit
def test_builder_refuses_a_duplicate_key_naming_both_handlers():
    mine = Routes()

    @mine.click("BALANCE")
    def my_balance(msg, ctx):
        return "mine"

    with pytest.raises(ValueError) as err:
        build_router(mine)
    assert "'BALANCE'" in str(err.value)
    assert "handlers.balance.balance" in str(err.value) and "my_balance" in str(err.value)


@pytest.mark.unit
def test_needs_card_refuses_an_unknown_text_and_a_handler_without_route():
    routes = Routes()
    with pytest.raises(ValueError, match="no text 'not_bund'"):
        routes.needs_card("not_bund")
    routes.needs_card()(lambda msg, ctx: "x")
    with pytest.raises(ValueError, match="which has no route"):
        Router(routes)


@pytest.mark.unit
def test_a_duplicate_word_is_refused_after_normalising():
    a, b = Routes(), Routes()
    a.text("余额")(lambda msg, ctx: "a")
    b.text(" 余额 ")(lambda msg, ctx: "b")
    with pytest.raises(ValueError, match="'余额'"):
        Router(a, b)


def test_every_guarded_route_answers_not_bound(live, wx):
    """Without the handler, or (``reads_card``) the handler finding no card in its own read and raising NotBound."""
    router = live.router
    guarded = [route for route in router.table() if route.needs_card]
    assert {key: route.needs_card for route in guarded if route.kind == "click" for key in route.keys} == GUARDED_CLICKS
    create_time = int(time.time())
    for route in guarded:
        assert route.kind in ("click", "text"), route
        for key in route.keys:
            create_time += 1
            reply = wx.click(OID, key, create_time=create_time) if route.kind == "click" else wx.text(OID, key)
            assert reply.type == "text" and reply.content == zh.TEXTS[route.needs_card], (route.kind, key)
            assert live.services.dialogs.get(OID) is None, key  # UNBIND's handler would have asked to confirm


def test_guarded_handler_gets_the_card_without_a_second_query(make_live):
    live = make_live(routes=[test_routes])
    wx = live.pusher()
    seen_cards.clear()
    assert wx.text(OID, "__test_guarded__").content == zh.TEXTS["not_bound"]
    assert seen_cards == []
    with live.session() as db:
        bind(db, OID, make_cardholder(db, student_no="20239999", balance_fen=1000))
        db.commit()
    lookups: list[str] = []
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)
        if "FROM bindings" in statement:
            lookups.append(statement)

    engines = {live.services.engine.pool: live.services.engine, live.services.read_engine.pool: live.services.read_engine}
    for engine in engines.values():
        event.listen(engine, "before_cursor_execute", count)
    try:
        assert wx.text(OID, "__test_guarded__").content == "ran"
        assert seen_cards == ["20239999"] and len(lookups) == 1
        statements.clear()
        assert "余额：10.00 元" in wx.click(OID, "BALANCE").content
        assert len(statements) == 1 and "JOIN bindings" in statements[0], statements  # no BEGIN, no user read
    finally:
        for engine in engines.values():
            event.remove(engine, "before_cursor_execute", count)


def test_cardbot_routes_lists_every_menu_key_without_database_or_redis(tmp_path):
    env = {
        **os.environ,
        "CARDBOT_DATABASE__URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "CARDBOT_REDIS__URL": "redis://127.0.0.1:1/0",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", "routes"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:] if line.strip()]
    clicks = {row[1]: row for row in rows if row[0] == "click"}
    for key in menus.click_keys(menus.load()):
        assert key in clicks, f"menu key {key} has no route"
    assert clicks["BALANCE"][2:] == ["handlers.balance.balance", "not_bound"]
    assert clicks["AUTODEBIT"][2:] == ["handlers.autodebit.autodebit", "autodebit_not_bound"]
    assert clicks["HELP"][2:] == ["handlers.help.help_", "-"]
    kinds = [row[0] for row in rows]
    order = ["cancel", "state", "click", "event", "text", "expired", "understood", "msgtype", "fallback"]
    assert sorted(kinds, key=order.index) == kinds and set(kinds) == set(order)
