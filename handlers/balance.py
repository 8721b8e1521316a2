"""Balance (BALANCE / 余额): the card system's balance and its time, card status explained, money paid but not yet
on the card, and (when the card system is the bot's own ledger, a local read) the last five entries.

One call to the card system (bot.balances): with a remote one the recent entries are left to 账单, so the click
costs a single round trip; when it does not answer, the last known balance is shown with its time and why.
"""

from __future__ import annotations

from typing import Any

from bot import announce, balances
from bot.balances import Stale
from bot.bills import entry_line
from bot.cards import can_transact, freeze_on, mask_student_no
from bot.chat.context import Context
from bot.chat.router import NotBound, Routes, remote_card_system
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
@routes.needs_card(reads_card=True)
@routes.calls_out(remote_card_system)
def balance(msg: Any, ctx: Context) -> str:
    """The card is read in the same statement as its balance and entries (the hot path: one round trip)."""
    center = ctx.cfg.school.center
    seen = balances.glance(ctx.services, ctx.openid, RECENT)
    if seen is None:
        raise NotBound
    shown = seen.shown
    card = shown.card
    lines = [ctx.t("balance_header", name=card.masked_name, no=mask_student_no(card.student_no)), balances.amount_line(ctx.t, shown)]
    if why := balances.stale_line(ctx.t, shown, center):
        lines.append(why)
    lines.extend(status_lines(ctx, card, "-" if shown.balance_fen is None else ctx.yuan(shown.balance_fen)))
    if seen.pending:
        lines.extend(balances.waiting_lines(ctx.services, card.id, ctx.lang, center))
    if seen.recent is not None:
        lines.extend([ctx.t("balance_recent"), *(entry_line(ctx.t, e) for e in seen.recent)] if seen.recent else [ctx.t("balance_no_entries")])
    # a maintenance this read just found is announced from now on: read the lines again rather than those of arrival
    lines.extend(announce.lines(ctx.services, ctx.t, None if shown.stale is Stale.MAINTENANCE else ctx.announced))
    lines.append(ctx.t("balance_footer"))
    return "\n".join(lines)
