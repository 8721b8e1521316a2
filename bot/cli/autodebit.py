"""``cardbot autodebit refunds list|approve ID|reject ID``: the operator's side of auto top-up refund requests."""

from __future__ import annotations

import getpass
from typing import Any

import click

from bot.autodebit import approve_refund, refund_cases, reject_refund
from bot.clock import to_local
from bot.errors import UserError
from bot.money import yuan


@click.group("autodebit")
def command() -> None:
    """Automatic top-up from a bank card."""


@command.group()
def refunds() -> None:
    """Refund requests of auto top-ups."""


def _operator() -> str:
    try:
        return getpass.getuser()
    except OSError:
        return "operator"


@refunds.command("list")
@click.option("--all", "show_all", is_flag=True, help="decided requests too, not only the waiting ones")
@click.pass_obj
def refunds_list(obj: Any, show_all: bool) -> None:
    """Requests waiting for a decision (id, time, student, amount, bank card, top-up time)."""
    rows = refund_cases(obj.services, open_only=not show_all)
    if not rows:
        click.echo("no refund requests waiting" if not show_all else "no refund requests")
        return
    click.echo(f"{'id':>5}  {'status':<9} {'requested':<16} {'student':<12} {'amount':>8}  {'bank':<8} topped up")
    for case in rows:
        req, attempt = case.request, case.attempt
        done = f"{to_local(attempt.done_at):%Y-%m-%d %H:%M}" if attempt.done_at else "-"
        click.echo(
            f"{req.id:>5}  {req.status:<9} {to_local(req.requested_at):%Y-%m-%d %H:%M} {case.student_no:<12} "
            f"{yuan(attempt.amount_fen):>8}  *{case.bank_last4:<7} {done}"
        )


@refunds.command("approve")
@click.argument("request_id", type=int)
@click.pass_obj
def refunds_approve(obj: Any, request_id: int) -> None:
    """Take the top-up back from the card, return it to the bank card, tell the student (safe to repeat)."""
    try:
        req = approve_refund(obj.services, request_id, _operator())
    except UserError as err:
        raise click.ClickException(f"refund {request_id} not approved: {err.message('en')}") from None
    click.echo(f"refund {req.id}: {req.status}")


@refunds.command("reject")
@click.argument("request_id", type=int)
@click.option("--note", default="", help="why (kept with the request)")
@click.pass_obj
def refunds_reject(obj: Any, request_id: int, note: str) -> None:
    """Decline the request and tell the student."""
    try:
        req = reject_refund(obj.services, request_id, _operator(), note)
    except UserError as err:
        raise click.ClickException(f"refund {request_id} not rejected: {err.message('en')}") from None
    click.echo(f"refund {req.id}: {req.status}")
