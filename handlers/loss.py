"""Reporting a lost card (LOSS / 挂失) and lifting the report (解挂): a confirmation to report, the card password to lift.

Two dialog states: ``loss.confirm`` (the masked name and number shown, "确认" reports at once, no password) and
``loss.password`` (the card password, handed to bot.loss, which counts it like a binding try, and forgotten).
"""

from __future__ import annotations

from typing import Any

from bot import binding as binding_rules
from bot import loss as rules
from bot.binding import compact
from bot.cards import mask_student_no
from bot.chat.context import Context
from bot.chat.router import Routes, normalize
from bot.errors import UserError
from bot.loss import Found
from models import Cardholder

routes = Routes()

CONFIRM_WORDS = {normalize(w) for w in ("确认", "确定", "是", "好", "挂失", "确认挂失", "yes", "y", "ok", "confirm", "report")}


def _who(card: Cardholder) -> dict[str, str]:
    return {"name": card.masked_name, "no": mask_student_no(card.student_no)}


def _locked_text(ctx: Context, until: Any, card: bool) -> str:
    key = "bind_card_locked" if card else "bind_locked"
    return ctx.t(key, until=until.strftime("%Y-%m-%d %H:%M"), center=ctx.cfg.school.center)


def _ask_password(ctx: Context, card: Cardholder) -> str:
    lock = binding_rules.locked(ctx.services, ctx.openid, card.student_no)
    if lock is not None:
        return _locked_text(ctx, lock.until, lock.card)
    ctx.start_dialog("loss.password", {"cardholder_id": card.id})
    return ctx.t("loss_ask_password", **_who(card))


@routes.click("LOSS")
@routes.text("挂失", "卡丢了", "校园卡丢了", "丢卡", "挂失校园卡", "lost card", "report lost", "i lost my card", "loss")
@routes.needs_card()
def loss(msg: Any, ctx: Context) -> str:
    """The menu entry serves both ways: a lost card is offered the cancel, any other the report."""
    card = ctx.bound_card
    if rules.is_lost(ctx.services, card):
        return _ask_password(ctx, card)
    ctx.start_dialog("loss.confirm", {"cardholder_id": card.id})
    return ctx.t("loss_confirm", **_who(card))


@routes.text("解挂", "解除挂失", "取消挂失", "找到了", "卡找到了", "找到卡了", "found", "found my card", "found card", "cancel loss")
@routes.needs_card()
def found(msg: Any, ctx: Context) -> str:
    card = ctx.bound_card
    if not rules.is_lost(ctx.services, card):
        return ctx.t("loss_not_lost")
    return _ask_password(ctx, card)


@routes.state("loss.confirm")
def loss_confirm(msg: Any, ctx: Context) -> str:
    ctx.end_dialog()
    if normalize(msg.content) not in CONFIRM_WORDS:
        return ctx.t("loss_kept")
    try:
        done = rules.report_lost(ctx.services, ctx.openid)
    except UserError as err:
        return err.message(ctx.lang)
    center = ctx.cfg.school.center
    return ctx.t("loss_already" if done.already else "loss_done", center=center, **_who(done.card))


@routes.state("loss.password")
def loss_password(msg: Any, ctx: Context) -> str:
    """The one message of this dialog that carries a password: it goes to bot.loss and nowhere else."""
    try:
        done = rules.cancel_loss(ctx.services, ctx.openid, compact(msg.content))
    except UserError as err:
        ctx.end_dialog()
        return err.message(ctx.lang)
    if done.outcome is Found.UNAVAILABLE:  # nothing was checked: the same step waits for the password again
        return ctx.t("verify_unavailable")
    if done.outcome is Found.WRONG and done.left > 0:
        return ctx.t("loss_wrong_password", left=done.left)
    ctx.end_dialog()
    if done.outcome is Found.FOUND:
        return ctx.t("loss_cancelled")
    assert done.lock is not None
    return _locked_text(ctx, done.lock.until, done.lock.card)
