"""``cardbot cardholders``: import the roster; show one card for the help desk (no secrets)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
import redis
from sqlalchemy import func, select

from bot.binding_lock import BindingLock
from bot.cards import freeze_on
from bot.clock import to_local
from bot.money import yuan
from bot.roster import MAX_REASON, RosterError, import_roster
from models import Binding, Cardholder, LedgerEntry, ledger_sum

if TYPE_CHECKING:
    from bot.cli import Obj  # bot.cli imports this module at its end: no import at run time


@click.group("cardholders")
def command() -> None:
    """The campus-card roster."""


@command.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--set-balances", is_flag=True, help="Write the file's balance over a known card's live balance (adjust entries).")
@click.option("--reason", default=None, help=f"Why the balances are set (required with --set-balances, ≤ {MAX_REASON} characters).")
@click.pass_obj
def import_(obj: Obj, path: str, set_balances: bool, reason: str | None) -> None:
    """Upsert the roster CSV; a bad row is reported with its line number and nothing is written.

    A known card keeps its live balance; every difference from the file is printed. ``--set-balances --reason``
    applies them as adjust entries, each printed with its ledger key.
    """
    if set_balances and not (reason and 0 < len(reason.strip()) <= MAX_REASON):
        raise click.UsageError(f"--set-balances needs --reason TEXT (1-{MAX_REASON} characters): it goes into each adjust entry")
    if reason is not None and not set_balances:
        raise click.UsageError("--reason goes with --set-balances only")
    with obj.services.session() as db:
        try:
            result = import_roster(db, path, set_balances_reason=reason if set_balances else None)
        except RosterError as exc:
            db.rollback()
            for line_no, message in exc.problems:
                click.echo(f"{path}:{line_no}: {message}", err=True)
            raise click.ClickException(f"{len(exc.problems)} problem(s); nothing was imported") from None
        db.commit()
    click.echo(str(result))
    for d in result.differences:
        if d.entry_key:
            click.echo(f"adjusted {d.student_no}  {yuan(d.live_fen)} -> {yuan(d.csv_fen)}  ({yuan(d.csv_fen - d.live_fen)})  entry {d.entry_key}")
        else:
            click.echo(f"balance kept {d.student_no}  live {yuan(d.live_fen)}  csv {yuan(d.csv_fen)}")
    if result.differences and not result.adjusted:
        click.echo("live balances were kept; to write the file's balances: --set-balances --reason TEXT")


def _mask_id(id_number: str | None) -> str:
    return (id_number[:3] + "*" * (len(id_number) - 7) + id_number[-4:]) if id_number else "-"


@command.command("show")
@click.argument("student_no")
@click.pass_obj
def show(obj: Obj, student_no: str) -> None:
    """One card as the help desk needs it: status, balance, bindings, lockout, last entries."""
    svc = obj.services
    with svc.session() as db:
        card = db.execute(select(Cardholder).where(Cardholder.student_no == student_no.strip())).scalar_one_or_none()
        if card is None:
            raise click.ClickException(f"no cardholder with student_no {student_no}")
        bindings = db.execute(select(func.count()).select_from(Binding).where(Binding.cardholder_id == card.id)).scalar_one()
        entries = db.execute(
            select(LedgerEntry).where(LedgerEntry.cardholder_id == card.id).order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc()).limit(5)
        ).scalars()
        freeze = freeze_on(card, svc.cfg)
        lock = BindingLock(svc)
        try:
            held = lock.card_lock(card.student_no)
            locked = f"{held.until:%Y-%m-%d %H:%M}" if held else "-"
        except redis.RedisError:
            locked = "unknown (redis unavailable)"
        rows = [
            ("student_no", card.student_no),
            ("name", card.name),
            ("id_number", _mask_id(card.id_number)),
            ("passport_no", "registered" if card.passport_no else "-"),
            ("campus", card.campus or "-"),
            ("status", card.status),
            ("left_on", str(card.left_on or "-")),
            ("freezes_on", str(freeze or "-")),
            ("balance", yuan(card.balance_fen)),
            ("ledger_sum", yuan(ledger_sum(db, card.id))),
            ("bindings", f"{bindings} of {svc.cfg.binding.max_bindings_per_card}"),
            ("binding_locked_until", locked),
        ]
        for key, value in rows:
            click.echo(f"{key:<22}{value}")
        click.echo("recent entries:")
        for e in entries:
            click.echo(f"  {to_local(e.created_at):%Y-%m-%d %H:%M}  {e.kind:<9} {yuan(e.amount_fen):>10}  {e.description}")
