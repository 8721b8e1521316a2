"""Reporting a card lost (挂失) and cancelling the report (解挂), on the card-system port (``CardSystem.loss``).

A report needs no password (speed matters when a card is gone) and is one report however often and however many
family members ask at once: the open ``CardLoss`` row (one per card, a partial unique index) is written under the
card's row lock before the card system is called, and every retry sends its reference again (``LOSS{id}``), which
the card system answers with its first answer. No lock is held over the call. When the answer is ok the card is
marked lost here too (the ``ledger`` card system already did), which stops spending (``cards.can_transact``),
top-ups and auto top-ups (``cards.can_add_money``, ``autodebit``), and every bound account is told once.

Cancelling needs the card password, checked by the card system in the cancel call itself and counted like a
binding try (bot.binding_lock): a wrong one costs a try, an unanswered one none. Each cancel try has its own
reference: a mismatch must not become the answer to the right password sent next.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import notices
from bot.adapters.cardsystem import CardSystemError, LossAction, LossOutcome, LossResult
from bot.binding import Verdict, check_password
from bot.binding_lock import Lock
from bot.cards import card_for, mask_student_no
from bot.errors import UserError
from bot.notices import Said
from models import Binding, Cardholder, CardLoss, lock_card
from models.enums import CardStatus, LossStatus

if TYPE_CHECKING:
    from bot.runtime import Runtime

OPEN = (LossStatus.PENDING, LossStatus.LOST)


class Found(StrEnum):
    """How a cancel try ended (an outcome, not a stored state)."""

    FOUND = "found"  # the card is active again
    WRONG = "wrong"  # ``left`` tries remain (0: ``lock`` now holds)
    LOCKED = "locked"  # no try left: ``lock`` says until when
    UNAVAILABLE = "unavailable"  # the card system did not answer: nothing checked, nothing counted


@dataclass(frozen=True)
class Reported:
    card: Cardholder
    already: bool  # reported before (by this account, a family member, or at the service desk)


@dataclass(frozen=True)
class Cancelled:
    outcome: Found
    left: int = 0
    lock: Lock | None = None


def _open_report(db: Session, card_id: int) -> CardLoss | None:
    return db.execute(select(CardLoss).where(CardLoss.cardholder_id == card_id, CardLoss.status.in_(OPEN)).with_for_update()).scalar_one_or_none()


def is_lost(services: Runtime, card: Cardholder) -> bool:
    """Lost here, or reported from the bot (a report still waiting for the card system's answer is not: 挂失 sends it
    again with its ref)."""
    if card.status == CardStatus.LOST:
        return True
    with services.session() as db:
        return db.execute(select(CardLoss.id).where(CardLoss.cardholder_id == card.id, CardLoss.status == LossStatus.LOST)).first() is not None


def report_lost(services: Runtime, openid: str) -> Reported:
    """Mark the openid's card lost at the card system; spending and auto top-up stop; every bound account is told."""
    with services.session() as db, db.begin():
        found = card_for(db, openid)
        if found is None:
            raise UserError("not_bound", 409)
        card = lock_card(db, found.id)
        report = _open_report(db, card.id)
        if report is None and card.status == CardStatus.LOST:  # reported at the service desk
            return Reported(card, already=True)
        if report is not None and report.status == LossStatus.LOST:
            return Reported(card, already=True)
        if report is None:
            try:
                with db.begin_nested():
                    report = CardLoss(cardholder_id=card.id, status=LossStatus.PENDING, reported_by=openid, reported_at=services.clock.utcnow())
                    db.add(report)
            except IntegrityError:  # another account's report of the same card, at the same moment (SQLite: no row lock)
                report = _open_report(db, card.id)
                assert report is not None
        ref, student_no, report_id = report.ref, card.student_no, report.id
    outcome = _ask(services, ref, student_no, LossAction.REPORT)
    with services.session() as db, db.begin():
        card = lock_card(db, found.id)
        report = db.execute(select(CardLoss).where(CardLoss.id == report_id).with_for_update()).scalar_one()
        if outcome.result is LossResult.OK and report.status == LossStatus.PENDING:
            report.status, card.status = LossStatus.LOST, CardStatus.LOST
            _tell(services, db, card, "card_lost", f"loss:{report.id}")
            return Reported(card, already=False)
        if outcome.result is LossResult.OK:  # a concurrent request for the same report finished it first
            return Reported(card, already=True)
        report.status, report.reason = LossStatus.REFUSED, str(outcome.reason or outcome.result)
    raise UserError("loss_refused", 409, center=services.cfg.school.center)


def cancel_loss(services: Runtime, openid: str, password: str) -> Cancelled:
    """With the card password, have the card system lift the report; counted like a binding try.

    A card reported at the service desk gets its report row here, so the found notice goes out once however many
    cancels race (only the one that closes the row tells)."""
    with services.session() as db, db.begin():
        found = card_for(db, openid)
        if found is None:
            raise UserError("not_bound", 409)
        card = lock_card(db, found.id)
        report = _open_report(db, card.id)
        if report is None and card.status != CardStatus.LOST:
            raise UserError("loss_not_lost", 409)
        if report is None:
            db.add(CardLoss(cardholder_id=card.id, status=LossStatus.LOST, reported_by="", reported_at=services.clock.utcnow()))
        card_id, student_no = card.id, card.student_no
    answers: list[LossOutcome] = []

    def check() -> Verdict:
        try:
            answer = services.card_system.loss(f"FOUND{card_id}-{secrets.token_hex(6)}", student_no, LossAction.CANCEL, password)
        except CardSystemError:
            return Verdict.UNAVAILABLE
        answers.append(answer)
        return Verdict.WRONG if answer.result is LossResult.MISMATCH else Verdict.RIGHT

    attempt, verdict = check_password(services, openid, student_no, check)
    if not attempt.allowed:
        return Cancelled(Found.LOCKED, lock=attempt.lock)
    if verdict is Verdict.UNAVAILABLE:
        return Cancelled(Found.UNAVAILABLE)
    if verdict is Verdict.WRONG:
        return Cancelled(Found.WRONG, left=attempt.left, lock=attempt.lock)
    if answers[0].result is not LossResult.OK:
        raise UserError("loss_refused", 409, center=services.cfg.school.center)
    with services.session() as db, db.begin():
        card = lock_card(db, card_id)
        card.status = answers[0].status or CardStatus.ACTIVE
        report = _open_report(db, card_id)
        if report is not None:
            report.status, report.found_by, report.found_at = LossStatus.FOUND, openid, services.clock.utcnow()
            _tell(services, db, card, "card_found", f"found:{report.id}")
    return Cancelled(Found.FOUND)


def _ask(services: Runtime, ref: str, student_no: str, action: LossAction) -> LossOutcome:
    """The card system's answer; without one the report stays pending and the student is asked to try again."""
    try:
        return services.card_system.loss(ref, student_no, action)
    except CardSystemError:
        raise UserError("loss_unavailable", 503) from None


def _tell(services: Runtime, db: Session, card: Cardholder, kind: str, dedup: str) -> None:
    """One notice to every account bound to the card, in its language (masked number only)."""
    openids = db.execute(select(Binding.openid).where(Binding.cardholder_id == card.id)).scalars().all()
    for openid in openids:
        notices.send(
            db,
            services.cfg,
            kind,
            openid,
            f"{dedup}:{openid}",
            card=mask_student_no(card.student_no),
            status=Said(f"notice_{kind}_status"),
            advice=Said(f"notice_{kind}_advice"),
            time=f"{services.clock.now():%Y-%m-%d %H:%M}",
        )
