"""Bills (BILLS / 账单): this month's entries and totals, with a link to the bill page.

The month is the school's local month; entries are stored in naive UTC, so the bounds are converted.
The link carries no openid: the page learns who is asking through OAuth (bot/pages/bills.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.chat.context import Context
from bot.chat.replies import Article
from bot.chat.router import Routes
from bot.clock import SCHOOL_TZ
from handlers.balance import entry_line
from models import LedgerEntry

routes = Routes()

CHAT_LINES = 6
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")


@dataclass
class MonthBill:
    year: int
    month: int
    entries: list[LedgerEntry]

    @property
    def income_fen(self) -> int:
        return sum(e.amount_fen for e in self.entries if e.amount_fen > 0)

    @property
    def spent_fen(self) -> int:
        return -sum(e.amount_fen for e in self.entries if e.amount_fen < 0)


def month_start(year: int, month: int) -> date:
    return date(year, month, 1)


def next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def prev_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def _utc(d: date) -> datetime:
    """Local midnight of ``d`` as naive UTC, the way the database stores times."""
    return datetime(d.year, d.month, d.day, tzinfo=SCHOOL_TZ).astimezone(UTC).replace(tzinfo=None)


def month_bill(db: Session, cardholder_id: int, year: int, month: int) -> MonthBill:
    """Entries of one local month, newest first."""
    start, end = _utc(month_start(year, month)), _utc(month_start(*next_month(year, month)))
    entries = db.execute(
        select(LedgerEntry)
        .where(LedgerEntry.cardholder_id == cardholder_id, LedgerEntry.created_at >= start, LedgerEntry.created_at < end)
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
    ).scalars()
    return MonthBill(year, month, list(entries))


def month_label(lang_t: Any, year: int, month: int) -> str:
    return lang_t("bills_month", year=year, month=month, month_name=MONTH_NAMES[month - 1])


@routes.click("BILLS")
@routes.text("账单", "bills", "bill", "账单查询", "本月账单", "查账单")
@routes.needs_card()
def bills(msg: Any, ctx: Context) -> str | Article:
    card = ctx.card()
    today = ctx.services.clock.today()
    bill = month_bill(ctx.db, card.id, today.year, today.month)
    label = month_label(ctx.t, today.year, today.month)
    lines = [ctx.t("bills_totals", income=ctx.yuan(bill.income_fen), spent=ctx.yuan(bill.spent_fen), count=len(bill.entries))]
    lines.extend(entry_line(ctx, e) for e in bill.entries[:CHAT_LINES])
    if len(bill.entries) > CHAT_LINES:
        lines.append(ctx.t("bills_more", more=len(bill.entries) - CHAT_LINES))
    if not bill.entries:
        lines.append(ctx.t("bills_empty"))
    lines.append(ctx.t("bills_open_page"))
    return Article(
        title=ctx.t("bills_title", month=label, name=card.masked_name),
        description="\n".join(lines),
        url=f"{ctx.cfg.server.public_base_url}/bills",
    )
