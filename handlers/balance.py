"""Balance (BALANCE / 余额): balance, pending top-ups, card status explained, the last five entries."""

from __future__ import annotations

from typing import Any

from bot.bills import entry_line, recent_entries
from bot.cards import can_transact, freeze_on, mask_student_no
from bot.chat.context import Context
from bot.chat.router import Routes
from models import Cardholder
from models.enums import CardStatus

routes = Routes()

RECENT = 5


def status_lines(ctx: Context, card: Cardholder) -> list[str]:
    """The card's status and, for anything but an active card, what it means and what to do."""
    center = ctx.cfg.school.service_center
    if card.status == CardStatus.GRADUATED:
        today = ctx.services.clock.today()
        when = freeze_on(card, ctx.cfg)
        if when is not None and can_transact(card, today, ctx.cfg) is None:
            return [
                ctx.t("balance_status", status=ctx.t("status_graduated")),
                ctx.t("balance_graduate_before", left_on=card.left_on, freeze_on=when, days=(when - today).days, center=center),
            ]
        return [
            ctx.t("balance_status", status=ctx.t("status_graduate_frozen")),
            ctx.t("balance_graduate_after", freeze_on=when or "-", balance=ctx.yuan(card.balance_fen), center=center),
        ]
    lines = [ctx.t("balance_status", status=ctx.t(f"status_{card.status}"))]
    if card.status in (CardStatus.FROZEN, CardStatus.LOST):
        lines.append(ctx.t(f"balance_{card.status}_explained", center=center))
    return lines


@routes.click("BALANCE")
@routes.text("余额", "balance", "查余额", "余额查询", "查询余额")
@routes.needs_card()
def balance(msg: Any, ctx: Context) -> str:
    card = ctx.bound_card
    lines = [
        ctx.t("balance_header", name=card.masked_name, no=mask_student_no(card.student_no)),
        ctx.t("balance_amount", balance=ctx.yuan(card.balance_fen)),
    ]
    lines.extend(status_lines(ctx, card))
    recent = [entry_line(ctx.t, e) for e in recent_entries(ctx.db, card.id, RECENT)]
    lines.append(ctx.t("balance_recent") if recent else ctx.t("balance_no_entries"))
    lines.extend(recent)
    lines.append(ctx.t("balance_footer"))
    return "\n".join(lines)
