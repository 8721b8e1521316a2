"""The simulator on a remote card system (the emulator's, over cardsys/1): the school's kiosk changes a password or
reports a card lost; a canteen swipe debits the card system's account, which pushes the entry, signed, to the bot;
in real Chromium the student sees the balance drop in the bot's reply."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.exc import IntegrityError

from tests.support.browser import playwright
from tests.support.factories import bind, make_cardholder

LIVE_CONFIG = {"cardsystem": {"adapter": "http"}}
NO, NAME = "20230001", "张三"  # the demo roster's first card: 100.00 yuan, initial password 151020
OPENID = "oSimCardsys000000000001"


def _bound(live) -> None:
    with live.session() as db, db.begin():
        bind(db, OPENID, make_cardholder(db, student_no=NO, name=NAME, balance_fen=0))


def test_swipe_goes_through_the_card_system_and_is_pushed_to_the_bot(live):
    _bound(live)
    r = live.http.post(live.url + "/simulator/api/swipe", json={"openid": OPENID, "amount": "12.50", "merchant": "第二食堂 Canteen 2"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["status"] == 200 and data["entry"]["amount_fen"] == -1250 and data["entry"]["balance_after_fen"] == 8750
    assert data["response"]["balance_fen"] == 8750  # the bot remembered the card system's balance
    account = live.app.extensions["emulator_cardsys"].accounts[NO]
    assert account.balance_fen == 8750 and account.entries[-1]["merchant"] == "第二食堂 Canteen 2"
    [pushed] = live.app.extensions["emulator_cardsys"].pushes
    assert pushed["status"] == 200 and pushed["response"]["duplicate"] is False


def test_a_card_reported_lost_at_the_kiosk_cannot_swipe(live):
    _bound(live)
    kiosk = live.http.post(live.url + "/emulator/cardsys/kiosk/loss", json={"student_no": NO})
    assert kiosk.json() == {"result": "ok", "status": "lost"}
    r = live.http.post(live.url + "/simulator/api/swipe", json={"openid": OPENID, "amount": "1"})
    assert r.status_code == 200 and r.json()["status"] == 409 and r.json()["response"]["error"] == "card_lost"
    assert live.app.extensions["emulator_cardsys"].pushes == []


def test_page_shows_the_kiosk_only_on_a_remote_card_system(live, make_live):
    assert 'id="kiosk"' in live.http.get(live.url + "/simulator").text
    ledger = make_live()
    assert 'id="kiosk"' not in ledger.http.get(ledger.url + "/simulator").text


@pytest.mark.browser
def test_kiosk_password_change_then_a_swipe_shows_in_the_bots_balance_reply(page, live):
    expect = playwright().expect
    openid = page.locator("#user").input_value()
    for _ in range(2):  # the simulator's follow event may insert the user row at the same moment: then bind again
        try:
            with live.session() as db, db.begin():
                bind(db, openid, make_cardholder(db, student_no=NO, name=NAME, balance_fen=0))
            break
        except IntegrityError:
            continue
    page.locator("#kiosk-no").fill(NO)
    page.locator("#kiosk-old").fill("000000")
    page.locator("#kiosk-new").fill("654321")
    page.locator("#kiosk-password").click()
    expect(page.locator("#kiosk-result")).to_have_text(re.compile("不对"))
    page.locator("#kiosk-old").fill("151020")
    page.locator("#kiosk-password").click()
    expect(page.locator("#kiosk-result")).to_have_text(re.compile("密码已修改"))
    assert live.app.extensions["emulator_cardsys"].accounts[NO].password == "654321"

    page.locator("#swipe-amount").fill("12.50")
    page.locator("#swipe").click()
    expect(page.locator("#swipe-result")).to_contain_text("余额 Balance 87.50")
    if page.locator("#input-bar").is_hidden():
        page.locator("#to-keyboard").click()
    page.locator("#text").fill("余额")
    page.locator("#send").click()
    expect(page.locator("#messages .msg.bot .bubble").last).to_contain_text("87.50")
