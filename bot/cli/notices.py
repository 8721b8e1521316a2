"""``cardbot notices list|requeue ID|mark-sent ID``: the operator's view of notices the outbox could not settle.

``uncertain`` rows got no answer from WeChat (timeout, or their worker died) while a delivery report with a msgid
that is none of ours came for that user — probably theirs (``last_error`` names it): look at the student's chat
(or ask), then ``requeue`` (send again) or ``mark-sent``. ``failed`` rows can be requeued after a fix.
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select

from bot.clock import to_local
from bot.logs import hash_openid
from models import OutboxNotice
from models.enums import NoticeStatus

NEEDS_AN_OPERATOR = (NoticeStatus.UNCERTAIN, NoticeStatus.FAILED, NoticeStatus.UNDELIVERABLE)


@click.group("notices")
def command() -> None:
    """Notices (template messages) waiting for an operator."""


@command.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice([s.value for s in NEEDS_AN_OPERATOR]), help="default: all three")
@click.pass_obj
def notices_list(obj: Any, statuses: tuple[str, ...]) -> None:
    """Notices that need a decision: id, status, kind, queued at, user (hashed), last error."""
    with obj.services.session() as db:
        rows = db.execute(select(OutboxNotice).where(OutboxNotice.status.in_(statuses or NEEDS_AN_OPERATOR)).order_by(OutboxNotice.id)).scalars()
        count = 0
        for row in rows:
            count += 1
            queued = to_local(row.created_at).strftime("%Y-%m-%d %H:%M")
            click.echo(f"{row.id}\t{row.status}\t{row.kind}\t{queued}\t{hash_openid(row.openid)}\t{row.last_error or ''}")
    click.echo(f"{count} notice(s)", err=True)


def _settle(obj: Any, notice_id: int, status: NoticeStatus, note: str) -> None:
    with obj.services.session() as db, db.begin():
        row = db.execute(select(OutboxNotice).where(OutboxNotice.id == notice_id).with_for_update()).scalar_one_or_none()
        if row is None:
            raise click.ClickException(f"no notice {notice_id}")
        if row.status not in NEEDS_AN_OPERATOR:
            raise click.ClickException(f"notice {notice_id} is {row.status}: nothing to decide")
        now = obj.services.clock.utcnow()
        row.status, row.last_error, row.claimed_by, row.claimed_until = status, note, None, None
        if status == NoticeStatus.PENDING:
            row.next_attempt_at = now
        else:
            row.sent_at = row.sent_at or now
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
