"""Shared helpers for the top-up tests (no tests here): a phone that logs in through the emulator's OAuth,
orders, pays through the emulated WeixinJSBridge, and checks that balances equal their ledgers."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import select

from bot.emulator.pay import signed_notify
from bot.web import device
from models import CardCredit, Cardholder, LedgerEntry, OutboxNotice, TopupOrder, ledger_sum
from models.enums import CreditStatus
from tests.support.factories import bind, make_cardholder

CSRF = re.compile(r'"csrf":\s*"([^"]+)"')


def remembered(live: Any, openid: str) -> str:
    """The signed device cookie of a browser where ``openid`` gave the card password before (bot/web/device.py)."""
    with live.app.test_request_context():
        return device.token([openid])


class Phone:
    """One WeChat user's web view: a cookie session obtained through the (emulated) OAuth round trip, in a browser
    the user verified before (``verified=False``: a new phone, asked for the card password at the first money action)."""

    def __init__(self, live: Any, openid: str, verified: bool = True) -> None:
        self.live = live
        self.openid = openid
        self.http = requests.Session()
        self.http.cookies.set("sim_openid", openid)
        if verified:
            self.http.cookies.set(device.COOKIE, remembered(live, openid))
        self.csrf = ""

    def open_page(self) -> requests.Response:
        r = self.http.get(self.live.url + "/topup", timeout=10)
        m = CSRF.search(r.text)
        if m:
            self.csrf = m.group(1)
        return r

    def order(self, amount_fen: Any, mode: Any = "custom", body: Any = None) -> requests.Response:
        payload = {"amount_fen": amount_fen, "mode": mode} if body is None else body
        data = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        return self.http.post(
            self.live.url + "/api/topup/orders",
            data=data,
            headers={"Content-Type": "application/json", "X-CSRF-Token": self.csrf},
            timeout=15,
        )

    def status(self, order_no: str) -> requests.Response:
        return self.http.get(self.live.url + f"/api/topup/orders/{order_no}", timeout=10)

    def pay(self, pay_params: dict[str, str], outcome: str = "success") -> requests.Response:
        """What the simulator's WeixinJSBridge shim does when the student confirms the pay sheet."""
        return requests.post(self.live.url + "/emulator/pay/confirm", json={**pay_params, "openid": self.openid, "outcome": outcome}, timeout=10)


def student(
    live: Any,
    openid: str,
    *,
    student_no: str = "20230001",
    balance_fen: int = 10000,
    status: str = "active",
    lang: str = "zh",
    card_id: int | None = None,
) -> int:
    """A bound cardholder (or another openid bound to ``card_id``); returns the card id."""
    with live.session() as db, db.begin():
        card = db.get(Cardholder, card_id) if card_id else make_cardholder(db, student_no=student_no, balance_fen=balance_fen, status=status)
        bind(db, openid, card, lang=lang)
        return card.id


def logged_in(live: Any, openid: str, verified: bool = True) -> Phone:
    phone = Phone(live, openid, verified)
    r = phone.open_page()
    assert r.status_code == 200, r.text[:300]
    assert phone.csrf
    return phone


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, every: float = 0.02) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def delivery_tried(live: Any, ref: str) -> CardCredit:
    """The credit once the delivery try that follows its payment is over (delivered, refused, or released to wait for
    the next try): ``/pay/notify`` answers before that try (``bot.credits.AfterAnswer``)."""

    def over() -> CardCredit | None:
        with live.session() as db:
            c = db.execute(select(CardCredit).where(CardCredit.ref == ref)).scalar_one_or_none()
            return c if c is not None and c.claimed_at is None else None

    return wait_for(over)


def order_row(live: Any, order_no: str) -> TopupOrder:
    with live.session() as db:
        return db.execute(select(TopupOrder).where(TopupOrder.order_no == order_no)).scalar_one()


def wait_paid(live: Any, order_no: str) -> TopupOrder:
    return wait_for(lambda: (o := order_row(live, order_no)).status == "paid" and o)


def wait_credited(live: Any, order_no: str) -> CardCredit:
    """The paid order's credit once the card system has answered it (the receipt is written with that answer)."""

    def answered() -> CardCredit | None:
        with live.session() as db:
            c = db.execute(select(CardCredit).where(CardCredit.ref == order_no)).scalar_one_or_none()
            return c if c is not None and c.status != CreditStatus.PENDING else None

    return wait_for(answered)


def card(live: Any, card_id: int) -> Cardholder:
    with live.session() as db:
        return db.get(Cardholder, card_id)


def topup_entries(live: Any, card_id: int) -> list[LedgerEntry]:
    with live.session() as db:
        return list(db.execute(select(LedgerEntry).where(LedgerEntry.cardholder_id == card_id, LedgerEntry.kind == "topup")).scalars())


def receipts(live: Any) -> list[OutboxNotice]:
    with live.session() as db:
        return list(db.execute(select(OutboxNotice).where(OutboxNotice.kind == "topup_receipt")).scalars())


def assert_ledger_consistent(live: Any) -> None:
    with live.session() as db:
        for c in db.execute(select(Cardholder)).scalars():
            assert c.balance_fen == ledger_sum(db, c.id), f"card {c.student_no}: balance {c.balance_fen} != ledger"


def platform_key(live: Any) -> Any:
    return serialization.load_pem_private_key(Path(live.cfg.emulator.platform_private_key_path).read_bytes(), None)


def merchant_private_key(live: Any) -> Any:
    return serialization.load_pem_private_key(Path(live.cfg.pay.private_key_path).read_bytes(), None)


def merchant_public_key(live: Any) -> Any:
    return serialization.load_pem_public_key(Path(live.cfg.emulator.merchant_public_key_path).read_bytes())


def verify_pay_sign(live: Any, params: dict[str, str]) -> None:
    message = "".join(params[k] + "\n" for k in ("appId", "timeStamp", "nonceStr", "package")).encode()
    merchant_public_key(live).verify(base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256())


def emu_pay(live: Any) -> Any:
    return live.app.extensions["emulator_pay"]


def transaction(live: Any, order_no: str) -> dict[str, Any]:
    """The transaction as the emulated WeChat Pay holds it (what a genuine notify carries)."""
    e = emu_pay(live)
    with e.lock:
        return e.orders[order_no].transaction()


def notify(
    live: Any,
    resource: dict[str, Any],
    *,
    key: Any = None,
    apiv3_key: str | None = None,
    serial: str | None = None,
    event_type: str = "TRANSACTION.SUCCESS",
    tamper: Callable[[bytes], bytes] | None = None,
    headers_edit: dict[str, str | None] | None = None,
    at: float | None = None,
) -> requests.Response:
    """Send a notify built exactly like WeChat Pay's, optionally forged (other key, other APIv3 key, edited body),
    signed at ``at`` (default: the bot's business clock, as the emulator signs)."""
    headers, body = signed_notify(
        resource,
        private_key=key or platform_key(live),
        serial=serial or live.cfg.pay.public_key_id,
        apiv3_key=apiv3_key or live.cfg.pay.apiv3_key,
        event_type=event_type,
        at=live.services.clock.now().timestamp() if at is None else at,
    )
    if tamper:
        body = tamper(body)
    for name, value in (headers_edit or {}).items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return requests.post(live.cfg.pay.notify_url, data=body, headers=headers, timeout=10)
