"""``cardbot announce TEXT --until TIME``: a line on balance and top-up replies and pages until TIME; ``--clear`` ends it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from bot.clock import SCHOOL_TZ
from bot.errors import UserError


def _until(obj: Any, text: str) -> datetime:
    """``YYYY-MM-DD HH:MM`` or ``HH:MM`` (today), Beijing time."""
    try:
        if len(text.strip()) <= 5:
            hh, mm = text.strip().split(":")
            return obj.services.clock.now().replace(hour=int(hh), minute=int(mm), second=0, microsecond=0)
        return datetime.fromisoformat(text.strip()).replace(tzinfo=SCHOOL_TZ)
    except ValueError:
        raise click.BadParameter("expected YYYY-MM-DD HH:MM or HH:MM (Beijing time)", param_hint="--until") from None


@click.command("announce")
@click.argument("text", required=False, default="")
@click.option("--until", "until", help="when it ends: YYYY-MM-DD HH:MM or HH:MM today (Beijing time)")
@click.option("--clear", is_flag=True, help="end the current announcement now")
@click.pass_obj
def command(obj: Any, text: str, until: str | None, clear: bool) -> None:
    """Add TEXT to balance and top-up replies and pages until --until."""
    from bot import announce

    if clear:
        click.echo("announcement cleared" if announce.clear(obj.services) else "no announcement")
        return
    if not text or not until:
        raise click.UsageError("give TEXT and --until (or --clear)")
    try:
        shown = announce.announce(obj.services, text, _until(obj, until))
    except UserError as exc:
        raise click.ClickException(exc.message("en")) from None
    click.echo(f"announced until {shown.until:%Y-%m-%d %H:%M}: {shown.text}")
