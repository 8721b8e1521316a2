"""Shared helpers for the auto top-up, outbox and worker tests (no tests here): the card system's signed entries,
a phone that logs in to /autodebit through the emulator's OAuth, the sandbox bank, and the ledger check."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

import requests
from sqlalchemy import select

from bot.adapters import cardsys_signing
from bot.alerts import queue_due
from bot.clock import SCHOOL_TZ
from bot.outbox import drain_once
from bot.web import device
from models import AutodebitAttempt, Cardholder, LedgerEntry, OutboxNotice
from tests.support.factories import bind, make_cardholder
from tests.support.topup import (
    remembered,
    wait_for,  # noqa: F401  (re-exported for the auto top-up tests)
)

CSRF = re.compile(r'"csrf":\s*"([^"]+)"')
GOOD_ACCOUNT = "6222021234567890"


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=SCHOOL_TZ)  # type: ignore[misc]


def bank(live: Any) -> Any:
    return live.app.extensions["emulator_bank"]


def student(
    live: Any, openid: str, *, student_no: str = "20230001", balance_fen: int = 2500, lang: str = "zh", status: str = "active", follow: bool = True
) -> int:
    with live.session() as db, db.begin():
        card = make_cardholder(db, student_no=student_no, balance_fen=balance_fen, status=status)
        bind(db, openid, card, lang=lang)
        card_id = card.id
    if follow:
        with live.emulator.lock:
            live.emulator.followers.add(openid)
    return card_id


class Phone:
    """One WeChat user's web view of /autodebit: a cookie session from the (emulated) OAuth round trip."""

    def __init__(self, live: Any, openid: str, verified: bool = True) -> None:
        self.live = live
        self.http = requests.Session()
        self.http.cookies.set("sim_openid", openid)
        if verified:  # a browser where the card password was given before (else: a new phone, asked once)
            self.http.cookies.set(device.COOKIE, remembered(live, openid))
        self.csrf = ""

    def page(self) -> requests.Response:
        r = self.http.get(self.live.url + "/autodebit", timeout=10)
        if m := CSRF.search(r.text):
            self.csrf = m.group(1)
        return r

    def post(self, path: str, body: Any) -> requests.Response:
        return self.http.post(
            self.live.url + path, data=json.dumps(body), timeout=15, headers={"Content-Type": "application/json", "X-CSRF-Token": self.csrf}
        )

    def sign(self, account: str = GOOD_ACCOUNT) -> requests.Response:
        return self.post("/api/autodebit/agreement", {"bank_account": account})

    def state(self) -> dict[str, Any]:
        return self.http.get(self.live.url + "/api/autodebit", timeout=10).json()


def logged_in(live: Any, openid: str) -> Phone:
    phone = Phone(live, openid)
    r = phone.page()
    assert r.status_code == 200, r.text[:300]
    assert phone.csrf
    return phone


def signed(live: Any, openid: str, account: str = GOOD_ACCOUNT, bank_balance_fen: int = 1_000_000) -> Phone:
    bank(live).open(account, bank_balance_fen)
    phone = logged_in(live, openid)
    r = phone.sign(account)
    assert r.status_code == 201, r.text
    return phone


def entry(
    live: Any,
    student_no: str,
    amount_fen: int,
    *,
    entry_id: str | None = None,
    ts: int | None = None,
    secret: str | None = None,
    body: dict[str, Any] | None = None,
    merchant: str = "第一食堂 Canteen 1",
    balance_after: int | None = None,
) -> requests.Response:
    """What the card system sends for one terminal entry, signed as docs/card-system.md says (a fresh nonce each time)."""
    payload = (
        body
        if body is not None
        else {
            "entry_id": entry_id or f"T{uuid.uuid4().hex[:20]}",
            "student_no": student_no,
            "amount_fen": amount_fen,
            "merchant": merchant,
            "occurred_at": live.services.clock.now().isoformat(timespec="seconds"),
        }
        | ({} if balance_after is None else {"balance_after_fen": balance_after})
    )
    raw = json.dumps(payload, ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json",
        **cardsys_signing.sign(secret or live.cfg.cardsystem.secret, "POST", "/integration/card-entries", raw, timestamp=ts),
    }
    return requests.post(live.url + "/integration/card-entries", data=raw, headers=headers, timeout=15)


def balance(live: Any, card_id: int) -> int:
    with live.session() as db:
        return db.get(Cardholder, card_id).balance_fen


def entries(live: Any, card_id: int, kind: str) -> list[LedgerEntry]:
    with live.session() as db:
        return list(db.execute(select(LedgerEntry).where(LedgerEntry.cardholder_id == card_id, LedgerEntry.kind == kind)).scalars())


def attempts(live: Any, card_id: int) -> list[AutodebitAttempt]:
    with live.session() as db:
        return list(db.execute(select(AutodebitAttempt).where(AutodebitAttempt.cardholder_id == card_id).order_by(AutodebitAttempt.id)).scalars())


def notices(live: Any, kind: str | None = None) -> list[OutboxNotice]:
    """The outbox after the worker's step that queues the alerts of new spends (``queue_due``), as a worker's pass
    would have it."""
    queue_due(live.services)
    with live.session() as db:
        q = select(OutboxNotice).order_by(OutboxNotice.id)
        if kind:
            q = q.where(OutboxNotice.kind == kind)
        return list(db.execute(q).scalars())


def templates(live: Any, openid: str) -> list[dict[str, Any]]:
    with live.emulator.lock:
        return [m for m in live.emulator.inbox.get(openid, []) if m["kind"] == "template"]


def drain(live: Any, worker: str = "test") -> int:
    queue_due(live.services)
    total = 0
    while (n := drain_once(live.services, worker)) > 0:
        total += n
    return total
