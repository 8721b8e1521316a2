"""``cardbot reconcile DATE``: every side of one day's money, every difference printed (``bot.reconciliation``): the
day's paid orders (every product) against WeChat Pay's trade bill, its auto top-ups against the bank's debits, and for
each product what we delivered against its target system (the card system's credits, the electricity system's). A
side that does not answer is said so and counts as a difference. The result is kept for the console."""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from bot.reconciliation import run


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
    sides = run(obj.services, when)
    for side in sides:
        for line in side.lines:
            click.echo(line)
    if not all(s.clean for s in sides):
        raise SystemExit(1)
