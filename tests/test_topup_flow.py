"""Top-up end to end over real HTTP: the chat link, the OAuth page, ordering, paying through the emulated
WeixinJSBridge, WeChat Pay's signed and encrypted notifies (also duplicated and concurrent), one credit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from bot.clock import SCHOOL_TZ
from tests.support.topup import (
    Phone,
    assert_ledger_consistent,
    card,
    emu_pay,
    logged_in,
    notify,
    order_row,
    receipts,
    student,
    topup_entries,
    transaction,
    verify_pay_sign,
    wait_credited,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("ledger_checked")

OPENID = "oTopupFlowUser0000000001"


# --- the chat side ----------------------------------------------------------------
@pytest.mark.parametrize("how", ["click", "充值", "top up", "Top Up"])
def test_topup_link_is_one_article_without_openid(live, wx, how):
    student(live, OPENID, balance_fen=1234)
    reply = wx.click(OPENID, "TOPUP") if how == "click" else wx.text(OPENID, how)
    assert reply.type == "news", reply.raw
    assert len(reply.articles) == 1
    url = reply.articles[0]["Url"]
    assert url == live.url + "/topup"
    assert OPENID not in url
    assert "12.34" in reply.articles[0]["Description"]


def test_topup_link_refused_when_not_bound(live, wx):
    reply = wx.click(OPENID, "TOPUP")
    assert reply.type == "text"
    assert "绑定" in reply.content


@pytest.mark.parametrize(("status", "word"), [("frozen", "冻结"), ("lost", "挂失"), ("graduated", "毕业")])
def test_topup_link_explains_blocked_cards(live, wx, status, word):
    student(live, OPENID, status=status)
    reply = wx.text(OPENID, "充值")
    assert reply.type == "text"
    assert word in reply.content
    assert "/topup" not in reply.content


# --- the page ------------------------------------------------------------------------
def test_page_needs_oauth_and_never_takes_openid_from_url(live):
    student(live, OPENID)
    anonymous = Phone(live, OPENID)
    anonymous.http.cookies.clear()
    r = anonymous.http.get(live.url + "/topup", params={"openid": OPENID}, allow_redirects=False, timeout=5)
    assert r.status_code == 302
    assert "/connect/oauth2/authorize" in r.headers["Location"]
    assert "snsapi_base" in r.headers["Location"]
    r = anonymous.http.post(live.url + "/api/topup/orders", json={"amount_fen": 5000, "mode": "quick", "openid": OPENID}, timeout=5)
    assert r.status_code == 401


def test_page_shows_balance_fees_limits_and_rules_in_chinese(live):
    live.services.clock.freeze(datetime(2026, 11, 25, 10, 0, tzinfo=SCHOOL_TZ))
    student(live, OPENID, balance_fen=8888)
    page = logged_in(live, OPENID).open_page().text
    assert "*三" in page and "张三" not in page  # masked name
    assert "88.88" in page
    assert "实付 50.15 元" in page and "实付 100.30 元" in page and "实付 200.60 元" in page
    assert "0.3%" in page and "四舍五入" in page
    assert "10–500 元" in page and "10 元的整数倍" in page
    assert "今日还可充值 2000.00 元" in page
    assert "代充优惠" in page
    assert "现场办理" in page and "没有在线退款" in page
    assert "退款</button>" not in page.lower() and "refund</button>" not in page.lower()
    assert "getBrandWCPayRequest" in page and "WeixinJSBridgeReady" in page
    assert 'id="peak"' not in page


def test_page_in_english_with_peak_hint(live):
    live.services.clock.freeze(datetime(2026, 11, 25, 8, 0, tzinfo=SCHOOL_TZ))
    student(live, OPENID, lang="en")
    page = logged_in(live, OPENID).open_page().text
    assert "Quick top-up" in page and "pay 50.15" in page
    assert 'id="peak"' in page and "07:30-08:30" in page
    assert "in person" not in page or "student card" in page
    assert "Beware of scams" in page


def test_page_for_blocked_card_explains(live):
    student(live, OPENID, status="frozen")
    phone = Phone(live, OPENID)
    page = phone.open_page().text
    assert "冻结" in page
    assert "getBrandWCPayRequest" not in page


# --- order → pay → notify -----------------------------------------------------------------
def test_order_pay_notify_credits_once_even_with_concurrent_duplicates(make_live):
    live = make_live(emulator={"notify_duplicate_rate": 1.0})
    card_id = student(live, OPENID, balance_fen=10000)
    phone = logged_in(live, OPENID)

    r = phone.order(5000, "quick")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["amount_fen"], body["fee_fen"]) == (5000, 15)
    params = body["pay_params"]
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["signType"] == "RSA" and params["appId"] == live.cfg.wechat.appid
    verify_pay_sign(live, params)
    order_no = body["order_no"]
    assert 6 <= len(order_no) <= 32
    assert emu_pay(live).orders[order_no].total == 5015  # WeChat charges amount + fee
    assert phone.status(order_no).json()["status"] == "created"

    assert phone.pay(params).json() == {"err_msg": "get_brand_wcpay_request:ok"}
    wait_credited(live, order_no)
    # the emulator sent two at once; now WeChat's retries from several servers arrive together
    tx = transaction(live, order_no)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: notify(live, tx).status_code, range(8)))
    assert set(statuses) <= {200, 204}, statuses
    assert notify(live, tx).status_code in (200, 204)  # and one more later, sequentially

    entries = topup_entries(live, card_id)
    assert len(entries) == 1 and entries[0].amount_fen == 5000
    assert entries[0].idempotency_key == f"topup:{order_no}"
    assert card(live, card_id).balance_fen == 15000
    notes = receipts(live)
    assert len(notes) == 1
    assert notes[0].openid == OPENID
    assert notes[0].data["amount"] == "50.00元" and notes[0].data["fee"] == "0.15元" and notes[0].data["balance"] == "150.00元"
    assert all(isinstance(v, str) and len(v) <= 20 for v in notes[0].data.values())
    assert set(notes[0].data) == {"amount", "fee", "balance", "time"}
    st = phone.status(order_no).json()
    assert st["status"] == "paid" and st["balance"] == "150.00"
    row = order_row(live, order_no)
    assert row.transaction_id == tx["transaction_id"] and row.paid_at is not None
    assert live.services.metrics.credits.labels(kind="topup")._value.get() == 1
    wait_for(lambda: len([x for x in emu_pay(live).notify_log if x["attempt"] == 1]) == 2)  # the emulator's own duplicate
    assert_ledger_consistent(live)


def test_an_english_students_receipt_says_yuan_and_follows_the_templates_urgency(make_live):
    """The receipt is built like every notice: money in the recipient's language, ``urgent`` from ``[notices.topup_receipt]``."""
    receipt = {
        "template_id": "TPL_TOPUP_RECEIPT",
        "fields": {"amount": "amount1", "fee": "amount2", "balance": "amount3", "time": "time4"},
        "urgent": False,
    }
    live = make_live(notices={"topup_receipt": receipt})
    student(live, OPENID, balance_fen=10000, lang="en")
    phone = logged_in(live, OPENID)
    body = phone.order(5000, "quick").json()
    assert phone.pay(body["pay_params"]).json() == {"err_msg": "get_brand_wcpay_request:ok"}
    wait_credited(live, body["order_no"])
    [note] = receipts(live)
    assert (note.data["amount"], note.data["fee"], note.data["balance"]) == ("50.00 yuan", "0.15 yuan", "150.00 yuan")
    assert note.urgent is False and note.url == live.cfg.server.public_base_url + "/topup"
    assert_ledger_consistent(live)


def test_cancelled_payment_changes_nothing(live):
    card_id = student(live, OPENID)
    phone = logged_in(live, OPENID)
    body = phone.order(10000, "custom").json()
    assert phone.pay(body["pay_params"], outcome="cancel").json()["err_msg"] == "get_brand_wcpay_request:cancel"
    assert phone.status(body["order_no"]).json()["status"] == "created"
    assert topup_entries(live, card_id) == []
    assert emu_pay(live).orders[body["order_no"]].trade_state == "NOTPAY"
    assert_ledger_consistent(live)


def test_status_endpoint_answers_only_the_sessions_own_orders(live):
    card_id = student(live, OPENID)
    other = "oTopupFlowUser0000000002"
    student(live, other, card_id=card_id)  # even a second holder of the same card
    phone = logged_in(live, OPENID)
    order_no = phone.order(2000, "custom").json()["order_no"]
    stranger = logged_in(live, other)
    assert stranger.status(order_no).status_code == 404
    assert stranger.status("../../etc").status_code == 404
    assert phone.status(order_no).status_code == 200
    assert Phone(live, OPENID).http.get(live.url + f"/api/topup/orders/{order_no}", allow_redirects=False).status_code == 401


def test_order_needs_csrf_token(live):
    student(live, OPENID)
    phone = logged_in(live, OPENID)
    phone.csrf = "wrong"
    assert phone.order(5000, "quick").status_code == 403
    assert wait_for(lambda: True)
