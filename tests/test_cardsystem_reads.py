"""Binding, balance and bills through the card system with the ``http`` adapter: the emulator's card system over real,
signed HTTP, with its kiosk, canteen terminals and faults. The bot has no roster here: the card system vouches."""

from __future__ import annotations

import itertools
import re
import time
from datetime import datetime

import requests
from sqlalchemy import select, update

from bot.binding_lock import BindingLock
from bot.clock import SCHOOL_TZ
from models import CardCredit, Cardholder
from models.enums import CardStatus, CreditStatus
from models.passwords import verify_password
from tests.support.topup import logged_in, wait_for

OID = "oCsReads00000000000000001"
ZHANG, NAME, PASSWORD = "20230001", "张三", "151020"  # the demo roster's card in the emulator: 100.00 yuan
NEW_PASSWORD = "654321"
BUDGET = 5.0
_times = itertools.count(int(time.time()))


def emu(live):
    return live.app.extensions["emulator_cardsys"]


def _click(wx, key, openid=OID):
    return wx.click(openid, key, create_time=next(_times))


def _bind(live, password, student_no=ZHANG, name=NAME, openid=OID):
    wx = live.pusher()
    assert "学号" in _click(wx, "BIND", openid).content
    assert "姓名" in wx.text(openid, student_no).content
    assert "密码" in wx.text(openid, name).content
    return wx.text(openid, password).content


def _bound(live, openid=OID):
    reply = _bind(live, PASSWORD, openid=openid)
    assert "绑定成功" in reply, reply
    return reply


def _row(live, student_no=ZHANG):
    with live.session() as db:
        return db.execute(select(Cardholder).where(Cardholder.student_no == student_no)).scalar_one_or_none()


def _kiosk(live, path, **body):
    r = requests.post(f"{live.url}/emulator/cardsys/{path}", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _as_of(live, student_no=ZHANG):
    with emu(live).lock:
        return f"{emu(live).accounts[student_no].as_of.astimezone(SCHOOL_TZ):%m-%d %H:%M}"


def _timed_balance(live):
    started = time.monotonic()
    reply = _click(live.pusher(), "BALANCE").content
    return reply, time.monotonic() - started


# -- binding ---------------------------------------------------------------------------------------------------


def test_bind_with_the_kiosk_changed_password_and_no_roster_row(cs_live):
    assert _row(cs_live) is None  # no roster: the card system is asked
    _kiosk(cs_live, "kiosk/password", student_no=ZHANG, old_password=PASSWORD, new_password=NEW_PASSWORD)
    refused = _bind(cs_live, PASSWORD)
    assert "信息不匹配" in refused and "还可以再试4次" in refused
    assert _row(cs_live) is None
    ok = _bind(cs_live, NEW_PASSWORD)
    assert "绑定成功" in ok and "*三" in ok and "余额" in ok and "0.00" not in ok  # no balance invented at bind
    card = _row(cs_live)
    assert (card.name, card.status, card.left_on, card.balance_as_of) == (NAME, CardStatus.ACTIVE, None, None)
    assert not verify_password(card.password_hash, NEW_PASSWORD) and not verify_password(card.password_hash, PASSWORD)
    assert BindingLock(cs_live.services).failures("openid", OID) == 0  # the right password cleared the account's count


def test_an_unanswered_verify_is_not_counted_and_the_password_step_waits(cs_live):
    lock = BindingLock(cs_live.services)
    emu(cs_live).faults["verify"] = ["5xx", "maintenance", "slow"]
    wx = cs_live.pusher()
    _click(wx, "BIND")
    wx.text(OID, ZHANG)
    wx.text(OID, NAME)
    for _ in range(3):
        started = time.monotonic()
        reply = wx.text(OID, "000000").content  # even a wrong password: it was never checked
        assert time.monotonic() - started < BUDGET
        assert "暂时无法验证，请稍后再试" in reply and "不计入" in reply
        assert cs_live.services.dialogs.get(OID).state == "bind.password"
    assert lock.failures("openid", OID) == 0 and lock.failures("card", ZHANG) == 0
    assert "绑定成功" in wx.text(OID, PASSWORD).content


def test_bindings_management_checks_the_card_systems_password(cs_live):
    _bound(cs_live)
    _kiosk(cs_live, "kiosk/password", student_no=ZHANG, old_password=PASSWORD, new_password=NEW_PASSWORD)
    wx = cs_live.pusher()
    assert "密码" in _click(wx, "BINDINGS").content
    assert "不正确" in wx.text(OID, PASSWORD).content  # the old one, changed at the kiosk
    emu(cs_live).faults["verify"] = "5xx"
    assert "暂时无法验证" in wx.text(OID, NEW_PASSWORD).content
    assert BindingLock(cs_live.services).failures("openid", OID) == 1
    del emu(cs_live).faults["verify"]
    assert "已绑定1个微信" in wx.text(OID, NEW_PASSWORD).content


# -- balance ---------------------------------------------------------------------------------------------------


def test_balance_is_the_card_systems_with_its_time_and_a_canteen_swipe_moves_it(cs_live):
    _bound(cs_live)
    with cs_live.session() as db:  # whatever the bot's own row says, the card system's answer is shown
        db.execute(update(Cardholder).where(Cardholder.student_no == ZHANG).values(balance_fen=1))
        db.commit()
    reply, took = _timed_balance(cs_live)
    assert f"余额：100.00 元（截至 {_as_of(cs_live)}）" in reply and "卡状态：正常" in reply
    assert "最近交易" not in reply  # one round trip: the entries are the bill's
    assert _row(cs_live).balance_fen == 10000 and _row(cs_live).balance_as_of is not None  # remembered
    swipe = requests.post(
        f"{cs_live.url}/emulator/cardsys/terminals/swipe", json={"student_no": ZHANG, "amount_fen": 1250, "merchant": "一食堂"}, timeout=10
    )
    assert swipe.status_code == 200, swipe.text
    reply, _ = _timed_balance(cs_live)
    assert f"余额：87.50 元（截至 {_as_of(cs_live)}）" in reply
    assert _row(cs_live).balance_fen == 8750


def test_maintenance_shows_the_last_known_balance_with_its_time_and_why(cs_live):
    _bound(cs_live)
    _timed_balance(cs_live)  # known: 100.00
    emu(cs_live).faults["account"] = "maintenance"
    reply, took = _timed_balance(cs_live)
    assert took < BUDGET
    until = (cs_live.services.clock.now().timestamp() + 600) // 60 * 60
    assert "上次查到的余额：100.00 元（截至" in reply and "维护中" in reply
    assert f"预计 {datetime.fromtimestamp(until, SCHOOL_TZ):%H:%M} 后恢复" in reply
    assert "余额：100.00 元（截至" not in reply.replace("上次查到的余额", "")  # not presented as current


def test_5xx_and_slow_show_the_last_known_balance_inside_the_budget(cs_live):
    _bound(cs_live)
    _timed_balance(cs_live)
    for fault in ("5xx", "slow"):
        emu(cs_live).faults["account"] = fault
        reply, took = _timed_balance(cs_live)
        assert took < BUDGET, (fault, took)
        assert "上次查到的余额：100.00 元（截至" in reply and "暂未响应" in reply, reply
        assert "卡状态：正常" in reply and "回复「账单」" in reply


def test_a_balance_never_known_says_it_cannot_be_shown_now(cs_live):
    _bound(cs_live)  # binding does not read the balance
    emu(cs_live).faults["account"] = "5xx"
    reply, took = _timed_balance(cs_live)
    assert took < BUDGET
    assert "余额：暂时无法显示" in reply and "暂未响应" in reply and "0.00" not in reply


def test_the_card_lost_at_the_kiosk_is_lost_for_the_bot(cs_live):
    _bound(cs_live)
    _kiosk(cs_live, "kiosk/loss", student_no=ZHANG)
    reply, _ = _timed_balance(cs_live)
    assert "卡状态：已挂失" in reply and "补办新卡" in reply
    assert _row(cs_live).status == CardStatus.LOST
    topup = logged_in_or_blocked(cs_live)
    assert 'id="blocked"' in topup and "挂失" in topup  # the top-up page follows the synced status


def logged_in_or_blocked(live):
    session = requests.Session()
    session.cookies.set("sim_openid", OID)
    return session.get(live.url + "/topup", timeout=10).text


def test_paid_but_not_on_the_card_is_listed_in_the_balance_reply(cs_live):
    _bound(cs_live)
    phone = logged_in(cs_live, OID)
    page = phone.open_page().text
    assert f"截至 {_as_of(cs_live)}" in page and '<b id="balance">100.00</b>' in page
    emu(cs_live).faults["credit"] = "maintenance"
    body = phone.order(5000, "quick").json()
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")

    def waiting():
        with cs_live.session() as db:
            c = db.execute(select(CardCredit).where(CardCredit.ref == body["order_no"])).scalar_one_or_none()
            return c is not None and c.status == CreditStatus.PENDING and c.waiting_for == "maintenance"

    wait_for(waiting)
    reply, _ = _timed_balance(cs_live)
    assert "余额：100.00 元" in reply
    assert re.search(r"已支付 50\.00 元，待入账：一卡通系统维护中，预计 \d\d:\d\d 后入账", reply), reply


# -- bills -----------------------------------------------------------------------------------------------------


def test_bills_come_from_the_card_system_in_chat_and_on_the_page(cs_live):
    _bound(cs_live)
    for amount, where in ((1250, "一食堂"), (800, "超市")):
        r = requests.post(
            f"{cs_live.url}/emulator/cardsys/terminals/swipe", json={"student_no": ZHANG, "amount_fen": amount, "merchant": where}, timeout=10
        )
        assert r.status_code == 200
    art = _click(cs_live.pusher(), "BILLS").articles[0]
    desc = art["Description"]
    assert "收入 100.00 元 · 支出 20.50 元（共3笔）" in desc  # the card system's opening entry and two swipes
    assert desc.index("超市 -8.00") < desc.index("一食堂 -12.50") < desc.index("开户余额 Opening balance +100.00")
    session = requests.Session()
    session.cookies.set("sim_openid", OID)
    html = session.get(cs_live.url + "/bills", timeout=10).text
    assert 'id="income">100.00' in html and 'id="spent">20.50' in html and "超市" in html
    assert '<b id="balance">79.50</b>' in html and f"截至 {_as_of(cs_live)}" in html


def test_bills_when_the_card_system_cannot_answer_show_no_numbers(cs_live):
    _bound(cs_live)
    wx = cs_live.pusher()
    emu(cs_live).faults["entries"] = "maintenance"
    reply = _click(wx, "BILLS").content
    assert "维护中，暂时无法查询账单" in reply and "收入" not in reply
    emu(cs_live).faults["entries"] = "5xx"
    assert "暂未响应，暂时无法查询账单" in _click(wx, "BILLS").content
    emu(cs_live).faults["entries"] = "5xx"
    session = requests.Session()
    session.cookies.set("sim_openid", OID)
    page = session.get(cs_live.url + "/bills", timeout=10)
    assert page.status_code == 200
    assert 'id="unavailable"' in page.text and 'id="income"' not in page.text and '<b id="balance">100.00</b>' in page.text
