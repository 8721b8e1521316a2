"""The month bill: totals and entries of one local month, and how an entry is shown (chat and the bill page alike).

Entries come from the card system (``entries(student_no, since=month start, limit=200)``, newest first), for either
adapter; the totals are summed over those entries. A month is the school's local month. When the card system holds
more than 200 entries since the month began, the bill says it shows only part of the month (its totals would be
wrong otherwise). A failing card system raises ``CardSystemError``: the caller says so plainly, with no totals.

Electricity paid for a dorm room (``power_payments``, from our own records: the money never touched the card) is
shown beside the card's entries, marked as such, and counts in none of the card's totals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.adapters.cardsystem import MAX_ENTRIES, CardSystemError, CardSystemUnavailable, Entry
from bot.calendar import month_start
from bot.clock import SCHOOL_TZ
from bot.money import yuan
from models import CardCredit, PowerRoom
from models.enums import CreditStatus, Product

if TYPE_CHECKING:
    from bot.runtime import Runtime

Translate = Callable[..., str]
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")


@dataclass(frozen=True)
class MonthBill:
    """One local month of a card: totals over its entries, newest first; ``complete`` False when the card system
    had more entries since the month began than one call returns (then older ones of the month are missing)."""

    year: int
    month: int
    income_fen: int
    spent_fen: int
    entries: list[Entry]
    complete: bool

    @property
    def count(self) -> int:
        return len(self.entries)


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=SCHOOL_TZ)


def month_bill(services: Runtime, student_no: str, year: int, month: int) -> MonthBill:
    """The month's entries from the card system and their totals (raises ``CardSystemError`` when it cannot say)."""
    first = date(year, month, 1)
    start, end = _local_midnight(first), _local_midnight(month_start(first, back=-1))
    got = services.card_system.entries(student_no, since=start, limit=MAX_ENTRIES)
    entries = [e for e in got if start <= e.occurred_at < end]
    income = sum(e.amount_fen for e in entries if e.amount_fen > 0)
    spent = -sum(e.amount_fen for e in entries if e.amount_fen < 0)
    return MonthBill(year, month, income, spent, entries, complete=len(got) < MAX_ENTRIES)


def unavailable_text(tr: Translate, exc: CardSystemError, now: datetime) -> str:
    """The plain word when the card system cannot give the bill: closed until when, or not answering."""
    if isinstance(exc, CardSystemUnavailable):
        return tr("bills_unavailable_maintenance", until=f"{(now + timedelta(seconds=exc.retry_after)).astimezone(SCHOOL_TZ):%H:%M}")
    return tr("bills_unavailable")


def prev_month(year: int, month: int) -> tuple[int, int]:
    first = month_start(date(year, month, 1), back=1)
    return first.year, first.month


def next_month(year: int, month: int) -> tuple[int, int]:
    first = month_start(date(year, month, 1), back=-1)
    return first.year, first.month


def month_label(tr: Translate, year: int, month: int) -> str:
    return tr("bills_month", year=year, month=month, month_name=MONTH_NAMES[month - 1])


def entry_label(tr: Translate, entry: Entry) -> str:
    """The card system's own words for the entry (the terminal, the channel), else what kind of entry it is."""
    return entry.merchant or tr(f"kind_{entry.kind}")


def entry_view(tr: Translate, entry: Entry) -> dict[str, str | bool]:
    """An entry as people see it, in local time, money in yuan with a sign for income."""
    local = entry.occurred_at.astimezone(SCHOOL_TZ)
    return {
        "day": f"{local:%m-%d}",
        "time": f"{local:%H:%M}",
        "label": entry_label(tr, entry),
        "amount": ("+" if entry.amount_fen > 0 else "") + yuan(entry.amount_fen),
        "income": entry.amount_fen > 0,
        "balance_after": yuan(entry.balance_after_fen),
    }


@dataclass(frozen=True)
class PowerPayment:
    """A room's electricity paid with WeChat Pay by this card's holder (not a card entry)."""

    room: str
    amount_fen: int
    at: datetime  # aware, when it was paid
    status: str
    kwh_after: Decimal | None


def power_payments(services: Runtime, cardholder_id: int, year: int, month: int) -> list[PowerPayment]:
    """The month's electricity payments of the card's holder, newest first (refunded ones left out: no money moved)."""
    first = date(year, month, 1)
    start, end = (_local_midnight(d).astimezone(UTC).replace(tzinfo=None) for d in (first, month_start(first, back=-1)))
    with services.session() as db:
        rows = db.execute(
            select(CardCredit, PowerRoom.label)
            .outerjoin(PowerRoom, PowerRoom.room_id == CardCredit.target)
            .where(
                CardCredit.cardholder_id == cardholder_id,
                CardCredit.product == Product.POWER,
                CardCredit.status != CreditStatus.REFUNDED,
                CardCredit.paid_at >= start,
                CardCredit.paid_at < end,
            )
            .order_by(CardCredit.paid_at.desc())
        ).all()
    return [PowerPayment(label or c.target, c.amount_fen, c.paid_at.replace(tzinfo=UTC), c.status, c.kwh_after) for c, label in rows]


def power_view(tr: Translate, p: PowerPayment) -> dict[str, str | bool]:
    """A room's payment beside the card's entries: marked, the room, what it paid and what the meter then held."""
    local = p.at.astimezone(SCHOOL_TZ)
    after = tr("power_remaining", kwh=p.kwh_after) if p.kwh_after is not None else tr(f"power_status_{p.status}")
    return {
        "day": f"{local:%m-%d}",
        "time": f"{local:%H:%M}",
        "label": p.room,
        "mark": tr("power_bill_mark"),
        "amount": "-" + yuan(p.amount_fen),
        "income": False,
        "after": after,
    }


def entry_line(tr: Translate, entry: Entry) -> str:
    """One chat line: ``11-25 09:30 一食堂 -12.50``."""
    v = entry_view(tr, entry)
    return f"{v['day']} {v['time']} {v['label']} {v['amount']}"
