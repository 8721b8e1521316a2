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

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.binding_lock import BindingLock
from bot.context import Context
from bot.h5auth import end_sessions
from bot.router import normalize, on
from models import Binding, Cardholder, lock_card
from models.passwords import hash_password, verify_password

STUDENT_NO = re.compile(r"^\d+$")
PASSPORT = re.compile(r"^(?=.*[A-Z])[A-Z0-9]{5,20}$")
CONFIRM_WORDS = {normalize(w) for w in ("确认", "确定", "是", "好", "解绑", "yes", "y", "ok", "confirm", "unbind")}


def compact(text: str) -> str:
    """Full-width to half-width (NFKC) and every space removed: '２０２３ ０００１' → '20230001'."""
    return "".join(unicodedata.normalize("NFKC", text or "").split())


def clean_name(text: str) -> str:
    """Names compare after NFKC and squeezing spaces; letters stay case-sensitive."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


def mask_student_no(no: str) -> str:
    """20230001 → 2023**01: recognisable for the family, useless to a passer-by reading the screen."""
    return no[:4] + "*" * (len(no) - 6) + no[-2:] if len(no) > 6 else no


@cache
def _decoy_hash() -> str:
    """Checked when no card matches, so an unknown student number takes as long as a wrong password."""
    return hash_password("no-such-card")


def _center(ctx: Context) -> str:
    return ctx.cfg.school.service_center


def _locked_text(ctx: Context, until: Any) -> str:
    return ctx.t("bind_locked", until=until.strftime("%Y-%m-%d %H:%M"), center=_center(ctx))


def _card_by_no(ctx: Context, student_no: str) -> Cardholder | None:
    return ctx.db.execute(select(Cardholder).where(Cardholder.student_no == student_no)).scalar_one_or_none()


@on.click("BIND")
@on.text("绑定", "bind", "绑卡", "绑定校园卡", "bind card")
def bind(msg: Any, ctx: Context) -> str:
    current = ctx.card()
    if current is not None:
        return ctx.t("bind_already", name=current.masked_name, no=mask_student_no(current.student_no))
    lock = BindingLock(ctx.services)
    until = lock.locked_until(lock.openid_subject(ctx.openid))
    if until is not None:
        return _locked_text(ctx, until)
    ctx.start_dialog("bind.student_no")
    return ctx.t("bind_ask_student_no")


@on.state("bind.student_no")
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


@on.state("bind.name")
def bind_name(msg: Any, ctx: Context) -> str:
    name = clean_name(msg.content)
    if not name or len(name) > 64:
        return ctx.t("bind_bad_name")
    data = ctx.dialog.data if ctx.dialog else {}
    ctx.start_dialog("bind.password", {"student_no": data.get("student_no", ""), "name": name})
    return ctx.t("bind_ask_password")


@on.state("bind.password")
def bind_password(msg: Any, ctx: Context) -> str:
    """The one message that carries a password: it is checked here and goes nowhere else."""
    data = ctx.dialog.data if ctx.dialog else {}
    student_no = str(data.get("student_no", ""))
    card = _card_by_no(ctx, student_no)
    lock = BindingLock(ctx.services)
    subjects = [lock.openid_subject(ctx.openid), lock.card_subject(student_no)]
    until = lock.locked_until(*subjects)
    if until is not None:
        ctx.end_dialog()
        return _locked_text(ctx, until)
    attempt = lock.reserve(*subjects)
    if not attempt.allowed:
        ctx.end_dialog()
        return _locked_text(ctx, attempt.until)
    if card is None:
        verify_password(_decoy_hash(), compact(msg.content))  # same cost as a real check
        matches = False
    else:
        matches = verify_password(card.password_hash, compact(msg.content)) and clean_name(card.name) == str(data.get("name", ""))
    if card is None or not matches:
        if attempt.left <= 0:
            ctx.end_dialog()
            return ctx.t("bind_mismatch", center=_center(ctx)) + "\n" + _locked_text(ctx, attempt.until)
        ctx.start_dialog("bind.student_no")
        return ctx.t("bind_mismatch", center=_center(ctx)) + "\n" + ctx.t("bind_retry", left=attempt.left)
    lock.clear(*subjects)
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
            ctx.db.add(Binding(openid=ctx.openid, cardholder_id=card.id, created_at=ctx.services.clock.utcnow()))
    except IntegrityError:
        return ctx.t("bind_already_done")
    return ctx.t("bind_success", name=card.masked_name, balance=ctx.yuan(card.balance_fen))


@on.click("UNBIND")
@on.text("解绑", "unbind", "解除绑定", "解绑校园卡")
def unbind(msg: Any, ctx: Context) -> str:
    card = ctx.card()
    if card is None:
        return ctx.t("not_bound")
    ctx.start_dialog("unbind.confirm", {"cardholder_id": card.id})
    return ctx.t("unbind_confirm", name=card.masked_name, no=mask_student_no(card.student_no))


@on.state("unbind.confirm")
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
