"""Balance (BALANCE / 余额): balance, pending top-ups, card status explained, the last five entries."""

from __future__ import annotations

import calendar
from datetime import date
from typing import Any

from sqlalchemy import select

from bot.chat.context import Context
from bot.chat.router import Routes
from bot.clock import to_local
from bot.config import Config
from handlers.binding import mask_student_no
from models import Cardholder, LedgerEntry

routes = Routes()

RECENT = 5


def add_months(day: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (2026-11-30 + 3 → 2027-02-28)."""
    total = day.month - 1 + months
    year, month = day.year + total // 12, total % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def freeze_on(card: Cardholder, cfg: Config) -> date | None:
    """When a graduate's account freezes: ``left_on`` + ``[graduates] freeze_after_months``."""
    if card.status != "graduated" or card.left_on is None:
        return None
    return add_months(card.left_on, cfg.graduates.freeze_after_months)


def is_frozen(card: Cardholder, cfg: Config, today: date) -> bool:
    """Frozen, lost, or a graduate past the freeze date: no spending or top-ups."""
    if card.status in ("frozen", "lost"):
        return True
    when = freeze_on(card, cfg)
    return card.status == "graduated" and (when is None or today >= when)


def entry_line(ctx: Context, entry: LedgerEntry) -> str:
    label = entry.description if entry.kind == "spend" and entry.description else ctx.t(f"kind_{entry.kind}")
    sign = "+" if entry.amount_fen > 0 else ""
    return f"{to_local(entry.created_at):%m-%d %H:%M} {label} {sign}{ctx.yuan(entry.amount_fen)}"


def status_lines(ctx: Context, card: Cardholder) -> list[str]:
    """The card's status and, for anything but an active card, what it means and what to do."""
    center = ctx.cfg.school.service_center
    today = ctx.services.clock.today()
    if card.status == "graduated":
        when = freeze_on(card, ctx.cfg)
        if when is not None and today < when:
            return [
                ctx.t("balance_status", status=ctx.t("status_graduated")),
                ctx.t("balance_graduate_before", left_on=card.left_on, freeze_on=when, days=(when - today).days, center=center),
            ]
        return [
            ctx.t("balance_status", status=ctx.t("status_graduate_frozen")),
            ctx.t("balance_graduate_after", freeze_on=when or "-", balance=ctx.yuan(card.balance_fen), center=center),
        ]
    lines = [ctx.t("balance_status", status=ctx.t(f"status_{card.status}"))]
    if card.status in ("frozen", "lost"):
        lines.append(ctx.t(f"balance_{card.status}_explained", center=center))
    return lines


@routes.click("BALANCE")
@routes.text("余额", "balance", "查余额", "余额查询", "查询余额")
@routes.needs_card()
def balance(msg: Any, ctx: Context) -> str:
    card = ctx.card()
    lines = [
        ctx.t("balance_header", name=card.masked_name, no=mask_student_no(card.student_no)),
        ctx.t("balance_amount", balance=ctx.yuan(card.balance_fen)),
    ]
    if card.pending_fen > 0:
        lines.append(ctx.t("balance_pending", pending=ctx.yuan(card.pending_fen)))
    lines.extend(status_lines(ctx, card))
    entries = ctx.db.execute(
        select(LedgerEntry)
        .where(LedgerEntry.cardholder_id == card.id)
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
        .limit(RECENT)
    ).scalars()
    recent = [entry_line(ctx, e) for e in entries]
    lines.append(ctx.t("balance_recent") if recent else ctx.t("balance_no_entries"))
    lines.extend(recent)
    lines.append(ctx.t("balance_footer"))
    return "\n".join(lines)
