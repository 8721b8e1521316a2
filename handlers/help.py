"""Help, FAQ, the school's rules, language switch, cancel, and the replies to what the bot does not handle."""

from __future__ import annotations

from typing import Any

from bot import lang_menu
from bot.chat.context import Context
from bot.chat.router import Routes

routes = Routes()


def _limits(ctx: Context) -> dict[str, Any]:
    c = ctx.cfg
    return {
        "single": c.topup.single_limit,
        "daily": c.topup.daily_limit,
        "threshold": c.autodebit.threshold,
        "amount": c.autodebit.amount,
    }


@routes.click("HELP")
@routes.text("帮助", "help", "?", "？", "菜单", "menu")
def help_(msg: Any, ctx: Context) -> str:
    return ctx.t("help", **_limits(ctx))


@routes.click("FAQ")
@routes.text("常见问题", "问题", "faq", "problem", "problems")
def faq(msg: Any, ctx: Context) -> str:
    return ctx.t("faq", phone=ctx.cfg.school.service_phone)


@routes.click("RULES")
@routes.text("规则", "须知", "限额", "退款", "rules", "limits", "refund")
def rules(msg: Any, ctx: Context) -> str:
    c = ctx.cfg
    return ctx.t(
        "rules",
        single=c.topup.single_limit,
        daily=c.topup.daily_limit,
        center=c.school.center,
        months=c.graduates.freeze_after_months,
    )


@routes.click("LANG")
@routes.text("english", "英文", "中文", "chinese", "language", "语言")
def language(msg: Any, ctx: Context) -> str:
    """The words pick the language; the LANG menu button toggles it. The menu follows (the English menu's user tag)."""
    before = ctx.lang
    if msg.type == "text":
        word = msg.content.strip().casefold()
        ctx.user.lang = "en" if word in ("english", "英文") else "zh" if word in ("中文", "chinese") else _other(ctx.lang)
    else:
        ctx.user.lang = _other(ctx.lang)
    if ctx.lang != before:
        lang_menu.follow_language(ctx.services, ctx.openid, ctx.lang)
    return ctx.t("language_set")


def _other(lang: str) -> str:
    return "en" if lang == "zh" else "zh"


@routes.cancel("取消", "cancel", "退出", "quit", "exit")
def cancel(msg: Any, ctx: Context) -> str:
    return ctx.t("cancelled") if ctx.end_dialog() else ctx.t("nothing_to_cancel")


@routes.expired
def expired(msg: Any, ctx: Context) -> str:
    return ctx.t("dialog_expired", minutes=max(1, ctx.cfg.binding.dialog_ttl_seconds // 60))


@routes.msgtype("*")
def unsupported(msg: Any, ctx: Context) -> str:
    return ctx.t("unsupported_type")


@routes.event("view", "location", "scan")
def quiet_event(msg: Any, ctx: Context) -> None:
    """Events that need no answer: reply 'success'."""
    return None
