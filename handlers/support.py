"""What the bot says to a message no word matched (``bot.chat.understand``): the anti-scam warning, the FAQ's
answer or a close call's choices, a person (``人工``, or misunderstood messages in a row), and the fallback that
shows what the bot can do."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.chat.context import Context
from bot.chat.replies import Reply, Text, Transfer
from bot.chat.router import Routes
from bot.chat.understand import Kind

routes = Routes()

MISUNDERSTOOD_TTL = 600  # seconds: "in a row" means within ten minutes of each other


@routes.text("人工", "人工客服", "转人工", "客服", "真人", "human", "agent", "customer service", "real person")
def person(msg: Any, ctx: Context) -> Reply:
    return hand_off(ctx)


@routes.understood
def understood(msg: Any, ctx: Context) -> Reply:
    meaning = ctx.meaning
    assert meaning is not None
    ctx.services.store.r.delete(_misunderstood_key(ctx))
    if meaning.kind is Kind.SCAM:
        return Text(ctx.t("scam_warning", phone=_phone(ctx)))
    if meaning.kind is Kind.HUMAN:
        return hand_off(ctx)
    if meaning.kind is Kind.CHOICES:
        items = [ctx.t("faq_choice_item", title=e.title.get(ctx.lang) or e.title["zh"]) for e in meaning.entries]
        return Text(ctx.t("faq_choices", choices="\n".join(items)))
    entry = meaning.entries[0]
    return Text((entry.answer.get(ctx.lang) or entry.answer["zh"]).format_map(_faq_values(ctx)))


@routes.fallback
def fallback(msg: Any, ctx: Context) -> Reply:
    """Shows what the bot can do; the ``[support] misunderstood``-th text in a row goes to a person instead."""
    if msg.type == "text":
        r, key = ctx.services.store.r, _misunderstood_key(ctx)
        count = r.incr(key)
        r.expire(key, MISUNDERSTOOD_TTL)
        if int(count) >= ctx.cfg.support.misunderstood:
            r.delete(key)
            reply = hand_off(ctx)
            if isinstance(reply, Text):
                return Text(ctx.t("support_misunderstood") + "\n" + reply.content)
            return reply
    return Text(ctx.t("fallback_menu"))


def hand_off(ctx: Context) -> Reply:
    """WeChat's customer service when it is on and people are in; else the phone and the hours, or when they answer."""
    s = ctx.cfg.support
    now = ctx.now()
    days = ctx.t("support_every_day") if len(s.days) == 7 else ctx.t("support_weekdays") if s.days == [1, 2, 3, 4, 5] else ""
    if not _open(ctx, now):
        return Text(ctx.t("support_closed", days=days, hours=s.hours, next=_when(ctx, _next_open(ctx, now)), phone=_phone(ctx)))
    if s.transfer:
        return Transfer(s.kf_account)
    return Text(ctx.t("support_phone", phone=_phone(ctx), days=days, hours=s.hours, center=ctx.cfg.school.center))


def _open(ctx: Context, at: datetime) -> bool:
    s = ctx.cfg.support
    return at.isoweekday() in s.days and s.hours.contains(at.time())


def _next_open(ctx: Context, now: datetime) -> datetime:
    s = ctx.cfg.support
    for ahead in range(8):
        day = (now + timedelta(days=ahead)).date()
        start = datetime.combine(day, s.hours.start, tzinfo=now.tzinfo)
        if day.isoweekday() in s.days and start > now:
            return start
    return now  # unreachable with at least one weekday configured


def _when(ctx: Context, at: datetime) -> str:
    return f"{at.month}月{at.day}日 {at:%H:%M}" if ctx.lang == "zh" else f"{at:%a %d %b %H:%M}"


def _phone(ctx: Context) -> str:
    return ctx.cfg.support.phone or ctx.cfg.school.service_phone


def _misunderstood_key(ctx: Context) -> str:
    return ctx.services.store.key("misunderstood", ctx.openid)


def _faq_values(ctx: Context) -> dict[str, object]:
    c = ctx.cfg
    return {
        "phone": _phone(ctx),
        "center": c.school.center.told(ctx.lang),
        "hours": f"{c.support.hours}",
        "single": c.topup.single_limit,
        "daily": c.topup.daily_limit,
        "threshold": c.autodebit.threshold,
        "amount": c.autodebit.amount,
        "months": c.graduates.freeze_after_months,
        "bindings": c.binding.max_bindings_per_card,
    }
