"""The sandbox bank behind automatic top-up: ``bot.adapters.bank.HttpBank`` (adapter ``sandbox``) under ``/emulator/bank``.

Accounts hold balances in fen and may refuse debits (online payment disabled, over the bank's limit). A
well-formed account number (12–20 digits) that was never seeded opens on first use with ``DEFAULT_BALANCE_FEN``,
so any number typed in the demo works; ``seed_demo`` adds the accounts the demo talks about. Debits and refunds
are idempotent by the caller's ``ref``, as a real bank's are by the merchant's serial number; ``/query`` answers a
debit's reference with its first outcome (or ``unknown_reference``), ``/debits?date=`` lists a day's debits. The
sandbox's day is the bot's clock, so a test that freezes the clock freezes the bank's day too.

Every request must be signed as the protocol says (``X-Bank-*``, ``[bank] secret``): a missing or bad signature, a
stale timestamp or a replayed nonce gets 401 and nothing is done.

Tests reach the state through ``app.extensions["emulator_bank"]`` (``open``, ``accounts``, ``faults``, and ``secret``:
another key than ``[bank] secret``, to play a bank configured with a different one). Faults per
endpoint (``debit``, ``refund``, ``query``, ``debits``): ``"5xx"`` and ``"timeout"`` (nothing done), and for
``debit`` ``"lost"`` (debited, then a 503) and ``"lost_timeout"`` (debited, then no answer within the timeout).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from bot.adapters.cardsys_signing import BANK, request_target
from bot.emulator.state import pop_fault

bp = Blueprint("emulator_bank", __name__, url_prefix="/emulator/bank")

ACCOUNT = re.compile(r"^\d{12,20}$")
REF = re.compile(r"^[A-Za-z0-9_:-]{1,64}$")
DEFAULT_BALANCE_FEN = 1_000_000

DEMO_ACCOUNTS = {
    "6222020000000001": (500_000, False),  # plenty of money
    "6222020000000002": (1_000, False),  # 10 yuan: short of money for a 50-yuan top-up
    "6222020000000003": (500_000, True),  # online payment not enabled: the bank refuses
}


@dataclass
class Account:
    balance_fen: int
    refuses: bool = False


@dataclass
class BankState:
    lock: threading.RLock = field(default_factory=threading.RLock)
    accounts: dict[str, Account] = field(default_factory=dict)
    # ref -> the answer given the first time (a repeated ref gets the same answer)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    debits: dict[str, tuple[str, int]] = field(default_factory=dict)  # bank_ref -> (account, amount)
    statement: list[dict[str, Any]] = field(default_factory=list)  # each debit made: ref, bank_ref, account, amount_fen, date
    refunded: dict[str, int] = field(default_factory=dict)  # debit bank_ref -> refunded so far
    faults: dict[str, Any] = field(default_factory=dict)  # "debit": "5xx" | "timeout" | [..., 0]
    calls: list[dict[str, Any]] = field(default_factory=list)
    secret: str | None = None  # the key this bank verifies with; None = [bank] secret
    _serial: Any = field(default_factory=lambda: itertools.count(1))

    def open(self, account: str, balance_fen: int, refuses: bool = False) -> Account:
        with self.lock:
            acc = self.accounts[account] = Account(balance_fen, refuses)
            return acc

    def account(self, number: str) -> Account:
        with self.lock:
            if number not in self.accounts:
                self.accounts[number] = Account(DEFAULT_BALANCE_FEN)
            return self.accounts[number]

    def take_fault(self, name: str) -> Any:
        with self.lock:
            return pop_fault(self.faults, name)

    def next_ref(self, prefix: str) -> str:
        return f"{prefix}{int(time.time())}{next(self._serial):06d}"


def seed_demo(app: Flask) -> None:
    bank: BankState = app.extensions["emulator_bank"]
    for number, (balance, refuses) in DEMO_ACCOUNTS.items():
        bank.open(number, balance, refuses)


def _state() -> BankState:
    return current_app.extensions["emulator_bank"]


@bp.before_request
def _authenticate() -> Any:
    """401 for any request not signed with the bank's key, fresh and new; checked before faults and state."""
    st, svc = _state(), current_app.extensions["cardbot"]
    problem = BANK.verify(
        st.secret or svc.cfg.bank.secret,
        request.method,
        request_target(request.environ),
        request.headers,
        request.get_data(),
        BANK.nonce_claimer(svc.store, "emulator"),
    )
    if problem:
        return jsonify(error="unauthorized", message=problem), 401
    return None


def _bad(message: str) -> tuple[Response, int]:
    return jsonify(error="invalid_request", message=message), 400


def _broken(fault: Any) -> tuple[Response, int] | None:
    if fault in ("5xx", "lost"):
        return jsonify(error="system_busy"), 503
    if fault in ("timeout", "lost_timeout"):
        time.sleep(float(current_app.extensions["cardbot"].cfg.bank.timeout_seconds) + 0.5)
        return jsonify(error="system_busy"), 503
    return None


def _fault(name: str) -> tuple[Response, int] | None:
    return _broken(_state().take_fault(name))


def _money_request(*keys: str) -> dict[str, Any] | tuple[Response, int]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _bad("JSON object expected")
    if not isinstance(body.get("account"), str) or not ACCOUNT.match(body["account"]):
        return _bad("account must be 12-20 digits")
    amount = body.get("amount_fen")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return _bad("amount_fen must be a positive integer")
    for key in keys:
        if not isinstance(body.get(key), str) or not REF.match(body[key]):
            return _bad(f"{key} must match {REF.pattern}")
    return body


@bp.post("/accounts/check")
def check() -> Any:
    body = request.get_json(silent=True)
    number = body.get("account") if isinstance(body, dict) else None
    if not isinstance(number, str) or not ACCOUNT.match(number):
        return jsonify(result="fail", reason="no_account", message="no such account")
    acc = _state().account(number)
    if acc.refuses:
        return jsonify(result="fail", reason="refused", message="online payment not enabled")
    return jsonify(result="ok")


@bp.post("/debit")
def debit() -> Any:
    fault = _state().take_fault("debit")
    if fault in ("5xx", "timeout"):
        return _broken(fault)
    body = _money_request("ref")
    if not isinstance(body, dict):
        return body
    st = _state()
    with st.lock:
        st.calls.append({"op": "debit", **body})
        if (answer := st.answers.get("debit:" + body["ref"])) is not None:
            return jsonify(answer)
        acc = st.account(body["account"])
        amount = body["amount_fen"]
        if acc.refuses:
            answer = {"result": "fail", "reason": "refused", "message": "online payment not enabled or over the bank's limit"}
        elif acc.balance_fen < amount:
            answer = {"result": "fail", "reason": "insufficient_funds", "message": "insufficient funds"}
        else:
            acc.balance_fen -= amount
            ref = st.next_ref("BD")
            st.debits[ref] = (body["account"], amount)
            st.statement.append(
                {
                    "ref": body["ref"],
                    "bank_ref": ref,
                    "account": body["account"],
                    "amount_fen": amount,
                    "date": current_app.extensions["cardbot"].clock.today().isoformat(),
                }
            )
            answer = {"result": "ok", "bank_ref": ref}
        st.answers["debit:" + body["ref"]] = answer
    return _broken(fault) or jsonify(answer)


@bp.post("/query")
def query() -> Any:
    """The first outcome of the debit with this reference, or ``unknown_reference`` when it never arrived."""
    if (bad := _fault("query")) is not None:
        return bad
    body = request.get_json(silent=True)
    ref = body.get("ref") if isinstance(body, dict) else None
    if not isinstance(ref, str) or not REF.match(ref):
        return _bad(f"ref must match {REF.pattern}")
    st = _state()
    with st.lock:
        st.calls.append({"op": "query", "ref": ref})
        answer = st.answers.get("debit:" + ref)
    return jsonify(answer or {"result": "fail", "reason": "unknown_reference", "message": "no request with this reference"})


@bp.get("/debits")
def debits() -> Any:
    """The day's debits (``date=YYYY-MM-DD``), for reconciliation."""
    if (bad := _fault("debits")) is not None:
        return bad
    day = request.args.get("date", "")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
        return _bad("date must be YYYY-MM-DD")
    st = _state()
    with st.lock:
        rows = [{k: v for k, v in d.items() if k != "date"} for d in st.statement if d["date"] == day]
    return jsonify(date=day, debits=rows)


@bp.post("/refund")
def refund() -> Any:
    if (bad := _fault("refund")) is not None:
        return bad
    body = _money_request("ref", "original_ref")
    if not isinstance(body, dict):
        return body
    st = _state()
    with st.lock:
        st.calls.append({"op": "refund", **body})
        if (answer := st.answers.get("refund:" + body["ref"])) is not None:
            return jsonify(answer)
        original = st.debits.get(body["original_ref"])
        amount = body["amount_fen"]
        if original is None or original[0] != body["account"]:
            answer = {"result": "fail", "reason": "no_account", "message": "no such debit on this account"}
        elif st.refunded.get(body["original_ref"], 0) + amount > original[1]:
            answer = {"result": "fail", "reason": "refused", "message": "refund exceeds the debit"}
        else:
            st.account(body["account"]).balance_fen += amount
            st.refunded[body["original_ref"]] = st.refunded.get(body["original_ref"], 0) + amount
            answer = {"result": "ok", "bank_ref": st.next_ref("BR")}
        st.answers["refund:" + body["ref"]] = answer
        return jsonify(answer)


@bp.get("/accounts/<number>")
def show(number: str) -> Any:
    """For the simulator and developers: an account's balance (sandbox only)."""
    if not ACCOUNT.match(number):
        return _bad("account must be 12-20 digits")
    acc = _state().account(number)
    return jsonify(account=number, balance_fen=acc.balance_fen, refuses=acc.refuses)


def init_app(app: Flask) -> None:
    app.extensions["emulator_bank"] = BankState()
    app.register_blueprint(bp)
