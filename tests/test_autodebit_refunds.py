"""Refunds of auto top-ups: asked for on the page until ``refund_request_day`` of the next month ("too late" after),
decided by an operator with ``cardbot autodebit refunds``; approval reverses the ledger and the bank, once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from bot.cli.autodebit import command
from tests.support.autodebit import (
    GOOD_ACCOUNT,
    at,
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

OPENID = "oAutodebitRefundUser0001"
NO = "20231002"


def cli(live, *args):
    return CliRunner().invoke(command, list(args), obj=SimpleNamespace(services=live.services), catch_exceptions=False)


def topped_up(live, when, balance_fen=2100):
    live.services.clock.freeze(when)
    card_id = student(live, OPENID, student_no=NO, balance_fen=balance_fen)
    signed(live, OPENID, bank_balance_fen=100_000)
    body = entry(live, NO, -200).json()
    assert body["autodebit"]["status"] == "succeeded", body
    return card_id, body["autodebit"]["attempt_id"]


def test_refund_requested_on_the_deadline_day_and_approved(live):
    card_id, attempt_id = topped_up(live, at(2026, 11, 20, 10, 0))
    live.services.clock.freeze(at(2026, 12, 5, 21, 0))  # the 5th of the next month: still allowed
    phone = logged_in(live, OPENID)
    page = phone.page().text
    assert "申请退款</button>" in page and "可在 2026-12-05 前申请退款" in page
    r = phone.post("/api/autodebit/refunds", {"attempt_id": attempt_id})
    assert r.status_code == 201, r.text
    assert phone.post("/api/autodebit/refunds", {"attempt_id": attempt_id}).status_code == 409
    assert "退款申请待处理" in phone.page().text
    request_id = r.json()["request_id"]

    listing = cli(live, "refunds", "list")
    assert listing.exit_code == 0 and NO in listing.output and "50.00" in listing.output and "*7890" in listing.output
    assert balance(live, card_id) == 6900
    result = cli(live, "refunds", "approve", str(request_id))
    assert result.exit_code == 0 and "approved" in result.output, result.output
    assert balance(live, card_id) == 1900
    assert [e.amount_fen for e in entries(live, card_id, "refund")] == [-5000]
    assert bank(live).accounts[GOOD_ACCOUNT].balance_fen == 100_000  # debited 50, refunded 50
    assert cli(live, "refunds", "approve", str(request_id)).exit_code == 0  # again: nothing more happens
    assert len(entries(live, card_id, "refund")) == 1
    assert [c["op"] for c in bank(live).calls].count("refund") == 1
    assert "no refund requests waiting" in cli(live, "refunds", "list").output
    drain(live)
    [msg] = [m for m in templates(live, OPENID) if m["template_id"] == "TPL_REFUND"]
    assert msg["data"]["thing2"] == "已退回银行卡"
    assert "已退款" in phone.page().text


def test_refund_after_the_deadline_is_too_late(live):
    _, attempt_id = topped_up(live, at(2026, 10, 31, 20, 0))
    live.services.clock.freeze(at(2026, 11, 6, 8, 0))
    phone = logged_in(live, OPENID)
    page = phone.page().text
    assert "已过退款申请期限（2026-11-05）" in page and "申请退款</button>" not in page
    r = phone.post("/api/autodebit/refunds", {"attempt_id": attempt_id})
    assert r.status_code == 409 and r.json()["error"] == "too_late" and "2026-11-05" in r.json()["message"]


def test_refund_of_someone_elses_or_unknown_top_up_is_not_found(live):
    _, attempt_id = topped_up(live, at(2026, 11, 20, 10, 0))
    other = "oAutodebitRefundOther001"
    student(live, other, student_no="20231003", balance_fen=10000)
    phone = logged_in(live, other)
    for bad in (attempt_id, 999999, 2**63, -1, "1", None, True):
        r = phone.post("/api/autodebit/refunds", {"attempt_id": bad})
        assert r.status_code == 404, (bad, r.text)


def test_rejected_refund_tells_the_student_and_keeps_the_money(live):
    card_id, attempt_id = topped_up(live, at(2026, 11, 20, 10, 0))
    phone = logged_in(live, OPENID)
    request_id = phone.post("/api/autodebit/refunds", {"attempt_id": attempt_id}).json()["request_id"]
    result = cli(live, "refunds", "reject", str(request_id), "--note", "used already")
    assert result.exit_code == 0 and "rejected" in result.output
    assert balance(live, card_id) == 6900 and entries(live, card_id, "refund") == []
    assert cli(live, "refunds", "approve", str(request_id)).exit_code == 1
    drain(live)
    assert [m["data"]["thing2"] for m in templates(live, OPENID) if m["template_id"] == "TPL_REFUND"] == ["退款申请未通过"]


def test_approval_refused_when_the_card_no_longer_holds_the_money(live):
    card_id, attempt_id = topped_up(live, at(2026, 11, 20, 10, 0))
    phone = logged_in(live, OPENID)
    request_id = phone.post("/api/autodebit/refunds", {"attempt_id": attempt_id}).json()["request_id"]
    live.services.clock.freeze(at(2026, 11, 20, 22, 0))  # outside bank hours: the spend triggers nothing now
    assert entry(live, NO, -6000).status_code == 200
    result = cli(live, "refunds", "approve", str(request_id))
    assert result.exit_code == 1 and "too low" in result.output
    assert balance(live, card_id) == 900 and entries(live, card_id, "refund") == []
    assert [c["op"] for c in bank(live).calls].count("refund") == 0


def test_approval_interrupted_by_the_bank_is_finished_by_running_it_again(live):
    card_id, attempt_id = topped_up(live, at(2026, 11, 20, 10, 0))
    request_id = logged_in(live, OPENID).post("/api/autodebit/refunds", {"attempt_id": attempt_id}).json()["request_id"]
    bank(live).faults["refund"] = ["5xx"]
    result = cli(live, "refunds", "approve", str(request_id))
    assert result.exit_code == 1 and "bank" in result.output
    assert balance(live, card_id) == 1900  # taken off the card first; the bank part is repeated below
    assert "approving" in cli(live, "refunds", "list").output
    assert cli(live, "refunds", "approve", str(request_id)).exit_code == 0
    assert [e.amount_fen for e in entries(live, card_id, "refund")] == [-5000]
    assert bank(live).accounts[GOOD_ACCOUNT].balance_fen == 100_000


def test_bank_refusing_the_refund_gives_the_card_its_money_back(live):
    card_id, attempt_id = topped_up(live, at(2026, 11, 20, 10, 0))
    request_id = logged_in(live, OPENID).post("/api/autodebit/refunds", {"attempt_id": attempt_id}).json()["request_id"]
    with bank(live).lock:
        bank(live).debits.clear()  # the bank no longer knows the debit
    result = cli(live, "refunds", "approve", str(request_id))
    assert result.exit_code == 1 and "refused" in result.output
    assert balance(live, card_id) == 6900
    assert [e.amount_fen for e in entries(live, card_id, "refund")] == [-5000]
    assert [e.amount_fen for e in entries(live, card_id, "adjust")] == [5000]
    assert "failed" in cli(live, "refunds", "list", "--all").output
