"""Soak: students chat, top up (with WeChat Pay's duplicated and retried notifies, and cancelled pay sheets closed
through the cancel API), spend at the card terminals and are topped up automatically from their bank cards for
``CARDBOT_SOAK_SECONDS``, while a chaos thread keeps breaking Redis (down, reset), the database (connections cut, on
PostgreSQL), WeChat's template API (5xx), WeChat Pay's close (answer lost, paid meanwhile), the sandbox bank (debit
answer lost after the debit, 5xx, query 5xx) and SIGKILLs the real ``cardbot worker`` process, restarting it.

Nothing may answer 500 and, at the end (after a clean final worker pass), nothing is lost or doubled: every payment
WeChat took is credited once, every debit the bank made is credited once to the card of that agreement (and nothing
else is), every acknowledged card entry is in the ledger, every balance equals its ledger, no notice reached a
student twice, every notice recorded sent reached WeChat, and a notice WeChat delivered while its answer was lost is
left for an operator only as the outbox promises: ``uncertain``, naming the msgid WeChat delivered it under.

Run: ``CARDBOT_SOAK=1 CARDBOT_SOAK_SECONDS=600 .venv/bin/python -m pytest tests/soak -q -s`` (PostgreSQL: also set
``CARDBOT_TEST_DATABASE_URL``). It prints its figures at the end.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.adapters import cardsys_signing
from bot.cli import cli
from bot.clock import SCHOOL_TZ
from bot.outbox import template_payload
from models import AutodebitAgreement, AutodebitAttempt, LedgerEntry, OutboxNotice, TopupOrder
from models.db import make_engine
from tests.support import autodebit as ad
from tests.support.reliability import REDIS_URL, TcpProxy, ledger_problems, on_postgres
from tests.support.topup import Phone, emu_pay, student, wait_for

SECONDS = float(os.environ.get("CARDBOT_SOAK_SECONDS", "120"))
STUDENTS = 24
SIGNERS = 8  # the first students sign an auto top-up agreement; the last of them has too little in the bank
ROOT = Path(__file__).resolve().parents[2]


def _proxy(url: str) -> TcpProxy:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return TcpProxy(u.host or "127.0.0.1", u.port or 6379)


def test_soak(breakable, make_live, database_url, tmp_path):
    redis_proxy = _proxy(REDIS_URL)
    db_proxy = _proxy(database_url) if on_postgres(database_url) else None
    breakable += [p for p in (redis_proxy, db_proxy) if p]
    now = datetime.now(SCHOOL_TZ)
    sections: dict[str, Any] = {
        "redis": {"url": redis_proxy.url_for(REDIS_URL)},
        "server": {"h5_writes_per_minute": 100000, "h5_reads_per_minute": 100000},
        "emulator": {"notify_duplicate_rate": 0.3, "notify_retry_scale": 0.001},
        # the real clock (the worker process's) is inside bank hours for the run and the final pass's clock shifts
        "autodebit": {"bank_hours": f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=6):%H:%M}"},
        "bank": {"timeout_seconds": 1.0},
        "notices": {"quiet_hours": "00:00-00:00"},  # never quiet: every notice is due whenever the soak runs
    }
    if db_proxy:
        sections["database"] = {"url": db_proxy.url_for(database_url)}
    live = make_live(**sections)
    bank = ad.bank(live)
    figures: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    openids = [f"oSoakStudent{i:012d}" for i in range(STUDENTS)]
    for i, o in enumerate(openids):
        student(live, o, student_no=f"2024{i:04d}", balance_fen=3000 if i < SIGNERS else 20000)
    with live.emulator.lock:
        live.emulator.followers.update(openids)
    accounts = {openids[i]: f"62220299{i:08d}" for i in range(SIGNERS)}
    for i, (o, account) in enumerate(accounts.items()):
        bank.open(account, 3000 if i == SIGNERS - 1 else 10_000_000)
        r = ad.logged_in(live, o).sign(account)
        assert r.status_code == 201, r.text
    acked_entries: set[str] = set()
    pending_entries: dict[str, bytes] = {}
    stop = threading.Event()
    worker = WorkerProcess(live, tmp_path)
    worker.start()

    def count(kind: str, status: int) -> None:
        with lock:
            statuses[f"{kind} {status}"] += 1
            figures["requests"] += 1
        assert status != 500, kind

    def chat(rng: random.Random) -> None:
        wx = live.pusher(rng.choice(["plain", "aes"]))
        o = rng.choice(openids)
        word = rng.choice(["余额", "帮助", "账单", "充值", "balance", "规则", "绑定", "取消", "自动代扣", "🎉]]>", "２０２４０００１"])
        reply = wx.text(o, word)
        count("chat", reply.status)
        assert reply.status == 200 and (reply.content or reply.articles), reply.raw

    def topup(rng: random.Random) -> None:
        phone = Phone(live, rng.choice(openids[SIGNERS:] if rng.random() < 0.9 else openids))  # signers rely on auto top-up
        r = phone.open_page()
        count("page", r.status_code)
        if r.status_code != 200:
            return
        r = phone.order(rng.choice([5000, 10000, 20000]), "quick")
        count("order", r.status_code)
        if r.status_code == 201:
            figures["orders"] += 1
            outcome = rng.choice(["success", "success", "success", "cancel"])
            paid = phone.pay(r.json()["pay_params"], outcome=outcome)
            count("pay", paid.status_code)
            if outcome == "cancel":  # what the page does when the pay sheet is cancelled
                r = phone.http.post(f"{live.url}/api/topup/orders/{r.json()['order_no']}/cancel", timeout=15, headers={"X-CSRF-Token": phone.csrf})
                count("cancel", r.status_code)

    def spend(rng: random.Random) -> None:
        entry_id = f"SOAK-{rng.getrandbits(48):012x}"
        who = rng.randrange(SIGNERS) if rng.random() < 0.5 else rng.randrange(STUDENTS)  # signers spend more: auto top-ups
        raw = json.dumps(
            {
                "entry_id": entry_id,
                "student_no": f"2024{who:04d}",
                "amount_fen": -rng.randrange(100, 3000),
                "merchant": "canteen",
                "occurred_at": "2026-11-25T12:00:00+08:00",
            }
        ).encode()
        with lock:
            pending_entries[entry_id] = raw
        _send_entry(live, entry_id, raw, acked_entries, pending_entries, lock, count)

    def agreement(rng: random.Random) -> None:
        """A signer looks at the /autodebit page; now and then cancels and signs again while the sweep may be debiting."""
        o = rng.choice(list(accounts))
        phone = ad.Phone(live, o)
        r = phone.page()
        count("autodebit page", r.status_code)
        if r.status_code != 200:
            return
        r = phone.http.get(live.url + "/api/autodebit", timeout=10)
        count("autodebit state", r.status_code)
        if r.status_code != 200 or rng.random() < 0.7:
            return
        if r.json().get("agreement"):
            r = phone.post("/api/autodebit/agreement/cancel", {})
            count("autodebit cancel", r.status_code)
        r = phone.sign(accounts[o])
        count("autodebit sign", r.status_code)

    def drain(rng: random.Random) -> None:
        """Besides the worker process, the app's own process drains now and then: more workers racing on the outbox."""
        try:
            _worker_once(live, drain_only=True)
        except Exception:  # as bot.worker.run does: log, and the next pass tries again
            with lock:
                figures["in-process drains failed (retried)"] += 1

    def client(seed: int) -> None:
        rng = random.Random(seed)
        actions = [chat] * 5 + [topup] * 3 + [spend] * 3 + [agreement, drain]
        while not stop.is_set():
            rng.choice(actions)(rng)

    def chaos() -> None:
        rng = random.Random(7)
        while not stop.wait(rng.uniform(1, 3)):
            fault = rng.choice(
                [
                    "redis down",
                    "redis reset",
                    "template 5xx",
                    "bank debit lost",
                    "bank debit lost_timeout",
                    "bank debit 5xx",
                    "bank query 5xx",
                    "pay close lost",
                    "pay close paid_meanwhile",
                    "worker SIGKILL",
                    "worker SIGKILL",
                ]
                + (["db reset"] if db_proxy else [])
            )
            figures[f"fault: {fault}"] += 1
            if fault == "redis down":
                redis_proxy.down()
                time.sleep(rng.uniform(0.2, 1.5))
                redis_proxy.up()
            elif fault == "redis reset":
                redis_proxy.reset()
            elif fault == "db reset" and db_proxy:
                db_proxy.reset()
            elif fault == "template 5xx":
                live.emulator.faults["template"] = ["5xx", "5xx", -1]
            elif fault.startswith("bank "):
                _, endpoint, kind = fault.split()
                with bank.lock:
                    bank.faults[endpoint] = [*bank.faults.get(endpoint, []), kind]
            elif fault.startswith("pay close"):
                with emu_pay(live).lock:
                    emu_pay(live).faults["close"] = [fault.split()[-1]]
            elif fault == "worker SIGKILL":
                worker.kill()
                worker.start()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(6)] + [threading.Thread(target=chaos, daemon=True)]
    errors: list[BaseException] = []
    try:
        for th in threads:
            th.run = _catching(th.run, errors)  # type: ignore[method-assign]
            th.start()
        time.sleep(SECONDS)
        stop.set()
        for th in threads:
            th.join(60)
    finally:
        stop.set()
        worker.kill()
    redis_proxy.up()
    if db_proxy:
        db_proxy.up()
    assert not errors, errors[:3]
    assert not worker.died, f"the worker process exited by itself: {worker.died}; see {worker.log}"
    figures["worker processes SIGKILLed"] = worker.kills

    # --- settle everything, as the card system's and WeChat's retries and a clean worker pass would ----------
    with bank.lock:
        bank.faults.clear()
    live.emulator.faults.clear()
    emu_pay(live).faults.clear()
    for entry_id, raw in list(pending_entries.items()):
        _send_entry(live, entry_id, raw, acked_entries, pending_entries, lock, count, retries=20)
    assert not pending_entries
    pay = emu_pay(live)
    sent_before = _delivered(live, openids)
    # past the stuck-order age, the outbox lease, the wait for a report and the stale-processing time of auto top-up
    live.services.clock.shift(timedelta(hours=1))
    for _ in range(20):
        _worker_once(live)
        if _settled(live):
            break
        live.services.clock.shift(timedelta(hours=1, minutes=15))  # past the longest notice backoff
    assert _settled(live), "the final worker passes left work undone"
    final = {m["msgid"] for ms in _delivered(live, openids).values() for m in ms} - {m["msgid"] for ms in sent_before.values() for m in ms}
    wait_for(lambda: final <= _reported(live), timeout=30)  # WeChat's delivery reports of the final sends

    engine = make_engine(database_url)
    try:
        with Session(engine) as db:
            assert not ledger_problems(db)
            # WeChat Pay: every payment it took is credited once (ledger_problems: no order credited twice)
            with pay.lock:
                paid_at_wechat = {no for no, o in pay.orders.items() if o.trade_state == "SUCCESS"}
            paid_here = set(db.execute(select(TopupOrder.order_no).where(TopupOrder.status == "paid")).scalars())
            assert paid_at_wechat == paid_here, paid_at_wechat ^ paid_here
            # the card terminals: every acknowledged entry is in the ledger
            spends = set(db.execute(select(LedgerEntry.ref).where(LedgerEntry.kind == "spend")).scalars())
            assert acked_entries <= spends, acked_entries - spends
            # the bank: every debit it made is credited exactly once, to the card whose agreement named that account
            figures.update(_bank_matches_ledger(db, bank))
            open_attempts = db.execute(select(func.count()).where(AutodebitAttempt.status == "processing")).scalar_one()
            assert open_attempts == 0, f"{open_attempts} auto top-ups left processing"
            figures.update(
                Counter(
                    {
                        f"auto top-ups {s}": n
                        for s, n in db.execute(select(AutodebitAttempt.status, func.count()).group_by(AutodebitAttempt.status)).all()
                    }
                )
            )
            # notices: none twice, none recorded sent that WeChat never got, a delivered one left for an operator names its msgid
            rows = list(db.execute(select(OutboxNotice).order_by(OutboxNotice.id)).scalars())
            figures.update(_notices_checked(live, rows, _delivered(live, openids)))
            figures["credited orders"] = len(paid_here)
            figures["card entries"] = len(acked_entries)
            figures["ledger entries"] = db.execute(select(func.count()).select_from(LedgerEntry)).scalar_one()
    finally:
        engine.dispose()
    for day in sorted({d["date"] for d in bank.statement}):  # the operator's check agrees: no difference, exit 0
        result = CliRunner().invoke(cli.get_command(None, "reconcile"), [day], obj=SimpleNamespace(services=live.services))
        assert result.exit_code == 0, result.output
    with live.emulator.lock:
        pushes = Counter(p.get("status") for p in live.emulator.pushes)
    assert 500 not in pushes, pushes  # WeChat's own pushes (delivery reports) never met a 500 either
    print("\nsoak figures:", json.dumps({**figures, **statuses}, ensure_ascii=False, indent=1, sort_keys=True))


class WorkerProcess:
    """A real ``cardbot worker`` with the app's whole config (through the breakable proxies), on the real clock."""

    def __init__(self, live: Any, tmp: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CARDBOT_")} | {"CARDBOT_CONFIG": ""}
        for section, values in live.cfg.model_dump().items():
            for key, value in values.items():
                if not isinstance(value, dict):
                    text = json.dumps(value) if isinstance(value, (list, bool)) else str(value)
                    self.env[f"CARDBOT_{section.upper()}__{key.upper()}"] = text
        self.log = tmp / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.died: list[int] = []

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "cardbot"), "worker", "--interval", "0.2", "--id", f"soak{self.kills}"],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def kill(self) -> None:
        if self.proc is None:
            return
        if (rc := self.proc.poll()) is not None:
            self.died.append(rc)
        else:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1
        self.proc = None


def _worker_once(live: Any, drain_only: bool = False) -> None:
    """``cardbot worker --once`` in this process, on the app's business clock (which the final pass moves on);
    ``drain_only``: just the outbox, as a second worker draining beside the real one."""
    if drain_only:
        from bot.worker import drain_all

        drain_all(live.services, f"app{threading.get_ident()}")
        return
    result = CliRunner().invoke(cli.get_command(None, "worker"), ["--once", "--id", "final"], obj=SimpleNamespace(services=live.services))
    assert result.exit_code == 0, (result.output, result.exception)


def _settled(live: Any) -> bool:
    """Nothing left for a worker: no notice waiting or in flight, no auto top-up open, no order still open at WeChat."""
    with live.session() as db:
        notices = db.execute(select(func.count()).where(OutboxNotice.status.in_(("pending", "sending", "unconfirmed")))).scalar_one()
        attempts = db.execute(select(func.count()).where(AutodebitAttempt.status.in_(("waiting", "processing")))).scalar_one()
        orders = db.execute(select(func.count()).where(TopupOrder.status == "created")).scalar_one()
    return notices == attempts == orders == 0


def _delivered(live: Any, openids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The template messages each student's phone got (the emulator's log)."""
    with live.emulator.lock:
        return {o: [m for m in live.emulator.inbox.get(o, []) if m["kind"] == "template"] for o in openids}


def _reported(live: Any) -> set[int]:
    """Msgids whose delivery report WeChat pushed to the bot and the bot answered."""
    with live.emulator.lock:
        pushes = list(live.emulator.pushes)
    out = set()
    for p in pushes:
        if p.get("status") == 200 and "<MsgID>" in p["xml"]:
            out.add(int(p["xml"].split("<MsgID>")[1].split("</MsgID>")[0]))
    return out


def _bank_matches_ledger(db: Session, bank: Any) -> Counter[str]:
    """Each debit on the bank's statement has exactly one auto top-up credit of the same amount on the card whose
    agreement named the debited account, and every auto top-up credit has its debit."""
    with bank.lock:
        statement = list(bank.statement)
    debits = {d["ref"]: d for d in statement}
    assert len(debits) == len(statement), "the bank debited one reference twice"
    credits = db.execute(
        select(LedgerEntry.idempotency_key, LedgerEntry.amount_fen, LedgerEntry.cardholder_id, LedgerEntry.ref).where(LedgerEntry.kind == "autodebit")
    ).all()
    by_ref = Counter("AD" + key.removeprefix("autodebit:") for key, *_ in credits)
    assert all(n == 1 for n in by_ref.values()), [r for r, n in by_ref.items() if n > 1]
    assert set(by_ref) == set(debits), {"debited, not credited": set(debits) - set(by_ref), "credited, not debited": set(by_ref) - set(debits)}
    owners = dict(
        db.execute(
            select(AutodebitAttempt.id, AutodebitAgreement.bank_account).join(
                AutodebitAgreement, AutodebitAgreement.id == AutodebitAttempt.agreement_id
            )
        ).all()
    )
    cards = dict(db.execute(select(AutodebitAttempt.id, AutodebitAttempt.cardholder_id)).all())
    bank_refs = dict(db.execute(select(AutodebitAttempt.id, AutodebitAttempt.bank_ref)).all())
    for key, amount, card_id, ref in credits:  # the ledger entry carries the credit's ref; the attempt the bank's
        attempt_id = int(key.removeprefix("autodebit:"))
        d = debits[f"AD{attempt_id}"]
        got = (amount, ref, bank_refs[attempt_id], card_id, owners[attempt_id])
        assert got == (d["amount_fen"], d["ref"], d["bank_ref"], cards[attempt_id], d["account"]), (key, d)
    with bank.lock:
        calls = Counter(f"bank calls: {c['op']}" for c in bank.calls)
    return calls + Counter({"bank debits → credited once": len(debits), "bank debits, yuan": sum(d["amount_fen"] for d in statement) // 100})


def _notices_checked(live: Any, rows: list[OutboxNotice], delivered: dict[str, list[dict[str, Any]]]) -> Counter[str]:
    """Match what the phones got with the outbox by content (openid, template, values): no content arrived more often
    than it was queued (never twice), every row marked sent has its msgid on the phone (never recorded sent without
    reaching WeChat), and an ``uncertain`` row whose content arrived beyond the rows marked sent — a send whose answer
    the chaos lost, whose delivery report then matched no notice — names in ``last_error`` the msgid it arrived under,
    which is what the operator needs to mark it sent (bot.outbox: such a row is never marked sent, since a report
    matching none of our sends may come from another sender on the account)."""

    def key(openid: str, template_id: str, data: dict[str, Any]) -> str:
        return json.dumps([openid, template_id, data], ensure_ascii=False, sort_keys=True)

    got = Counter(key(o, m["template_id"], m["data"]) for o, ms in delivered.items() for m in ms)
    msgids = {str(m["msgid"]) for ms in delivered.values() for m in ms}
    arrived_as: dict[str, set[str]] = {}
    for o, ms in delivered.items():
        for m in ms:
            arrived_as.setdefault(key(o, m["template_id"], m["data"]), set()).add(str(m["msgid"]))
    queued: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    row_key = {}
    for row in rows:
        template_id, data = template_payload(live.services, row.kind, row.data or {})
        row_key[row.id] = k = key(row.openid, template_id, {f: v["value"] for f, v in data.items()})
        queued[k] += 1
        if row.status == "sent":
            sent[k] += 1
            assert row.msgid in msgids, f"notice {row.id} recorded sent, but WeChat never got msgid {row.msgid}"
    twice = {k: n for k, n in got.items() if n > queued[k]}
    assert not twice, f"notices delivered more often than queued: {twice}"
    operator = [r for r in rows if r.status == "uncertain" and got[row_key[r.id]] > sent[row_key[r.id]]]
    left = [(r.id, r.status, r.last_error) for r in rows if r.status not in ("sent",)]
    print("\nnotices not ended 'sent':", json.dumps(left, ensure_ascii=False, indent=1))
    sent_msgids = {r.msgid for r in rows if r.status == "sent"}
    unnamed = [(r.id, r.last_error) for r in operator if not any(m in (r.last_error or "") for m in arrived_as[row_key[r.id]] - sent_msgids)]
    assert not unnamed, f"delivered notices left for an operator without the msgid they arrived under: {unnamed}"
    assert {r.status for r in rows} <= {"sent", "uncertain"}, Counter(r.status for r in rows)
    lost = {k: n for k, n in sent.items() if got[k] < n}
    assert not lost, lost
    figures = Counter({"notices uncertain": 0, "notices failed": 0})
    figures.update(f"notices {r.status}" for r in rows)
    figures["notices delivered"] = sum(got.values())
    figures["notices delivered, answer lost, listed for an operator with their msgid"] = len(operator)
    figures["notices with WeChat's delivery report"] = sum(1 for r in rows if r.delivery_status)
    return figures


def _send_entry(live: Any, entry_id: str, raw: bytes, acked: set[str], pending: dict[str, bytes], lock: Any, count: Any, retries: int = 1) -> None:
    """What the card system does: send the signed entry; a 200 or a definite refusal ends it, a 5xx is retried later."""
    for _ in range(retries):
        r = requests.post(
            live.url + "/integration/card-entries",
            data=raw,
            timeout=15,
            headers={
                "Content-Type": "application/json",
                **cardsys_signing.sign(live.cfg.cardsystem.secret, "POST", "/integration/card-entries", raw),
            },
        )
        count("entry", r.status_code)
        if r.status_code == 200:
            with lock:
                acked.add(entry_id)
                pending.pop(entry_id, None)
            return
        if r.status_code < 500:  # insufficient balance and the like: the terminal refused the sale
            with lock:
                pending.pop(entry_id, None)
            return
        time.sleep(0.2)


def _catching(run: Any, errors: list[BaseException]) -> Any:
    def wrapped() -> None:
        try:
            run()
        except BaseException as exc:
            import traceback

            errors.append(RuntimeError("".join(traceback.format_exception(exc))[-1500:]))

    return wrapped
