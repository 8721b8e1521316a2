"""``cardbot reconcile DATE``: every side of one day's money, every difference printed. The day's paid orders (every
product) against WeChat Pay's trade bill, its auto top-ups against the bank's debits, and for each product what we
delivered against its target system (``bot.credit_reconcile``: the card system's credits, the electricity system's
recharges). A side that does not answer is said so and counts as a difference: the day is not reconciled until all
agree."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import click

from bot.adapters.bank import BankUnavailable
from bot.adapters.pay import PayError
from bot.autodebit import reconcile_bank
from bot.credit_reconcile import reconcile_target
from bot.products import PORTS, Port
from bot.topup import reconcile


@click.command("reconcile")
@click.argument("day", metavar="YYYY-MM-DD")
@click.pass_obj
def command(obj: Any, day: str) -> None:
    """Compare DAY's paid top-up orders with WeChat Pay's trade bill, its auto top-ups with the bank's debits, and our
    credits with the card system's (exit code 1 when they differ or a side does not answer)."""
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise click.BadParameter("expected a date like 2026-11-25", param_hint="DATE") from None
    services = obj.services
    clean = [
        _side(
            lambda: reconcile(services, when),
            PayError,
            lambda exc: f"{when}: could not download the trade bill: {exc.code} {exc.message}",
            lambda n: f"{when}: {n} difference(s)",
            f"{when}: top-up orders and the WeChat Pay trade bill agree",
        ),
        _side(
            lambda: reconcile_bank(services, when),
            BankUnavailable,
            lambda exc: f"{when}: could not get the bank's debits: {exc}",
            lambda n: f"{when}: {n} auto top-up difference(s) with the bank",
            f"{when}: auto top-ups and the bank's debits agree",
        ),
    ]
    clean += [_target_side(services, port, when) for port in PORTS.values()]
    if not all(clean):
        raise SystemExit(1)


def _target_side(services: Any, port: Port, when: date) -> bool:
    return _side(
        lambda: reconcile_target(services, port.product, when),
        port.system_error,
        lambda exc: f"{when}: the {port.system} did not answer: {exc}",
        lambda n: f"{when}: {n} {port.noun} difference(s) or open item(s) with the {port.system}",
        f"{when}: our {port.noun}s and the {port.system}'s agree",
    )


def _side(
    compare: Callable[[], Sequence[object]], fails: type[Exception], failed: Callable[[Any], str], heading: Callable[[int], str], agree: str
) -> bool:
    """One side's differences under its heading, or the line saying it agrees, or that it did not answer; True if clean."""
    try:
        diffs = compare()
    except fails as exc:
        click.echo(failed(exc))
        return False
    click.echo(heading(len(diffs)) if diffs else agree)
    for d in diffs:
        click.echo(str(d))
    return not diffs
