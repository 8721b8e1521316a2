"""Balance (BALANCE / 余额): the card system's balance and its time, card status explained, money paid but not yet
on the card, and (when the card system is the bot's own ledger, a local read) the last five entries.

One call to the card system (bot.balances): with a remote one the recent entries are left to 账单, so the click
costs a single round trip; when it does not answer, the last known balance is shown with its time and why.
"""

from __future__ import annotations

from typing import Any

from bot import balances
from bot.adapters.cardsystem import CardSystemError
from bot.bills import entry_line
from bot.cards import can_transact, freeze_on, mask_student_no
from bot.chat.context import Context
from bot.chat.router import Routes
from models import Cardholder
from models.enums import CardStatus

routes = Routes()

RECENT = 5


def status_lines(ctx: Context, card: Cardholder, balance: str) -> list[str]:
    """The card's status and, for anything but an active card, what it means and what to do."""
    center = ctx.cfg.school.center
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
            ctx.t("balance_graduate_after", freeze_on=when or "-", balance=balance, center=center),
        ]
    lines = [ctx.t("balance_status", status=ctx.t(f"status_{card.status}"))]
    if card.status in (CardStatus.FROZEN, CardStatus.LOST):
        lines.append(ctx.t(f"balance_{card.status}_explained", center=center))
    return lines


@routes.click("BALANCE")
@routes.text("余额", "balance", "查余额", "余额查询", "查询余额")
@routes.needs_card()
def balance(msg: Any, ctx: Context) -> str:
    center = ctx.cfg.school.center
    shown = balances.read(ctx.services, ctx.bound_card)
    card = shown.card
    lines = [ctx.t("balance_header", name=card.masked_name, no=mask_student_no(card.student_no)), balances.amount_line(ctx.t, shown)]
    if why := balances.stale_line(ctx.t, shown, center):
        lines.append(why)
    lines.extend(status_lines(ctx, card, "-" if shown.balance_fen is None else ctx.yuan(shown.balance_fen)))
    lines.extend(balances.waiting_lines(ctx.services, card.id, ctx.lang, center))
    if not ctx.services.card_system.remote:
        lines.extend(_recent(ctx, card.student_no))
    lines.append(ctx.t("balance_footer"))
    return "\n".join(lines)


def _recent(ctx: Context, student_no: str) -> list[str]:
    """The last entries, when the card system is the bot's own ledger (a local read, no extra round trip)."""
    try:
        recent = [entry_line(ctx.t, e) for e in ctx.services.card_system.entries(student_no, limit=RECENT)]
    except CardSystemError:
        return []
    return [ctx.t("balance_recent"), *recent] if recent else [ctx.t("balance_no_entries")]
