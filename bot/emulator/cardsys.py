"""The school's card system as cardsys/1 serves it (docs/card-system.md), under ``/emulator/cardsys/v1``.

Its own accounts, seeded from the demo roster (balance, status, left_on, kind; the initial password as docs/contract.md's
roster rules say), passwords a student can change at a kiosk, entries from canteen terminals (each pushed, signed,
to the bot's ``/integration/card-entries``), credits idempotent by ``ref`` for ever, loss report and cancel.
Requests are checked as a real integration must check them: signature, 300 s window, nonces kept 600 s (401).

Emulator-only endpoints, unsigned: ``POST /emulator/cardsys/kiosk/password`` (change a password),
``POST /emulator/cardsys/kiosk/loss`` (report a card lost at the service desk), ``POST /emulator/cardsys/terminals/swipe``
(spend at a canteen terminal).

Tests reach the state through ``app.extensions["emulator_cardsys"]``. ``faults[call]`` (call = ``verify``,
``account``, ``entries``, ``credit``, ``credit_status``, ``credits``, ``loss`` or ``all``), as a value or a list
consumed one per call (``pop_fault``): ``"maintenance"`` → 503 unavailable with ``retry_after``; ``"5xx"`` → 500,
nothing done; ``"slow"`` → answers after the client's timeout (the work is done); ``"lost"`` → the work is done,
then 502 (the answer lost on the way back). ``modes`` breaks the protocol on purpose, for the conformance
checker's own tests: ``ignore_ref`` (a repeated credit ref credits again), ``no_signature_check``,
``no_nonce_check``, ``maintenance_without_retry_after``. ``latency`` (seconds) delays every protocol call (bench).
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from bot.adapters import cardsys_signing
from bot.clock import SCHOOL_TZ
from bot.emulator.state import pop_fault
from models.passwords import initial_password

bp = Blueprint("emulator_cardsys", __name__, url_prefix="/emulator/cardsys")

ROSTER = Path(__file__).with_name("demo_roster.csv")
STUDENT_NO = re.compile(r"^\d{8,12}$")
REF = re.compile(r"^[A-Za-z0-9_.:|*-]{1,64}$")
PASSWORD = re.compile(r"^[0-9A-Za-z]{6}$")
MAX_BALANCE_FEN = 200_000  # a credit that would take a card above 2000 yuan is refused (over_limit)
RETRY_AFTER_SECONDS = 600
MAX_ENTRIES = 200
CHANNEL_MERCHANT = {"wechat_pay": "微信充值 WeChat Pay", "autodebit": "自动圈存 Auto top-up"}
REFUSAL = {"lost": "card_lost", "frozen": "card_frozen", "graduated": "graduated"}


def _now() -> datetime:
    return datetime.now(SCHOOL_TZ).replace(microsecond=0)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


@dataclass
class CardAccount:
    student_no: str
    name: str
    kind: str
    status: str
    left_on: str | None
    balance_fen: int
    password: str
    as_of: datetime = field(default_factory=_now)
    entries: list[dict[str, Any]] = field(default_factory=list)  # oldest first

    def holder(self) -> dict[str, Any]:
        return {"student_no": self.student_no, "name": self.name, "kind": self.kind, "status": self.status, "left_on": self.left_on}


@dataclass
class CardsysState:
    lock: threading.RLock = field(default_factory=threading.RLock)
    accounts: dict[str, CardAccount] = field(default_factory=dict)
    credits: dict[str, dict[str, Any]] = field(default_factory=dict)  # ref -> the first answer, for ever
    credit_log: list[dict[str, Any]] = field(default_factory=list)  # credits made, for GET /credits?date=
    losses: dict[str, dict[str, Any]] = field(default_factory=dict)  # loss ref -> the first answer
    faults: dict[str, Any] = field(default_factory=dict)
    modes: set[str] = field(default_factory=set)
    latency: float = 0.0  # seconds every protocol call takes before it answers (the bench's "20 ms card system")
    pushes: list[dict[str, Any]] = field(default_factory=list)  # what the terminals pushed to the bot, and its answer
    _serial: Any = field(default_factory=lambda: itertools.count(1))

    def open(
        self,
        student_no: str,
        name: str,
        password: str,
        balance_fen: int = 0,
        *,
        kind: str = "student",
        status: str = "active",
        left_on: str | None = None,
    ) -> CardAccount:
        with self.lock:
            acc = self.accounts[student_no] = CardAccount(student_no, name, kind, status, left_on, 0, password)
            if balance_fen:
                self.post(acc, balance_fen, "adjust", "开户余额 Opening balance")
            return acc

    def post(self, acc: CardAccount, amount_fen: int, kind: str, merchant: str) -> dict[str, Any]:
        """One entry on the card (the caller holds the lock and has checked the balance)."""
        with self.lock:
            at = _now()
            acc.balance_fen += amount_fen
            acc.as_of = at
            entry = {
                "entry_id": f"CS{int(time.time())}{next(self._serial):06d}",
                "amount_fen": amount_fen,
                "balance_after_fen": acc.balance_fen,
                "kind": kind,
                "merchant": merchant,
                "occurred_at": at,
            }
            acc.entries.append(entry)
            return entry

    def take_fault(self, name: str) -> Any:
        with self.lock:
            return pop_fault(self.faults, name) or pop_fault(self.faults, "all")


def seed_roster(st: CardsysState, path: Path = ROSTER) -> None:
    """The demo roster's cards, as the school's card system would hold them."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            st.open(
                row["student_no"],
                row["name"],
                initial_password(row["id_number"], row["passport_no"]),
                int(Decimal(row["balance"]) * 100),
                kind="student" if row["id_number"] else "international",
                status=row["status"],
                left_on=row["left_on"] or None,
            )


def _state() -> CardsysState:
    return current_app.extensions["emulator_cardsys"]


def _entry_json(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "occurred_at": _iso(entry["occurred_at"])}


def _bad(message: str) -> tuple[Response, int]:
    return jsonify(error="invalid_request", message=message), 400


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _text(body: dict[str, Any], key: str, pattern: re.Pattern[str] | None = None) -> str | None:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > 128 or (pattern and not pattern.match(value)):
        return None
    return value


def _when(text: Any) -> datetime | None:
    """ISO 8601 with an offset; a '+' the client left unencoded in a query string arrives as a space."""
    if not isinstance(text, str):
        return None
    try:
        at = datetime.fromisoformat(text.replace(" ", "+"))
    except ValueError:
        return None
    return at if at.tzinfo else None


@bp.before_request
def _authenticate() -> Any:
    if not request.path.startswith(f"{bp.url_prefix}/v1/"):
        return None
    st, svc = _state(), current_app.extensions["cardbot"]
    if "no_signature_check" in st.modes:
        return None
    claim = cardsys_signing.nonce_claimer(svc.store, "emulator")
    problem = cardsys_signing.verify(
        svc.cfg.cardsystem.secret,
        request.method,
        cardsys_signing.request_target(request.environ),
        request.headers,
        request.get_data(),
        (lambda _nonce: True) if "no_nonce_check" in st.modes else claim,
    )
    if problem:
        return jsonify(error="unauthorized", message=problem), 401
    return None


def _call(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Apply the fault set for ``name`` around one protocol call."""

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def run(*args: Any, **kwargs: Any) -> Any:
            st = _state()
            if st.latency:
                time.sleep(st.latency)
            fault = st.take_fault(name)
            if fault == "maintenance":
                if "maintenance_without_retry_after" in st.modes:
                    return jsonify(error="unavailable"), 503
                return jsonify(error="unavailable", retry_after=RETRY_AFTER_SECONDS), 503
            if fault == "5xx":
                return jsonify(error="internal"), 500
            if fault == "slow":
                time.sleep(current_app.extensions["cardbot"].cfg.cardsystem.timeout_seconds + 0.5)
            answer = view(*args, **kwargs)
            if fault == "lost":
                return jsonify(error="bad_gateway"), 502
            return answer

        return run

    return wrap


@bp.post("/v1/holders/verify")
@_call("verify")
def verify() -> Any:
    body = _body()
    student_no, name, password = (_text(body, k) for k in ("student_no", "name", "password"))
    if student_no is None or name is None or password is None:
        return _bad("student_no, name and password are required strings")
    st = _state()
    with st.lock:
        acc = st.accounts.get(student_no)
        if acc is None:
            return jsonify(result="unknown_holder")
        if acc.name != name or acc.password != password:
            return jsonify(result="mismatch")
        return jsonify(result="ok", holder=acc.holder())


@bp.get("/v1/accounts/<student_no>")
@_call("account")
def account(student_no: str) -> Any:
    st = _state()
    with st.lock:
        acc = st.accounts.get(student_no)
        if acc is None:
            return jsonify(error="unknown_holder"), 404
        return jsonify(**acc.holder(), balance_fen=acc.balance_fen, as_of=_iso(acc.as_of))


@bp.get("/v1/accounts/<student_no>/entries")
@_call("entries")
def entries(student_no: str) -> Any:
    since = None
    if "since" in request.args and (since := _when(request.args["since"])) is None:
        return _bad("since must be ISO 8601 with an offset")
    limit = request.args.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_ENTRIES:
        return _bad(f"limit must be 1..{MAX_ENTRIES}")
    st = _state()
    with st.lock:
        acc = st.accounts.get(student_no)
        if acc is None:
            return jsonify(error="unknown_holder"), 404
        chosen = [e for e in reversed(acc.entries) if since is None or e["occurred_at"] >= since][: int(limit)]
        return jsonify(entries=[_entry_json(e) for e in chosen])


@bp.post("/v1/credits")
@_call("credit")
def credit() -> Any:
    body, st = _body(), _state()
    ref = _text(body, "ref", REF)
    if ref is None:
        return _bad(f"ref must match {REF.pattern}")
    with st.lock:
        if ref in st.credits and "ignore_ref" not in st.modes:
            return jsonify(st.credits[ref])
        student_no, amount, paid_at = _text(body, "student_no"), body.get("amount_fen"), _when(body.get("paid_at"))
        if student_no is None or not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return _bad("student_no and a positive integer amount_fen are required")
        if body.get("channel") not in CHANNEL_MERCHANT or paid_at is None:
            return _bad("channel must be wechat_pay or autodebit; paid_at ISO 8601 with an offset")
        acc = st.accounts.get(student_no)
        if acc is None:
            answer: dict[str, Any] = {"result": "refused", "reason": "unknown_holder"}
        elif acc.status in REFUSAL:
            answer = {"result": "refused", "reason": REFUSAL[acc.status]}
        elif acc.balance_fen + amount > MAX_BALANCE_FEN:
            answer = {"result": "refused", "reason": "over_limit"}
        else:
            entry = st.post(acc, amount, "topup", CHANNEL_MERCHANT[body["channel"]])
            answer = {"result": "ok", "entry_id": entry["entry_id"], "balance_fen": acc.balance_fen}
            st.credit_log.append(
                {"ref": ref, "student_no": student_no, "amount_fen": amount, "entry_id": entry["entry_id"], "at": entry["occurred_at"]}
            )
        st.credits.setdefault(ref, answer)
        return jsonify(answer)


@bp.get("/v1/credits/<ref>")
@_call("credit_status")
def credit_status(ref: str) -> Any:
    st = _state()
    with st.lock:
        answer = st.credits.get(ref)
    return jsonify(answer) if answer is not None else (jsonify(error="unknown_ref"), 404)


@bp.get("/v1/credits")
@_call("credits")
def credits_on() -> Any:
    try:
        day = date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        return _bad("date must be YYYY-MM-DD")
    st = _state()
    with st.lock:
        rows = [r for r in st.credit_log if r["at"].astimezone(SCHOOL_TZ).date() == day]
        return jsonify(credits=[{**r, "at": _iso(r["at"])} for r in rows])


@bp.post("/v1/accounts/<student_no>/loss")
@_call("loss")
def loss(student_no: str) -> Any:
    body, st = _body(), _state()
    ref, action = _text(body, "ref", REF), body.get("action")
    if ref is None or action not in ("report", "cancel"):
        return _bad("ref and action (report or cancel) are required")
    if action == "cancel" and _text(body, "password") is None:
        return _bad("cancel needs the card password")
    with st.lock:
        if ref in st.losses:
            return jsonify(st.losses[ref])
        acc = st.accounts.get(student_no)
        if acc is None:
            answer: dict[str, Any] = {"result": "refused", "reason": "unknown_holder"}
        elif action == "cancel" and acc.password != body["password"]:
            answer = {"result": "mismatch"}
        elif acc.status in ("frozen", "graduated"):
            answer = {"result": "refused", "reason": REFUSAL[acc.status]}
        else:
            acc.status = "lost" if action == "report" else "active"
            answer = {"result": "ok", "status": acc.status}
        st.losses[ref] = answer
        return jsonify(answer)


@bp.post("/kiosk/password")
def kiosk_password() -> Any:
    """A student changes the card password at a self-service kiosk (old password required)."""
    body, st = _body(), _state()
    new = _text(body, "new_password", PASSWORD)
    if new is None:
        return _bad("new_password must be 6 letters or digits")
    with st.lock:
        acc = st.accounts.get(str(body.get("student_no")))
        if acc is None or acc.password != body.get("old_password"):
            return jsonify(result="mismatch"), 403
        acc.password = new
    return jsonify(result="ok")


@bp.post("/kiosk/loss")
def kiosk_loss() -> Any:
    """The service desk reports a card lost (no password needed, as at the counter)."""
    st = _state()
    with st.lock:
        acc = st.accounts.get(str(_body().get("student_no")))
        if acc is None:
            return jsonify(error="unknown_holder"), 404
        if acc.status == "active":
            acc.status = "lost"
        return jsonify(result="ok", status=acc.status)


@bp.post("/terminals/swipe")
def swipe() -> Any:
    """A spend at a canteen terminal; the entry is pushed to the bot, signed, and the bot's answer returned."""
    body, st = _body(), _state()
    amount, merchant = body.get("amount_fen"), body.get("merchant", "第一食堂 Canteen 1")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_BALANCE_FEN:
        return _bad("amount_fen must be a positive integer (the amount spent)")
    if not isinstance(merchant, str) or not 0 < len(merchant) <= 64:
        return _bad("merchant must be 1-64 characters")
    with st.lock:
        acc = st.accounts.get(str(body.get("student_no")))
        if acc is None:
            return jsonify(error="unknown_holder"), 404
        if acc.status != "active":
            return jsonify(error="card_" + acc.status), 409
        if acc.balance_fen < amount:
            return jsonify(error="insufficient_balance"), 409
        entry = {**_entry_json(st.post(acc, -amount, "spend", merchant)), "student_no": acc.student_no}
    push = _push(entry)
    with st.lock:
        st.pushes.append({"entry": entry, **push})
    return jsonify(entry=entry, push=push)


def _push(entry: dict[str, Any]) -> dict[str, Any]:
    cfg = current_app.extensions["cardbot"].cfg
    url = cfg.server.public_base_url + "/integration/card-entries"
    raw = json.dumps(entry, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", **cardsys_signing.sign(cfg.cardsystem.secret, "POST", urlsplit(url).path, raw)}
    try:
        r = requests.post(url, data=raw, headers=headers, timeout=10)
    except requests.RequestException as exc:
        return {"status": None, "error": type(exc).__name__}
    try:
        answer: Any = r.json()
    except ValueError:
        answer = r.text[:200]
    return {"status": r.status_code, "response": answer}


def init_app(app: Flask) -> None:
    st = app.extensions["emulator_cardsys"] = CardsysState()
    seed_roster(st)
    app.register_blueprint(bp)
