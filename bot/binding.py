"""Binding rules: who may bind a card, how many accounts may hold it, and who is told (the chat dialog is handlers/binding.py).

A card is found by student number (or, for international students, by the passport number in the bot's roster);
its current password — the card system owns passwords, students change them at kiosks — is checked by the card
system (``verify_holder``) only with a try reserved under the lockout (bot.binding_lock), and a mismatch never says
which field was wrong. When the card system does not answer, the try is given back and the student asked to try
later. A holder the card system vouches for gets (or updates) the bot's local ``Cardholder`` row, so no roster is
needed; its password hash there can never verify. Binding happens under the card's row
lock, so family members binding at once cannot pass ``max_bindings_per_card``. The card's other accounts are told
of a new binding, and all of them when guessing locks the card. Each function that writes owns its transaction.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, Delete, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import notices
from bot.adapters.cardsystem import CardSystemError, Holder, VerifyResult
from bot.binding_lock import Attempt, BindingLock, Lock
from bot.cards import mask_student_no
from bot.notices import Said
from bot.sessions import end_sessions
from models import Binding, Cardholder, lock_card
from models.passwords import hash_password

if TYPE_CHECKING:
    from bot.runtime import Runtime


def compact(text: str) -> str:
    """Full-width to half-width (NFKC) and every space removed: '２０２３ ０００１' → '20230001'."""
    return "".join(unicodedata.normalize("NFKC", text or "").split())


def clean_name(text: str) -> str:
    """Names compare after NFKC and squeezing spaces; letters stay case-sensitive."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


def locked(services: Runtime, openid: str, student_no: str | None = None) -> Lock | None:
    """The account's lock, else the card's (reserves nothing)."""
    return BindingLock(services).locked(openid, student_no)


def student_no_for_passport(services: Runtime, passport_no: str) -> str | None:
    with services.session() as db:
        card = db.execute(select(Cardholder).where(Cardholder.passport_no == passport_no)).scalars().first()
        return card.student_no if card else None


class Outcome(StrEnum):
    """How a bind request ended (an outcome, not a stored state)."""

    BOUND = "bound"
    LOCKED = "locked"  # no try left: ``lock`` says until when
    MISMATCH = "mismatch"  # ``left`` tries remain (0: ``lock`` now holds)
    ALREADY = "already"  # this account holds another card
    FULL = "full"  # the card has max_bindings_per_card accounts
    RACED = "raced"  # the same account bound at the same moment from another message
    UNAVAILABLE = "unavailable"  # the card system did not answer: nothing checked, nothing counted


class Verdict(StrEnum):
    """What the card system said of a password (an outcome, not a stored state)."""

    RIGHT = "right"
    WRONG = "wrong"  # mismatch or unknown holder: counted against the lockout
    UNAVAILABLE = "unavailable"  # maintenance, no answer, a broken answer: not counted


@dataclass(frozen=True)
class Bound:
    outcome: Outcome
    card: Cardholder | None = None  # the card bound (BOUND) or already held (ALREADY)
    left: int = 0
    lock: Lock | None = None


def bind(services: Runtime, openid: str, student_no: str, name: str, password: str) -> Bound:
    """Have the card system check the card's password and name under the lockout, then bind this account to the card."""
    lock = locked(services, openid, student_no)
    if lock is not None:
        return Bound(Outcome.LOCKED, lock=lock)
    vouched: list[Holder] = []

    def check() -> Verdict:
        verdict, holder = _verify(services, student_no, name, password)
        if holder is not None:
            vouched.append(holder)
        return verdict

    attempt, verdict = check_password(services, openid, student_no, check)
    if not attempt.allowed:
        return Bound(Outcome.LOCKED, lock=attempt.lock)
    if verdict is Verdict.UNAVAILABLE:
        return Bound(Outcome.UNAVAILABLE)
    if verdict is not Verdict.RIGHT:
        return Bound(Outcome.MISMATCH, left=attempt.left, lock=attempt.lock)
    return _attach(services, openid, _holder_row(services, vouched[0]))


def _verify(services: Runtime, student_no: str, name: str, password: str) -> tuple[Verdict, Holder | None]:
    """The card system's word on the password; unknown holders cost the same there as wrong passwords."""
    try:
        answer = services.card_system.verify_holder(student_no, name, password)
    except CardSystemError:
        return Verdict.UNAVAILABLE, None
    if answer.result is VerifyResult.OK and answer.holder is not None:
        return Verdict.RIGHT, answer.holder
    return Verdict.WRONG, None


def _holder_row(services: Runtime, holder: Holder) -> int:
    """The local card of a holder the card system vouched for: created on first bind, else following its status.

    The password stays the card system's: a created row's hash is of a random secret, so it never verifies."""
    with services.session() as db, db.begin():
        card = _card_by_no(db, holder.student_no)
        if card is None:
            try:
                with db.begin_nested():
                    card = Cardholder(
                        student_no=holder.student_no,
                        name=holder.name,
                        status=holder.status.value,
                        left_on=holder.left_on,
                        password_hash=hash_password(secrets.token_urlsafe(32)),
                        balance_fen=0,
                    )
                    db.add(card)
            except IntegrityError:  # the same holder's first bind from another account, at the same moment
                card = _card_by_no(db, holder.student_no)
                assert card is not None
            return card.id
        card.name, card.status, card.left_on = holder.name, holder.status.value, holder.left_on
        return card.id


def _attach(services: Runtime, openid: str, card_id: int) -> Bound:
    """Bind under the card's row lock, so concurrent family members cannot exceed the per-card maximum."""
    with services.session() as db, db.begin():
        card = lock_card(db, card_id)
        current = db.execute(select(Binding).where(Binding.openid == openid)).scalar_one_or_none()
        if current is not None:
            return Bound(Outcome.BOUND if current.cardholder_id == card.id else Outcome.ALREADY, card=current.cardholder)
        count = db.execute(select(func.count()).select_from(Binding).where(Binding.cardholder_id == card.id)).scalar_one()
        if count >= services.cfg.binding.max_bindings_per_card:
            return Bound(Outcome.FULL)
        try:
            with db.begin_nested():
                binding = Binding(openid=openid, cardholder_id=card.id, created_at=services.clock.utcnow())
                db.add(binding)
        except IntegrityError:
            return Bound(Outcome.RACED)
        _tell_bound(services, db, card, "binding_added", f"bindadd:{binding.id}", skip=openid)
        return Bound(Outcome.BOUND, card=card)


def check_password(services: Runtime, openid: str, student_no: str, check: Callable[[], Verdict]) -> tuple[Attempt, Verdict]:
    """Reserve a try on the account and the card, then run ``check()``; a wrong try that locks the card tells its
    owners (a right one gives its try back, so it locks nothing; an unanswered one gives it back on both)."""
    lock = BindingLock(services)
    attempt = lock.reserve(openid, student_no)
    if not attempt.allowed:
        return attempt, Verdict.WRONG
    verdict = check()
    if verdict is Verdict.RIGHT:
        lock.succeeded(openid, student_no)
        return attempt, verdict
    if verdict is Verdict.UNAVAILABLE:
        lock.give_back(openid, student_no)
        return attempt, verdict
    if attempt.card_tripped and attempt.lock is not None:
        with services.session() as db, db.begin():
            if (card := _card_by_no(db, student_no)) is not None:
                _tell_bound(services, db, card, "binding_guessed", f"bindguess:{student_no}:{attempt.lock.until:%Y%m%d%H%M}")
    return attempt, verdict


def _card_by_no(db: Session, student_no: str) -> Cardholder | None:
    return db.execute(select(Cardholder).where(Cardholder.student_no == student_no)).scalar_one_or_none()


def _tell_bound(services: Runtime, db: Session, card: Cardholder, kind: str, dedup: str, skip: str | None = None) -> None:
    """A notice to each account bound to the card (but ``skip``), in its language: masked number, no person."""
    openids = db.execute(select(Binding.openid).where(Binding.cardholder_id == card.id, Binding.openid != (skip or ""))).scalars().all()
    for openid in openids:
        notices.send(
            db,
            services.cfg,
            kind,
            openid,
            f"{dedup}:{kind}:{openid}",
            card=mask_student_no(card.student_no),
            event=Said(f"notice_{kind}_event"),
            advice=Said(f"notice_{kind}_advice"),
            time=f"{services.clock.now():%Y-%m-%d %H:%M}",
        )


def _rowcount(db: Session, statement: Delete) -> int:
    """How many rows a DELETE removed (SQLAlchemy types ``Session.execute`` as a plain ``Result``)."""
    return cast("CursorResult[Any]", db.execute(statement)).rowcount


def unbind(services: Runtime, openid: str, cardholder_id: int) -> bool:
    """Remove this account's binding of that card (False: not bound to it any more) and end its H5 sessions."""
    with services.session() as db, db.begin():
        removed = _rowcount(db, delete(Binding).where(Binding.openid == openid, Binding.cardholder_id == cardholder_id))
    if removed:
        end_sessions(services, openid)
    return bool(removed)


def check_owner(services: Runtime, openid: str, student_no: str, password: str) -> tuple[Attempt, Verdict]:
    """The card password again, checked by the card system and counted like a binding try: being bound is not
    enough to see or remove others."""
    with services.session() as db:
        card = _card_by_no(db, student_no)
    name = card.name if card is not None else ""
    return check_password(services, openid, student_no, lambda: _verify(services, student_no, name, password)[0])


def bindings_of(services: Runtime, cardholder_id: int) -> list[Binding]:
    with services.session() as db:
        return list(db.execute(select(Binding).where(Binding.cardholder_id == cardholder_id).order_by(Binding.created_at, Binding.id)).scalars())


class Removal(StrEnum):
    REMOVED = "removed"
    GONE = "gone"  # removed meanwhile, or not the binding that was listed
    NOT_BOUND = "not_bound"  # the asking account no longer holds the card


def remove_binding(services: Runtime, openid: str, cardholder_id: int, binding_id: int, created_at: str) -> tuple[Removal, Binding | None]:
    """Remove a binding of the card listed to ``openid`` (who must still hold that card); it loses access at once.

    ``created_at`` is the listed binding's time, so a reused id never matches."""
    with services.session() as db, db.begin():
        mine = db.execute(select(Binding).where(Binding.openid == openid)).scalar_one_or_none()
        if mine is None or mine.cardholder_id != cardholder_id:
            return Removal.NOT_BOUND, None
        target = db.get(Binding, binding_id)
        if target is None or target.cardholder_id != cardholder_id or target.created_at.isoformat() != created_at:
            return Removal.GONE, None
        gone = delete(Binding).where(Binding.id == target.id, Binding.cardholder_id == cardholder_id)
        if _rowcount(db, gone) != 1:  # removed by another account meanwhile
            return Removal.GONE, None
    end_sessions(services, target.openid)
    return Removal.REMOVED, target


# --- the service center (``cardbot binding unlock``, the console) -------------------------------------------------
def unlock(services: Runtime, student_no: str) -> dict[str, int]:
    """Lift the card's wrong-password lock and its bound accounts' (the service center has seen the owner): what was
    counted, by subject."""
    with services.session() as db:
        card = _card_by_no(db, student_no.strip())
        openids = (
            []
            if card is None
            else [b.openid for b in db.execute(select(Binding).where(Binding.cardholder_id == card.id).order_by(Binding.id)).scalars()]
        )
    return BindingLock(services).unlock(student_no.strip(), openids)


def remove_at_desk(services: Runtime, cardholder_id: int, binding_id: int) -> Binding | None:
    """The service center removes a binding of the card (the holder asked in person): it loses access at once.
    None when it is gone already or belongs to another card."""
    with services.session() as db, db.begin():
        target = db.get(Binding, binding_id)
        if target is None or target.cardholder_id != cardholder_id:
            return None
        if _rowcount(db, delete(Binding).where(Binding.id == binding_id, Binding.cardholder_id == cardholder_id)) != 1:
            return None
    end_sessions(services, target.openid)
    return target
