"""``cardbot credits list|retry|refund``: the service center's view of paid money on its way to the card.

``list`` shows what is not on the card (or any status), ``retry REF`` delivers a pending or refused credit now with its
own ref, ``refund REF`` gives money the card system refused back the way it came (WeChat Pay or the bank). A delivered
credit is never refunded here: mistaken top-ups are refunded in person."""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from bot.cards import mask_student_no
from bot.clock import to_local
from bot.credit_refunds import Answer, listed, refund, retry, why
from bot.errors import UserError
from bot.money import yuan
from bot.products import port
from models.enums import CreditChannel, CreditStatus


@click.group("credits")
def command() -> None:
    """Credits owed to the card system: list, retry, refund refused ones."""


def _day(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected a date like 2026-11-25") from None


@command.command("list")
@click.option("--status", type=click.Choice([s.value for s in CreditStatus]), help="only this status (default: all not delivered)")
@click.option("--date", "day", metavar="YYYY-MM-DD", callback=_day, help="only credits paid on this school day")
@click.pass_obj
def list_credits(obj: Any, status: str | None, day: date | None) -> None:
    """Ref, channel, what it is for (card or room), student, amount, paid time, status, why, tries."""
    rows = listed(obj.services, CreditStatus(status) if status else None, day)
    if not rows:
        click.echo("no credits" + (f" {status}" if status else " waiting or refused"))
        return
    click.echo(f"{'ref':<32} {'channel':<10} {'for':<16} {'student':<12} {'amount':>9}  {'paid':<16} {'status':<10} {'tries':>5}  why")
    for c in rows:
        target = f"{c.product}:{port(c.product).shown(c.target)}"
        click.echo(
            f"{c.ref:<32} {c.channel:<10} {target:<16} {mask_student_no(c.student_no):<12} {yuan(c.amount_fen):>9}  "
            f"{to_local(c.paid_at):%Y-%m-%d %H:%M} {c.status:<10} {c.tries:>5}  {why(c)}"
        )


@command.command("retry")
@click.argument("ref")
@click.pass_obj
def retry_credit(obj: Any, ref: str) -> None:
    """Deliver a pending or refused credit now, with the same ref (exit code 1 unless it was delivered).

    The card system answers a repeated ref with its first answer: a refused credit is delivered only if the school's
    integration decides that ref again (e.g. once the card is reactivated); otherwise refund it."""
    try:
        c = retry(obj.services, ref)
    except UserError as err:
        raise click.ClickException(f"credit {ref} not retried: {err.message('en')}") from None
    if c.status == CreditStatus.DELIVERED:
        click.echo(f"{c.ref}: delivered, {yuan(c.amount_fen)} yuan on card {mask_student_no(c.student_no)} (entry {c.entry_id})")
        return
    if c.status == CreditStatus.REFUSED:
        click.echo(
            f"{c.ref}: still refused by the card system ({c.reason}); it answers a repeated ref with its first answer "
            f"unless the school's integration decides it again. Refund it: cardbot credits refund {c.ref}"
        )
    else:
        click.echo(f"{c.ref}: {c.status} ({why(c)}); the worker keeps trying")
    raise SystemExit(1)


@command.command("refund")
@click.argument("ref")
@click.pass_obj
def refund_credit(obj: Any, ref: str) -> None:
    """Give money the card system refused back the way it was paid (safe to run again: never refunds twice)."""
    try:
        out = refund(obj.services, ref)
    except UserError as err:
        raise click.ClickException(f"credit {ref} not refunded: {err.message('en')}") from None
    c = out.credit
    where = "WeChat Pay" if c.channel == CreditChannel.WECHAT_PAY else "the bank card"
    amount = yuan(c.amount_fen + c.fee_fen)
    if c.status == CreditStatus.REFUNDED:
        click.echo(f"{c.ref}: {amount} yuan refunded to {where} ({c.refund_no})" + ("" if out.answer else ", before"))
        return
    if c.status == CreditStatus.REFUNDING and out.answer is Answer.PROCESSING:
        click.echo(f"{c.ref}: refund {c.refund_no} of {amount} yuan accepted by WeChat Pay; its notify or the worker finishes it")
        return
    if c.status == CreditStatus.REFUNDING:
        click.echo(f"{c.ref}: refund {c.refund_no} not finished ({out.detail}); run again: it asks about the same refund, never makes a second")
    else:
        click.echo(f"{c.ref}: nothing refunded ({out.detail}); the credit is {c.status} and listed again")
    raise SystemExit(1)
