"""The simulator shows the room page: 缴费大厅 → 电费 opens /power in the in-phone web view (OAuth through the
emulator); the student picks campus → building → floor → room, keeps it, sees the kWh left and pays 20 yuan in the
WeChat Pay sheet; the page then shows the new kWh. Headless Chromium. ``CARDBOT_POWER_SCREENSHOT=path`` keeps a
screenshot of the simulator with the room page."""

from __future__ import annotations

import os

import pytest

from models.passwords import initial_password
from tests.support.browser import playwright
from tests.support.power import ROOM, emu_power
from tests.support.topup import student

pytestmark = pytest.mark.browser
expect = playwright().expect
SIM_OPENID = "oDemoStudentZhangSan01"  # the simulator's first user


def test_simulator_opens_the_room_page_picks_a_room_and_pays(page, live, tmp_path):
    student(live, SIM_OPENID)
    emu_power(live).set_meter(ROOM, "8.50", rate="0")
    if page.locator("#menu-bar").is_hidden():
        page.locator("#to-menu").click()
    page.locator(".menu-btn", has_text="缴费大厅").click()
    page.get_by_role("menuitem", name="电费").click()
    page.locator("#messages .article").last.click()
    frame = page.frame_locator("#webview-frame")
    expect(frame.locator("#no-rooms")).to_be_visible()
    for pick, value in (("campus", "E"), ("building", "E03"), ("floor", "E03-05"), ("room", ROOM)):
        select = frame.locator(f"#pick-{pick}")
        expect(select).to_be_enabled()
        expect(select.locator(f"option[value='{value}']")).to_have_count(1)
        select.select_option(value)
    frame.locator("#keep").click()
    room = frame.locator(f"#room-{ROOM}")
    expect(room).to_contain_text("东区 · 3号楼 · 512")
    expect(room).to_contain_text("剩余电量 8.50 度")
    expect(room).to_contain_text("电价 0.56 元/度")
    expect(room.locator(".kwh.low")).to_have_count(1)  # below the 10 kWh alert threshold
    frame.locator("#quick button[data-fen='2000']").click()
    frame.locator("#pay").click()
    # the first money action in this browser asks for the card password once (更换手机后只需重新验证)
    frame.locator("#reverify-password").fill(initial_password("11010120000101123X", None))
    frame.locator("#reverify-ok").click()
    expect(page.locator("#paysheet")).to_be_visible()
    expect(page.locator("#pay-amount")).to_contain_text("20.")
    page.locator("#pay-confirm").click()
    expect(frame.locator("#result")).to_contain_text("缴费成功")
    expect(room).to_contain_text("剩余电量 44.21 度")  # 8.50 + 20 / 0.56
    expect(frame.locator("#remaining")).to_contain_text("580.00")  # the day's electricity limit, less this payment
    room.scroll_into_view_if_needed()
    page.screenshot(path=os.environ.get("CARDBOT_POWER_SCREENSHOT") or str(tmp_path / "power.png"))
