"""Binding a campus card to a WeChat account (BIND / 绑定) and unbinding it (UNBIND / 解绑).

The dialog is three explicit states kept in Redis: ``bind.student_no`` → ``bind.name`` → ``bind.password``.
Only the student number and the name live in the dialog data; the password is read from the message, handed to
bot.binding (the rules: lockout, password check, the per-card maximum, notices) and forgotten.
"""

from __future__ import annotations

import re
from typing import Any

from bot import binding as rules
from bot.binding import Outcome, Removal, Verdict, compact
from bot.binding_lock import Lock
from bot.cards import mask_student_no
from bot.chat.context import Context
from bot.chat.router import Routes, normalize, remote_card_system
from bot.clock import to_local
from bot.texts import Localized
from models import Binding

routes = Routes()

STUDENT_NO = re.compile(r"^\d+$")
PASSPORT = re.compile(r"^(?=.*[A-Z])[A-Z0-9]{5,20}$")
# A student number with a slip of the keyboard (``2023000l``, ``2O230001``): digits with one or two letters among
# them; a passport number starts with letters (E12345678, G1234567) or holds several.
MISTYPED_NO = re.compile(r"^\d{3,}[A-Z]{1,2}\d*$|^\d+[A-Z]\d+$|^\d{6,}[^A-Z\d]+\d*$")
PHONE = re.compile(r"^1[3-9]\d{9}$")
CONFIRM_WORDS = {normalize(w) for w in ("确认", "确定", "是", "好", "解绑", "yes", "y", "ok", "confirm", "unbind")}


def _center(ctx: Context) -> Localized:
    return ctx.cfg.school.center


def _locked_text(ctx: Context, lock: Lock | None) -> str:
    """The card's lock tells the owner what to do; an account's lock only when it ends."""
    assert lock is not None
    key = "bind_card_locked" if lock.card else "bind_locked"
    return ctx.t(key, until=lock.until.strftime("%Y-%m-%d %H:%M"), center=_center(ctx))


@routes.click("BIND")
@routes.text("绑定", "bind", "绑卡", "绑定校园卡", "bind card")
def bind(msg: Any, ctx: Context) -> str:
    current = ctx.card()
    if current is not None:
        return ctx.t("bind_already", name=current.masked_name, no=mask_student_no(current.student_no))
    locked = rules.locked(ctx.services, ctx.openid)
    if locked is not None:
        return _locked_text(ctx, locked)
    ctx.start_dialog("bind.student_no")
    return ctx.t("bind_ask_student_no")


@routes.state("bind.student_no")
def bind_student_no(msg: Any, ctx: Context) -> str:
    answer = compact(msg.content).upper()
    if PHONE.match(answer):
        return ctx.t("bind_phone_not_student_no")
    if MISTYPED_NO.match(answer):
        return ctx.t("bind_student_no_digits")
    if STUDENT_NO.match(answer):
        if not 8 <= len(answer) <= 12:
            return ctx.t("bind_bad_student_no_length", count=len(answer))
        ctx.start_dialog("bind.name", {"student_no": answer})
        return ctx.t("bind_ask_name")
    if PASSPORT.match(answer):
        student_no = rules.student_no_for_passport(ctx.services, answer)
        if student_no is None:
            ctx.end_dialog()
            return ctx.t("bind_passport_unregistered", center=_center(ctx))
        ctx.start_dialog("bind.name", {"student_no": student_no})
        return ctx.t("bind_ask_name")
    return ctx.t("bind_bad_student_no")


@routes.state("bind.name")
def bind_name(msg: Any, ctx: Context) -> str:
    name = rules.clean_name(msg.content)
    if not name or len(name) > 64:
        return ctx.t("bind_bad_name")
    data = ctx.dialog.data if ctx.dialog else {}
    ctx.start_dialog("bind.password", {"student_no": data.get("student_no", ""), "name": name})
    return ctx.t("bind_ask_password")


@routes.state("bind.password")
@routes.calls_out(remote_card_system)
def bind_password(msg: Any, ctx: Context) -> str:
    """The one message that carries a password: it is checked by bot.binding and goes nowhere else."""
    data = ctx.dialog.data if ctx.dialog else {}
    done = rules.bind(ctx.services, ctx.openid, str(data.get("student_no", "")), str(data.get("name", "")), compact(msg.content))
    if done.outcome == Outcome.UNAVAILABLE:  # nothing was checked: the same step waits for the password again
        ctx.start_dialog("bind.password", data)
        return ctx.t("verify_unavailable")
    if done.outcome == Outcome.MISMATCH and done.left > 0:
        ctx.start_dialog("bind.student_no")
        return ctx.t("bind_mismatch", center=_center(ctx)) + "\n" + ctx.t("bind_retry", left=done.left)
    ctx.end_dialog()
    if done.outcome == Outcome.LOCKED:
        return _locked_text(ctx, done.lock)
    if done.outcome == Outcome.MISMATCH:
        return ctx.t("bind_mismatch", center=_center(ctx)) + "\n" + _locked_text(ctx, done.lock)
    if done.outcome == Outcome.FULL:
        return ctx.t("bind_card_full", max=ctx.cfg.binding.max_bindings_per_card, center=_center(ctx))
    if done.outcome == Outcome.RACED:
        return ctx.t("bind_already_done")
    assert done.card is not None
    if done.outcome == Outcome.ALREADY:
        return ctx.t("bind_already", name=done.card.masked_name, no=mask_student_no(done.card.student_no))
    if ctx.services.card_system.remote:  # the balance is the card system's: 余额 asks it, with its time
        return ctx.t("bind_success_remote", name=done.card.masked_name)
    return ctx.t("bind_success", name=done.card.masked_name, balance=ctx.yuan(done.card.balance_fen))


@routes.click("UNBIND")
@routes.text("解绑", "unbind", "解除绑定", "解绑校园卡")
@routes.needs_card()
def unbind(msg: Any, ctx: Context) -> str:
    card = ctx.bound_card
    ctx.start_dialog("unbind.confirm", {"cardholder_id": card.id})
    return ctx.t("unbind_confirm", name=card.masked_name, no=mask_student_no(card.student_no))


@routes.state("unbind.confirm")
def unbind_confirm(msg: Any, ctx: Context) -> str:
    data = ctx.dialog.data if ctx.dialog else {}
    ctx.end_dialog()
    if normalize(msg.content) not in CONFIRM_WORDS:
        return ctx.t("unbind_kept")
    card_id = data.get("cardholder_id")
    if not isinstance(card_id, int) or not rules.unbind(ctx.services, ctx.openid, card_id):
        return ctx.t("not_bound")
    return ctx.t("unbind_done")


@routes.click("BINDINGS")
@routes.text("绑定管理", "manage bindings", "bindings", "管理绑定")
@routes.needs_card()
def bindings(msg: Any, ctx: Context) -> str:
    card = ctx.bound_card
    locked = rules.locked(ctx.services, ctx.openid, card.student_no)
    if locked is not None:
        return _locked_text(ctx, locked)
    ctx.start_dialog("bindings.password", {"cardholder_id": card.id})
    return ctx.t("bindings_ask_password", name=card.masked_name, no=mask_student_no(card.student_no))


@routes.state("bindings.password")
@routes.calls_out(remote_card_system)
def bindings_password(msg: Any, ctx: Context) -> str:
    """The card password again, counted like a binding try: being bound is not enough to see or remove others."""
    data = ctx.dialog.data if ctx.dialog else {}
    card = ctx.card()
    if card is None or card.id != data.get("cardholder_id"):
        ctx.end_dialog()
        return ctx.t("not_bound")
    attempt, verdict = rules.check_owner(ctx.services, ctx.openid, card.student_no, compact(msg.content))
    if attempt.allowed and verdict is Verdict.UNAVAILABLE:
        return ctx.t("verify_unavailable")
    ok = verdict is Verdict.RIGHT
    if not attempt.allowed or (not ok and attempt.left <= 0):
        ctx.end_dialog()
        return _locked_text(ctx, attempt.lock)
    if not ok:
        return ctx.t("bindings_wrong_password", left=attempt.left)
    rows = rules.bindings_of(ctx.services, card.id)
    listed = [[b.id, b.created_at.isoformat()] for b in rows]  # with the time, so a reused id never matches
    ctx.start_dialog("bindings.manage", {"cardholder_id": card.id, "listed": listed})
    lines = [ctx.t("bindings_list_head", name=card.masked_name, no=mask_student_no(card.student_no), count=len(rows))]
    for n, b in enumerate(rows, 1):
        lines.append(ctx.t("bindings_item_you" if b.openid == ctx.openid else "bindings_item", n=n, time=_bound_at(b)))
    lines.append(ctx.t("bindings_list_foot", center=_center(ctx)))
    return "\n".join(lines)


@routes.state("bindings.manage")
def bindings_manage(msg: Any, ctx: Context) -> str:
    """Remove the binding numbered in the list just shown."""
    data = ctx.dialog.data if ctx.dialog else {}
    listed = data.get("listed", [])
    choice = compact(msg.content)
    if not choice.isdigit() or not 1 <= int(choice) <= len(listed):
        return ctx.t("bindings_bad_choice", count=len(listed))
    ctx.end_dialog()
    binding_id, created = listed[int(choice) - 1]
    card_id = data.get("cardholder_id")
    if not isinstance(card_id, int):
        return ctx.t("not_bound")
    outcome, target = rules.remove_binding(ctx.services, ctx.openid, card_id, binding_id, created)
    if outcome == Removal.NOT_BOUND:
        return ctx.t("not_bound")
    if target is None:
        return ctx.t("bindings_gone")
    return ctx.t("bindings_removed_self" if target.openid == ctx.openid else "bindings_removed", n=choice, time=_bound_at(target))


def _bound_at(b: Binding) -> str:
    return f"{to_local(b.created_at):%Y-%m-%d %H:%M}"
