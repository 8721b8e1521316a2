"""TEMPLATESENDJOBFINISH: WeChat's report on a template message; its status is kept on the outbox row with its msgid
(a report that comes before its send is recorded waits for it: ``bot.outbox``)."""

from __future__ import annotations

from typing import Any

from bot.chat.context import Context
from bot.chat.router import Routes
from bot.outbox import record_job_finish

routes = Routes()


@routes.event("TEMPLATESENDJOBFINISH")
def job_finished(msg: Any, ctx: Context) -> None:
    msgid = str(getattr(msg, "id", "") or "")
    if msgid:
        record_job_finish(ctx.services, ctx.db, ctx.openid, msgid, str(getattr(msg, "status", "") or ""))
    return None
