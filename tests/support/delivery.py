"""Shared helpers for the credit-delivery tests (no tests here): a paid order whose notify the test sends itself, and
the two sides to compare — our ``CardCredit`` rows and the emulator card system's accounts and credit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import CardCredit, OutboxNotice
from tests.support.topup import Phone, delivery_tried, emu_pay, logged_in, notify, transaction

NO = "20230001"  # demo roster: 张三, 100.00 yuan at the emulator's card system


def emu_cs(live: Any) -> Any:
    return live.app.extensions["emulator_cardsys"]


def cs_balance(live: Any, student_no: str = NO) -> int:
    st = emu_cs(live)
    with st.lock:
        return int(st.accounts[student_no].balance_fen)


def credit_log(live: Any) -> list[str]:
    """The refs the card system credited, in order (a ref twice would be money moved twice)."""
    st = emu_cs(live)
    with st.lock:
        return [row["ref"] for row in st.credit_log]


def paid_order(live: Any, openid: str, amount_fen: int = 5000) -> tuple[Phone, str]:
    """An order the student paid at WeChat, whose notify has not been sent (the test sends it with ``notify_paid``)."""
    emu_pay(live).notify_enabled = False
    phone = logged_in(live, openid)
    body = phone.order(amount_fen, "quick").json()
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")
    return phone, body["order_no"]


def notify_paid(live: Any, order_no: str) -> int:
    """WeChat Pay's notify for the order, as WeChat sends it; returns the HTTP status the bot answered, once the
    delivery try that follows a payment's answer is over."""
    status = notify(live, transaction(live, order_no)).status_code
    if status == 204:
        delivery_tried(live, order_no)
    return status


def credit_row(live: Any, ref: str) -> CardCredit:
    with live.session() as db:
        return db.execute(select(CardCredit).where(CardCredit.ref == ref)).scalar_one()


def credit_rows(live: Any) -> list[CardCredit]:
    with live.session() as db:
        return list(db.execute(select(CardCredit).order_by(CardCredit.id)).scalars())


def notices_of(live: Any, kind: str) -> list[OutboxNotice]:
    with live.session() as db:
        return list(db.execute(select(OutboxNotice).where(OutboxNotice.kind == kind).order_by(OutboxNotice.id)).scalars())
