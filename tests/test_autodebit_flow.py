"""Auto top-up end to end over real HTTP: sign on the OAuth page, a signed card-system entry takes the card below
the threshold, the sandbox bank is debited (inside bank hours, or at the next window), the card is credited once
and the student gets a template notice; failures notify without credit; agreements end each September."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.autodebit import run_agreement_reminders, sweep
from tests.support.autodebit import (
    GOOD_ACCOUNT,
    at,
    attempts,
    balance,
    bank,
    drain,
    entries,
    entry,
    logged_in,
    notices,
    signed,
    student,
    templates,
)

pytestmark = pytest.mark.usefixtures("ledger_checked")

OPENID = "oAutodebitFlowUser000001"
NO = "20231001"


def test_menu_and_words_link_to_the_page(live, wx):
    student(live, OPENID, student_no=NO)
    for reply in (wx.click(OPENID, "AUTODEBIT"), wx.text(OPENID, "自动代扣"), wx.text(OPENID, "auto debit")):
        assert reply.type == "news", reply.raw
        assert reply.articles[0]["Url"] == live.url + "/autodebit"
        assert OPENID not in reply.articles[0]["Url"]
        assert "20" in reply.articles[0]["Description"] and "50" in reply.articles[0]["Description"]


def test_menu_explains_when_not_bound(live, wx):
    reply = wx.click(OPENID, "AUTODEBIT")
    assert reply.type == "text" and "绑定" in reply.content


def test_page_needs_oauth_and_csrf(live):
    student(live, OPENID, student_no=NO)
    anon = live.http
    r = anon.get(live.url + "/autodebit", params={"openid": OPENID}, allow_redirects=False, timeout=5)
    assert r.status_code == 302 and "/connect/oauth2/authorize" in r.headers["Location"]
    assert anon.post(live.url + "/api/autodebit/agreement", json={"bank_account": GOOD_ACCOUNT}, timeout=5).status_code == 401
    phone = logged_in(live, OPENID)
    r = phone.http.post(live.url + "/api/autodebit/agreement", json={"bank_account": GOOD_ACCOUNT}, timeout=5)
    assert r.status_code == 403  # no CSRF header


def test_sign_shows_last4_and_end_date_then_cancel(live):
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    student(live, OPENID, student_no=NO, balance_fen=10000)
    phone = logged_in(live, OPENID)
    page = phone.page().text
    assert "低于 20 元" in page and "转入 50 元" in page and 'id="sign"' in page
    assert phone.sign("12ab").status_code == 400
    bank(live).open("6222020000000003", 100000, refuses=True)
    r = phone.sign("6222020000000003")
    assert r.status_code == 409 and "网上支付" in r.json()["message"]
    r = phone.sign("6222 0212 3456 7890")
    assert r.status_code == 201, r.text
    assert r.json()["expires_on"] == "2027-09-01" and r.json()["bank_last4"] == "7890"
    assert phone.sign(GOOD_ACCOUNT).status_code == 409
    page = phone.page().text
    assert "尾号 7890" in page and GOOD_ACCOUNT not in page and "2027-09-01" in page
    assert phone.post("/api/autodebit/agreement/cancel", {}).status_code == 200
    assert phone.state()["agreement"] is None
    assert phone.post("/api/autodebit/agreement/cancel", {}).status_code == 404


def test_swipe_inside_bank_hours_tops_up_and_notifies(live):
    live.services.clock.freeze(at(2026, 11, 25, 12, 5))
    card_id = student(live, OPENID, student_no=NO, balance_fen=2500)
    signed(live, OPENID, bank_balance_fen=100_000)
    r = entry(live, NO, -800)  # 25.00 → 17.00: below 20
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["balance_after_entry_fen"] == 1700
    assert body["autodebit"]["status"] == "succeeded"
    assert body["balance_fen"] == 6700
    assert balance(live, card_id) == 6700
    assert [e.amount_fen for e in entries(live, card_id, "autodebit")] == [5000]
    assert bank(live).accounts[GOOD_ACCOUNT].balance_fen == 95_000
    assert drain(live) == 1
    [msg] = templates(live, OPENID)
    assert msg["template_id"] == "TPL_AUTODEBIT_OK"
    assert msg["data"] == {"amount1": "50.00元", "amount2": "67.00元", "time3": "2026-11-25 12:05"}
    assert msg["url"] == live.url + "/autodebit"
    # a further swipe while above the threshold does nothing; one below it again is a new trigger
    assert entry(live, NO, -100).json()["autodebit"] is None
    assert entry(live, NO, -5000).json()["autodebit"]["status"] == "succeeded"
    assert balance(live, card_id) == 6600


def test_swipe_outside_bank_hours_waits_for_the_window(live):
    clock = live.services.clock
    clock.freeze(at(2026, 11, 25, 21, 30))
    card_id = student(live, OPENID, student_no=NO, balance_fen=2500)
    signed(live, OPENID)
    body = entry(live, NO, -1000).json()
    assert body["autodebit"]["status"] == "waiting"
    assert body["autodebit"]["next_window"].startswith("2026-11-26T06:00")
    assert body["balance_fen"] == 1500
    assert sweep(live.services) == {"created": 0}  # still outside: nothing new, nothing processed
    assert entry(live, NO, -100).json()["autodebit"] is None  # one open attempt per card
    assert len(attempts(live, card_id)) == 1
    assert logged_in(live, OPENID).page().text.count("等待银行服务时间") == 1
    assert drain(live) == 0 and bank(live).calls == []
    clock.freeze(at(2026, 11, 26, 6, 1))
    out = sweep(live.services)
    assert out == {"created": 0, "succeeded": 1}
    assert balance(live, card_id) == 1400 + 5000
    assert drain(live) == 1 and templates(live, OPENID)[0]["data"]["amount2"] == "64.00元"
    assert sweep(live.services) == {"created": 0}  # nothing twice


def test_empty_bank_account_fails_without_credit_and_says_what_to_do(live):
    live.services.clock.freeze(at(2026, 11, 25, 9, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=2100)
    signed(live, OPENID, bank_balance_fen=1000)
    body = entry(live, NO, -200).json()
    assert body["autodebit"] == {
        "attempt_id": body["autodebit"]["attempt_id"],
        "status": "failed",
        "amount_fen": 5000,
        "reason": "insufficient_funds",
    }
    assert balance(live, card_id) == 1900 and entries(live, card_id, "autodebit") == []
    assert bank(live).accounts[GOOD_ACCOUNT].balance_fen == 1000
    drain(live)
    [msg] = templates(live, OPENID)
    assert msg["template_id"] == "TPL_AUTODEBIT_FAIL"
    assert msg["data"]["thing2"] == "银行卡余额不足" and msg["data"]["thing3"] == "请存入足够金额"
    # no retry on every swipe the same day; the page explains
    assert entry(live, NO, -100).json()["autodebit"] is None
    assert "银行卡余额不足" in logged_in(live, OPENID).page().text


def test_refusing_bank_fails_with_advice_in_english(live):
    live.services.clock.freeze(at(2026, 11, 25, 9, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=2100, lang="en")
    signed(live, OPENID)
    bank(live).accounts[GOOD_ACCOUNT].refuses = True  # online payment switched off after signing
    assert entry(live, NO, -200).json()["autodebit"]["reason"] == "refused"
    assert entries(live, card_id, "autodebit") == []
    drain(live)
    [msg] = templates(live, OPENID)
    assert msg["data"]["thing2"] == "Bank refused" and msg["data"]["thing3"] == "Enable online pay"
    page = logged_in(live, OPENID).page().text
    assert "online payment" in page and "single-payment limit" in page and "call your bank" in page


def test_bank_unreachable_is_repeated_by_the_sweep_and_credited_once(live):
    clock = live.services.clock
    clock.freeze(at(2026, 11, 25, 10, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=2100)
    signed(live, OPENID)
    bank(live).faults["debit"] = ["5xx"]
    assert entry(live, NO, -200).json()["autodebit"]["status"] == "processing"
    assert sweep(live.services) == {"created": 0}  # in flight: not yet stale
    clock.shift(timedelta(minutes=3))
    assert sweep(live.services) == {"created": 0, "succeeded": 1}
    assert [e.amount_fen for e in entries(live, card_id, "autodebit")] == [5000]
    assert sweep(live.services) == {"created": 0}


def test_sweep_catches_a_missed_trigger_once_a_day(live):
    clock = live.services.clock
    clock.freeze(at(2026, 11, 25, 10, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=5000)
    signed(live, OPENID, bank_balance_fen=4000)
    with live.session() as db, db.begin():  # a spend the card system never reported to us
        from models import post_entry

        post_entry(db, card_id, -4000, "spend", "missed:1")
    assert sweep(live.services) == {"created": 1, "failed": 1}  # the bank account is short
    assert sweep(live.services) == {"created": 0}  # not again today
    bank(live).accounts[GOOD_ACCOUNT].balance_fen = 10_000
    clock.freeze(at(2026, 11, 26, 10, 0))
    assert sweep(live.services) == {"created": 1, "succeeded": 1}
    assert balance(live, card_id) == 6000


def test_agreement_reminder_then_expiry(live, wx):
    clock = live.services.clock
    clock.freeze(at(2027, 8, 10, 10, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=10000)
    phone = signed(live, OPENID)
    assert phone.state()["agreement"]["expires_on"] == "2027-09-01"
    clock.freeze(at(2027, 8, 17, 23, 30))
    assert run_agreement_reminders(live.services) == {"reminded": 0, "expired": 0}
    clock.freeze(at(2027, 8, 18, 23, 30))
    assert run_agreement_reminders(live.services) == {"reminded": 1, "expired": 0}
    assert run_agreement_reminders(live.services) == {"reminded": 0, "expired": 0}
    [n] = notices(live, "agreement_expiring")
    assert n.urgent is False
    assert drain(live) == 0  # quiet hours hold a non-urgent notice
    clock.freeze(at(2027, 8, 19, 7, 30))
    assert drain(live) == 1
    [msg] = templates(live, OPENID)
    assert msg["data"] == {"thing1": "自动充值协议即将到期", "time2": "2027-09-01", "thing3": "请重新签约"}
    clock.freeze(at(2027, 9, 1, 8, 0))
    assert run_agreement_reminders(live.services) == {"reminded": 0, "expired": 1}
    drain(live)
    assert templates(live, OPENID)[-1]["data"]["thing1"] == "自动充值协议已到期"
    assert entry(live, NO, -9000).json()["autodebit"] is None  # no agreement, no top-up
    assert balance(live, card_id) == 1000
    reply = wx.click(OPENID, "AUTODEBIT")
    assert "点击签约" in reply.articles[0]["Description"]
    assert phone.sign().status_code == 401  # three weeks on, the H5 session has ended: the link opens the page again
    assert phone.page().status_code == 200
    assert phone.sign().status_code == 201 and phone.state()["agreement"]["expires_on"] == "2028-09-01"


def test_signing_while_below_threshold_tops_up_at_once(live):
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=500)
    bank(live).open(GOOD_ACCOUNT, 100_000)
    r = logged_in(live, OPENID).sign()
    assert r.status_code == 201 and r.json()["autodebit"] == "succeeded"
    assert balance(live, card_id) == 5500


@pytest.mark.unit
def test_renewal_date_follows_the_clock():
    from types import SimpleNamespace

    from bot.autodebit import expires_on
    from bot.config import load_config

    svc = SimpleNamespace(cfg=load_config(None, autodebit={"renew_month": 9}))
    assert expires_on(svc, date(2026, 8, 31)) == date(2026, 9, 1)
    assert expires_on(svc, date(2026, 9, 1)) == date(2027, 9, 1)
    assert expires_on(svc, date(2026, 12, 31)) == date(2027, 9, 1)
