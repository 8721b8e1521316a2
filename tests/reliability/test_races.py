"""Races, run for real against the HTTP app, the database and Redis: 50 copies of one notify at once, top-ups
racing the daily limit, wrong passwords racing the binding lockout, family members racing the per-card maximum,
several outbox workers on one outbox, and a worker killed with SIGKILL in the middle of a send. Auto top-up: family
members signing at once, cancels racing the sweep, a ``cardbot worker`` SIGKILLed after the bank debited.

After each (conftest ``books_balance``) every card's balance equals its ledger and no order is credited twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select, text

from bot import autodebit, outbox
from bot.cli.autodebit import command as autodebit_cli
from bot.clock import SCHOOL_TZ
from bot.texts import t
from models import AutodebitAgreement, AutodebitAttempt, Binding, LedgerEntry, Notice, OutboxNotice, TopupOrder, post_entry
from models.ledger import queue_notice
from tests.support import autodebit as ad
from tests.support.reliability import PASSWORD, bound, new_card, on_postgres, tally
from tests.support.topup import card, emu_pay, logged_in, notify, receipts, student, transaction, wait_for

OPENID = "oReliabilityRace00000001"
ROOT = Path(__file__).resolve().parents[2]


def _burst(n: int, fn: Any) -> list[Any]:
    """Run ``fn(i)`` n times at once, released together by a barrier."""
    gate = threading.Barrier(n)

    def run(i: int) -> Any:
        gate.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_50_concurrent_copies_of_one_notify_credit_once(live):
    emu_pay(live).notify_enabled = False
    card_id = student(live, OPENID, balance_fen=2000)
    phone = logged_in(live, OPENID)
    body = phone.order(5000, "quick").json()
    phone.pay(body["pay_params"])
    tx = transaction(live, body["order_no"])
    codes = _burst(50, lambda i: notify(live, tx).status_code)
    tally("races run")
    tally("concurrent requests", 50)
    assert all(c in (200, 204) for c in codes), codes
    assert card(live, card_id).balance_fen == 7000
    assert len(receipts(live)) == 1


def test_concurrent_topups_cannot_pass_the_daily_limit(make_live):
    live = make_live(server={"h5_writes_per_minute": 1000})
    emu_pay(live).notify_enabled = False
    card_id = student(live, OPENID, balance_fen=0)
    phones = [logged_in(live, OPENID) for _ in range(3)]  # the same student on three phones
    daily, single = live.cfg.topup.daily_limit * 100, live.cfg.topup.single_limit * 100
    n = daily // single + 6
    results = _burst(n, lambda i: phones[i % 3].order(single, "custom"))
    tally("races run")
    tally("concurrent requests", n)
    codes = sorted(r.status_code for r in results)
    assert codes == [201] * (daily // single) + [409] * 6, codes
    with live.session() as db:
        open_fen = db.execute(select(func.sum(TopupOrder.amount_fen)).where(TopupOrder.cardholder_id == card_id)).scalar_one()
    assert open_fen == daily
    for r in (r for r in results if r.status_code == 201):  # pay all of them, each notify sent twice at once
        phones[0].pay(r.json()["pay_params"])
        tx = transaction(live, r.json()["order_no"])
        assert {c for c in _burst(2, lambda i, tx=tx: notify(live, tx).status_code)} <= {200, 204}
    assert card(live, card_id).balance_fen == daily
    assert phones[0].order(single, "custom").status_code == 409


def test_wrong_passwords_racing_the_lockout_check_at_most_card_max_failures(make_live):
    """20 phones (one attacker's) send a wrong password for one card at the same instant: the per-card limit holds."""
    live = make_live(binding={"card_max_failures": 8})
    new_card(live)
    openids = [f"oRaceLockout{i:012d}" for i in range(20)]
    for o in openids:
        live.services.dialogs.set(o, "bind.password", {"student_no": "20230001", "name": "张三"})
    wx = live.pusher()
    replies = _burst(len(openids), lambda i: wx.text(openids[i], "000000"))
    tally("races run")
    tally("concurrent requests", len(openids))
    assert all(r.status == 200 and r.content for r in replies)
    mismatch = t("zh", "bind_mismatch", center=live.cfg.school.service_center)
    checked = [r for r in replies if r.content.startswith(mismatch)]
    assert 1 <= len(checked) <= live.cfg.binding.card_max_failures, [r.content[:30] for r in replies]
    late = "oRaceLockoutLate00000001"
    live.services.dialogs.set(late, "bind.password", {"student_no": "20230001", "name": "张三"})
    assert "绑定已暂停" in wx.text(late, PASSWORD).content  # locked even for the right password
    with live.session() as db:
        assert db.execute(select(func.count()).select_from(Binding)).scalar_one() == 0


def test_family_members_racing_the_per_card_maximum(live):
    new_card(live)
    limit = live.cfg.binding.max_bindings_per_card
    openids = [f"oRaceFamily{i:013d}" for i in range(limit + 4)]
    for o in openids:
        live.services.dialogs.set(o, "bind.password", {"student_no": "20230001", "name": "张三"})
    wx = live.pusher()
    replies = _burst(len(openids), lambda i: wx.text(openids[i], PASSWORD))
    tally("races run")
    tally("concurrent requests", len(openids))
    assert sum("绑定成功" in r.content for r in replies) == limit
    with live.session() as db:
        assert db.execute(select(func.count()).select_from(Binding)).scalar_one() == limit


def _paid_topups(live: Any, n: int) -> list[str]:
    """n students, each with one paid top-up (and so one receipt in the outbox); returns their openids."""
    emu_pay(live).notify_enabled = False
    openids = []
    for i in range(n):
        o = f"oRaceOutbox{i:013d}"
        student(live, o, student_no=f"2023{i:04d}", balance_fen=100)
        phone = logged_in(live, o)
        body = phone.order(5000, "quick").json()
        phone.pay(body["pay_params"])
        assert notify(live, transaction(live, body["order_no"])).status_code in (200, 204)
        openids.append(o)
    with live.emulator.lock:
        live.emulator.followers.update(openids)
    return openids


def _templates(live: Any, openid: str) -> list[dict[str, Any]]:
    with live.emulator.lock:
        return [m for m in live.emulator.inbox.get(openid, []) if m["kind"] == "template"]


def test_three_workers_on_one_outbox_send_each_notice_once(make_live):
    live = make_live(server={"h5_writes_per_minute": 1000}, notices={"batch_size": 3})
    openids = _paid_topups(live, 12)

    def work(i: int) -> int:
        total = 0
        while (k := outbox.drain_once(live.services, f"w{i}")) > 0:
            total += k
        return total

    handled = _burst(3, work)
    tally("races run")
    assert sum(handled) == 12
    assert all(len(_templates(live, o)) == 1 for o in openids), {o: len(_templates(live, o)) for o in openids}
    with live.session() as db:
        assert {s for (s,) in db.execute(select(OutboxNotice.status))} == {"sent"}


_DOOMED = """
import json, sys, time
from bot.config import load_config
from bot.runtime import build_runtime
from bot import outbox
svc = build_runtime(load_config(None, **json.loads(sys.argv[1])))
real = svc.wechat.send_template
def send_then_hang(*a, **k):
    out = real(*a, **k)
    print("SENT", flush=True)
    time.sleep(120)
    return out
svc.wechat.send_template = send_then_hang
outbox.drain_once(svc, "doomed")
"""


def test_worker_killed_mid_send_never_sends_twice_and_loses_nothing(make_live):
    """A real worker process is SIGKILLed right after WeChat accepted its sends, before it could mark them."""
    live = make_live(server={"h5_writes_per_minute": 1000}, notices={"batch_size": 4})
    openids = _paid_topups(live, 6)
    cfg = live.cfg
    overrides = {
        "database": {"url": cfg.database.url},
        "redis": {"url": cfg.redis.url, "key_prefix": cfg.redis.key_prefix},
        "wechat": {"api_base_url": live.url, "oauth_base_url": live.url},
        "server": {"public_base_url": live.url},
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _DOOMED, json.dumps(overrides)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "CARDBOT_CONFIG": ""},
    )
    try:
        assert proc.stdout is not None
        assert "SENT" in proc.stdout.readline()
        time.sleep(0.3)  # let the rest of its batch reach WeChat too
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    tally("faults injected")
    tally("workers killed")
    with live.session() as db:
        statuses = dict(db.execute(select(OutboxNotice.status, func.count()).group_by(OutboxNotice.status)).all())
    assert statuses.get("sending", 0) >= 1, statuses  # caught mid-send
    delivered_before = {o: len(_templates(live, o)) for o in openids}
    wait_for(lambda: len(live.emulator.pushes) >= sum(delivered_before.values()), timeout=5)  # WeChat's job-finish pushes
    time.sleep(0.3)
    live.services.clock.shift(outbox.LEASE + timedelta(seconds=5))  # the dead worker's lease runs out
    survivors = _burst(2, lambda i: _drain(live, f"survivor{i}"))
    with live.session() as db:
        final = dict(db.execute(select(OutboxNotice.openid, OutboxNotice.status)).all())
    assert set(final.values()) <= {"sent", "uncertain"}, final
    in_flight = [o for o, status in final.items() if status == "uncertain"]
    assert sum(survivors) >= 6 - sum(delivered_before.values()) - len(in_flight)
    counts = {o: len(_templates(live, o)) for o in openids}
    assert all(n <= 1 for n in counts.values()), counts  # none twice
    # every receipt arrived, except one the dead worker had in flight and WeChat never reported: that one is
    # left 'uncertain' for an operator (`cardbot notices list`), never resent blindly and never silently dropped
    assert all(counts[o] == 1 for o in openids if o not in in_flight), counts


def _drain(live: Any, worker: str) -> int:
    total = 0
    while (k := outbox.drain_once(live.services, worker)) > 0:
        total += k
    return total


# --- auto top-up ---------------------------------------------------------------------------
def test_family_signing_at_once_gets_one_agreement_and_clear_409s(make_live):
    """Student and parents press "sign" at the same moment, round after round: one 201, the others 409."""
    live = make_live(server={"h5_writes_per_minute": 1000})
    card_id = new_card(live)
    openids = [f"oRaceSign{i:015d}" for i in range(live.cfg.binding.max_bindings_per_card)]
    for o in openids:
        bound(live, o, card_id)
    ad.bank(live).open(ad.GOOD_ACCOUNT, 1_000_000)
    phones = [ad.logged_in(live, o) for o in openids]
    for _ in range(4):
        answers = _burst(len(phones), lambda i: phones[i].sign())
        tally("races run")
        tally("concurrent requests", len(phones))
        codes = sorted(r.status_code for r in answers)
        assert codes == [201] + [409] * (len(phones) - 1), [(r.status_code, r.text[:200]) for r in answers]
        assert {r.json()["error"] for r in answers if r.status_code == 409} == {"already_signed"}
        with live.session() as db:
            active = db.execute(
                select(func.count())
                .select_from(AutodebitAgreement)
                .where(AutodebitAgreement.cardholder_id == card_id, AutodebitAgreement.status == "active")
            ).scalar_one()
        assert active == 1
        assert phones[0].post("/api/autodebit/agreement/cancel", {}).status_code == 200


def test_cancel_racing_the_sweep_never_takes_money_without_credit(make_live):
    """Cancels and the sweep's processing released together: every debit the bank made is credited, and an attempt
    the cancel caught is never debited."""
    live = make_live(server={"h5_writes_per_minute": 1000})
    live.services.clock.freeze(ad.at(2026, 11, 25, 10, 0))
    phones, ids = [], []
    for i in range(6):
        openid = f"oRaceCancel{i:013d}"
        card_id = ad.student(live, openid, student_no=f"2024{i:04d}", balance_fen=5000)
        phones.append(ad.signed(live, openid))
        with live.session() as db, db.begin():
            post_entry(db, card_id, -4000, "spend", f"race-cancel:{i}")  # a spend the card system never reported
    assert autodebit.create_missed_attempts(live.services) == 6
    with live.session() as db:
        ids = list(db.execute(select(AutodebitAttempt.id).order_by(AutodebitAttempt.cardholder_id)).scalars())
    results = _burst(
        12,
        lambda i: (
            phones[i // 2].post("/api/autodebit/agreement/cancel", {}).status_code if i % 2 else autodebit.process_attempt(live.services, ids[i // 2])
        ),
    )
    tally("races run")
    tally("concurrent requests", 12)
    assert all(r in (200, "succeeded", "cancelled") for r in results), results
    debited = {d["ref"] for d in ad.bank(live).statement}
    with live.session() as db:
        attempts = {a.id: a for a in db.execute(select(AutodebitAttempt)).scalars()}
        credited = set(db.execute(select(LedgerEntry.idempotency_key).where(LedgerEntry.kind == "autodebit")).scalars())
    for attempt_id, attempt in attempts.items():
        assert (f"AD{attempt_id}" in debited) == (f"autodebit:{attempt_id}" in credited) == (attempt.status == "succeeded"), attempt.status
        if attempt.reason in ("agreement_cancelled", "agreement_ended"):
            assert f"AD{attempt_id}" not in debited


def _refund_requested(live: Any, openid: str, no: str, balance_fen: int = 2100) -> tuple[int, int]:
    """``(card_id, request_id)``: a spend of 2.00 left the card below its threshold, the bank topped it up 50.00, and
    the student asked for that to be refunded."""
    live.services.clock.freeze(ad.at(2026, 11, 20, 10, 0))
    card_id = ad.student(live, openid, student_no=no, balance_fen=balance_fen)
    phone = ad.signed(live, openid, bank_balance_fen=100_000)
    body = ad.entry(live, no, -200).json()
    assert body["autodebit"]["status"] == "succeeded", body
    r = phone.post("/api/autodebit/refunds", {"attempt_id": body["autodebit"]["attempt_id"]})
    assert r.status_code == 201, r.text
    return card_id, r.json()["request_id"]


def _approve(live: Any, request_id: int) -> Any:
    return CliRunner().invoke(autodebit_cli, ["refunds", "approve", str(request_id)], obj=SimpleNamespace(services=live.services))


def test_refund_approval_racing_the_sweep_on_the_same_card(make_live):
    """The operator approves a refund while the sweep tops up the same card: both finish, in either order, and the
    card ends where the books say (the refund and the new top-up both posted once)."""
    live = make_live(autodebit={"threshold": 60})
    openid, no = "oRaceRefundSweep00000001", "20249101"
    card_id, request_id = _refund_requested(live, openid, no, balance_fen=6100)  # 10900 after the top-up
    live.services.clock.freeze(ad.at(2026, 11, 20, 22, 0))  # outside bank hours: the spend leaves a waiting attempt
    assert ad.entry(live, no, -5000).json()["autodebit"]["status"] == "waiting"
    live.services.clock.freeze(ad.at(2026, 11, 21, 10, 0))
    approved, swept = _burst(2, lambda i: _approve(live, request_id) if i == 0 else autodebit.sweep(live.services))
    tally("races run")
    tally("concurrent requests", 2)
    assert approved.exit_code == 0 and "approved" in approved.output, approved.output
    assert swept == {"created": 0, "succeeded": 1}
    assert [e.amount_fen for e in ad.entries(live, card_id, "refund")] == [-5000]
    assert [e.amount_fen for e in ad.entries(live, card_id, "autodebit")] == [5000, 5000]
    assert ad.balance(live, card_id) == 10900 - 5000 - 5000 + 5000
    assert ad.bank(live).accounts[ad.GOOD_ACCOUNT].balance_fen == 100_000 - 5000 - 5000 + 5000


def test_refund_approval_waits_for_the_card_before_locking_the_request(make_live, database_url):
    """Locks go card first, then what hangs off it. A transaction holding the card (as the sweep does while it
    settles) and then taking the refund request must not deadlock with an approval started meanwhile: the approval
    waits for the card without holding the request, then re-reads the request and finishes."""
    if not on_postgres(database_url):
        pytest.skip("PostgreSQL only: SQLite has no row locks")
    live = make_live()
    card_id, request_id = _refund_requested(live, "oRaceRefundLocks00000001", "20249102")
    engine = create_engine(database_url)
    try:
        with engine.connect() as holder, engine.connect() as watcher, ThreadPoolExecutor(1) as pool:
            tx = holder.begin()
            holder.execute(text("SELECT id FROM cardholders WHERE id = :id FOR UPDATE"), {"id": card_id})
            approving = pool.submit(_approve, live, request_id)
            waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
            wait_for(lambda: watcher.execute(waiting).scalar_one() > 0 or approving.done())
            watcher.rollback()
            holder.execute(text("SELECT status FROM autodebit_refund_requests WHERE id = :id FOR UPDATE"), {"id": request_id})
            tx.commit()
            approved = approving.result(timeout=30)
    finally:
        engine.dispose()
    assert approved.exit_code == 0 and "approved" in approved.output, (approved.output, approved.exception)
    assert ad.balance(live, card_id) == 1900
    assert [e.amount_fen for e in ad.entries(live, card_id, "refund")] == [-5000]


_AROUND_NOW = "{:%H:%M}-{:%H:%M}"


def test_worker_killed_after_the_bank_debited_credits_exactly_once(make_live):
    """A real ``cardbot worker`` is SIGKILLed after the bank debited and before it heard back; meanwhile the card got
    money and no longer needs the top-up. The sweep asks the bank about the reference and credits it, once."""
    now = datetime.now(SCHOOL_TZ)
    hours = _AROUND_NOW.format(now - timedelta(hours=1), now + timedelta(hours=1))  # the real clock is inside bank hours
    live = make_live(bank={"timeout_seconds": 30}, autodebit={"bank_hours": hours})
    openid, no = "oRaceKilledWorker0000001", "20249001"
    card_id = ad.student(live, openid, student_no=no, balance_fen=5000)
    ad.signed(live, openid)
    with live.session() as db, db.begin():
        post_entry(db, card_id, -4000, "spend", "race-kill:1")  # below the threshold; the worker's sweep finds it
    ad.bank(live).faults["debit"] = ["lost_timeout"]  # debited; the answer would come after the worker's timeout
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
        "CARDBOT_BANK__TIMEOUT_SECONDS": "30",
        "CARDBOT_AUTODEBIT__BANK_HOURS": hours,
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "cardbot"), "worker", "--interval", "0.2", "--id", "doomed"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: ad.bank(live).statement, timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    tally("faults injected")
    tally("workers killed")
    [attempt] = ad.attempts(live, card_id)
    assert attempt.status == "processing" and ad.entries(live, card_id, "autodebit") == []
    assert ad.entry(live, no, 10000).status_code == 200  # cash at a terminal: the card no longer needs it
    live.services.clock.shift(autodebit.STALE_PROCESSING + timedelta(minutes=1))
    assert autodebit.sweep(live.services) == {"created": 0, "succeeded": 1}
    assert autodebit.sweep(live.services) == {"created": 0}
    assert [e.amount_fen for e in ad.entries(live, card_id, "autodebit")] == [5000]
    assert ad.balance(live, card_id) == 1000 + 10000 + 5000
    assert [c["op"] for c in ad.bank(live).calls] == ["debit", "query"]
    assert len(ad.notices(live, "autodebit_success")) == 1


def test_killed_worker_process_whose_sends_wechat_reported_leaves_them_sent(make_live):
    """A real, unpatched worker process sends 16 notices with 8 threads; WeChat accepts the first 8 calls and leaves
    the rest hanging. The worker is SIGKILLed while it holds accepted sends it has not recorded in the database:
    WeChat's reports (by msgid) settle those, the hung ones (no answer, no report) go out again — nothing is left
    for an operator and nobody gets a notice twice."""
    live = make_live(notices={"batch_size": 16})
    openids = [f"oRaceKilled{i:013d}" for i in range(16)]
    with live.emulator.lock:
        live.emulator.followers.update(openids)
    with live.session() as db, db.begin():
        for o in openids:
            queue_notice(db, Notice(o, "topup_receipt", {"amount": "50.00元", "balance": "70.00元"}), f"kill:{o}")
    live.emulator.faults["template"] = [0] * 8 + ["hang"] * 8
    cfg = live.cfg
    overrides = {
        "database": {"url": cfg.database.url},
        "redis": {"url": cfg.redis.url, "key_prefix": cfg.redis.key_prefix},
        "wechat": {"api_base_url": live.url, "oauth_base_url": live.url, "request_timeout_seconds": 30},
        "server": {"public_base_url": live.url},
    }
    worker = "from bot.config import load_config; from bot.runtime import build_runtime; from bot import outbox; import json, sys; outbox.drain_once(build_runtime(load_config(None, **json.loads(sys.argv[1]))), 'doomed')"
    proc = subprocess.Popen(
        [sys.executable, "-c", worker, json.dumps(overrides)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "CARDBOT_CONFIG": ""},
    )
    try:
        accepted = wait_for(lambda: (s := [m["msgid"] for o in openids for m in _templates(live, o)]) and len(s) == 8 and s, timeout=30)
        wait_for(lambda: all(outbox.recorded_send(live.services, str(m)) for m in accepted), timeout=10)  # durable
        wait_for(lambda: len(live.emulator.faults.get("template", [])) < 8, timeout=10)  # a call is hanging
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        live.emulator.faults.pop("template", None)
        live.emulator.released.set()
    tally("faults injected")
    tally("workers killed")
    wait_for(lambda: sum(p.get("status") == 200 for p in list(live.emulator.pushes)) >= 8, timeout=10)  # WeChat's reports
    with live.session() as db:
        assert db.execute(select(func.count()).where(OutboxNotice.status == "sending")).scalar_one() >= 1  # caught mid-send
    live.services.clock.shift(outbox.LEASE + timedelta(seconds=5))  # the dead worker's lease runs out
    _burst(2, lambda i: _drain(live, f"survivor{i}"))
    with live.session() as db:
        rows = list(db.execute(select(OutboxNotice)).scalars())
    assert {r.status for r in rows} == {"sent"}, {r.openid: (r.status, r.last_error) for r in rows}
    assert all(len(_templates(live, o)) == 1 for o in openids), {o: len(_templates(live, o)) for o in openids}
    assert sorted(r.msgid for r in rows) == sorted(str(_templates(live, o)[0]["msgid"]) for o in openids)
    reported = [r.delivery_status for r in rows if int(r.msgid) in accepted]
    assert reported == ["success"] * 8, reported
