"""Issue 14.2: re-verify on a new phone. A money action from a browser this account has not verified asks for the card
password once, then a signed device cookie remembers the browser; the binding stays; wrong passwords count toward the
binding lockout. Over real HTTP (OAuth through the emulator) and in headless Chromium on the /topup page."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from bot.binding_lock import BindingLock
from bot.texts import t
from bot.web import device
from models import Binding
from tests.support import autodebit as ad
from tests.support.browser import BRIDGE, PHONE_OPENID, TIMEOUT_MS, playwright
from tests.support.topup import card, logged_in, student

OPENID = "oReverifyUser00000000001"
PASSWORD = "011230"  # the factory card's ID number 11010120000101123X


def bound(live: Any, openid: str) -> bool:
    with live.session() as db:
        return db.execute(select(func.count()).select_from(Binding).where(Binding.openid == openid)).scalar_one() == 1


def verify(phone: Any, password: str) -> Any:
    return phone.http.post(phone.live.url + "/api/device/verify", json={"password": password}, headers={"X-CSRF-Token": phone.csrf}, timeout=15)


def test_new_browser_is_asked_once_then_remembered(live: Any) -> None:
    student(live, OPENID, balance_fen=10000)
    new_phone = logged_in(live, OPENID, verified=False)
    asked = new_phone.order(5000, "quick")
    assert asked.status_code == 428 and asked.json()["error"] == "reverify"
    assert "无需重新绑定" in asked.json()["message"] and asked.json()["prompt"]["placeholder"] == "校园卡密码"
    assert bound(live, OPENID)  # asking is not unbinding

    wrong = verify(new_phone, "000000")
    assert wrong.status_code == 403 and wrong.json()["left"] == live.cfg.binding.max_failures - 1
    assert BindingLock(live.services).failures("openid", OPENID) == 1  # counted like a binding try
    assert new_phone.order(5000, "quick").status_code == 428

    right = verify(new_phone, PASSWORD)
    assert right.status_code == 200, right.text
    cookie = next(c for c in new_phone.http.cookies if c.name == device.COOKIE)
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.expires is not None
    assert BindingLock(live.services).failures("openid", OPENID) == 0
    assert new_phone.order(5000, "quick").status_code == 201  # remembered: not asked again
    assert new_phone.order(10000, "quick").status_code == 201

    # the cookie belongs to this account: another account in the same browser is asked for its own card's password
    other = "oReverifyOther0000000001"
    student(live, other, student_no="20230002", balance_fen=100)
    same_browser = logged_in(live, other, verified=False)
    same_browser.http.cookies.set(device.COOKIE, cookie.value)
    assert same_browser.order(5000, "quick").status_code == 428

    # a forged cookie is no cookie
    forged = logged_in(live, OPENID, verified=False)
    forged.http.cookies.set(device.COOKIE, cookie.value[:-2] + "xx")
    assert forged.order(5000, "quick").status_code == 428


def test_auto_top_up_and_refund_ask_too_and_guessing_locks(live: Any) -> None:
    student(live, OPENID, balance_fen=10000)
    ad.bank(live).open(ad.GOOD_ACCOUNT, 100_000)
    page = ad.Phone(live, OPENID, verified=False)
    page.page()
    for path, body in (
        ("/api/autodebit/agreement", {"bank_account": ad.GOOD_ACCOUNT}),
        ("/api/autodebit/agreement/cancel", {}),
        ("/api/autodebit/refunds", {"attempt_id": 1}),
    ):
        r = page.post(path, body)
        assert r.status_code == 428 and r.json()["error"] == "reverify", (path, r.text)
    for _ in range(live.cfg.binding.max_failures - 1):
        assert page.post("/api/device/verify", {"password": "999999"}).status_code == 403
    locked = page.post("/api/device/verify", {"password": "999999"})
    assert locked.status_code == 423 and "尝试次数过多" in locked.json()["message"]
    assert page.post("/api/device/verify", {"password": PASSWORD}).status_code == 423  # locked: not even checked
    assert bound(live, OPENID)


expect = playwright().expect


@pytest.mark.browser
def test_the_page_asks_for_the_password_once_in_chromium(browser: Any, live: Any, tmp_path: Any) -> None:
    """A new phone: the top-up page's first payment opens the password sheet; the right password pays; the next
    payment, after a reload, is not asked."""
    card_id = student(live, PHONE_OPENID, balance_fen=10000)
    context = browser.new_context(viewport={"width": 375, "height": 740}, locale="zh-CN")
    context.set_default_timeout(TIMEOUT_MS)
    context.add_cookies([{"name": "sim_openid", "value": PHONE_OPENID, "url": live.url}])  # no device cookie: new phone
    context.add_init_script(BRIDGE)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        pg.goto(live.url + "/topup")
        pg.locator("button[data-fen='5000']").click()
        pg.locator("#pay").click()
        sheet = pg.locator("#reverify")
        expect(sheet).to_be_visible()
        expect(sheet).to_contain_text(t("zh", "reverify_needed"))
        pg.screenshot(path=str(tmp_path / "reverify.png"))
        pg.locator("#reverify-password").fill("123456")
        pg.locator("#reverify-ok").click()
        expect(pg.locator("#reverify-msg")).to_contain_text("还可以再试 4 次")
        pg.locator("#reverify-password").fill(PASSWORD)
        pg.locator("#reverify-ok").click()
        expect(sheet).to_have_count(0)
        expect(pg.locator("#result")).to_contain_text("充值成功")
        assert card(live, card_id).balance_fen == 15000

        pg.reload()
        pg.locator("button[data-fen='5000']").click()
        pg.locator("#pay").click()
        expect(pg.locator("#result")).to_contain_text("充值成功")
        expect(pg.locator("#reverify")).to_have_count(0)
        assert card(live, card_id).balance_fen == 20000
    finally:
        context.close()
    assert errors == [], errors
