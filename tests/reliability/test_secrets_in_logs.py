"""Every log line of a full scenario, at DEBUG, through the production JSON formatter (bot/logs.py): binding with the
card password, balance, a top-up paid and notified, the receipt sent as a template message, a card-system spend,
a wrong password and a forged notify. None of the secrets involved, nor the raw openid, may appear.

The emulator's own loggers (the pretend WeChat) are left out: they are not part of what a school runs.
"""

from __future__ import annotations

import logging
import re
import time

from sqlalchemy import select

from bot.adapters import cardsys_signing
from bot.logs import JsonFormatter
from models import Cardholder
from tests.support.factories import make_cardholder
from tests.support.reliability import click, tally
from tests.support.topup import logged_in, notify, transaction, wait_for, wait_paid

OPENID = "oSecretsAuditStudent0042"
ID_NUMBER = "44030519991231987X"
CARD_PASSWORD = "319870"  # the last six of ID_NUMBER, X written as 0


def _scenario(live, wx) -> dict[str, str]:
    """Run everything once; returns the secrets that passed through the system on the way."""
    with live.session() as db:
        make_cardholder(db, "20231234", "王小明", ID_NUMBER, balance_fen=3000)
        db.commit()
    with live.emulator.lock:
        live.emulator.followers.add(OPENID)
    click(wx, OPENID, "BIND")
    wx.text(OPENID, "20231234")
    wx.text(OPENID, "王小明")
    assert "绑定成功" not in wx.text(OPENID, "999999").content  # a wrong password first
    wx.text(OPENID, "20231234")
    wx.text(OPENID, "王小明")
    assert "绑定成功" in wx.text(OPENID, CARD_PASSWORD).content
    assert "30.00" in wx.text(OPENID, "余额").content

    phone = logged_in(live, OPENID)
    body = phone.order(5000, "quick").json()
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")
    wait_paid(live, body["order_no"])
    tx = transaction(live, body["order_no"])
    notify(live, {**tx, "amount": {"total": 1, "currency": "CNY"}})  # a forged amount, refused and logged

    from bot import outbox

    wait_for(lambda: outbox.drain_once(live.services, "audit") or None, timeout=10)
    with live.emulator.lock:
        assert any(m["kind"] == "template" for m in live.emulator.inbox.get(OPENID, []))
        tokens = [tok.value for tok in live.emulator.tokens]

    raw = (
        b'{"entry_id": "E-audit-1", "student_no": "20231234", "amount_fen": -7500, "merchant": "canteen", "occurred_at": "2026-11-25T12:00:00+08:00"}'
    )
    import requests

    r = requests.post(
        live.url + "/integration/card-entries",
        data=raw,
        timeout=10,
        headers={"Content-Type": "application/json", **cardsys_signing.sign(live.cfg.cardsystem.secret, "POST", "/integration/card-entries", raw)},
    )
    assert r.status_code == 200, r.text
    with live.session() as db:
        assert db.execute(select(Cardholder.balance_fen).where(Cardholder.student_no == "20231234")).scalar_one() == 500
    return {
        "card password": CARD_PASSWORD,
        "id number": ID_NUMBER,
        "apiv3 key": live.cfg.pay.apiv3_key,
        "app secret": live.cfg.wechat.secret,
        "aes key": live.cfg.wechat.encoding_aes_key,
        "session secret": live.cfg.server.secret_key,
        "card system secret": live.cfg.cardsystem.secret,
        "paySign": body["pay_params"]["paySign"],
        "session cookie": phone.http.cookies["cardbot_session"],
        "csrf token": phone.csrf,
        "raw openid": OPENID,
        **{f"access token {i}": tok for i, tok in enumerate(tokens)},
    }


def test_no_secret_or_raw_openid_in_any_log_line(live, caplog):
    wx = live.pusher("aes")
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # outbound URLs carry access_token, secret and code: an operator may turn this on
    secrets = _scenario(live, wx)
    assert any(k.startswith("access token") for k in secrets)
    time.sleep(0.7)  # late lines: WeChat's job-finish push, the emulator's notify retries
    formatter = JsonFormatter()
    records = [r for r in caplog.records if not r.name.startswith("bot.emulator")]
    lines = [formatter.format(r) for r in records]
    tally("log lines audited", len(lines))
    assert any("urllib3" in line and "access_token=***" in line for line in lines), lines  # the scrubber really had work to do
    text = "\n".join(lines)
    leaks = {name: value for name, value in secrets.items() if value and value in text}
    assert not leaks, {name: [line for line in lines if value in line][:2] for name, value in leaks.items()}
    assert re.search(r"\b\d{17}[\dX]\b", text) is None  # no ID number of anybody
