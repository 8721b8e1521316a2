"""The pay sheet was cancelled or failed: ``POST /api/topup/orders/<no>/cancel`` closes the order at WeChat Pay so it
stops counting toward the daily limit at once — or credits it when WeChat says it was paid after all, or leaves it
counting when WeChat Pay does not answer. The page, the chat and the server show the same remaining amount."""

from __future__ import annotations

import pytest

from tests.support.topup import (
    Phone,
    card,
    emu_pay,
    logged_in,
    notify,
    order_row,
    student,
    topup_entries,
    transaction,
)

pytestmark = pytest.mark.usefixtures("ledger_checked")

OPENID = "oTopupCancelUser00000001"


def cancel(phone: Phone, order_no: str):
    return phone.http.post(phone.live.url + f"/api/topup/orders/{order_no}/cancel", headers={"X-CSRF-Token": phone.csrf}, timeout=15)


def remaining_everywhere(live, phone, wx) -> tuple[str, str]:
    """What the page says and what the chat's top-up link says about today's remaining amount."""
    page = phone.open_page().text
    chat = wx.text(OPENID, "充值").articles[0]["Description"]  # a text has its own MsgId: never a dedup hit
    return page, chat


def test_cancel_frees_the_daily_limit_at_once(live, wx):
    card_id = student(live, OPENID, balance_fen=0)
    phone = logged_in(live, OPENID)
    orders = [phone.order(50000, "custom").json() for _ in range(4)]
    assert phone.order(1000, "custom").status_code == 409  # 2000 yuan a day, all of it in open orders
    assert phone.pay(orders[0]["pay_params"], outcome="cancel").json()["err_msg"].endswith(":cancel")

    r = cancel(phone, orders[0]["order_no"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "closed" and body["remaining_fen"] == 50000 and body["remaining"] == "500.00" and body["message"]
    assert emu_pay(live).orders[orders[0]["order_no"]].trade_state == "CLOSED"
    assert order_row(live, orders[0]["order_no"]).status == "closed"
    page, chat = remaining_everywhere(live, phone, wx)
    assert "今日还可充值 500.00 元" in page and "今日还可充值 500.00 元" in chat

    assert cancel(phone, orders[0]["order_no"]).json()["status"] == "closed"  # again: harmless
    assert phone.pay(orders[0]["pay_params"]).json()["err_msg"].endswith(":fail")  # closed at WeChat: cannot be paid now
    assert phone.order(50000, "custom").status_code == 201  # the freed amount can be ordered again
    page, chat = remaining_everywhere(live, phone, wx)
    assert "今日还可充值 0.00 元" in page and "今日还可充值 0.00 元" in chat
    assert topup_entries(live, card_id) == []


def test_cancel_needs_the_csrf_header_and_a_session(live):
    student(live, OPENID)
    phone = logged_in(live, OPENID)
    order_no = phone.order(50000, "custom").json()["order_no"]
    no_header = phone.http.post(live.url + f"/api/topup/orders/{order_no}/cancel", timeout=10)
    assert no_header.status_code == 403 and no_header.json()["error"] == "csrf"
    phone.csrf = "forged"
    assert cancel(phone, order_no).status_code == 403
    assert cancel(Phone(live, OPENID), order_no).status_code == 401
    assert order_row(live, order_no).status == "created" and emu_pay(live).orders[order_no].trade_state == "NOTPAY"


def test_someone_elses_order_answers_404_like_an_unknown_one(live):
    card_id = student(live, OPENID)
    other = "oTopupCancelUser00000002"
    student(live, other, card_id=card_id)  # even a second holder of the same card
    phone = logged_in(live, OPENID)
    order_no = phone.order(50000, "custom").json()["order_no"]
    stranger = logged_in(live, other)
    mine, unknown = cancel(stranger, order_no), cancel(stranger, "T20260101000000AAAAAAAAAA")
    assert mine.status_code == unknown.status_code == 404 and mine.json() == unknown.json()
    assert cancel(stranger, "..%2F..%2Fetc").status_code == 404
    assert order_row(live, order_no).status == "created" and emu_pay(live).orders[order_no].trade_state == "NOTPAY"


def test_order_paid_at_the_last_second_is_credited_once_not_closed(live):
    emu_pay(live).notify_enabled = False  # the notify is still on its way
    card_id = student(live, OPENID, balance_fen=1000)
    phone = logged_in(live, OPENID)
    body = phone.order(5000, "quick").json()
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")  # paid; the page's callback got lost

    r = cancel(phone, body["order_no"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paid" and r.json()["balance"] == "60.00" and r.json()["remaining"] == "1950.00"
    assert "充值成功" in r.json()["message"]
    assert emu_pay(live).orders[body["order_no"]].trade_state == "SUCCESS"
    assert notify(live, transaction(live, body["order_no"])).status_code in (200, 204)  # the late notify
    assert cancel(phone, body["order_no"]).json()["status"] == "paid"
    assert card(live, card_id).balance_fen == 6000 and len(topup_entries(live, card_id)) == 1


def test_order_paid_between_the_query_and_the_close_is_credited(live):
    emu_pay(live).notify_enabled = False
    card_id = student(live, OPENID, balance_fen=0)
    phone = logged_in(live, OPENID)
    body = phone.order(20000, "custom").json()
    emu_pay(live).faults["close"] = ["paid_meanwhile"]  # WeChat answers ORDERPAID: the student paid a moment ago

    r = cancel(phone, body["order_no"])
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    assert order_row(live, body["order_no"]).status == "paid"
    assert card(live, card_id).balance_fen == 20000 and len(topup_entries(live, card_id)) == 1


def test_wechat_pay_not_answering_leaves_the_order_counting(live, wx):
    student(live, OPENID)
    phone = logged_in(live, OPENID)
    order_no = phone.order(50000, "custom").json()["order_no"]
    e = emu_pay(live)

    e.faults["query"] = ["5xx"]
    r = cancel(phone, order_no)
    assert r.status_code == 503 and r.json()["status"] == "created" and r.json()["remaining"] == "1500.00"
    assert "仍计入今日额度" in r.json()["message"]
    assert order_row(live, order_no).status == "created" and e.orders[order_no].trade_state == "NOTPAY"

    e.faults["close"] = ["lost"]  # WeChat closes it, but its answer never arrives
    r = cancel(phone, order_no)
    assert r.status_code == 503 and r.json()["status"] == "created"
    assert e.orders[order_no].trade_state == "CLOSED" and order_row(live, order_no).status == "created"
    page, chat = remaining_everywhere(live, phone, wx)
    assert "今日还可充值 1500.00 元" in page and "今日还可充值 1500.00 元" in chat  # still counts until confirmed

    r = cancel(phone, order_no)  # asked again with the same order number: WeChat now says CLOSED
    assert r.status_code == 200 and r.json()["status"] == "closed" and r.json()["remaining"] == "2000.00"
