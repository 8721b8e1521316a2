"""ALERTS / 提醒设置: one article linking to the /alerts page, where the student chooses the card's alerts."""

from __future__ import annotations

from typing import Any

from bot.chat.context import Context
from bot.chat.replies import Article
from bot.chat.router import Routes

routes = Routes()


@routes.click("ALERTS")
@routes.text("提醒设置", "提醒", "消费提醒", "余额提醒", "alerts", "alert settings", "notifications")
@routes.needs_card()
def alerts(msg: Any, ctx: Context) -> Article:
    return Article(title=ctx.t("alerts_article_title"), description=ctx.t("alerts_article_desc"), url=f"{ctx.cfg.server.public_base_url}/alerts")
