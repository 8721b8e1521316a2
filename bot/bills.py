"""The month bill: totals and entries of one local month, and how an entry is shown (chat and the bill page alike).

The month is the school's local month; entries are stored in naive UTC, so the bounds are converted
(bot.calendar). Totals are summed in SQL: the chat shows a few lines of a month that may hold hundreds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from bot.calendar import month_bounds_utc, month_start
from bot.clock import to_local
from bot.money import yuan
from models import LedgerEntry
from models.enums import EntryKind

Translate = Callable[..., str]
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")


@dataclass(frozen=True)
class MonthBill:
    """One local month of a card: totals over every entry, and the newest ``entries`` (all, or as many as asked)."""

    year: int
    month: int
    income_fen: int
    spent_fen: int
    count: int
    entries: list[LedgerEntry]


def month_bill(db: Session, cardholder_id: int, year: int, month: int, limit: int | None = None) -> MonthBill:
    """Totals of one local month and its entries newest first (at most ``limit`` of them)."""
    start, end = month_bounds_utc(date(year, month, 1))
    in_month = (LedgerEntry.cardholder_id == cardholder_id, LedgerEntry.created_at >= start, LedgerEntry.created_at < end)
    income, spent, count = db.execute(
        select(
            func.coalesce(func.sum(case((LedgerEntry.amount_fen > 0, LedgerEntry.amount_fen), else_=0)), 0),
            func.coalesce(func.sum(case((LedgerEntry.amount_fen < 0, -LedgerEntry.amount_fen), else_=0)), 0),
            func.count(),
        ).where(*in_month)
    ).one()
    query = select(LedgerEntry).where(*in_month).order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc()).limit(limit)
    entries = list(db.execute(query).scalars()) if count else []
    return MonthBill(year, month, int(income), int(spent), int(count), entries)


def recent_entries(db: Session, cardholder_id: int, limit: int) -> list[LedgerEntry]:
    """The card's last ``limit`` entries, newest first."""
    query = select(LedgerEntry).where(LedgerEntry.cardholder_id == cardholder_id).order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
    return list(db.execute(query.limit(limit)).scalars())


def prev_month(year: int, month: int) -> tuple[int, int]:
    first = month_start(date(year, month, 1), back=1)
    return first.year, first.month


def next_month(year: int, month: int) -> tuple[int, int]:
    first = month_start(date(year, month, 1), back=-1)
    return first.year, first.month


def month_label(tr: Translate, year: int, month: int) -> str:
    return tr("bills_month", year=year, month=month, month_name=MONTH_NAMES[month - 1])


def entry_label(tr: Translate, entry: LedgerEntry) -> str:
    """A spend says where (the terminal's description); everything else says what kind of entry it is."""
    return entry.description if entry.kind == EntryKind.SPEND and entry.description else tr(f"kind_{entry.kind}")


def entry_view(tr: Translate, entry: LedgerEntry) -> dict[str, str | bool]:
    """An entry as people see it, in local time, money in yuan with a sign for income."""
    local = to_local(entry.created_at)
    return {
        "day": f"{local:%m-%d}",
        "time": f"{local:%H:%M}",
        "label": entry_label(tr, entry),
        "amount": ("+" if entry.amount_fen > 0 else "") + yuan(entry.amount_fen),
        "income": entry.amount_fen > 0,
        "balance_after": yuan(entry.balance_after_fen),
    }


def entry_line(tr: Translate, entry: LedgerEntry) -> str:
    """One chat line: ``11-25 09:30 一食堂 -12.50``."""
    v = entry_view(tr, entry)
    return f"{v['day']} {v['time']} {v['label']} {v['amount']}"
