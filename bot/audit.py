"""The console's audit log: every view of a student's data and every action, who, when, what, why, and what came of
it. Written in its own transaction (after the action's), so a refused action is recorded too; never changed."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from bot.clock import to_local
from models import AuditEntry
from models.enums import AuditOutcome

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.staff import Staff

COLUMNS = ("id", "at", "staff", "role", "action", "target", "reason", "outcome", "detail")


@dataclass(frozen=True)
class Audited:
    id: int
    at: datetime  # school time
    staff: str
    role: str
    action: str
    target: str
    reason: str
    outcome: str
    detail: str


def record(
    services: Runtime, staff: Staff, action: str, target: str = "", reason: str = "", outcome: AuditOutcome = AuditOutcome.DONE, detail: str = ""
) -> None:
    with services.session() as db, db.begin():
        db.add(
            AuditEntry(
                at=services.clock.utcnow(),
                staff=staff.name,
                role=staff.role.value,
                action=action[:32],
                target=target[:64],
                reason=reason[:256],
                outcome=outcome.value,
                detail=detail[:256],
            )
        )


def record_failed_login(services: Runtime, name: str, why: str) -> None:
    """A sign-in that did not pass: the name as typed (it may be no account at all), no role."""
    with services.session() as db, db.begin():
        db.add(
            AuditEntry(
                at=services.clock.utcnow(),
                staff=name[:64] or "-",
                role="-",
                action="login",
                target=name[:64],
                outcome=AuditOutcome.REFUSED.value,
                detail=why,
            )
        )


def entries(services: Runtime, *, about: str = "", limit: int = 200) -> list[Audited]:
    """Newest first; ``about`` narrows to a target or a staff member."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if about:
        query = query.where(or_(AuditEntry.target == about, AuditEntry.staff == about))
    with services.session() as db:
        return [_view(e) for e in db.execute(query).scalars()]


def _view(e: AuditEntry) -> Audited:
    return Audited(e.id, to_local(e.at), e.staff, e.role, e.action, e.target, e.reason, e.outcome, e.detail)


def export_csv(services: Runtime, rows: Iterable[Audited] | None = None) -> str:
    """The whole log (or ``rows``) as CSV, oldest first, times in school time; cells that a spreadsheet would run as a
    formula are quoted with a leading apostrophe."""
    if rows is None:
        with services.session() as db:
            rows = [_view(e) for e in db.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([_cell(v) for v in (r.id, f"{r.at:%Y-%m-%d %H:%M:%S}", r.staff, r.role, r.action, r.target, r.reason, r.outcome, r.detail)])
    return out.getvalue()


def _cell(value: object) -> str:
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
