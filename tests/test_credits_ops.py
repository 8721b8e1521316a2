"""``cardbot credits list|retry|refund`` through the real CLI, with real HTTP to the emulated card system, WeChat Pay
and bank: a refused credit is listed with its reason and the student told; a retry delivers it once when the card
system decides the ref again; refused money goes back the way it came, once, settled by the notify, a re-run or the
worker; delivered or pending money is never refunded here."""

from __future__ import annotations

from datetime import timedelta

import requests

from bot.credit_refunds import settle_refunds
from bot.emulator.pay import signed_notify
from models.enums import CreditStatus
from tests.support.autodebit import GOOD_ACCOUNT, at, bank, entry, notices, signed
from tests.support.autodebit import student as autodebit_student
from tests.support.credits import (
    cardsys,
    credit,
    credited_at_card_system,
    credits_cli,
    refunds_at_wechat,
    refused_topup,
    topup,
)
from tests.support.topup import emu_pay, platform_key, student, wait_for

OPENID = "oCreditOpsUser0000000001"
OTHER = "oCreditOpsUser0000000002"
NO = "20239001"


def test_refused_credit_is_listed_told_and_delivered_once_when_the_card_system_decides_again(cs_live):
    ref = refused_topup(cs_live, OPENID, NO)
    c = credit(cs_live, ref)
    assert (c.status, c.reason, c.amount_fen, c.fee_fen) == (CreditStatus.REFUSED, "card_lost", 5000, 15)
    [told] = notices(cs_live, "credit_refused")
    assert told.openid == OPENID and told.dedup_key == f"credit:{ref}:refused"

    listed = credits_cli(cs_live, "list")
    assert listed.exit_code == 0, listed.output
    [line] = [ln for ln in listed.output.splitlines() if ref in ln]
    assert all(x in line for x in ("wechat_pay", "2023**01", "50.00", "refused", "card_lost")) and NO not in line
    assert "no credits delivered" in credits_cli(cs_live, "list", "--status", "delivered").output
    assert ref not in credits_cli(cs_live, "list", "--date", "2020-01-01").output

    st = cardsys(cs_live)
    st.accounts[NO].status = "active"  # reactivated at the service desk
    again = credits_cli(cs_live, "retry", ref)
    assert again.exit_code == 1 and "still refused by the card system (card_lost)" in again.output
    assert credited_at_card_system(cs_live, ref) == [] and len(notices(cs_live, "credit_refused")) == 1

    with st.lock:  # the school's integration decides this ref again (a refusal moved no money)
        del st.credits[ref]
    done = credits_cli(cs_live, "retry", ref)
    assert done.exit_code == 0, done.output
    assert "delivered, 50.00 yuan" in done.output
    assert credit(cs_live, ref).status == CreditStatus.DELIVERED
    assert st.accounts[NO].balance_fen == 6000 and len(credited_at_card_system(cs_live, ref)) == 1
    assert [n.dedup_key for n in notices(cs_live, "topup_receipt")] == [f"topup:{ref}:topup_receipt:{OPENID}"]

    twice = credits_cli(cs_live, "retry", ref)
    assert twice.exit_code == 1 and "not retried" in twice.output and "delivered" in twice.output
    refund = credits_cli(cs_live, "refund", ref)
    assert refund.exit_code == 1 and "never refunded here" in refund.output and "in person" in refund.output
    assert refunds_at_wechat(cs_live, ref) == [] and len(credited_at_card_system(cs_live, ref)) == 1


def test_refund_goes_back_through_wechat_once_and_its_notify_settles_it(cs_live):
    ref = refused_topup(cs_live, OPENID, NO)
    first = credits_cli(cs_live, "refund", ref)
    assert first.exit_code == 0, first.output
    assert f"refund RC{ref} of 50.15 yuan accepted by WeChat Pay" in first.output
    wait_for(lambda: credit(cs_live, ref).status == CreditStatus.REFUNDED)  # the refund notify, to /pay/refund-notify
    [made] = refunds_at_wechat(cs_live, ref)
    assert (made.out_refund_no, made.amount, made.total) == (f"RC{ref}", 5015, 5015)
    sent = wait_for(lambda: [x for x in emu_pay(cs_live).notify_log if x.get("out_refund_no") == f"RC{ref}"])
    assert [x["status"] for x in sent] == [204]

    again = credits_cli(cs_live, "refund", ref)
    assert again.exit_code == 0 and "50.15 yuan refunded to WeChat Pay" in again.output
    assert len(refunds_at_wechat(cs_live, ref)) == 1
    [told] = notices(cs_live, "refund_result")
    assert told.openid == OPENID and told.data["amount"] == "50.15元" and "原路退回" in told.data["result"]
    listed = credits_cli(cs_live, "list", "--status", "refunded").output
    assert ref in listed and f"RC{ref}" in listed
    assert credited_at_card_system(cs_live, ref) == [] and cardsys(cs_live).accounts[NO].balance_fen == 1000


def test_a_lost_answer_is_settled_by_a_rerun_or_the_worker_never_by_a_second_refund(cs_live):
    ref = refused_topup(cs_live, OPENID, NO)
    pay = emu_pay(cs_live)
    pay.notify_enabled = False  # no refund notify: only asking settles it
    pay.faults["refund"] = ["lost"]
    lost = credits_cli(cs_live, "refund", ref)
    assert lost.exit_code == 1 and "run again" in lost.output
    assert credit(cs_live, ref).status == CreditStatus.REFUNDING and len(refunds_at_wechat(cs_live, ref)) == 1

    rerun = credits_cli(cs_live, "refund", ref)  # asks WeChat about RC{ref}
    assert rerun.exit_code == 0, rerun.output
    assert len(refunds_at_wechat(cs_live, ref)) == 1
    wait_for(lambda: refunds_at_wechat(cs_live, ref)[0].status == "SUCCESS")
    if credit(cs_live, ref).status != CreditStatus.REFUNDED:
        assert settle_refunds(cs_live.services) == {}  # not due yet
        cs_live.services.clock.shift(timedelta(minutes=2))
        assert settle_refunds(cs_live.services) == {CreditStatus.REFUNDED: 1}
    assert credit(cs_live, ref).status == CreditStatus.REFUNDED
    assert len(refunds_at_wechat(cs_live, ref)) == 1 and len(notices(cs_live, "refund_result")) == 1


def test_a_closed_refund_lists_the_credit_again_and_the_next_refund_takes_a_new_number(cs_live):
    ref = refused_topup(cs_live, OPENID, NO)
    emu_pay(cs_live).faults["refund"] = ["closed"]
    assert credits_cli(cs_live, "refund", ref).exit_code == 0
    wait_for(lambda: credit(cs_live, ref).status == CreditStatus.REFUSED)  # REFUND.CLOSED notify: nothing went back
    assert notices(cs_live, "refund_result") == []
    second = credits_cli(cs_live, "refund", ref)
    assert second.exit_code == 0, second.output
    wait_for(lambda: credit(cs_live, ref).status == CreditStatus.REFUNDED)
    assert sorted((r.out_refund_no, r.status) for r in refunds_at_wechat(cs_live, ref)) == [(f"RC{ref}", "CLOSED"), (f"RC{ref}-2", "SUCCESS")]


def test_only_refused_money_is_refunded(live, cs_live):
    student(live, OPENID, balance_fen=0)  # the ledger card system: delivered at once
    delivered = topup(live, OPENID)
    wait_for(lambda: credit(live, delivered).status == CreditStatus.DELIVERED)
    out = credits_cli(live, "refund", delivered)
    assert out.exit_code == 1 and "never refunded here" in out.output and refunds_at_wechat(live, delivered) == []
    unknown = credits_cli(live, "refund", "TNOSUCHORDER0001")
    assert unknown.exit_code == 1 and "No credit with ref TNOSUCHORDER0001" in unknown.output

    cardsys(cs_live).open(NO, "李四", "123456", 1000)
    student(cs_live, OTHER, student_no=NO, balance_fen=1000)  # one database under both apps
    cardsys(cs_live).faults["credit"] = ["maintenance"]
    pending = topup(cs_live, OTHER)
    wait_for(lambda: credit(cs_live, pending).waiting_for == "maintenance")
    assert credit(cs_live, pending).status == CreditStatus.PENDING
    out = credits_cli(cs_live, "refund", pending)
    assert out.exit_code == 1 and "Only money the card system refused" in out.output
    assert "maintenance" in credits_cli(cs_live, "list").output
    retried = credits_cli(cs_live, "retry", pending)  # the card system is open again
    assert retried.exit_code == 0 and credit(cs_live, pending).status == CreditStatus.DELIVERED
    assert refunds_at_wechat(cs_live, pending) == [] and len(credited_at_card_system(cs_live, pending)) == 1


def test_refused_auto_top_up_goes_back_to_the_bank_card_once(cs_live):
    cs_live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    card_id = autodebit_student(cs_live, OPENID, student_no=NO, balance_fen=2100)
    cardsys(cs_live).open(NO, "李四", "123456", 2100, status="frozen")
    signed(cs_live, OPENID)
    assert entry(cs_live, NO, -200, balance_after=1900).json()["autodebit"]["status"] == "succeeded"
    [c] = [x for x in credits_cli(cs_live, "list").output.splitlines() if x.startswith("AD")]
    ref = c.split()[0]
    assert "autodebit" in c and "card_frozen" in c and credit(cs_live, ref).cardholder_id == card_id
    out = credits_cli(cs_live, "refund", ref)
    assert out.exit_code == 0, out.output
    assert "50.00 yuan refunded to the bank card" in out.output
    b = bank(cs_live)
    refunds = [x for x in b.calls if x["op"] == "refund"]
    assert [(x["ref"], x["amount_fen"], x["account"]) for x in refunds] == [(f"RC{ref}", 5000, GOOD_ACCOUNT)]
    assert credits_cli(cs_live, "refund", ref).exit_code == 0
    assert len([x for x in b.calls if x["op"] == "refund"]) == 1
    [told] = notices(cs_live, "refund_result")
    assert told.dedup_key == f"credit:{ref}:refunded"


def test_refund_notify_refuses_forged_and_unknown_refunds(cs_live):
    r = requests.post(cs_live.url + "/pay/refund-notify", data=b'{"event_type": "REFUND.SUCCESS"}', timeout=10)
    assert r.status_code == 401
    ref = refused_topup(cs_live, OPENID, NO)
    resource = {
        "mchid": cs_live.cfg.pay.mchid,
        "out_trade_no": ref,
        "transaction_id": "4200000000000000000000000001",
        "out_refund_no": "RCNOTOURS00000001",
        "refund_id": "50000000000000000000000000001",
        "refund_status": "SUCCESS",
        "success_time": "2026-11-25T10:00:00+08:00",
        "amount": {"total": 5015, "refund": 5015, "payer_total": 5015, "payer_refund": 5015},
        "user_received_account": "支付用户零钱",
    }
    headers, body = signed_notify(
        resource,
        private_key=platform_key(cs_live),
        serial=cs_live.cfg.pay.public_key_id,
        apiv3_key=cs_live.cfg.pay.apiv3_key,
        event_type="REFUND.SUCCESS",
        kind="refund",
        at=cs_live.services.clock.now().timestamp(),
    )
    r = requests.post(cs_live.url + "/pay/refund-notify", data=body, headers=headers, timeout=10)
    assert r.status_code == 400 and r.json()["code"] == "FAIL"
    assert credit(cs_live, ref).status == CreditStatus.REFUSED
