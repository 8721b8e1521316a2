"""Issue 14.1: report a lost card (挂失) and lift the report (解挂) through the real webhook, on both card-system adapters.

``ledger``: the bot's own roster row is the card system. ``http``: the emulator's cardsys/1 server holds the card and
its password, refuses swipes while it is lost, and remembers every ``loss`` ref's first answer."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import requests
from sqlalchemy import select

from bot.binding_lock import BindingLock
from bot.loss import report_lost
from models import Cardholder, CardLoss
from models.enums import CardStatus, LossStatus
from tests.support import autodebit as ad
from tests.support.autodebit import drain, notices, templates
from tests.support.topup import wait_for
from tests.test_flows_both_adapters import NAME, NO, PASSWORD, open_card

OWNER = "oLossOwner00000000000001"
PARENT = "oLossParent0000000000001"
_times = itertools.count(1_950_000_000)


def bind(live: Any, wx: Any, openid: str) -> None:
    wx.click(openid, "BIND", create_time=next(_times))
    wx.text(openid, NO, create_time=next(_times))
    wx.text(openid, NAME, create_time=next(_times))
    assert "绑定成功" in wx.text(openid, PASSWORD, create_time=next(_times)).content


def say(wx: Any, openid: str, text: str) -> str:
    return wx.text(openid, text, create_time=next(_times)).content


def status_at_card_system(live: Any) -> str:
    account = live.services.card_system.account(NO)
    assert account is not None
    return account.holder.status


def swipe(live: Any, amount_fen: int) -> int:
    """A canteen spend: the emulator's terminal on http (which refuses a lost card itself), the signed push on ledger."""
    if live.cfg.cardsystem.adapter == "http":
        r = requests.post(live.url + "/emulator/cardsys/terminals/swipe", json={"student_no": NO, "amount_fen": amount_fen}, timeout=15)
        return r.status_code
    return ad.entry(live, NO, -amount_fen).status_code


def reports(live: Any) -> list[CardLoss]:
    with live.session() as db:
        return list(db.execute(select(CardLoss).order_by(CardLoss.id)).scalars())


def test_report_cancel_with_wrong_and_right_password(flow_live: Any) -> None:
    live = flow_live
    open_card(live, 10000)
    wx = live.pusher()
    bind(live, wx, OWNER)
    bind(live, wx, PARENT)
    with live.emulator.lock:
        live.emulator.followers.update({OWNER, PARENT})

    # the confirmation shows the masked name and number; anything but a yes reports nothing
    ask = wx.click(OWNER, "LOSS", create_time=next(_times)).content
    assert "*小雨" in ask and "2023**01" in ask and NAME not in ask and NO not in ask
    assert "没有挂失" in say(wx, OWNER, "算了")
    assert status_at_card_system(live) == "active" and reports(live) == []

    # reported without a password, at once, at the card system and here
    say(wx, OWNER, "卡丢了")
    done = say(wx, OWNER, "确认")
    assert "已挂失" in done and "余额安全" in done, done
    assert status_at_card_system(live) == "lost"
    [report] = reports(live)
    assert report.status == LossStatus.LOST and report.reported_by == OWNER

    # spending is refused while lost; the balance reply says the money is safe and where to get a new card
    assert swipe(live, 500) == 409
    balance = say(wx, OWNER, "余额")
    assert "100.00" in balance and "余额安全" in balance and "补办" in balance and "已挂失" in balance, balance

    # a repeated report is the same report: no second row, no second notice
    assert "密码" in wx.click(PARENT, "LOSS", create_time=next(_times)).content  # lost: the menu offers the cancel
    assert "取消" in say(wx, PARENT, "取消")
    say(wx, OWNER, "lost card")  # also offers the cancel now
    say(wx, OWNER, "取消")
    assert len(reports(live)) == 1
    drain(live)
    lost = notices(live, "card_lost")
    assert sorted(n.openid for n in lost) == sorted([OWNER, PARENT])
    for openid in (OWNER, PARENT):
        [sent] = [m for m in templates(live, openid) if m["template_id"] == live.cfg.notices.template("card_lost").template_id]
        assert "2023**01" in str(sent["data"]) and NAME not in str(sent["data"])

    # cancelling needs the card password: a wrong one counts toward the lockout and changes nothing
    assert "输入卡密码" in say(wx, PARENT, "解挂")
    wrong = say(wx, PARENT, "000000")
    assert "不对" in wrong and "4" in wrong, wrong
    assert status_at_card_system(live) == "lost"
    assert BindingLock(live.services).failures("openid", PARENT) == 1
    assert "已解除挂失" in say(wx, PARENT, PASSWORD)
    assert status_at_card_system(live) == "active"
    with live.session() as db:
        assert db.execute(select(Cardholder.status).where(Cardholder.student_no == NO)).scalar_one() == CardStatus.ACTIVE
    assert [r.status for r in reports(live)] == [LossStatus.FOUND]
    assert swipe(live, 500) == 200
    drain(live)
    assert sorted(n.openid for n in notices(live, "card_found")) == sorted([OWNER, PARENT])
    assert "没有挂失" in say(wx, OWNER, "找到了")

    # a second loss later is a new report with its own ref (the card system answers each ref once)
    say(wx, OWNER, "挂失")
    assert "已挂失" in say(wx, OWNER, "confirm")
    assert status_at_card_system(live) == "lost"
    assert [r.status for r in reports(live)] == [LossStatus.FOUND, LossStatus.LOST]


def test_concurrent_reports_are_one_report(flow_live: Any) -> None:
    """The family confirms at the same moment through the webhook while the owner's report is also repeated."""
    live = flow_live
    open_card(live, 10000)
    wx = live.pusher()
    family = [OWNER, PARENT, "oLossSister0000000000001"]  # max_bindings_per_card
    for openid in family:
        bind(live, wx, openid)
        wx.click(openid, "LOSS", create_time=next(_times))
    answers: list[str] = []
    direct: list[bool] = []
    start = threading.Barrier(len(family) + 3)

    def confirm(openid: str) -> None:
        pusher = live.pusher()
        start.wait()
        answers.append(pusher.text(openid, "确认", create_time=next(_times)).content)

    def repeat() -> None:
        start.wait()
        direct.append(report_lost(live.services, OWNER).already)

    threads = [threading.Thread(target=confirm, args=(o,)) for o in family] + [threading.Thread(target=repeat) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(answers) == 3 and all("已挂失" in a for a in answers), answers
    newly = sum("绑定此卡的微信都会收到通知" in a for a in answers) + direct.count(False)
    assert newly == 1, (answers, direct)  # one reported it, every other request was told it is
    assert [r.status for r in reports(live)] == [LossStatus.LOST]
    assert status_at_card_system(live) == "lost"
    assert sorted(n.openid for n in notices(live, "card_lost")) == sorted(family)


def test_auto_top_up_pauses_while_lost(flow_live: Any) -> None:
    live = flow_live
    open_card(live, 3000)
    wx = live.pusher()
    bind(live, wx, OWNER)
    ad.signed(live, OWNER, bank_balance_fen=100_000)
    with live.session() as db:
        card_id = db.execute(select(Cardholder.id).where(Cardholder.student_no == NO)).scalar_one()
    before = len(ad.attempts(live, card_id))  # http: the bot knew no balance at signing and may have topped up then
    bank_before = ad.bank(live).accounts[ad.GOOD_ACCOUNT].balance_fen
    wx.click(OWNER, "LOSS", create_time=next(_times))
    assert "已挂失" in say(wx, OWNER, "确认")

    # a swipe below the threshold cannot happen on the lost card, and no auto top-up opens
    assert swipe(live, 1500) == 409
    assert len(ad.attempts(live, card_id)) == before
    # nor can the student top up by hand
    r = ad.logged_in(live, OWNER).post("/api/topup/orders", {"amount_fen": 5000, "mode": "quick"})
    assert r.status_code in (403, 409), r.text
    assert ad.bank(live).accounts[ad.GOOD_ACCOUNT].balance_fen == bank_before

    # found again: the next low swipe tops the card up as before
    say(wx, OWNER, "解挂")
    assert "已解除挂失" in say(wx, OWNER, PASSWORD)
    assert swipe(live, 1500 + (5000 if before else 0)) == 200
    wait_for(lambda: [a.status for a in ad.attempts(live, card_id)] == ["succeeded"] * (before + 1))


def test_report_in_english_and_not_bound(flow_live: Any) -> None:
    live = flow_live
    open_card(live, 10000)
    wx = live.pusher()
    assert "bind" in wx.click(OWNER, "LOSS", create_time=next(_times)).content.lower() or "绑定" in say(wx, OWNER, "挂失")
    bind(live, wx, OWNER)
    say(wx, OWNER, "English")
    ask = say(wx, OWNER, "lost card")
    assert "Report the card of" in ask and "2023**01" in ask
    assert "reported lost" in say(wx, OWNER, "yes")
    assert "reported lost" in say(wx, OWNER, "balance")


def test_lost_answer_is_settled_by_the_same_ref_and_reports_repeat_on_a_slow_card_system(cs_live: Any) -> None:
    """http: the card system marks the card lost but the answer is lost on the way; the student is asked to try again,
    and the retry sends the same ref (one report, one notice). Then report and cancel again with the card system at
    20 ms; how fast a report answers then (< 1 s p99) is the bench's row 5 (d)."""
    live = cs_live
    open_card(live, 10000)
    wx = live.pusher()
    bind(live, wx, OWNER)
    cardsys = live.app.extensions["emulator_cardsys"]
    cardsys.faults["loss"] = ["lost"]  # once
    wx.click(OWNER, "LOSS", create_time=next(_times))
    assert "还没有完成" in say(wx, OWNER, "确认")
    assert status_at_card_system(live) == "lost"  # done there, the answer never arrived
    [pending] = reports(live)
    assert pending.status == LossStatus.PENDING
    assert "确认挂失" in say(wx, OWNER, "挂失")  # still offered as a report, not a cancel
    assert "已挂失" in say(wx, OWNER, "确认")
    assert [(r.id, r.status) for r in reports(live)] == [(pending.id, LossStatus.LOST)]
    assert [n.openid for n in notices(live, "card_lost")] == [OWNER]
    assert [ref for ref in cardsys.losses if ref.startswith("LOSS")] == [pending.ref]

    cardsys.latency = 0.02
    for _ in range(3):
        say(wx, OWNER, "解挂")
        assert "已解除挂失" in say(wx, OWNER, PASSWORD)
        say(wx, OWNER, "挂失")
        assert "已挂失" in say(wx, OWNER, "确认")
    assert [r.status for r in reports(live)] == [LossStatus.FOUND] * 3 + [LossStatus.LOST]
