"""TOPUP / 充值: one article linking to the /topup page (identity comes from OAuth there, never from the URL).

It tells what may still be topped up today, computed as the page and the order API compute it (``remaining_today``).
"""

from __future__ import annotations

from typing import Any

from bot import announce
from bot.chat.context import Context
from bot.chat.replies import Article
from bot.chat.router import Routes
from bot.topup import card_refusal, remaining_today

routes = Routes()


@routes.click("TOPUP")
@routes.text("充值", "top up", "topup", "top-up", "recharge")
@routes.needs_card()
def topup(msg: Any, ctx: Context) -> Article | str:
    card = ctx.bound_card
    refusal = card_refusal(card)
    if refusal is not None:
        return refusal.message(ctx.lang)
    c = ctx.cfg.topup
    remaining = remaining_today(ctx.cfg, ctx.db, card.id, ctx.now().date())
    notes = announce.lines(ctx.services, ctx.t, ctx.announced)
    return Article(
        title=ctx.t("topup_article_title"),
        description="\n".join(
            notes
            + [
                ctx.t(
                    "topup_article_desc",
                    name=card.masked_name,
                    balance=ctx.yuan(card.balance_fen),
                    remaining=ctx.yuan(remaining),
                    single=c.single_limit,
                    daily=c.daily_limit,
                )
            ]
        ),
        url=f"{ctx.cfg.server.public_base_url}/topup",
    )
