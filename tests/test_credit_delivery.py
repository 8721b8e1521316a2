"""Paid money reaches the card system exactly once, whatever the card system does: maintenance, an answer lost after
the credit was made, a timeout, a 5xx, a refusal, duplicate notifies, an auto top-up while it waits, a worker killed
mid-delivery. Each test compares the two sides: our ``CardCredit`` rows and the emulator card system's accounts and
credit log (real HTTP, real cardsys/1 signatures)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy import select

from bot import autodebit, credits
from bot.clock import SCHOOL_TZ
from models import CardCredit, Cardholder
from models.enums import AttemptStatus, CreditChannel, CreditStatus, Product
from tests.support import autodebit as ad
from tests.support.delivery import NO, credit_log, credit_row, credit_rows, cs_balance, emu_cs, notices_of, notify_paid, paid_order
from tests.support.reliability import tally
from tests.support.topup import student, wait_for

OPENID = "oCreditDeliveryUser00001"
ROOT = Path(__file__).resolve().parents[1]


def owed(card: Cardholder, ref: str, amount_fen: int, now: datetime) -> credits.Owed:
    """A top-up owed to ``card``, as a payment's transaction writes it (left to the worker: ``claim=False``)."""
    return credits.Owed(ref, CreditChannel.WECHAT_PAY, Product.CARD, card.student_no, card.id, card.student_no, OPENID, amount_fen, 0, now)


def _frozen(live) -> datetime:
    now = datetime.now(SCHOOL_TZ).replace(microsecond=0)
    live.services.clock.freeze(now)
    return now


def test_maintenance_keeps_the_credit_pending_with_why_and_until_when_then_delivers_once(cs_live):
    now = _frozen(cs_live)
    student(cs_live, OPENID, student_no=NO)
    phone, order_no = paid_order(cs_live, OPENID)
    emu_cs(cs_live).faults["credit"] = "maintenance"
    assert notify_paid(cs_live, order_no) == 204  # WeChat is told we have it: the money is owed, not lost
    c = credit_row(cs_live, order_no)
    assert (c.status, c.waiting_for) == (CreditStatus.PENDING, credits.Waiting.MAINTENANCE)
    until = now.astimezone(UTC).replace(tzinfo=None) + timedelta(seconds=600)  # the emulator's retry_after
    assert c.next_try_at == until
    [delayed] = notices_of(cs_live, "credit_delayed")
    assert f"{now + timedelta(seconds=600):%H:%M}" in delayed.data["status"]
    status = phone.status(order_no).json()
    assert status["credit"] == CreditStatus.PENDING
    assert "维护" in status["message"] and f"{now + timedelta(seconds=600):%H:%M}" in status["message"]
    cs_live.services.clock.shift(timedelta(seconds=599))
    assert credits.deliver_due(cs_live.services) == {}  # inside the window: not tried
    assert credit_row(cs_live, order_no).tries == 1
    assert len(notices_of(cs_live, "credit_delayed")) == 1  # told once, not on every try
    assert credit_log(cs_live) == []
    emu_cs(cs_live).faults.clear()  # the window ends
    cs_live.services.clock.shift(timedelta(seconds=1))
    assert credits.deliver_due(cs_live.services) == {CreditStatus.DELIVERED: 1}
    assert credits.deliver_due(cs_live.services) == {}
    assert credit_log(cs_live) == [order_no] and cs_balance(cs_live) == 15000
    [receipt] = notices_of(cs_live, "topup_receipt")
    assert "150.00" in receipt.data["balance"]  # the card system's new balance
    assert phone.status(order_no).json() == {**phone.status(order_no).json(), "credit": CreditStatus.DELIVERED, "balance": "150.00"}
    with cs_live.session() as db:
        card = db.execute(select(Cardholder).where(Cardholder.student_no == NO)).scalar_one()
        assert card.balance_fen == 15000  # remembered for when the card system does not answer


def _settled_by_asking(cs_live, fault: str) -> None:
    _frozen(cs_live)
    student(cs_live, OPENID, student_no=NO)
    phone, order_no = paid_order(cs_live, OPENID)
    # the fault, then a 5xx for any further POST: a retry that sent the credit again instead of asking would stay pending
    emu_cs(cs_live).faults["credit"] = [fault, "5xx"]
    assert notify_paid(cs_live, order_no) == 204
    c = credit_row(cs_live, order_no)
    assert (c.status, c.waiting_for) == (CreditStatus.PENDING, credits.Waiting.NO_ANSWER)
    wait_for(lambda: credit_log(cs_live))  # the card system made the credit; we did not hear it
    assert credit_log(cs_live) == [order_no] and cs_balance(cs_live) == 15000
    assert "暂未响应" in phone.status(order_no).json()["message"]
    cs_live.services.clock.shift(credits.MAX_BACKOFF)
    assert credits.deliver_due(cs_live.services) == {CreditStatus.DELIVERED: 1}
    assert emu_cs(cs_live).faults["credit"] == ["5xx"]  # no POST on the retry: GET /credits/{ref} answered
    c = credit_row(cs_live, order_no)
    assert c.balance_fen == 15000 and c.entry_id == emu_cs(cs_live).credits[order_no]["entry_id"]  # the first answer
    assert credit_log(cs_live) == [order_no] and cs_balance(cs_live) == 15000
    assert list(emu_cs(cs_live).credits) == [order_no]  # no new ref, ever
    assert len(notices_of(cs_live, "topup_receipt")) == 1


def test_answer_lost_after_the_credit_was_made_is_asked_about_not_sent_again(cs_live):
    _settled_by_asking(cs_live, "lost")


def test_timeout_after_the_credit_was_made_is_asked_about_not_sent_again(cs_live):
    _settled_by_asking(cs_live, "slow")


def test_5xx_does_nothing_and_the_retry_uses_the_same_ref(cs_live):
    _frozen(cs_live)
    student(cs_live, OPENID, student_no=NO)
    _, order_no = paid_order(cs_live, OPENID)
    emu_cs(cs_live).faults["credit"] = ["5xx", "5xx"]
    assert notify_paid(cs_live, order_no) == 204
    assert credit_row(cs_live, order_no).waiting_for == credits.Waiting.NO_ANSWER
    assert credit_log(cs_live) == [] and cs_balance(cs_live) == 10000  # nothing done
    cs_live.services.clock.shift(credits.MAX_BACKOFF)
    assert credits.deliver_due(cs_live.services) == {CreditStatus.PENDING: 1}  # asked (unknown ref), sent again: 5xx
    assert credit_log(cs_live) == []
    cs_live.services.clock.shift(credits.MAX_BACKOFF)
    assert credits.deliver_due(cs_live.services) == {CreditStatus.DELIVERED: 1}
    assert credit_log(cs_live) == [order_no] and cs_balance(cs_live) == 15000
    assert credit_row(cs_live, order_no).tries == 3
    assert len(notices_of(cs_live, "credit_delayed")) == 1 and len(notices_of(cs_live, "topup_receipt")) == 1


def test_refused_credit_is_told_and_listed_never_dropped(cs_live):
    _frozen(cs_live)
    refused = {}
    for i, (status, reason) in enumerate((("lost", "card_lost"), ("frozen", "card_frozen"), ("graduated", "graduated"))):
        openid, no = f"oCreditRefused{i:010d}", f"2023900{i}"
        acc = emu_cs(cs_live).open(no, "测试", "123456", 1000)
        student(cs_live, openid, student_no=no)
        phone, order_no = paid_order(cs_live, openid)
        acc.status = status  # reported after the student paid: only the card system knows yet
        assert notify_paid(cs_live, order_no) == 204
        refused[order_no] = reason
        assert phone.status(order_no).json()["credit"] == CreditStatus.REFUSED
        assert cs_balance(cs_live, no) == 1000
    assert credits.deliver_due(cs_live.services) == {}
    assert credit_log(cs_live) == []
    with cs_live.session() as db:
        listed = db.execute(select(CardCredit.ref, CardCredit.reason, CardCredit.amount_fen).where(CardCredit.status == CreditStatus.REFUSED)).all()
    assert {ref: reason for ref, reason, _ in listed} == refused
    assert sum(amount for _, _, amount in listed) == 3 * 5000  # every refused yuan is listed
    told = notices_of(cs_live, "credit_refused")
    assert len(told) == 3 and {n.data["status"] for n in told} == {"卡已挂失，未能入账", "卡已冻结，未能入账", "已离校，未能入账"}
    assert notices_of(cs_live, "topup_receipt") == []


def test_duplicate_notifies_at_once_make_one_credit_and_one_card_system_credit(cs_live):
    student(cs_live, OPENID, student_no=NO)
    _, order_no = paid_order(cs_live, OPENID)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: notify_paid(cs_live, order_no), range(8)))
    tally("races run")
    assert answers == [204] * 8
    assert [c.ref for c in credit_rows(cs_live)] == [order_no]
    assert credit_row(cs_live, order_no).status == CreditStatus.DELIVERED
    assert credit_log(cs_live) == [order_no] and cs_balance(cs_live) == 15000
    assert len(notices_of(cs_live, "topup_receipt")) == 1


def test_auto_top_up_waiting_for_the_card_system_is_not_opened_again(make_live):
    live = make_live(cardsystem={"adapter": "http", "timeout_seconds": 1.0}, autodebit={"bank_hours": "00:00-24:00"})
    _frozen(live)
    card_id = ad.student(live, OPENID, student_no=NO, balance_fen=10000)
    ad.signed(live, OPENID, bank_balance_fen=100_000)
    emu_cs(live).faults["credit"] = "maintenance"

    def swipe(amount_fen: int) -> dict:
        r = requests.post(live.url + "/emulator/cardsys/terminals/swipe", json={"student_no": NO, "amount_fen": amount_fen}, timeout=15)
        assert r.status_code == 200 and r.json()["push"]["status"] == 200, r.text
        return r.json()["push"]["response"]

    swipe(9000)  # 100.00 → 10.00: below the threshold
    [attempt] = ad.attempts(live, card_id)
    assert attempt.status == AttemptStatus.SUCCEEDED and ad.bank(live).accounts[ad.GOOD_ACCOUNT].balance_fen == 95_000
    c = credit_row(live, f"AD{attempt.id}")
    assert (c.status, c.channel, c.waiting_for) == (CreditStatus.PENDING, CreditChannel.AUTODEBIT, credits.Waiting.MAINTENANCE)
    swipe(100)  # still low at the card system, but the money is on its way
    assert autodebit.sweep(live.services) == {"created": 0}
    assert len(ad.attempts(live, card_id)) == 1 and len(ad.bank(live).statement) == 1
    assert len(notices_of(live, "credit_delayed")) == 1
    emu_cs(live).faults.clear()
    live.services.clock.shift(timedelta(seconds=601))
    assert credits.deliver_due(live.services) == {CreditStatus.DELIVERED: 1}
    assert credit_log(live) == [f"AD{attempt.id}"] and cs_balance(live) == 900 + 5000
    [ok] = notices_of(live, "autodebit_success")
    assert "59.00" in ok.data["balance"]
    assert autodebit.sweep(live.services) == {"created": 0}


def test_worker_killed_mid_delivery_then_restarted_delivers_each_credit_once(cs_live):
    """A real ``cardbot worker`` delivers 40 credits to a slow card system and is SIGKILLed with requests in flight
    (the card system finishes them after the worker is gone); a restarted worker asks about those refs."""
    live = cs_live
    n = 40
    with live.session() as db, db.begin():
        card = db.get(Cardholder, student(live, OPENID, student_no=NO))
        now = live.services.clock.utcnow()
        for i in range(n):
            credits.owe(live.services, db, owed(card, f"KILL{i:04d}", 100 + i, now), claim=False)
    emu_cs(live).faults["credit"] = ["slow"] * n  # each credit made ~1.5 s after it was asked for
    cfg = live.cfg
    env = {
        **os.environ,
        "CARDBOT_CONFIG": "",
        "CARDBOT_DATABASE__URL": cfg.database.url,
        "CARDBOT_REDIS__URL": cfg.redis.url,
        "CARDBOT_REDIS__KEY_PREFIX": cfg.redis.key_prefix,
        "CARDBOT_WECHAT__API_BASE_URL": live.url,
        "CARDBOT_WECHAT__OAUTH_BASE_URL": live.url,
        "CARDBOT_SERVER__PUBLIC_BASE_URL": live.url,
        "CARDBOT_CARDSYSTEM__ADAPTER": "http",
        "CARDBOT_CARDSYSTEM__TIMEOUT_SECONDS": "30",  # the worker waits for the slow answers
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "cardbot"), "worker", "--interval", "0.2", "--id", "doomed"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(credit_log(live)) >= credits.DELIVER_THREADS, timeout=60)  # the first batch is made ...
    finally:
        proc.send_signal(signal.SIGKILL)  # ... and the second is in flight
        proc.wait(10)
    tally("faults injected")
    tally("workers killed")
    rows = credit_rows(live)
    assert any(c.status == CreditStatus.PENDING and c.claimed_at is not None for c in rows), "killed with nothing in flight"
    emu_cs(live).faults.clear()
    live.services.clock.shift(credits.CLAIM_STALE + timedelta(seconds=1))  # the dead worker's claims run out
    wait_for(lambda: credits.deliver_due(live.services) == {} and all(c.status == CreditStatus.DELIVERED for c in credit_rows(live)), timeout=30)
    refs = [f"KILL{i:04d}" for i in range(n)]
    log = credit_log(live)
    assert sorted(log) == refs  # each ref credited once at the card system
    assert cs_balance(live) == 10000 + sum(100 + i for i in range(n))
    assert {c.ref: c.status for c in credit_rows(live)} == dict.fromkeys(refs, CreditStatus.DELIVERED)
    assert len(notices_of(live, "topup_receipt")) == n


def test_three_workers_passing_at_once_take_each_credit_once(cs_live):
    """Three workers' passes over the same 60 due credits: each claim is one statement that skips rows another worker
    holds, so between them every credit is tried exactly once (the outcomes add up to 60, not more), credited once at
    the card system and receipted once."""
    live = cs_live
    n = 60
    with live.session() as db, db.begin():
        card = db.get(Cardholder, student(live, OPENID, student_no=NO))
        now = live.services.clock.utcnow()
        for i in range(n):
            credits.owe(live.services, db, owed(card, f"RACE{i:03d}", 100 + i, now), claim=False)
    with ThreadPoolExecutor(3) as pool:
        passes = list(pool.map(lambda _: credits.deliver_due(live.services), range(3)))
    assert sum(sum(p.values()) for p in passes) == n
    assert all(set(p) <= {CreditStatus.DELIVERED} for p in passes)
    assert sorted(credit_log(live)) == [f"RACE{i:03d}" for i in range(n)]
    assert {c.tries for c in credit_rows(live)} == {1}
    assert cs_balance(live) == 10000 + sum(100 + i for i in range(n))
    assert len(notices_of(live, "topup_receipt")) == n


def test_a_claim_takes_at_most_the_credits_asked_for(cs_live):
    """The due credits are picked once (a materialized CTE), as the outbox's claim: as a subquery PostgreSQL may re-run
    them per row of a nested-loop join, each run skipping the rows just claimed, and one claim would take them all."""
    live = cs_live
    with live.session() as db, db.begin():
        card = db.get(Cardholder, student(live, OPENID, student_no=NO))
        now = live.services.clock.utcnow()
        for i in range(35):
            credits.owe(live.services, db, owed(card, f"CLAIM{i:03d}", 100 + i, now), claim=False)
    first = credits._claim_due(live.services, 10)
    assert [c.delivery.ref for c in first] == [f"CLAIM{i:03d}" for i in range(10)]
    assert len(credits._claim_due(live.services, 10)) == 10
    assert sum(c.claimed_at is None for c in credit_rows(live)) == 15
