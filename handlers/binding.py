"""Binding a campus card to a WeChat account (BIND / 绑定) and unbinding it (UNBIND / 解绑).

The dialog is three explicit states kept in Redis: ``bind.student_no`` → ``bind.name`` → ``bind.password``.
Only the student number and the name live in the dialog data; the password is read from the message,
checked against the argon2 hash and forgotten. A mismatch never says which field was wrong.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from bot.binding_lock import Attempt, BindingLock, Lock
from bot.cards import mask_student_no
from bot.chat.context import Context
from bot.chat.router import Routes, normalize
from bot.clock import to_local
from bot.texts import t
from bot.web.auth import end_sessions
from models import Binding, Cardholder, Notice, lang_of, lock_card
from models.ledger import queue_notice
from models.passwords import hash_password, verify_password

routes = Routes()

STUDENT_NO = re.compile(r"^\d+$")
PASSPORT = re.compile(r"^(?=.*[A-Z])[A-Z0-9]{5,20}$")
CONFIRM_WORDS = {normalize(w) for w in ("确认", "确定", "是", "好", "解绑", "yes", "y", "ok", "confirm", "unbind")}


def compact(text: str) -> str:
    """Full-width to half-width (NFKC) and every space removed: '２０２３ ０００１' → '20230001'."""
    return "".join(unicodedata.normalize("NFKC", text or "").split())


def clean_name(text: str) -> str:
    """Names compare after NFKC and squeezing spaces; letters stay case-sensitive."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


@cache
def _decoy_hash() -> str:
    """Checked when no card matches, so an unknown student number takes as long as a wrong password."""
    return hash_password("no-such-card")


def _center(ctx: Context) -> str:
    return ctx.cfg.school.service_center


def _locked_text(ctx: Context, lock: Lock) -> str:
    """The card's lock tells the owner what to do; an account's lock only when it ends."""
    key = "bind_card_locked" if lock.card else "bind_locked"
    return ctx.t(key, until=lock.until.strftime("%Y-%m-%d %H:%M"), center=_center(ctx))


def _tell_bound(ctx: Context, card_id: int, kind: str, dedup: str, skip: str | None = None) -> None:
    """A notice to each account bound to the card (but ``skip``), in its language: masked number, no person."""
    card = ctx.db.get(Cardholder, card_id)
    openids = ctx.db.execute(select(Binding.openid).where(Binding.cardholder_id == card_id, Binding.openid != (skip or ""))).scalars()
    tpl = ctx.cfg.notices.template(kind)
    for openid in openids:
        lang = lang_of(ctx.db, openid)
        data = {
            "card": mask_student_no(card.student_no),
            "event": t(lang, f"notice_{kind}_event"),
            "advice": t(lang, f"notice_{kind}_advice"),
            "time": f"{ctx.now():%Y-%m-%d %H:%M}",
        }
        queue_notice(ctx.db, Notice(openid=openid, kind=kind, data=data, urgent=tpl.urgent), dedup)


def _check_password(ctx: Context, student_no: str, check: Any) -> tuple[Attempt, bool]:
    """Reserve a try on the account and the card, then run ``check()``; a wrong try that locks the card tells its
    owners (a right one gives its try back, so it locks nothing)."""
    lock = BindingLock(ctx.services)
    attempt = lock.reserve(ctx.openid, student_no)
    if not attempt.allowed:
        return attempt, False
    if check():
        lock.succeeded(ctx.openid, student_no)
        return attempt, True
    if attempt.card_tripped and (card := _card_by_no(ctx, student_no)) is not None:
        _tell_bound(ctx, card.id, "binding_guessed", f"bindguess:{student_no}:{attempt.lock.until:%Y%m%d%H%M}")
    return attempt, False


def _card_by_no(ctx: Context, student_no: str) -> Cardholder | None:
    return ctx.db.execute(select(Cardholder).where(Cardholder.student_no == student_no)).scalar_one_or_none()


@routes.click("BIND")
@routes.text("绑定", "bind", "绑卡", "绑定校园卡", "bind card")
def bind(msg: Any, ctx: Context) -> str:
    current = ctx.card()
    if current is not None:
        return ctx.t("bind_already", name=current.masked_name, no=mask_student_no(current.student_no))
    locked = BindingLock(ctx.services).locked(ctx.openid)
    if locked is not None:
        return _locked_text(ctx, locked)
    ctx.start_dialog("bind.student_no")
    return ctx.t("bind_ask_student_no")


@routes.state("bind.student_no")
def bind_student_no(msg: Any, ctx: Context) -> str:
    answer = compact(msg.content).upper()
    if STUDENT_NO.match(answer):
        if not 8 <= len(answer) <= 12:
            return ctx.t("bind_bad_student_no_length", count=len(answer))
        ctx.start_dialog("bind.name", {"student_no": answer})
        return ctx.t("bind_ask_name")
    if PASSPORT.match(answer):
        card = ctx.db.execute(select(Cardholder).where(Cardholder.passport_no == answer)).scalars().first()
        if card is None:
            ctx.end_dialog()
            return ctx.t("bind_passport_unregistered", center=_center(ctx))
        ctx.start_dialog("bind.name", {"student_no": card.student_no})
        return ctx.t("bind_ask_name")
    return ctx.t("bind_bad_student_no")


@routes.state("bind.name")
def bind_name(msg: Any, ctx: Context) -> str:
    name = clean_name(msg.content)
    if not name or len(name) > 64:
        return ctx.t("bind_bad_name")
    data = ctx.dialog.data if ctx.dialog else {}
    ctx.start_dialog("bind.password", {"student_no": data.get("student_no", ""), "name": name})
    return ctx.t("bind_ask_password")


@routes.state("bind.password")
def bind_password(msg: Any, ctx: Context) -> str:
    """The one message that carries a password: it is checked here and goes nowhere else."""
    data = ctx.dialog.data if ctx.dialog else {}
    student_no = str(data.get("student_no", ""))
    card = _card_by_no(ctx, student_no)
    locked = BindingLock(ctx.services).locked(ctx.openid, student_no)
    if locked is not None:
        ctx.end_dialog()
        return _locked_text(ctx, locked)
    password, name = compact(msg.content), str(data.get("name", ""))

    def check() -> bool:
        if card is None:
            verify_password(_decoy_hash(), password)  # same cost as a real check
            return False
        return verify_password(card.password_hash, password) and clean_name(card.name) == name

    attempt, matches = _check_password(ctx, student_no, check)
    if not attempt.allowed:
        ctx.end_dialog()
        return _locked_text(ctx, attempt.lock)
    if not matches:
        if attempt.left <= 0:
            ctx.end_dialog()
            return ctx.t("bind_mismatch", center=_center(ctx)) + "\n" + _locked_text(ctx, attempt.lock)
        ctx.start_dialog("bind.student_no")
        return ctx.t("bind_mismatch", center=_center(ctx)) + "\n" + ctx.t("bind_retry", left=attempt.left)
    ctx.end_dialog()
    return _attach(ctx, card)


def _attach(ctx: Context, card: Cardholder) -> str:
    """Bind under the card's row lock, so concurrent family members cannot exceed the per-card maximum."""
    current = ctx.binding()
    if current is not None:
        if current.cardholder_id == card.id:
            return ctx.t("bind_success", name=card.masked_name, balance=ctx.yuan(card.balance_fen))
        return ctx.t("bind_already", name=current.cardholder.masked_name, no=mask_student_no(current.cardholder.student_no))
    card = lock_card(ctx.db, card.id)
    count = ctx.db.execute(select(func.count()).select_from(Binding).where(Binding.cardholder_id == card.id)).scalar_one()
    limit = ctx.cfg.binding.max_bindings_per_card
    if count >= limit:
        return ctx.t("bind_card_full", max=limit, center=_center(ctx))
    try:
        with ctx.db.begin_nested():
            binding = Binding(openid=ctx.openid, cardholder_id=card.id, created_at=ctx.services.clock.utcnow())
            ctx.db.add(binding)
    except IntegrityError:
        return ctx.t("bind_already_done")
    _tell_bound(ctx, card.id, "binding_added", f"bindadd:{binding.id}", skip=ctx.openid)
    return ctx.t("bind_success", name=card.masked_name, balance=ctx.yuan(card.balance_fen))


@routes.click("UNBIND")
@routes.text("解绑", "unbind", "解除绑定", "解绑校园卡")
@routes.needs_card()
def unbind(msg: Any, ctx: Context) -> str:
    card = ctx.card()
    ctx.start_dialog("unbind.confirm", {"cardholder_id": card.id})
    return ctx.t("unbind_confirm", name=card.masked_name, no=mask_student_no(card.student_no))


@routes.state("unbind.confirm")
def unbind_confirm(msg: Any, ctx: Context) -> str:
    data = ctx.dialog.data if ctx.dialog else {}
    ctx.end_dialog()
    if normalize(msg.content) not in CONFIRM_WORDS:
        return ctx.t("unbind_kept")
    binding = ctx.binding()
    if binding is None or binding.cardholder_id != data.get("cardholder_id"):
        return ctx.t("not_bound")
    ctx.db.delete(binding)
    end_sessions(ctx.services, ctx.openid)
    return ctx.t("unbind_done")


@routes.click("BINDINGS")
@routes.text("绑定管理", "manage bindings", "bindings", "管理绑定")
@routes.needs_card()
def bindings(msg: Any, ctx: Context) -> str:
    card = ctx.card()
    locked = BindingLock(ctx.services).locked(ctx.openid, card.student_no)
    if locked is not None:
        return _locked_text(ctx, locked)
    ctx.start_dialog("bindings.password", {"cardholder_id": card.id})
    return ctx.t("bindings_ask_password", name=card.masked_name, no=mask_student_no(card.student_no))


@routes.state("bindings.password")
def bindings_password(msg: Any, ctx: Context) -> str:
    """The card password again, counted like a binding try: being bound is not enough to see or remove others."""
    data = ctx.dialog.data if ctx.dialog else {}
    card = ctx.card()
    if card is None or card.id != data.get("cardholder_id"):
        ctx.end_dialog()
        return ctx.t("not_bound")
    password = compact(msg.content)
    attempt, ok = _check_password(ctx, card.student_no, lambda: verify_password(card.password_hash, password))
    if not attempt.allowed or (not ok and attempt.left <= 0):
        ctx.end_dialog()
        return _locked_text(ctx, attempt.lock)
    if not ok:
        return ctx.t("bindings_wrong_password", left=attempt.left)
    rows = ctx.db.execute(
        select(Binding).where(Binding.cardholder_id == card.id).order_by(Binding.created_at, Binding.id)
    ).scalars().all()
    listed = [[b.id, b.created_at.isoformat()] for b in rows]  # with the time, so a reused id never matches
    ctx.start_dialog("bindings.manage", {"cardholder_id": card.id, "listed": listed})
    lines = [ctx.t("bindings_list_head", name=card.masked_name, no=mask_student_no(card.student_no), count=len(rows))]
    for n, b in enumerate(rows, 1):
        lines.append(ctx.t("bindings_item_you" if b.openid == ctx.openid else "bindings_item", n=n, time=_bound_at(b)))
    lines.append(ctx.t("bindings_list_foot", center=_center(ctx)))
    return "\n".join(lines)


@routes.state("bindings.manage")
def bindings_manage(msg: Any, ctx: Context) -> str:
    """Remove the binding numbered in the list just shown; it loses access at once (every query reads the row)."""
    data = ctx.dialog.data if ctx.dialog else {}
    listed = data.get("listed", [])
    choice = compact(msg.content)
    if not choice.isdigit() or not 1 <= int(choice) <= len(listed):
        return ctx.t("bindings_bad_choice", count=len(listed))
    ctx.end_dialog()
    mine = ctx.binding()
    if mine is None or mine.cardholder_id != data.get("cardholder_id"):
        return ctx.t("not_bound")
    binding_id, created = listed[int(choice) - 1]
    target = ctx.db.get(Binding, binding_id)
    if target is None or target.cardholder_id != mine.cardholder_id or target.created_at.isoformat() != created:
        return ctx.t("bindings_gone")
    when, own = _bound_at(target), target.openid == ctx.openid
    removed = ctx.db.execute(delete(Binding).where(Binding.id == target.id, Binding.cardholder_id == mine.cardholder_id))
    if removed.rowcount != 1:  # removed by another account meanwhile
        return ctx.t("bindings_gone")
    end_sessions(ctx.services, target.openid)
    return ctx.t("bindings_removed_self" if own else "bindings_removed", n=choice, time=when)


def _bound_at(b: Binding) -> str:
    return f"{to_local(b.created_at):%Y-%m-%d %H:%M}"
