"""In headless Chromium, the chat simulator (issue 15): a question answered from the FAQ, a scam warning, the menu
turning English for a user who picks English, and the hand-off to customer service shown in the chat."""

from __future__ import annotations

import os
import re

import pytest

import menus
from bot import lang_menu
from tests.support.browser import playwright

pytestmark = pytest.mark.browser
expect = playwright().expect
LIVE_CONFIG = {"support": {"transfer": True, "days": [1, 2, 3, 4, 5, 6, 7], "hours": "00:00-24:00"}}


def _say(page, text: str) -> None:
    if page.locator("#input-bar").is_hidden():
        page.locator("#to-keyboard").click()
    page.locator("#text").fill(text)
    page.locator("#send").click()


def test_simulator_understands_switches_menu_and_hands_off(page, live):
    lang_menu.publish(live.services, menus.load(), menus.load(menus.ENGLISH_PATH))
    page.reload()
    bubbles = page.locator("#messages .msg.bot .bubble")
    expect(bubbles.first).to_be_visible()
    _say(page, "请问充值不到账怎么办？")
    expect(bubbles.last).to_contain_text("【充值不到账】")
    _say(page, "有人说可以打八折代充😀")
    expect(bubbles.last).to_contain_text("防骗提醒")
    if page.locator("#menu-bar").is_hidden():
        page.locator("#to-menu").click()
    page.locator(".menu-btn", has_text="我的").click()
    page.get_by_role("menuitem", name="English/中文").click()
    expect(page.locator(".menu-btn")).to_have_text([re.compile("Payments"), re.compile("My card"), re.compile("Help")])
    _say(page, "my top up hasnt arrived, what now?")
    expect(bubbles.last).to_contain_text("Top-up not arrived")
    _say(page, "human please")
    expect(page.locator("#messages")).to_contain_text("已转接人工客服")
    assert [t["openid"] for t in live.emulator.transfers] == [page.locator("#user").input_value()]
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#to-menu").click()
    expect(page.locator(".menu-btn").first).to_have_text(re.compile("Payments"))
    if target := os.environ.get("CARDBOT_SCREENSHOT_UNDERSTANDING"):
        page.screenshot(path=target)
