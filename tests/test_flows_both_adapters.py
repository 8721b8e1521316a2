"""The student's flows end to end on both card-system adapters (issue 13, "done when"): bind, balance, bills, top-up,
auto top-up and refunds, over real HTTP with signed WeChat pushes, real Pay v3 and the signed bank and card system.

``ledger``: the bot's own ledger is the card system (the roster holds the card). ``http``: the emulator's cardsys/1
server holds the card, its balance and its password; the bot keeps no roster row until the card is bound, and every
balance it shows is the card system's. The same test body runs on both; only where the card lives differs."""

from __future__ import annotations

import itertools
from typing import Any

import requests
from sqlalchemy import select

from bot.credits import deliver_due
from models import CardCredit, Cardholder, post_entry
from models.enums import CreditStatus, EntryKind
from models.passwords import hash_password
from tests.support import autodebit as ad
from tests.support.topup import logged_in, wait_for

NO = "20239001"
NAME = "林小雨"
PASSWORD = "246810"
OPENID = "oFlowsBothAdapters000001"
_times = itertools.count(1_900_000_000)


def open_card(live: Any, balance_fen: int) -> None:
    """The card as the school's card system holds it: the roster row (ledger) or the emulator's account (http)."""
    if live.cfg.cardsystem.adapter == "http":
        live.app.extensions["emulator_cardsys"].open(NO, NAME, PASSWORD, balance_fen)
        return
    with live.session() as db, db.begin():
        card = Cardholder(student_no=NO, name=NAME, id_number="110101200001011234", password_hash=hash_password(PASSWORD), balance_fen=0)
        db.add(card)
        db.flush()
        post_entry(db, card.id, balance_fen, EntryKind.OPENING, f"opening:{NO}")


def card_balance(live: Any) -> int:
    account = live.services.card_system.account(NO)
    assert account is not None
    return account.balance_fen


def spend(live: Any, amount_fen: int) -> None:
    """A canteen terminal spend: on http the emulator's terminal (which pushes, signed, to the bot); on ledger the card
    system's signed push itself."""
    if live.cfg.cardsystem.adapter == "http":
        r = requests.post(live.url + "/emulator/cardsys/terminals/swipe", json={"student_no": NO, "amount_fen": amount_fen}, timeout=15)
        assert r.status_code == 200 and r.json()["push"]["status"] == 200, r.text
    else:
        assert ad.entry(live, NO, -amount_fen).status_code == 200


def say(wx: Any, text: str) -> str:
    return wx.text(OPENID, text, create_time=next(_times)).content


def test_bind_balance_bills_topup_autodebit_refund(flow_live: Any) -> None:
    live = flow_live
    open_card(live, 10000)
    wx = live.pusher()

    # bind with the card system's password; a wrong one is refused
    assert "学号" in wx.click(OPENID, "BIND", create_time=next(_times)).content
    say(wx, NO)
    say(wx, NAME)
    assert "绑定成功" not in say(wx, "000000")
    wx.click(OPENID, "BIND", create_time=next(_times))
    say(wx, NO)
    say(wx, NAME)
    assert "绑定成功" in say(wx, PASSWORD)

    # balance and bills are the card system's
    assert "100.00" in say(wx, "余额")
    spend(live, 800)
    assert card_balance(live) == 9200
    assert "92.00" in say(wx, "余额")
    bill = wx.text(OPENID, "账单", create_time=next(_times))
    assert bill.type == "news" and "8.00" in bill.articles[0]["Description"], bill.raw

    # top-up: paid in WeChat Pay, delivered to the card system once, receipt with its balance
    phone = logged_in(live, OPENID)
    body = phone.order(5000, "quick").json()
    phone.pay(body["pay_params"])
    wait_for(lambda: phone.status(body["order_no"]).json().get("credit") == CreditStatus.DELIVERED, timeout=3)
    assert card_balance(live) == 14200
    assert phone.status(body["order_no"]).json()["balance"] == "142.00"
    assert "142.00" in say(wx, "余额")

    # auto top-up: a spend below the threshold, the bank debited, the card system credited once
    ad.signed(live, OPENID, bank_balance_fen=100_000)
    spend(live, 12500)  # 142.00 → 17.00: below 20
    wait_for(lambda: card_balance(live) == 6700)
    deliver_due(live.services)
    assert card_balance(live) == 6700
    with live.session() as db:
        credits = {c.ref: c for c in db.execute(select(CardCredit)).scalars()}
    assert {c.status for c in credits.values()} == {CreditStatus.DELIVERED} and len(credits) == 2
    assert ad.bank(live).accounts[ad.GOOD_ACCOUNT].balance_fen == 95_000

    # refund of the auto top-up: the bot does it where it keeps the balance, the service center where it does not
    [attempt] = ad.attempts(live, _card_id(live))
    page = ad.logged_in(live, OPENID)
    r = page.post("/api/autodebit/refunds", {"attempt_id": attempt.id})
    if live.cfg.cardsystem.adapter == "http":
        assert r.status_code == 409 and "服务中心" in r.json()["message"]
        assert card_balance(live) == 6700
    else:
        assert r.status_code in (200, 201), r.text


def _card_id(live: Any) -> int:
    with live.session() as db:
        return db.execute(select(Cardholder.id).where(Cardholder.student_no == NO)).scalar_one()
