"""``cardbot binding unlock STUDENT_NO``: the service center lifts a binding lock after seeing the cardholder.

The per-card lock (wrong card passwords from many accounts) otherwise lasts ``card_lockout_minutes``. Unlocking also
clears the counters of the accounts bound to the card, so the owner's own mistypes do not keep them out.
"""

from __future__ import annotations

from typing import Any

import click

from bot.binding import unlock as unlock_card


@click.group("binding")
def command() -> None:
    """Binding lockouts."""


@command.command("unlock")
@click.argument("student_no")
@click.pass_obj
def unlock(obj: Any, student_no: str) -> None:
    """Lift the wrong-password lock on a card (and on its bound accounts); prints what was counted."""
    student_no = student_no.strip()
    lifted = unlock_card(obj.services, student_no)
    if not any(lifted.values()):
        click.echo(f"card {student_no} was not locked (no wrong tries counted)")
        return
    for subject, tries in lifted.items():
        if tries:
            click.echo(f"lifted {subject}: {tries} wrong tries")
