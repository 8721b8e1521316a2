"""Follow and unfollow. Unfollowing keeps the binding; re-following greets the user by masked name."""

from __future__ import annotations

from typing import Any

from bot.chat.context import Context
from bot.chat.router import Routes

routes = Routes()


@routes.event("subscribe")
def subscribe(msg: Any, ctx: Context) -> str:
    ctx.user.following = True
    ctx.user.subscribed_at = ctx.services.clock.utcnow()
    card = ctx.card()
    if card is not None:
        return ctx.t("welcome_back", name=card.masked_name)
    return ctx.t("welcome", school=ctx.cfg.school.name)


@routes.event("unsubscribe")
def unsubscribe(msg: Any, ctx: Context) -> None:
    ctx.user.following = False
    ctx.user.unsubscribed_at = ctx.services.clock.utcnow()
    return None
