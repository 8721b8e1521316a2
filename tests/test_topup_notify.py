"""POST /pay/notify with real RSA signatures and AES-256-GCM: genuine notifies credit once; forged, tampered or
mismatched ones are refused with WeChat's FAIL answer, change nothing and are logged without secrets."""

from __future__ import annotations

import logging

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.topup import (
    assert_ledger_consistent,
    card,
    emu_pay,
    logged_in,
    merchant_private_key,
    notify,
    order_row,
    receipts,
    student,
    topup_entries,
    transaction,
    wait_for,
    wait_paid,
)

pytestmark = pytest.mark.usefixtures("ledger_checked")

OPENID = "oTopupNotifyUser00000001"


def _unchanged(live, card_id, order_no):
    assert order_row(live, order_no).status == "created"
    assert topup_entries(live, card_id) == []
    assert receipts(live) == []
    assert card(live, card_id).balance_fen == 2000
    assert_ledger_consistent(live)


def _flip_byte(body: bytes) -> bytes:
    return body.replace(b'"summary": "', b'"summary": "X', 1)


def _other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    "forgery",
    ["random_key", "merchant_key", "tampered_body", "wrong_apiv3_key", "unknown_serial", "no_signature", "other_algorithm", "garbage_signature"],
)
def test_forged_notify_is_refused_and_changes_nothing(live, paid_at_wechat, forgery, caplog):
    card_id, order_no = paid_at_wechat
    tx = transaction(live, order_no)
    kwargs = {
        "random_key": {"key": _other_key()},
        "merchant_key": {"key": merchant_private_key(live)},
        "tampered_body": {"tamper": _flip_byte},
        "wrong_apiv3_key": {"apiv3_key": "0" * 32},
        "unknown_serial": {"serial": "PUB_KEY_ID_SOMEBODY_ELSE"},
        "no_signature": {"headers_edit": {"Wechatpay-Signature": None}},
        "other_algorithm": {"headers_edit": {"Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3"}},
        "garbage_signature": {"headers_edit": {"Wechatpay-Signature": "!!not base64!!"}},
    }[forgery]
    with caplog.at_level(logging.INFO):
        r = notify(live, tx, **kwargs)
    assert 400 <= r.status_code < 500
    assert r.json()["code"] == "FAIL" and r.json()["message"]
    _unchanged(live, card_id, order_no)
    assert "pay notify refused" in caplog.text
    assert live.cfg.pay.apiv3_key not in caplog.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", {"total": 5000, "currency": "CNY"}),  # the credited amount, not what was paid
        ("amount", {"total": 5016, "currency": "CNY"}),
        ("amount", {"total": 1, "currency": "CNY"}),
        ("mchid", "1900000000"),
        ("appid", "wxsomeoneelse0000"),
        ("out_trade_no", "T2026NOSUCHORDER0000000"),
        ("trade_state", "NOTPAY"),
        ("payer", {"openid": "oSomebodyElse"}),
    ],
)
def test_genuine_but_mismatched_notify_is_refused(live, paid_at_wechat, field, value, caplog):
    card_id, order_no = paid_at_wechat
    tx = {**transaction(live, order_no), field: value}
    with caplog.at_level(logging.INFO):
        r = notify(live, tx)
    assert r.status_code == 400
    assert r.json()["code"] == "FAIL"
    _unchanged(live, card_id, order_no)
    assert "refused" in caplog.text


def test_genuine_notify_after_forged_ones_still_credits(live, paid_at_wechat):
    card_id, order_no = paid_at_wechat
    tx = transaction(live, order_no)
    assert notify(live, {**tx, "amount": {"total": 1, "currency": "CNY"}}).status_code == 400
    assert notify(live, tx).status_code == 204
    assert card(live, card_id).balance_fen == 7000
    assert len(receipts(live)) == 1
    assert_ledger_consistent(live)


def test_other_events_are_acknowledged_without_effect(live, paid_at_wechat):
    card_id, order_no = paid_at_wechat
    r = notify(live, transaction(live, order_no), event_type="REFUND.SUCCESS")
    assert r.status_code in (200, 204)
    _unchanged(live, card_id, order_no)


def test_notify_for_an_order_closed_locally_still_credits(live, paid_at_wechat):
    """WeChat took the money, so the card must get it even if we had given the order up."""
    card_id, order_no = paid_at_wechat
    with live.session() as db, db.begin():
        from sqlalchemy import select

        from models import TopupOrder

        db.execute(select(TopupOrder).where(TopupOrder.order_no == order_no)).scalar_one().status = "closed"
    assert notify(live, transaction(live, order_no)).status_code == 204
    assert order_row(live, order_no).status == "paid"
    assert card(live, card_id).balance_fen == 7000
    assert_ledger_consistent(live)


def test_emulator_retries_until_the_bot_answers(make_live):
    """The first notifies fail (our database briefly refuses); WeChat's retries then credit once."""
    live = make_live()
    card_id = student(live, OPENID, balance_fen=2000)
    phone = logged_in(live, OPENID)
    body = phone.order(1000, "custom").json()
    real = live.services.pay.parse_notify
    calls = {"n": 0}

    def flaky(headers, raw, now):
        calls["n"] += 1
        if calls["n"] <= 2:
            from sqlalchemy.exc import OperationalError

            raise OperationalError("SELECT 1", {}, Exception("database is restarting"))
        return real(headers, raw, now)

    live.services.pay.parse_notify = flaky
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")
    wait_paid(live, body["order_no"])
    log = wait_for(lambda: len(got := [x for x in emu_pay(live).notify_log if x["out_trade_no"] == body["order_no"]]) >= 3 and got)
    assert [x["status"] for x in log][:3] == [503, 503, 204]
    assert card(live, card_id).balance_fen == 3000
    assert_ledger_consistent(live)
