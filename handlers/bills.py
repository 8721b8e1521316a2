"""Bills (BILLS / 账单): this month's totals and newest entries from the card system, with a link to the bill page.

The link carries no openid: the page learns who is asking through OAuth (bot/web/bills.py). When the card system
cannot answer, the reply says so plainly and shows no numbers.
"""

from __future__ import annotations

from typing import Any

from bot.adapters.cardsystem import CardSystemError
from bot.bills import entry_line, month_bill, month_label, power_payments, unavailable_text
from bot.chat.context import Context
from bot.chat.replies import Article
from bot.chat.router import Routes, remote_card_system

routes = Routes()

CHAT_LINES = 6
CHAT_POWER_LINES = 3


@routes.click("BILLS")
@routes.text("账单", "bills", "bill", "账单查询", "本月账单", "查账单")
@routes.needs_card()
@routes.calls_out(remote_card_system)
def bills(msg: Any, ctx: Context) -> str | Article:
    card = ctx.bound_card
    now = ctx.now()
    try:
        bill = month_bill(ctx.services, card.student_no, now.year, now.month)
    except CardSystemError as exc:
        return unavailable_text(ctx.t, exc, now)
    totals = "bills_totals_one" if bill.count == 1 else "bills_totals"
    lines = [ctx.t(totals, income=ctx.yuan(bill.income_fen), spent=ctx.yuan(bill.spent_fen), count=bill.count)]
    if not bill.complete:
        lines.append(ctx.t("bills_partial", count=bill.count))
    lines.extend(entry_line(ctx.t, e) for e in bill.entries[:CHAT_LINES])
    if bill.count > CHAT_LINES:
        lines.append(ctx.t("bills_more", more=bill.count - CHAT_LINES))
    if not bill.count:
        lines.append(ctx.t("bills_empty"))
    for p in power_payments(ctx.services, card.id, now.year, now.month)[:CHAT_POWER_LINES]:  # beside the card's, marked
        lines.append(ctx.t("power_bill_line", time=f"{p.at.astimezone(now.tzinfo):%m-%d %H:%M}", room=p.room, amount=ctx.yuan(p.amount_fen)))
    lines.append(ctx.t("bills_open_page"))
    return Article(
        title=ctx.t("bills_title", month=month_label(ctx.t, now.year, now.month), name=card.masked_name),
        description="\n".join(lines),
        url=f"{ctx.cfg.server.public_base_url}/bills",
    )
