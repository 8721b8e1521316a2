"""Helpers for the service center's credit commands and three-way reconciliation (no tests here): a top-up the
emulated card system refuses, the ``credits`` and ``reconcile`` commands run through click, and the emulators' records."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import select

from bot.cli.credits import command as credits_command
from bot.cli.topup import command as reconcile_command
from models import CardCredit
from models.enums import CreditStatus
from tests.support.topup import emu_pay, logged_in, student, wait_for, wait_paid


def cardsys(live: Any) -> Any:
    return live.app.extensions["emulator_cardsys"]


def credits_cli(live: Any, *args: str) -> Result:
    return CliRunner().invoke(credits_command, list(args), obj=SimpleNamespace(services=live.services))


def reconcile_cli(live: Any, day: Any) -> Result:
    return CliRunner().invoke(reconcile_command, [day.isoformat()], obj=SimpleNamespace(services=live.services))


def credit(live: Any, ref: str) -> CardCredit:
    with live.session() as db:
        return db.execute(select(CardCredit).where(CardCredit.ref == ref)).scalar_one()


def topup(live: Any, openid: str, amount_fen: int = 5000, mode: str = "quick", before_pay: Any = None) -> str:
    """The bound student tops up and pays; returns the order number once the payment is recorded. ``before_pay``
    runs between the order and the payment (the card system may change its mind meanwhile)."""
    phone = logged_in(live, openid)
    body = phone.order(amount_fen, mode).json()
    if before_pay is not None:
        before_pay()
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")
    wait_paid(live, body["order_no"])
    return body["order_no"]


def refused_topup(live: Any, openid: str, student_no: str, status: str = "lost") -> str:
    """A paid 50.00 quick top-up (50.15 with the fee) for a card the card system holds as ``status``: refused."""
    acc = cardsys(live).open(student_no, "李四", "123456", 1000)
    student(live, openid, student_no=student_no, balance_fen=1000)

    def reported() -> None:  # after the order: a card already lost cannot order at all
        acc.status = status

    ref = topup(live, openid, before_pay=reported)
    wait_for(lambda: credit(live, ref).status == CreditStatus.REFUSED)
    return ref


def refunds_at_wechat(live: Any, out_trade_no: str) -> list[Any]:
    e = emu_pay(live)
    with e.lock:
        return [r for r in e.refunds.values() if r.out_trade_no == out_trade_no]


def credited_at_card_system(live: Any, ref: str) -> list[dict[str, Any]]:
    st = cardsys(live)
    with st.lock:
        return [c for c in st.credit_log if c["ref"] == ref]
