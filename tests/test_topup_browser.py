"""The /topup page's own script in headless Chromium, as a phone's WeChat web view runs it: a WeixinJSBridge
that pays through the emulator (like the simulator's shim), then "processing" until the notify credits the card."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.topup import settle_stuck_orders
from tests.support.browser import PHONE_OPENID, playwright
from tests.support.topup import (
    assert_ledger_consistent,
    card,
    emu_pay,
    logged_in,
    student,
    topup_entries,
)

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("ledger_checked")]

OPENID = PHONE_OPENID
expect = playwright().expect


def test_quick_top_up_in_the_page(phone, live):
    card_id = student(live, OPENID, balance_fen=10000)
    phone.goto(live.url + "/topup")
    expect(phone.locator("#balance")).to_have_text("100.00")
    phone.locator("#pay").click()
    expect(phone.locator("#result")).to_have_text("请先选择或输入金额。")
    phone.locator("button[data-fen='5000']").click()
    phone.locator("#pay").click()
    expect(phone.locator("#result")).to_contain_text("充值成功")
    expect(phone.locator("#result")).to_contain_text("150.00")
    expect(phone.locator("#balance")).to_have_text("150.00")
    expect(phone.locator("#remaining")).to_contain_text("1950.00")
    assert card(live, card_id).balance_fen == 15000
    assert_ledger_consistent(live)


def test_custom_amount_refusal_cancel_and_processing(phone, live):
    student(live, OPENID, balance_fen=0)
    phone.goto(live.url + "/topup")
    phone.locator("#custom").fill("15")
    phone.locator("#pay").click()
    expect(phone.locator("#result")).to_contain_text("10元的整数倍")
    phone.evaluate("window.__outcome = 'cancel'")
    phone.locator("#custom").fill("20")
    phone.locator("#pay").click()
    expect(phone.locator("#result")).to_have_text("您已取消支付，没有扣款。")
    emu_pay(live).notify_enabled = False  # no notify: the page keeps saying "processing"
    phone.evaluate("window.__outcome = 'success'")
    phone.locator("#pay").click()
    expect(phone.locator("#result")).to_contain_text("支付处理中")
    phone.wait_for_timeout(1800)
    expect(phone.locator("#result")).to_contain_text("支付处理中")
    live.services.clock.shift(timedelta(minutes=live.cfg.topup.stuck_after_minutes + 1))
    assert settle_stuck_orders(live.services) == 1  # the worker's query finds it paid
    expect(phone.locator("#result")).to_contain_text("充值成功")
    expect(phone.locator("#balance")).to_have_text("20.00")


def test_cancelled_or_failed_pay_sheet_frees_the_limit_on_the_page(phone, live, tmp_path):
    card_id = student(live, OPENID, balance_fen=0)
    other_tab = logged_in(live, OPENID)
    for _ in range(2):  # 1000 of today's 2000 yuan in orders left open in another tab
        assert other_tab.order(50000, "custom").status_code == 201
    phone.goto(live.url + "/topup")
    expect(phone.locator("#remaining")).to_contain_text("今日还可充值 1000.00 元")
    phone.evaluate("window.__outcome = 'cancel'")
    phone.locator("#custom").fill("500")
    phone.locator("#pay").click()
    expect(phone.locator("#result")).to_have_text("您已取消支付，没有扣款。")
    expect(phone.locator("#remaining")).to_contain_text("今日还可充值 1000.00 元")  # the server's answer: freed at once
    phone.evaluate("window.__outcome = 'fail'")
    phone.locator("#pay").click()
    expect(phone.locator("#result")).to_contain_text("支付没有完成：网络异常")
    expect(phone.locator("#remaining")).to_contain_text("今日还可充值 1000.00 元")
    emu_pay(live).faults["query"] = ["5xx"]  # WeChat Pay does not answer: the order still counts, and the page says so
    phone.evaluate("window.__outcome = 'cancel'")
    phone.locator("#pay").click()
    expect(phone.locator("#result")).to_contain_text("仍计入今日额度")
    expect(phone.locator("#remaining")).to_contain_text("今日还可充值 500.00 元")
    phone.screenshot(path=str(tmp_path / "unconfirmed.png"), full_page=True)
    phone.evaluate("window.__outcome = 'success'")
    phone.locator("#pay").click()  # the two cancelled orders were freed, so this one fits the limit
    expect(phone.locator("#result")).to_contain_text("充值成功")
    expect(phone.locator("#remaining")).to_contain_text("今日还可充值 0.00 元")
    assert card(live, card_id).balance_fen == 50000 and len(topup_entries(live, card_id)) == 1
