"""``cardbot notices list|requeue ID|mark-sent ID``: the operator's view of notices the outbox could not settle.

``uncertain`` rows got no answer from WeChat (timeout, or their worker died) while a delivery report with a msgid
that is none of ours came for that user — probably theirs (``last_error`` names it): look at the student's chat
(or ask), then ``requeue`` (send again) or ``mark-sent``. ``failed`` rows can be requeued after a fix.
"""

from __future__ import annotations

from typing import Any

import click

from bot.clock import to_local
from bot.errors import UserError
from bot.logs import hash_openid
from bot.outbox import NEEDS_AN_OPERATOR, needing_operator, settle_by_operator
from models.enums import NoticeStatus


@click.group("notices")
def command() -> None:
    """Notices (template messages) waiting for an operator."""


@command.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice([s.value for s in NEEDS_AN_OPERATOR]), help="default: all three")
@click.pass_obj
def notices_list(obj: Any, statuses: tuple[str, ...]) -> None:
    """Notices that need a decision: id, status, kind, queued at, user (hashed), last error."""
    rows = needing_operator(obj.services, tuple(NoticeStatus(s) for s in statuses) or NEEDS_AN_OPERATOR)
    for row in rows:
        queued = to_local(row.created_at).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{row.id}\t{row.status}\t{row.kind}\t{queued}\t{hash_openid(row.openid)}\t{row.last_error or ''}")
    click.echo(f"{len(rows)} notice(s)", err=True)


def _settle(obj: Any, notice_id: int, status: NoticeStatus, note: str) -> None:
    try:
        settle_by_operator(obj.services, notice_id, status, note)
    except UserError as err:
        raise click.ClickException(err.message("en")) from None
    click.echo(f"notice {notice_id}: {status}")


@command.command("requeue")
@click.argument("notice_id", type=int)
@click.pass_obj
def notices_requeue(obj: Any, notice_id: int) -> None:
    """Send the notice again (the worker picks it up on its next pass)."""
    _settle(obj, notice_id, NoticeStatus.PENDING, "requeued by an operator")


@command.command("mark-sent")
@click.argument("notice_id", type=int)
@click.pass_obj
def notices_mark_sent(obj: Any, notice_id: int) -> None:
    """The student did receive it: close it without sending."""
    _settle(obj, notice_id, NoticeStatus.SENT, "marked sent by an operator")
