"""Shared helpers for the electricity tests (no tests here): a phone on the /power page, the emulator's electricity
system, and our side of a room's payment."""

from __future__ import annotations

import json
from typing import Any

import requests
from sqlalchemy import select

from models import CardCredit, OutboxNotice
from tests.support.topup import CSRF, Phone, delivery_tried, emu_pay, notify, transaction, wait_for, wait_paid

ROOM = "E03-0512"  # 东区 · 3号楼 · 512


def emu_power(live: Any) -> Any:
    return live.app.extensions["emulator_power"]


def recharge_log(live: Any) -> list[str]:
    """The refs the electricity system recharged, in order (a ref twice would be power sold twice)."""
    st = emu_power(live)
    with st.lock:
        return [r["ref"] for r in st.recharge_log]


class PowerPhone(Phone):
    """A WeChat web view on the /power page."""

    def open_power(self) -> requests.Response:
        r = self.http.get(self.live.url + "/power", timeout=10)
        if m := CSRF.search(r.text):
            self.csrf = m.group(1)
        return r

    def post(self, path: str, body: Any = None) -> requests.Response:
        return self.http.post(
            self.live.url + path,
            data=json.dumps(body) if body is not None else None,
            headers={"Content-Type": "application/json", "X-CSRF-Token": self.csrf},
            timeout=15,
        )

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.live.url + path, timeout=10)

    def keep(self, room_id: str = ROOM) -> requests.Response:
        return self.post("/api/power/rooms", {"room_id": room_id})

    def order_power(self, amount_fen: int, mode: str = "quick", room_id: str = ROOM) -> requests.Response:
        return self.post("/api/power/orders", {"room_id": room_id, "amount_fen": amount_fen, "mode": mode})

    def power_status(self, order_no: str) -> dict[str, Any]:
        return self.get(f"/api/power/orders/{order_no}").json()


def power_phone(live: Any, openid: str, room_id: str | None = ROOM) -> PowerPhone:
    phone = PowerPhone(live, openid)
    r = phone.open_power()
    assert r.status_code == 200, r.text[:300]
    assert phone.csrf
    if room_id:
        assert phone.keep(room_id).status_code == 201
    return phone


def pay_power(live: Any, phone: PowerPhone, amount_fen: int = 2000, *, notify_now: bool = True, room_id: str = ROOM, before_pay: Any = None) -> str:
    """Order and pay for the room; the notify is sent by WeChat (``notify_now``) or left to the test. ``before_pay``
    runs between the order and the payment (the electricity system may change its mind meanwhile)."""
    emu_pay(live).notify_enabled = notify_now
    body = phone.order_power(amount_fen, room_id=room_id).json()
    if before_pay is not None:
        before_pay()
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")
    if notify_now:
        wait_paid(live, body["order_no"])
    return str(body["order_no"])


def notify_paid(live: Any, order_no: str) -> int:
    """WeChat Pay's notify for the order, as WeChat sends it; returns the HTTP status the bot answered, once the
    delivery try that follows a payment's answer is over."""
    status = notify(live, transaction(live, order_no)).status_code
    if status == 204:
        delivery_tried(live, order_no)
    return status


def delivery(live: Any, ref: str) -> CardCredit:
    with live.session() as db:
        return db.execute(select(CardCredit).where(CardCredit.ref == ref)).scalar_one()


def answered(live: Any, ref: str) -> CardCredit:
    def done() -> CardCredit | None:
        with live.session() as db:
            c = db.execute(select(CardCredit).where(CardCredit.ref == ref)).scalar_one_or_none()
            return c if c is not None and c.status != "pending" else None

    return wait_for(done)


def notices_of(live: Any, kind: str) -> list[OutboxNotice]:
    with live.session() as db:
        return list(db.execute(select(OutboxNotice).where(OutboxNotice.kind == kind).order_by(OutboxNotice.id)).scalars())
