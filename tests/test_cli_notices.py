"""``cardbot notices``: an operator settles notices the outbox would not decide alone."""

from __future__ import annotations

from types import SimpleNamespace

from click.testing import CliRunner
from sqlalchemy import select

from bot.cli.notices import command
from bot.logs import hash_openid
from models import Notice, OutboxNotice
from models.ledger import queue_notice

OID = "oNotices00000000000000000001"


def _run(live, *args):
    return CliRunner().invoke(command, list(args), obj=SimpleNamespace(services=live.services))


def _queue(live, key: str, status: str) -> int:
    with live.session() as db, db.begin():
        row = queue_notice(db, Notice(OID, "topup_receipt", {"amount": "50.00元"}), key)
        db.flush()
        row.status, row.last_error = status, "worker stopped while sending"
        return row.id


def test_list_requeue_and_mark_sent(live):
    uncertain = _queue(live, "n:1", "uncertain")
    failed = _queue(live, "n:2", "failed")
    _queue(live, "n:3", "sent")
    listed = _run(live, "list")
    assert listed.exit_code == 0
    lines = [line for line in listed.output.splitlines() if "\t" in line]
    assert [int(line.split("\t")[0]) for line in lines] == [uncertain, failed]
    assert OID not in listed.output and hash_openid(OID) in listed.output
    assert _run(live, "list", "--status", "failed").output.count("\t") == 5
    assert _run(live, "requeue", str(uncertain)).exit_code == 0
    assert _run(live, "mark-sent", str(failed)).exit_code == 0
    with live.session() as db:
        states = dict(db.execute(select(OutboxNotice.id, OutboxNotice.status)).all())
    assert states[uncertain] == "pending" and states[failed] == "sent"
    again = _run(live, "requeue", str(failed))
    assert again.exit_code != 0 and "nothing to decide" in again.output
    assert _run(live, "requeue", "999999").exit_code != 0
