"""Contract tests of the emulated WeChat Pay v3: it must behave like the real service (merchant signatures checked,
responses and notifies signed by the platform key, AES-GCM resources, retry schedule, bills, refunds), so the
bot's PayClient (wechatpayv3) is exercised exactly as in production."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from bot.adapters.pay import PayClient, PayError, parse_trade_bill
from bot.clock import SCHOOL_TZ
from bot.config import PayConfig
from tests.conftest import free_port
from tests.support.topup import (
    emu_pay,
    logged_in,
    student,
    verify_pay_sign,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("ledger_checked")

OPENID = "oEmuPayUser0000000000001"


def _client(live, **changes) -> PayClient:
    cfg = PayConfig(**{**live.cfg.pay.model_dump(), **changes})
    return PayClient(cfg, live.cfg.wechat.appid)


def _expire(minutes=15):
    return datetime.now(SCHOOL_TZ) + timedelta(minutes=minutes)


def test_requests_signed_with_another_key_are_refused(live, keys_dir):
    impostor = _client(live, private_key_path=str(keys_dir / "platform_private.pem"))
    with pytest.raises(PayError) as exc:
        impostor.jsapi_order("T0000000000000000000001", 100, OPENID, "x", _expire())
    assert exc.value.status == 401 and exc.value.code == "SIGN_ERROR"
    with pytest.raises(PayError) as exc:
        _client(live, cert_serial_no="0000").query("T0000000000000000000001")
    assert exc.value.code == "SIGN_ERROR"
    r = requests.get(live.url + "/v3/pay/transactions/out-trade-no/T0000000000000000000001", params={"mchid": live.cfg.pay.mchid})
    assert r.status_code == 401


def test_responses_are_signed_by_the_platform_key(live, keys_dir):
    """A client that trusts another platform key refuses the (otherwise fine) answer."""
    wrong = _client(live, public_key_path=str(keys_dir / "merchant_public.pem"))
    with pytest.raises(PayError) as exc:
        wrong.jsapi_order("T0000000000000000000002", 100, OPENID, "x", _expire())
    assert exc.value.code == "BAD_RESPONSE"
    assert live.services.pay.jsapi_order("T0000000000000000000003", 100, OPENID, "x", _expire()).startswith("wx")


def test_order_rules_and_repeats(live):
    pay = live.services.pay
    first = pay.jsapi_order("T0000000000000000000004", 500, OPENID, "校园卡充值", _expire())
    assert pay.jsapi_order("T0000000000000000000004", 500, OPENID, "校园卡充值", _expire()) == first
    with pytest.raises(PayError) as exc:
        pay.jsapi_order("T0000000000000000000004", 600, OPENID, "校园卡充值", _expire())
    assert exc.value.code == "INVALID_REQUEST"
    for bad in ("short", "T" * 33, "T000000000000000000000#"):
        with pytest.raises(PayError) as exc:
            pay.jsapi_order(bad, 500, OPENID, "x", _expire())
        assert exc.value.code == "PARAM_ERROR"
    with pytest.raises(PayError) as exc:  # PayClient cuts descriptions to 127; the raw SDK call does not
        pay._call(pay.client.pay, description="x" * 128, out_trade_no="T0000000000000000000005", amount={"total": 500}, payer={"openid": OPENID})
    assert exc.value.code == "PARAM_ERROR"
    assert len(pay.query("T0000000000000000000004")["out_trade_no"]) == 23
    tx = pay.query("T0000000000000000000004")
    assert tx["trade_state"] == "NOTPAY" and tx["amount"]["total"] == 500 and tx["payer"]["openid"] == OPENID
    with pytest.raises(PayError) as exc:
        pay.query("T0000000000000000000099")
    assert exc.value.status == 404 and exc.value.code == "ORDER_NOT_EXIST"
    pay.close("T0000000000000000000004")
    assert pay.query("T0000000000000000000004")["trade_state"] == "CLOSED"


def test_confirm_checks_pay_sign_payer_and_state(live):
    pay = live.services.pay
    prepay = pay.jsapi_order("T0000000000000000000010", 300, OPENID, "x", _expire())
    params = pay.pay_params(prepay)
    verify_pay_sign(live, params)
    url = live.url + "/emulator/pay/confirm"
    forged = {**params, "nonceStr": params["nonceStr"] + "x", "openid": OPENID, "outcome": "success"}
    r = requests.post(url, json=forged)
    assert r.status_code == 400 and r.json()["err_msg"] == "get_brand_wcpay_request:fail"
    r = requests.post(url, json={**params, "openid": "oSomeoneElse", "outcome": "success"})
    assert r.status_code == 403
    assert requests.post(url, json={**params, "openid": OPENID, "outcome": "cancel"}).json()["err_msg"].endswith(":cancel")
    emu_pay(live).notify_enabled = False
    assert requests.post(url, json={**params, "openid": OPENID, "outcome": "success"}).json()["err_msg"].endswith(":ok")
    assert requests.post(url, json={**params, "openid": OPENID, "outcome": "success"}).status_code == 409  # no paying twice
    tx = pay.query("T0000000000000000000010")
    assert tx["trade_state"] == "SUCCESS" and tx["transaction_id"].startswith("4200") and tx["success_time"].endswith("+08:00")
    with pytest.raises(PayError) as exc:
        pay.close("T0000000000000000000010")
    assert exc.value.code == "ORDERPAID"
    short = pay.jsapi_order("T0000000000000000000011", 300, OPENID, "x", _expire(5))
    emu_pay(live).clock_offset += 6 * 60
    r = requests.post(url, json={**pay.pay_params(short), "openid": OPENID, "outcome": "success"})
    assert r.status_code == 409 and r.json()["err_msg"].endswith(":fail")


class _Receiver:
    """A merchant server that fails the first ``failures`` notifies, verifying each with the real SDK."""

    def __init__(self, live, failures: int) -> None:
        self.failures = failures
        self.got: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        app = Flask("receiver")
        pay = live.services.pay

        @app.post("/notify")
        def notify():
            from flask import request

            data = pay.parse_notify(request.headers, request.get_data(), time.time())
            with self.lock:
                self.got.append((time.monotonic(), data))
                n = len(self.got)
            return ("", 500) if n <= self.failures else ("", 204)

        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"


def test_notifies_follow_the_retry_schedule_and_decrypt(make_live):
    live = make_live(emulator={"notify_retry_scale": 0.002})
    rx = _Receiver(live, failures=3)
    try:
        pay = _client(live, notify_url=rx.url)
        prepay = pay.jsapi_order("T0000000000000000000020", 700, OPENID, "x", _expire())
        t0 = time.monotonic()
        r = requests.post(live.url + "/emulator/pay/confirm", json={**pay.pay_params(prepay), "openid": OPENID, "outcome": "success"})
        assert r.json()["err_msg"].endswith(":ok")
        deadline = time.monotonic() + 10
        while len(rx.got) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(rx.got) == 4
        gaps = [round(b[0] - a[0], 3) for a, b in zip([(t0, None)] + rx.got, rx.got)]
        # 0, 15 s, 15 s, 30 s scaled by 0.002 → 0, 0.03, 0.03, 0.06
        assert gaps[1] >= 0.03 and gaps[2] >= 0.03 and gaps[3] >= 0.06
        data = rx.got[-1][1]
        assert data["event_type"] == "TRANSACTION.SUCCESS"
        assert data["resource"]["out_trade_no"] == "T0000000000000000000020"
        assert data["resource"]["amount"]["total"] == 700
        time.sleep(0.2)
        assert len(rx.got) == 4  # answered: no more
        wait_for(lambda: len(emu_pay(live).notify_log) == 4)
        assert [x["status"] for x in emu_pay(live).notify_log] == [500, 500, 500, 204]
    finally:
        rx.server.shutdown()


def test_notify_duplicates_arrive_together(make_live):
    live = make_live(emulator={"notify_duplicate_rate": 1.0})
    rx = _Receiver(live, failures=0)
    try:
        pay = _client(live, notify_url=rx.url)
        prepay = pay.jsapi_order("T0000000000000000000021", 700, OPENID, "x", _expire())
        requests.post(live.url + "/emulator/pay/confirm", json={**pay.pay_params(prepay), "openid": OPENID, "outcome": "success"})
        deadline = time.monotonic() + 5
        while len(rx.got) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(rx.got) == 2
        assert rx.got[0][1]["id"] == rx.got[1][1]["id"]  # one notification, sent twice
        assert abs(rx.got[0][0] - rx.got[1][0]) < 2
        wait_for(lambda: len(emu_pay(live).notify_log) == 2)
        assert [x["attempt"] for x in emu_pay(live).notify_log] == [1, 1]
    finally:
        rx.server.shutdown()


def test_trade_bill_download_and_refunds(live):
    student(live, OPENID, balance_fen=0)
    phone = logged_in(live, OPENID)
    emu_pay(live).notify_enabled = False
    body = phone.order(5000, "quick").json()
    phone.pay(body["pay_params"])
    day = datetime.fromtimestamp(emu_pay(live).now(), SCHOOL_TZ).date().isoformat()
    rows = live.services.pay.trade_bill(day)
    assert [(r.out_trade_no, r.trade_state, r.total_fen) for r in rows] == [(body["order_no"], "SUCCESS", 5015)]
    pay = live.services.pay
    with pytest.raises(PayError) as exc:
        pay._call(
            pay.client.refund,
            out_refund_no="R1" + body["order_no"],
            amount={"refund": 1000, "total": 5000, "currency": "CNY"},
            out_trade_no=body["order_no"],
        )
    assert exc.value.code == "PARAM_ERROR"  # total must be the order's
    with pytest.raises(PayError) as exc:
        pay._call(
            pay.client.refund,
            out_refund_no="R1" + body["order_no"],
            amount={"refund": 6000, "total": 5015, "currency": "CNY"},
            out_trade_no=body["order_no"][:-1] + "Z",
        )
    assert exc.value.status == 404
    for _ in range(2):  # the same refund number twice is one refund
        _, raw = pay._call(
            pay.client.refund,
            out_refund_no="R1" + body["order_no"][:20],
            amount={"refund": 1000, "total": 5015, "currency": "CNY"},
            out_trade_no=body["order_no"],
        )
        assert json.loads(raw)["status"] in ("PROCESSING", "SUCCESS")
    with pytest.raises(PayError) as exc:
        pay._call(
            pay.client.refund,
            out_refund_no="R2" + body["order_no"][:20],
            amount={"refund": 4100, "total": 5015, "currency": "CNY"},
            out_trade_no=body["order_no"],
        )
    assert exc.value.code == "INVALID_REQUEST"  # more than is left to refund
    wait_for(lambda: pay.query_refund("R1" + body["order_no"][:20]).status == "SUCCESS")
    _, raw = pay._call(pay.client.query_refund, "R1" + body["order_no"][:20])
    assert json.loads(raw)["amount"]["refund"] == 1000
    rows = pay.trade_bill(day)
    assert sorted((r.trade_state, r.total_fen, r.refund_fen, r.refund_status) for r in rows) == [
        ("REFUND", 0, 1000, "SUCCESS"),
        ("SUCCESS", 5015, 0, ""),
    ]
    assert [r.out_refund_no for r in rows if r.trade_state == "REFUND"] == ["R1" + body["order_no"][:20]]
    assert pay.trade_bill("2000-01-01") == []
    # the raw file, as the merchant platform serves it: gzip, SHA1 announced, backtick-prefixed fields
    _, meta = pay._call(pay.client.trade_bill, bill_date=day, bill_type="ALL", tar_type="GZIP")
    meta = json.loads(meta)
    _, gz = pay._call(pay.client.download_bill, meta["download_url"])
    text = gzip.decompress(gz)
    assert hashlib.sha1(text).hexdigest() == meta["hash_value"]
    assert text.decode().splitlines()[1].startswith("`")
    assert len(parse_trade_bill(text.decode())) == 2
    assert requests.get(meta["download_url"]).status_code == 401  # unsigned download refused


def test_keys_are_real_files(live):
    assert Path(live.cfg.emulator.merchant_public_key_path).read_text().startswith("-----BEGIN PUBLIC KEY-----")
