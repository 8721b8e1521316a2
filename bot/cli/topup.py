"""``cardbot reconcile DATE``: the day's paid top-ups against WeChat Pay's trade bill; every difference printed."""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from bot.adapters.pay import PayError
from bot.topup import reconcile


@click.command("reconcile")
@click.argument("day", metavar="YYYY-MM-DD")
@click.pass_obj
def command(obj: Any, day: str) -> None:
    """Compare DAY's paid top-up orders with WeChat Pay's trade bill (exit code 1 when they differ)."""
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise click.BadParameter("expected a date like 2026-11-25", param_hint="DATE") from None
    try:
        diffs = reconcile(obj.services, when)
    except PayError as exc:
        raise click.ClickException(f"could not download the trade bill: {exc.code} {exc.message}") from None
    if not diffs:
        click.echo(f"{when}: top-up orders and the WeChat Pay trade bill agree")
        return
    click.echo(f"{when}: {len(diffs)} difference(s)")
    for d in diffs:
        click.echo(str(d))
    raise SystemExit(1)
