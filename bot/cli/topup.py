"""``cardbot reconcile DATE``: the day's paid top-ups against WeChat Pay's trade bill, and the day's auto top-up
credits against the bank's debits; every difference printed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import click

from bot.adapters.bank import BankUnavailable
from bot.adapters.pay import PayError
from bot.autodebit import reconcile_bank
from bot.topup import reconcile


@click.command("reconcile")
@click.argument("day", metavar="YYYY-MM-DD")
@click.pass_obj
def command(obj: Any, day: str) -> None:
    """Compare DAY's paid top-up orders with WeChat Pay's trade bill and its auto top-ups with the bank's debits
    (exit code 1 when they differ)."""
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise click.BadParameter("expected a date like 2026-11-25", param_hint="DATE") from None
    try:
        diffs = reconcile(obj.services, when)
    except PayError as exc:
        raise click.ClickException(f"could not download the trade bill: {exc.code} {exc.message}") from None
    _report(f"{when}: {len(diffs)} difference(s)", diffs, f"{when}: top-up orders and the WeChat Pay trade bill agree")
    try:
        bank_diffs = reconcile_bank(obj.services, when)
    except BankUnavailable as exc:
        raise click.ClickException(f"could not get the bank's debits: {exc}") from None
    _report(f"{when}: {len(bank_diffs)} auto top-up difference(s) with the bank", bank_diffs, f"{when}: auto top-ups and the bank's debits agree")
    if diffs or bank_diffs:
        raise SystemExit(1)


def _report(heading: str, diffs: Sequence[object], agree: str) -> None:
    """Every difference under its heading, or the one line saying the two sides agree."""
    click.echo(heading if diffs else agree)
    for d in diffs:
        click.echo(str(d))
