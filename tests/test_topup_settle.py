"""No notify: the worker's ``settle_stuck_orders`` queries WeChat Pay and credits or closes; reconciliation
against the trade bill reports every difference (``cardbot reconcile DATE``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli.topup import command as reconcile_command
from bot.topup import reconcile, settle_stuck_orders
from models import TopupOrder
from tests.support.topup import (
    assert_ledger_consistent,
    card,
    emu_pay,
    logged_in,
    order_row,
    receipts,
    student,
    topup_entries,
    wait_paid,
)

pytestmark = pytest.mark.usefixtures("ledger_checked")

OPENID = "oTopupSettleUser00000001"


def _later(live, minutes):
    """Move the bot's clock and WeChat Pay's together."""
    live.services.clock.shift(timedelta(minutes=minutes))
    emu_pay(live).clock_offset += minutes * 60


def test_stuck_paid_order_is_settled_by_query(live):
    emu_pay(live).notify_enabled = False
    card_id = student(live, OPENID, balance_fen=0)
    phone = logged_in(live, OPENID)
    body = phone.order(20000, "quick").json()
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")
    assert settle_stuck_orders(live.services) == 0  # too young to be called stuck
    assert phone.status(body["order_no"]).json()["status"] == "created"  # the page says "processing"
    _later(live, live.cfg.topup.stuck_after_minutes + 1)
    assert settle_stuck_orders(live.services) == 1
    assert phone.status(body["order_no"]).json()["status"] == "paid"
    assert card(live, card_id).balance_fen == 20000
    assert len(receipts(live)) == 1 and receipts(live)[0].data["fee"] == "0.60元"
    assert settle_stuck_orders(live.services) == 0
    assert len(topup_entries(live, card_id)) == 1
    assert_ledger_consistent(live)


def test_unpaid_order_stays_open_until_expiry_then_is_closed_at_wechat_and_locally(live):
    card_id = student(live, OPENID)
    phone = logged_in(live, OPENID)
    body = phone.order(50000, "custom").json()
    _later(live, live.cfg.topup.stuck_after_minutes + 1)
    assert settle_stuck_orders(live.services) == 0  # not paid yet, but still payable
    assert order_row(live, body["order_no"]).status == "created"
    _later(live, live.cfg.pay.order_expire_minutes)
    assert settle_stuck_orders(live.services) == 1
    assert order_row(live, body["order_no"]).status == "closed"
    assert emu_pay(live).orders[body["order_no"]].trade_state == "CLOSED"
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":fail")  # too late to pay
    assert phone.status(body["order_no"]).json()["status"] == "closed"
    assert topup_entries(live, card_id) == []
    assert_ledger_consistent(live)


def test_order_paid_just_before_closing_is_credited_not_closed(live):
    emu_pay(live).notify_enabled = False
    card_id = student(live, OPENID, balance_fen=0)
    phone = logged_in(live, OPENID)
    body = phone.order(1000, "custom").json()
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")
    _later(live, live.cfg.pay.order_expire_minutes + 5)
    assert settle_stuck_orders(live.services) == 1
    assert order_row(live, body["order_no"]).status == "paid"
    assert card(live, card_id).balance_fen == 1000


def test_expired_orders_stop_counting_against_the_daily_limit(live):
    student(live, OPENID)
    phone = logged_in(live, OPENID)
    for _ in range(4):
        assert phone.order(50000, "custom").status_code == 201
    assert phone.order(1000, "custom").status_code == 409
    _later(live, live.cfg.pay.order_expire_minutes + 1)
    r = phone.order(50000, "custom")  # the abandoned orders are checked at WeChat and closed first
    assert r.status_code == 201, r.text
    with live.session() as db:
        assert len(db.execute(select(TopupOrder).where(TopupOrder.status == "closed")).all()) == 4


def test_wechat_down_while_ordering_is_a_polite_503_and_nothing_counts(live):
    student(live, OPENID)
    phone = logged_in(live, OPENID)
    original = live.services.pay.client._core._gate_way
    live.services.pay.client._core._gate_way = "http://127.0.0.1:9"  # nothing listens there
    try:
        r = phone.order(50000, "custom")
    finally:
        live.services.pay.client._core._gate_way = original
    assert r.status_code == 503 and r.json()["error"] == "pay_unavailable" and r.json()["message"]
    assert "今日还可充值 2000.00 元" in phone.open_page().text


# --- reconciliation ------------------------------------------------------------------------
class _Obj:
    def __init__(self, services):
        self.services = services


def _paid_order(live, phone, amount_fen, notify=True):
    emu_pay(live).notify_enabled = notify
    body = phone.order(amount_fen, "custom").json()
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")
    if notify:
        wait_paid(live, body["order_no"])
    return body["order_no"]


def test_reconcile_reports_every_difference(live):
    card_id = student(live, OPENID, balance_fen=0)
    phone = logged_in(live, OPENID)
    ok = _paid_order(live, phone, 1000)
    unknown_here = _paid_order(live, phone, 2000, notify=False)  # paid at WeChat, never credited here
    wrong_amount = _paid_order(live, phone, 3000)
    refunded = _paid_order(live, phone, 4000)
    today = live.services.clock.today()
    first = reconcile(live.services, today)
    assert [(d.kind, d.order_no) for d in first] == [("missing_locally", unknown_here)]
    with live.session() as db, db.begin():
        db.execute(select(TopupOrder).where(TopupOrder.order_no == wrong_amount)).scalar_one().fee_fen = 7
        ghost = TopupOrder(
            order_no="TGHOST0000000000000001",
            cardholder_id=card_id,
            openid=OPENID,
            mode="custom",
            amount_fen=500,
            fee_fen=0,
            status="paid",
            business_day=today,
            created_at=live.services.clock.utcnow(),
            expires_at=live.services.clock.utcnow(),
            paid_at=live.services.clock.utcnow(),
        )
        db.add(ghost)
    status, _ = live.services.pay._call(
        live.services.pay.client.refund,
        out_refund_no="R" + refunded,
        amount={"refund": 4000, "total": 4000, "currency": "CNY"},
        out_trade_no=refunded,
    )
    assert status == 200

    result = CliRunner().invoke(reconcile_command, [today.isoformat()], obj=_Obj(live.services))
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "4 difference(s)" in lines[0]
    assert any(ln.startswith("missing_locally") and unknown_here in ln and "20.00" in ln for ln in lines)
    assert any(ln.startswith("amount_mismatch") and wrong_amount in ln and "30.07" in ln and "30.00" in ln for ln in lines)
    assert any(ln.startswith("missing_at_wechat") and "TGHOST0000000000000001" in ln for ln in lines)
    assert any(ln.startswith("refunded_at_wechat") and refunded in ln for ln in lines)
    assert not any(ok in ln for ln in lines)


def test_reconcile_clean_day_exits_zero(live):
    student(live, OPENID, balance_fen=0)
    phone = logged_in(live, OPENID)
    _paid_order(live, phone, 1000)
    _paid_order(live, phone, 5000)
    runner = CliRunner()
    today = live.services.clock.today()
    result = runner.invoke(reconcile_command, [today.isoformat()], obj=_Obj(live.services))
    assert result.exit_code == 0, result.output
    assert "agree" in result.output
    empty_day = (today - timedelta(days=3)).isoformat()  # no bill at all: nothing paid that day anywhere
    assert runner.invoke(reconcile_command, [empty_day], obj=_Obj(live.services)).exit_code == 0
    assert runner.invoke(reconcile_command, ["yesterday"], obj=_Obj(live.services)).exit_code == 2
