"""AUTODEBIT / 自动代扣: one article linking to the /autodebit page (sign, view, cancel, refunds), or why not."""

from __future__ import annotations

from typing import Any

from bot.autodebit import active_agreement
from bot.chat.context import Context
from bot.chat.replies import Article
from bot.chat.router import Routes
from models.enums import CardStatus

routes = Routes()


@routes.click("AUTODEBIT")
@routes.text("自动代扣", "auto debit", "autodebit", "auto-debit", "自动充值", "自动圈存", "auto top-up", "auto topup")
@routes.needs_card("autodebit_not_bound")
def autodebit(msg: Any, ctx: Context) -> Article | str:
    card = ctx.bound_card
    if card.status != CardStatus.ACTIVE:
        return ctx.t("autodebit_card_blocked", center=ctx.cfg.school.center)
    c = ctx.cfg.autodebit
    agreement = active_agreement(ctx.db, card.id, ctx.services.clock.today())
    if agreement is None:
        desc = ctx.t("autodebit_article_unsigned", threshold=c.threshold, amount=c.amount, hours=str(c.bank_hours))
    else:
        desc = ctx.t(
            "autodebit_article_signed",
            last4=agreement.bank_last4,
            threshold=ctx.yuan(agreement.threshold_fen),
            amount=ctx.yuan(agreement.amount_fen),
            ends=f"{agreement.expires_on:%Y-%m-%d}",
        )
    return Article(title=ctx.t("autodebit_article_title"), description=desc, url=f"{ctx.cfg.server.public_base_url}/autodebit")
