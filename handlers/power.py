"""POWER / 电费: one article linking to the /power page (rooms, remaining kWh, paying; identity comes from OAuth there)."""

from __future__ import annotations

from typing import Any

from bot.chat.context import Context
from bot.chat.replies import Article
from bot.chat.router import Routes

routes = Routes()


@routes.click("POWER")
@routes.text("电费", "交电费", "缴电费", "electricity")
@routes.needs_card()
def power(msg: Any, ctx: Context) -> Article:
    return Article(
        title=ctx.t("power_article_title"),
        description=ctx.t("power_article_desc"),
        url=f"{ctx.cfg.server.public_base_url}/power",
    )
