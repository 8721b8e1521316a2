"""``cardbot demo`` (what ``make run`` starts), run for real in a fresh folder: no Redis URL, no config file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bot.emulator.demo import demo_config
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.unit
def test_demo_config_points_every_wechat_address_at_the_emulator(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = demo_config(None, "127.0.0.1", 8123)
    base = "http://127.0.0.1:8123"
    assert cfg.emulator.enabled
    assert (cfg.wechat.api_base_url, cfg.wechat.oauth_base_url, cfg.pay.api_base_url, cfg.server.public_base_url) == (base,) * 4
    assert cfg.pay.notify_url == base + "/pay/notify"


def test_cardbot_demo_serves_the_simulator_from_a_fresh_folder(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDBOT_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from bot.cli import main; main()", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if requests.get(base + "/simulator", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            raise AssertionError("demo did not start")
        r = requests.post(base + "/simulator/api/send", json={"openid": "oDemoTest00000000001", "type": "click", "key": "HELP"}, timeout=10)
        assert r.json()["type"] == "text" and "余额" in r.json()["content"]
        assert (tmp_path / "var" / "cardbot.db").exists() and (tmp_path / "var" / "keys" / "merchant_private.pem").exists()
        assert list((tmp_path / "var").glob("redis.db*"))  # embedded Redis, as on a fresh clone
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert f"{base}/simulator" in out
    assert proc.returncode == 0, out[-2000:]


def test_demo_restart_keeps_every_balance(live, capsys):
    """``make run`` imports the demo roster at every start: a balance that moved since must stay as it is."""
    from sqlalchemy import select

    from bot.emulator.demo import prepare
    from models import Cardholder, ledger_sum, post_entry

    prepare(live.cfg, live.services)
    with live.session() as db, db.begin():
        zhang = db.execute(select(Cardholder).where(Cardholder.student_no == "20230001")).scalar_one()
        post_entry(db, zhang.id, -1250, "spend", "test:canteen:1", description="canteen")
        balances = dict(db.execute(select(Cardholder.student_no, Cardholder.balance_fen)).all())
    assert balances["20230001"] == 8750
    capsys.readouterr()
    prepare(live.cfg, live.services)  # the restart
    assert "created 0" in capsys.readouterr().out
    with live.session() as db:
        assert dict(db.execute(select(Cardholder.student_no, Cardholder.balance_fen)).all()) == balances
        for card in db.execute(select(Cardholder)).scalars():
            assert card.balance_fen == ledger_sum(db, card.id)


@pytest.mark.unit
def test_demo_config_on_the_http_adapter_points_at_the_emulators_card_system(tmp_path, monkeypatch):
    from bot.adapters.cardsystem import http_card_system

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARDBOT_CARDSYSTEM__ADAPTER", "http")
    cfg = demo_config(None, "127.0.0.1", 8123)
    assert cfg.cardsystem.adapter == "http"
    assert http_card_system(cfg).base == "http://127.0.0.1:8123/emulator/cardsys/v1"


def test_demo_on_the_emulators_card_system_binds_shows_the_balance_and_delivers_a_top_up(make_live, capsys):
    """``CARDBOT_CARDSYSTEM__ADAPTER=http make run``: the demo roster's card at the emulator's card system, bound in the
    chat, topped up by WeChat Pay while the card system is closed, and delivered by the demo's worker pass."""
    from datetime import timedelta

    from bot.emulator.demo import background_pass, prepare
    from tests.support.delivery import credit_row
    from tests.support.topup import logged_in, wait_for, wait_paid

    live = make_live(cardsystem={"adapter": "http"})
    prepare(live.cfg, live.services)
    openid, wx = "oDemoHttp000000000000001", live.pusher("plain")
    account = live.app.extensions["emulator_cardsys"].accounts["20230001"]
    assert account.balance_fen == 10000

    assert "学号" in wx.click(openid, "BIND").content
    wx.text(openid, "20230001")
    wx.text(openid, "张三")
    bound = wx.text(openid, "151020").content
    assert "绑定成功" in bound
    assert "100.00" in wx.click(openid, "BALANCE").content

    live.app.extensions["emulator_cardsys"].faults["credit"] = ["maintenance"]  # nightly settlement: the credit waits
    phone = logged_in(live, openid)
    body = phone.order(5000, "quick").json()
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")
    wait_paid(live, body["order_no"])
    wait_for(lambda: credit_row(live, body["order_no"]).waiting_for == "maintenance")  # the paying request's try is over
    assert account.balance_fen == 10000
    live.services.clock.shift(timedelta(minutes=11))  # past retry_after
    background_pass(live.services)
    assert account.balance_fen == 15000 and account.entries[-1]["kind"] == "topup"
    wait_for(lambda: "150.00" in wx.text(openid, "余额").content)
