"""Money the bank took is always credited: an auto top-up whose bank answer was lost is settled by asking the bank
again with the same reference before anything else — even when the card no longer needs it, the agreement was
cancelled or the card was blocked. ``cardbot reconcile DATE`` compares the bank's debits with the ledger. One
active agreement per card, enforced by the database. The ``http`` bank adapter speaks the sandbox's protocol."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError

from bot.adapters.bank import UNKNOWN_REFERENCE, make_bank_gateway
from bot.autodebit import STALE_PROCESSING, sweep
from bot.cli.topup import command as reconcile_command
from bot.config import ConfigError, load_config
from bot.migrate import upgrade
from models import AutodebitAgreement, CardCredit, Cardholder, post_entry
from models.enums import CreditChannel, CreditStatus
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
    signed,
    student,
    templates,
)

pytestmark = pytest.mark.usefixtures("ledger_checked")

OPENID = "oAutodebitSettleUser0001"
NO = "20231101"
DAY = date(2026, 11, 25)


def _debited_answer_lost(live, bank_balance_fen=1_000_000, fault="lost"):
    """A swipe takes the card below the threshold; the bank debits 50.00 but its answer never arrives."""
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=2100)
    phone = signed(live, OPENID, bank_balance_fen=bank_balance_fen)
    bank(live).faults["debit"] = [fault]
    assert entry(live, NO, -200).json()["autodebit"]["status"] == "processing"
    [attempt] = attempts(live, card_id)
    assert attempt.status == "processing" and entries(live, card_id, "autodebit") == []
    return card_id, phone, attempt.id


def _later(live):
    live.services.clock.shift(STALE_PROCESSING + timedelta(minutes=1))


def _debit_calls(live):
    return [c for c in bank(live).calls if c["op"] == "debit"]


def _set_card_status(live, card_id, status):
    with live.session() as db, db.begin():
        db.get(Cardholder, card_id).status = status


@pytest.mark.parametrize("change", ["topped_up", "agreement_cancelled", "card_lost", "card_frozen"])
def test_debit_whose_answer_was_lost_is_credited_whatever_happened_since(live, wx, change):
    card_id, phone, attempt_id = _debited_answer_lost(live)
    assert bank(live).accounts[GOOD_ACCOUNT].balance_fen == 1_000_000 - 5000  # the bank took it
    extra = 0
    if change == "topped_up":
        extra = 10000
        assert entry(live, NO, extra).status_code == 200  # cash at a terminal: no longer below the threshold
    elif change == "agreement_cancelled":
        assert phone.post("/api/autodebit/agreement/cancel", {}).status_code == 200
    else:
        _set_card_status(live, card_id, change.removeprefix("card_"))
    _later(live)
    assert sweep(live.services) == {"created": 0, "succeeded": 1}
    [credit] = entries(live, card_id, "autodebit")
    assert credit.amount_fen == 5000 and credit.idempotency_key == f"autodebit:{attempt_id}" and credit.ref == f"AD{attempt_id}"
    assert balance(live, card_id) == 1900 + extra + 5000
    assert len(_debit_calls(live)) == 1  # settled by a query, never a second debit
    assert drain(live) == 1
    [msg] = templates(live, OPENID)
    assert msg["template_id"] == "TPL_AUTODEBIT_OK" and msg["data"]["amount1"] == "50.00元"
    if change.startswith("card_"):
        reply = wx.click(OPENID, "BALANCE")
        assert "69.00" in reply.content, reply.content  # the blocked card shows the money it got
    assert sweep(live.services) == {"created": 0}


def test_a_refusal_whose_answer_was_lost_fails_with_its_notice_after_a_cancel(live):
    card_id, phone, _ = _debited_answer_lost(live, bank_balance_fen=1000)
    assert phone.post("/api/autodebit/agreement/cancel", {}).status_code == 200
    _later(live)
    assert sweep(live.services) == {"created": 0, "failed": 1}
    assert attempts(live, card_id)[0].reason == "insufficient_funds"
    assert entries(live, card_id, "autodebit") == [] and balance(live, card_id) == 1900
    drain(live)
    assert [m["template_id"] for m in templates(live, OPENID)] == ["TPL_AUTODEBIT_FAIL"]


def test_bank_silent_on_the_query_keeps_the_attempt_open(live):
    card_id, _, _ = _debited_answer_lost(live)
    assert entry(live, NO, 10000).status_code == 200
    bank(live).faults["query"] = "5xx"
    _later(live)
    assert sweep(live.services) == {"created": 0, "processing": 1}  # neither cancelled nor debited again
    assert attempts(live, card_id)[0].status == "processing" and len(_debit_calls(live)) == 1
    bank(live).faults.pop("query")
    assert sweep(live.services) == {"created": 0, "succeeded": 1}
    assert [e.amount_fen for e in entries(live, card_id, "autodebit")] == [5000]


def test_staleness_counts_from_the_claim_not_from_the_attempts_creation(live):
    """An attempt made last night and claimed this morning is still in the first worker's hands a minute later: a
    second sweep leaves it alone; only once it has been claimed longer than the stale window is the bank asked."""
    clock = live.services.clock
    clock.freeze(at(2026, 11, 24, 21, 30))  # outside bank hours: the attempt waits for the morning
    card_id = student(live, OPENID, student_no=NO, balance_fen=2100)
    signed(live, OPENID)
    assert entry(live, NO, -200).json()["autodebit"]["status"] == "waiting"
    clock.freeze(at(2026, 11, 25, 10, 0))
    bank(live).faults["debit"] = ["lost"]
    assert sweep(live.services) == {"created": 0, "processing": 1}
    [attempt] = attempts(live, card_id)
    assert attempt.claimed_at == clock.utcnow() and attempt.created_at < attempt.claimed_at - STALE_PROCESSING
    clock.shift(timedelta(minutes=1))
    assert sweep(live.services) == {"created": 0}  # claimed a minute ago: not stale, whatever its age
    assert [c["op"] for c in bank(live).calls if c["op"] in ("debit", "query")] == ["debit"]
    _later(live)
    assert sweep(live.services) == {"created": 0, "succeeded": 1}  # settled by asking about its reference
    assert [c["op"] for c in bank(live).calls if c["op"] in ("debit", "query")] == ["debit", "query"]
    assert [e.amount_fen for e in entries(live, card_id, "autodebit")] == [5000]
    assert balance(live, card_id) == 1900 + 5000


def test_migration_gives_claimed_attempts_their_creation_as_claim_time(empty_database_url):
    """Rows from before ``claimed_at``: one left processing is stale at once (the sweep asks the bank), finished ones
    get their creation time, never-claimed ones none."""
    upgrade(empty_database_url, "0004")
    created = datetime(2026, 11, 24, 13, 30)
    engine = create_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO cardholders (id, student_no, name, campus, status, password_hash, balance_fen, created_at, updated_at) "
                    "VALUES (1, '20231101', '测试', 'main', 'active', 'x', 0, :at, :at)"
                ),
                {"at": created},
            )
            conn.execute(
                text(
                    "INSERT INTO autodebit_agreements (id, cardholder_id, openid, bank_account, bank_last4, threshold_fen, "
                    "amount_fen, status, signed_at, expires_on) VALUES (1, 1, 'o', :acct, '7890', 2000, 5000, 'active', :at, :ends)"
                ),
                {"acct": GOOD_ACCOUNT, "at": created, "ends": date(2027, 9, 1)},
            )
            for i, status in enumerate(["waiting", "processing", "succeeded", "failed", "cancelled"], start=1):
                conn.execute(
                    text(
                        "INSERT INTO autodebit_attempts (id, trigger_key, agreement_id, cardholder_id, amount_fen, status, created_at) "
                        "VALUES (:id, :key, 1, 1, 5000, :status, :at)"
                    ),
                    {"id": i, "key": f"t{i}", "status": status, "at": created + timedelta(minutes=i)},
                )
        upgrade(empty_database_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT status, created_at, claimed_at FROM autodebit_attempts ORDER BY id")).all()
    finally:
        engine.dispose()
    claimed = {status: claimed_at for status, _, claimed_at in rows}
    assert claimed == {status: created_at if status in ("processing", "succeeded", "failed") else None for status, created_at, _ in rows}
    assert claimed["processing"] is not None


def test_bank_never_received_it_then_the_attempt_is_decided_normally(live):
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=2100)
    signed(live, OPENID)
    bank(live).faults["debit"] = ["5xx"]  # refused at the door: nothing taken
    assert entry(live, NO, -200).json()["autodebit"]["status"] == "processing"
    assert entry(live, NO, 10000).status_code == 200
    _later(live)
    assert sweep(live.services) == {"created": 0, "cancelled": 1}
    assert [c["op"] for c in bank(live).calls] == ["query"]
    assert attempts(live, card_id)[0].reason == "not_needed"
    assert bank(live).accounts[GOOD_ACCOUNT].balance_fen == 1_000_000


def test_after_a_cancel_no_debit_happens(live):
    clock = live.services.clock
    clock.freeze(at(2026, 11, 25, 21, 30))
    card_id = student(live, OPENID, student_no=NO, balance_fen=2100)
    phone = signed(live, OPENID)
    assert entry(live, NO, -200).json()["autodebit"]["status"] == "waiting"
    assert phone.post("/api/autodebit/agreement/cancel", {}).status_code == 200
    clock.freeze(at(2026, 11, 26, 7, 0))
    assert sweep(live.services) == {"created": 0}
    assert _debit_calls(live) == [] and attempts(live, card_id)[0].status == "cancelled"


# --- reconcile ------------------------------------------------------------------------
def _reconcile(live, day):
    return CliRunner().invoke(reconcile_command, [day.isoformat()], obj=SimpleNamespace(services=live.services))


def test_reconcile_lists_a_bank_debit_without_a_credit_until_it_is_settled(live):
    card_id, _, attempt_id = _debited_answer_lost(live)
    result = _reconcile(live, DAY)
    assert result.exit_code == 1, result.output
    [line] = [ln for ln in result.output.splitlines() if f"AD{attempt_id}" in ln]
    assert line.startswith("missing_locally") and "bank=     50.00" in line
    _later(live)
    sweep(live.services)
    result = _reconcile(live, DAY)
    assert result.exit_code == 0, result.output
    assert "auto top-ups and the bank's debits agree" in result.output
    now = live.services.clock.utcnow()
    with live.session() as db, db.begin():  # a credit the bank never debited (on the card, owed by us)
        post_entry(db, card_id, 3000, "autodebit", "autodebit:424242", at=now)
        db.add(
            CardCredit(
                ref="AD424242",
                channel=CreditChannel.AUTODEBIT,
                cardholder_id=card_id,
                student_no=NO,
                openid=OPENID,
                amount_fen=3000,
                fee_fen=0,
                paid_at=now,
                status=CreditStatus.DELIVERED,
                tries=1,
                next_try_at=now,
                created_at=now,
            )
        )
    result = _reconcile(live, DAY)
    assert result.exit_code == 1
    assert any(ln.startswith("missing_at_bank") and "AD424242" in ln and "30.00" in ln for ln in result.output.splitlines())


def test_reconcile_clean_days_exit_zero(live):
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=2100)
    signed(live, OPENID)
    assert entry(live, NO, -200).json()["autodebit"]["status"] == "succeeded"
    for day in (DAY, DAY - timedelta(days=1)):
        result = _reconcile(live, day)
        assert result.exit_code == 0, result.output
        assert "auto top-ups and the bank's debits agree" in result.output
    assert balance(live, card_id) == 6900


def test_reconcile_says_so_when_the_bank_does_not_answer(live):
    bank(live).faults["debits"] = "5xx"
    result = _reconcile(live, DAY)
    assert result.exit_code == 1 and "bank" in result.output


# --- one active agreement per card ------------------------------------------------------
def test_database_refuses_a_second_active_agreement(live):
    card_id = student(live, OPENID, student_no=NO, balance_fen=10000)
    row = {
        "cardholder_id": card_id,
        "openid": OPENID,
        "bank_account": GOOD_ACCOUNT,
        "bank_last4": "7890",
        "threshold_fen": 2000,
        "amount_fen": 5000,
        "expires_on": date(2027, 9, 1),
    }
    with live.session() as db, db.begin():
        db.add(AutodebitAgreement(status="cancelled", **row))
        db.add(AutodebitAgreement(status="active", **row))
    with pytest.raises(IntegrityError), live.session() as db, db.begin():
        db.add(AutodebitAgreement(status="active", **row))


def test_signing_again_after_the_end_date_before_the_expiry_job(live):
    clock = live.services.clock
    clock.freeze(at(2027, 8, 20, 10, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=10000)
    signed(live, OPENID)
    clock.freeze(at(2027, 9, 1, 0, 10))  # ended, but the hourly job has not marked it yet
    r = logged_in(live, OPENID).sign()  # twelve days later: a new H5 session
    assert r.status_code == 201, r.text
    with live.session() as db:
        rows = (
            db.execute(select(AutodebitAgreement.status).where(AutodebitAgreement.cardholder_id == card_id).order_by(AutodebitAgreement.id))
            .scalars()
            .all()
        )
    assert rows == ["expired", "active"]


# --- the http adapter ------------------------------------------------------------------
def test_http_adapter_speaks_the_protocol(live):
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    bank(live).open(GOOD_ACCOUNT, 10_000)
    gw = make_bank_gateway(load_config(None, bank={"adapter": "http", "api_base_url": live.url + "/emulator/bank"}))
    assert gw.check_account(GOOD_ACCOUNT).ok
    assert gw.query("AD1").reason == UNKNOWN_REFERENCE
    debited = gw.debit(GOOD_ACCOUNT, 4000, "AD1")
    assert debited.ok and gw.query("AD1") == debited
    assert not gw.debit(GOOD_ACCOUNT, 9000, "AD2").ok
    [row] = gw.debits(DAY)
    assert (row.ref, row.bank_ref, row.amount_fen) == ("AD1", debited.bank_ref, 4000)
    assert gw.debits(DAY + timedelta(days=1)) == []


@pytest.mark.unit
def test_http_adapter_needs_the_bank_address():
    with pytest.raises(ConfigError, match="api_base_url"):
        load_config(None, bank={"adapter": "http"})
    assert load_config(None, bank={"adapter": "http", "api_base_url": "https://bank.example/api/"}).bank.api_base_url == "https://bank.example/api"
