"""``cardbot binding unlock STUDENT_NO``: the service center lifts a binding lock after seeing the cardholder.

The per-card lock (wrong card passwords from many accounts) otherwise lasts ``card_lockout_minutes``. Unlocking also
clears the counters of the accounts bound to the card, so the owner's own mistypes do not keep them out.
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select

from bot.binding_lock import BindingLock
from models import Binding, Cardholder


@click.group("binding")
def command() -> None:
    """Binding lockouts."""


@command.command("unlock")
@click.argument("student_no")
@click.pass_obj
def unlock(obj: Any, student_no: str) -> None:
    """Lift the wrong-password lock on a card (and on its bound accounts); prints what was counted."""
    svc, student_no = obj.services, student_no.strip()
    with svc.session() as db:
        card_id = db.execute(select(Cardholder.id).where(Cardholder.student_no == student_no)).scalar_one_or_none()
        openids = (
            [] if card_id is None else list(db.execute(select(Binding.openid).where(Binding.cardholder_id == card_id).order_by(Binding.id)).scalars())
        )
    lifted = BindingLock(svc).unlock(student_no, openids)
    if not any(lifted.values()):
        click.echo(f"card {student_no} was not locked (no wrong tries counted)")
        return
    for subject, tries in lifted.items():
        if tries:
            click.echo(f"lifted {subject}: {tries} wrong tries")
