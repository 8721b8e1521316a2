"""End to end in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright): the simulator page,
the menu, a help round trip, and a newcomer's whole path: bind a demo card, query the balance, top up 50 yuan,
see the receipt notice and the new balance.

Set ``CARDBOT_SCREENSHOT=docs/simulator.png`` to refresh the README's screenshot from the run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
from pathlib import Path

import pytest

from tests.support.browser import playwright

pytestmark = pytest.mark.browser

ROSTER = Path(__file__).resolve().parent.parent / "bot" / "emulator" / "demo_roster.csv"

expect = playwright().expect


def _bot_bubbles(page):
    return page.locator("#messages .msg.bot .bubble")


def _menu(page, top: str, sub: str | None = None) -> None:
    if page.locator("#menu-bar").is_hidden():
        page.locator("#to-menu").click()
    page.locator(".menu-btn", has_text=top).click()
    if sub:
        page.get_by_role("menuitem", name=sub).click()


def _say(page, text: str) -> None:
    if page.locator("#input-bar").is_hidden():
        page.locator("#to-keyboard").click()
    page.locator("#text").fill(text)
    page.locator("#send").click()


def _screenshot(page) -> None:
    target = os.environ.get("CARDBOT_SCREENSHOT")
    if target:
        page.screenshot(path=target)


def test_simulator_loads_menu_and_help_round_trip(page, live):
    expect(page.locator(".menu-btn")).to_have_text([re.compile("缴费大厅"), re.compile("我的"), re.compile("帮助")])
    first_user = page.locator("#user").input_value()
    expect(_bot_bubbles(page).first).to_be_visible()  # following the account greets the user
    assert first_user in live.emulator.followers
    _menu(page, "帮助", "使用帮助")
    expect(_bot_bubbles(page).last).to_contain_text("余额")
    _say(page, "帮助")
    expect(page.locator("#messages .msg.user .bubble").last).to_have_text("帮助")
    expect(_bot_bubbles(page)).to_have_count(3)
    page.locator("#mode").select_option("aes")
    _menu(page, "帮助", "常见问题")
    expect(_bot_bubbles(page)).to_have_count(4)
    assert live.emulator.push_mode == "aes"
    _menu(page, "缴费大厅")
    expect(page.get_by_role("menuitem")).to_have_count(5)
    page.locator("#messages").click()
    expect(page.get_by_role("menuitem")).to_have_count(0)
    _screenshot(page)


def test_switching_users_keeps_separate_chats(page, live):
    expect(_bot_bubbles(page).first).to_be_visible()
    page.locator("#user").select_option(index=3)
    parent = page.locator("#user").input_value()
    expect(page.locator("#messages .msg")).to_have_count(1)  # only the parent's own welcome
    _say(page, "help")
    expect(_bot_bubbles(page)).to_have_count(2)
    assert len([m for m in live.emulator.chat[parent] if m["kind"] == "user"]) == 1


def test_template_notice_arrives_in_the_chat(page, live):
    expect(_bot_bubbles(page).first).to_be_visible()
    openid = page.locator("#user").input_value()
    data = {"amount1": "50.00", "amount2": "0.15", "amount3": "150.00", "time4": "2026-11-25 12:00"}
    live.services.wechat.send_template(openid, "TPL_TOPUP_RECEIPT", {k: {"value": v} for k, v in data.items()}, live.url + "/bills")
    notice = page.locator(".notice")
    expect(notice).to_contain_text("充值成功通知")
    expect(notice).to_contain_text("150.00")


def test_link_opens_web_view_with_oauth_identity_and_pay_bridge(pay_test_route, page, live):
    expect(_bot_bubbles(page).first).to_be_visible()
    openid = page.locator("#user").input_value()
    live.services.wechat.send_text(openid, f'点此付款 <a href="{pay_test_route}">付款测试</a>')
    page.locator("#messages a", has_text="付款测试").click()
    frame = page.frame_locator("#webview-frame")
    expect(frame.locator("#who")).to_have_text(openid)  # the bot learned who it is through the emulator's OAuth
    expect(page.locator("#webview-title")).to_have_text("付款测试 Pay test")
    frame.locator("#pay").click()
    expect(page.locator("#paysheet")).to_be_visible()
    page.locator("#pay-cancel-2").click()
    # cancelled; or refused, when the pay emulator checks the (bogus) paySign first, as the WeChat client does
    expect(frame.locator("#out")).to_have_text(re.compile(r"^get_brand_wcpay_request:(cancel|fail)$"))
    expect(page.locator("#paysheet")).to_be_hidden()
    page.locator("#webview-close").click()
    expect(page.locator("#webview")).to_be_hidden()


def _missing(*modules: str) -> bool:
    return any(importlib.util.find_spec(m) is None for m in modules)


TOPUP_PARTS = ("bot.roster", "bot.web.topup", "bot.emulator.pay")


def _bind_and_top_up_50(page, live) -> None:
    """A newcomer's path: bind 张三's demo card by answering the dialog, check the balance, top up 50 yuan and pay."""
    from bot import roster

    with live.session() as db:
        roster.import_roster(db, ROSTER)
        db.commit()
    bubbles = _bot_bubbles(page)
    expect(bubbles.first).to_be_visible()
    count = bubbles.count()
    _menu(page, "我的", "绑定校园卡")
    expect(bubbles).to_have_count(count + 1)
    answers = {"学号": "20230001", "姓名": "张三", "密码": "151020"}
    for _ in range(6):
        prompt = bubbles.last.inner_text()
        if "100.00" in prompt:
            break
        asked = [w for w in answers if w in prompt]
        count = bubbles.count()
        _say(page, answers[asked[0]] if asked else answers["学号"])
        expect(bubbles).to_have_count(count + 1)
    expect(bubbles.last).to_contain_text("100.00")

    _menu(page, "缴费大厅", "余额查询")
    expect(bubbles.last).to_contain_text("100.00")

    # the top-up page opens in the in-phone web view (OAuth through the emulator); pay in the WeChat Pay sheet
    _menu(page, "缴费大厅", "充值")
    page.locator("#messages .article").last.click()
    frame = page.frame_locator("#webview-frame")
    frame.locator("button[data-fen='5000']").click()
    frame.locator("#pay").click()
    # the first money action in this browser asks for the card password once (更换手机后只需重新验证)
    frame.locator("#reverify-password").fill(answers["密码"])
    frame.locator("#reverify-ok").click()
    expect(page.locator("#paysheet")).to_be_visible()
    expect(page.locator("#pay-amount")).to_contain_text("50.")
    page.locator("#pay-confirm").click()
    expect(frame.locator("#result")).to_contain_text("150.00")
    page.locator("#webview-close").click()


def _balance_by_word(page) -> None:
    """Ask by word: a second BALANCE click inside the same second would be a retry to WeChat's dedup rule."""
    bubbles = _bot_bubbles(page)
    count = bubbles.count()
    _say(page, "余额")
    expect(bubbles).to_have_count(count + 1)
    expect(bubbles.last).to_contain_text("150.00")


@pytest.mark.skipif(_missing(*TOPUP_PARTS), reason="needs binding, top-up and the pay emulator")
def test_bind_balance_and_top_up_50(page, live):
    _bind_and_top_up_50(page, live)
    _balance_by_word(page)


@pytest.mark.skipif(_missing(*TOPUP_PARTS, "bot.outbox"), reason="needs binding, top-up, the pay emulator and the outbox")
def test_top_up_receipt_notice_arrives(page, live):
    from bot import outbox

    stop = threading.Event()

    def drain() -> None:
        while not stop.wait(0.3):
            outbox.drain_once(live.services, "e2e")

    worker = threading.Thread(target=drain, daemon=True)
    worker.start()
    try:
        _bind_and_top_up_50(page, live)
        notice = page.locator(".notice").last
        expect(notice).to_contain_text("充值成功通知", timeout=30_000)
        expect(notice).to_contain_text("50.00")
        expect(notice).to_contain_text("150.00")
        _balance_by_word(page)
        _screenshot(page)
    finally:
        stop.set()
        worker.join(timeout=5)
