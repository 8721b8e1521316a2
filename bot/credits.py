"""Paid money on its way to the card: owed in the payment's own transaction, delivered to the card system by ``ref``.

A payment WeChat Pay confirmed (``ref`` = our order number) or an auto top-up the bank confirmed (``ref`` =
``AD{attempt id}``) is written as a ``CardCredit`` in the same transaction that records the payment (``owe``). The
payment's own request delivers it at once; whatever is left (maintenance, no answer, a killed process) the worker
delivers (``deliver_due``). Delivery is safe to repeat and to race: the card system answers a repeated ``ref`` with
its first answer and moves no money again, and only the ``pending → delivered/refused`` transition of the locked row
sends the receipt. An outcome we did not hear is asked about (``credit_status(ref)``) before the same ``ref`` is sent
again; a new ``ref`` is never made for the same money.

While a credit waits the student is told once why and until when ("已支付，待入账"); a delivered credit sends the
receipt with the card system's new balance; a refused one is told and listed for the service center, who may retry it
or refund it (WeChat Pay refund, or the bank for an auto top-up) — only money the card system refused goes back.
"""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot import notices
from bot.adapters.cardsystem import (
    CardSystemNoAnswer,
    CardSystemProtocolError,
    CardSystemUnavailable,
    Channel,
    Credit,
    CreditResult,
)
from bot.clock import to_local
from bot.money import yuan
from bot.notices import Said
from bot.texts import Localized, t
from models import CardCredit, Cardholder
from models.enums import CreditChannel, CreditStatus, EntryKind

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

CLAIM_STALE = timedelta(seconds=60)  # a claim older than this is in no one's hands (well above any card-system timeout)
MAX_BACKOFF = timedelta(minutes=10)
DELIVER_THREADS = 16


class Waiting(StrEnum):
    """Why a credit is still pending (``CardCredit.waiting_for``)."""

    MAINTENANCE = "maintenance"
    NO_ANSWER = "no_answer"
    PROTOCOL = "protocol"


def owe(
    db: Session,
    *,
    ref: str,
    channel: CreditChannel,
    card: Cardholder,
    openid: str,
    amount_fen: int,
    fee_fen: int,
    paid_at: datetime,
    now: datetime,
) -> CardCredit:
    """Record, in the caller's transaction, that ``amount_fen`` is owed to the card (once per ``ref``)."""
    found = db.execute(select(CardCredit).where(CardCredit.ref == ref)).scalar_one_or_none()
    if found is not None:
        return found
    credit = CardCredit(
        ref=ref,
        channel=channel,
        cardholder_id=card.id,
        student_no=card.student_no,
        openid=openid,
        amount_fen=amount_fen,
        fee_fen=fee_fen,
        paid_at=paid_at,
        status=CreditStatus.PENDING,
        tries=0,
        next_try_at=now,
        created_at=now,
    )
    db.add(credit)
    db.flush()
    return credit


# --- delivery ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Claimed:
    ref: str
    student_no: str
    amount_fen: int
    channel: Channel
    paid_at: datetime
    unsure: bool  # an earlier try may have reached the card system: ask before sending again


def _claim(services: Runtime, credit_id: int) -> _Claimed | None:
    now = services.clock.utcnow()
    with services.session() as db, db.begin():
        c = db.execute(
            update(CardCredit)
            .where(
                CardCredit.id == credit_id,
                CardCredit.status == CreditStatus.PENDING,
                or_(CardCredit.claimed_at.is_(None), CardCredit.claimed_at < now - CLAIM_STALE),
            )
            .values(claimed_at=now, tries=CardCredit.tries + 1)
            .returning(
                CardCredit.ref,
                CardCredit.student_no,
                CardCredit.amount_fen,
                CardCredit.channel,
                CardCredit.paid_at,
                CardCredit.tries,
                CardCredit.waiting_for,
            )
        ).one_or_none()
        if c is None:
            return None
        unsure = c.tries > 1 and c.waiting_for != Waiting.MAINTENANCE
        return _Claimed(c.ref, c.student_no, c.amount_fen, Channel(c.channel), c.paid_at.replace(tzinfo=UTC), unsure)


def deliver(services: Runtime, credit_id: int) -> str:
    """Take one pending credit as far as it can go now; returns its status (``pending`` while it must wait).

    Never raises for the card system's failures: they leave the credit pending with the reason and the next try."""
    claimed = _claim(services, credit_id)
    if claimed is None:
        with services.session() as db:
            return str(db.execute(select(CardCredit.status).where(CardCredit.id == credit_id)).scalar_one())
    try:
        return _deliver_claimed(services, credit_id, claimed)
    except Exception:
        # the card system may have credited (our own database failed us): release for a try that asks about the ref
        log.exception("credit %s: delivery failed unexpectedly; the next try asks the card system about it", claimed.ref)
        with contextlib.suppress(Exception):
            _wait(services, credit_id, Waiting.NO_ANSWER)
        return CreditStatus.PENDING


def _deliver_claimed(services: Runtime, credit_id: int, claimed: _Claimed) -> str:
    cs = services.card_system
    try:
        answer: Credit | None = cs.credit_status(claimed.ref) if claimed.unsure else None
        if answer is None:
            answer = cs.credit(claimed.ref, claimed.student_no, claimed.amount_fen, claimed.channel, claimed.paid_at)
    except CardSystemUnavailable as exc:
        return _wait(services, credit_id, Waiting.MAINTENANCE, timedelta(seconds=max(1, exc.retry_after)))
    except CardSystemNoAnswer as exc:
        log.warning("credit %s: no answer from the card system (%s); will ask about the same ref", claimed.ref, exc)
        return _wait(services, credit_id, Waiting.NO_ANSWER)
    except CardSystemProtocolError as exc:
        log.error("credit %s: the card system broke the protocol (%s); will ask about the same ref", claimed.ref, exc)
        return _wait(services, credit_id, Waiting.PROTOCOL)
    return _record(services, credit_id, answer)


def _wait(services: Runtime, credit_id: int, why: str, after: timedelta | None = None) -> str:
    """Leave the credit pending: released for the next try; the student is told once why it waits."""
    now = services.clock.utcnow()
    with services.session() as db, db.begin():
        c = db.execute(select(CardCredit).where(CardCredit.id == credit_id).with_for_update()).scalar_one()
        if c.status != CreditStatus.PENDING:
            return c.status
        backoff = after or min(MAX_BACKOFF, timedelta(seconds=5 * 2 ** min(c.tries, 10)))
        c.waiting_for, c.claimed_at, c.next_try_at = why, None, now + backoff
        services.metrics.credit_waits.labels(why=why).inc()
        notices.send(
            db,
            services.cfg,
            "credit_delayed",
            c.openid,
            f"credit:{c.ref}:delayed",
            amount=c.amount_fen,
            status=Said("credit_wait_maintenance", {"until": f"{to_local(c.next_try_at):%H:%M}"})
            if why == Waiting.MAINTENANCE
            else Said("credit_wait_no_answer"),
            advice=Said("credit_wait_advice"),
            time=f"{to_local(c.paid_at):%Y-%m-%d %H:%M}",
        )
        return CreditStatus.PENDING


def _record(services: Runtime, credit_id: int, answer: Credit) -> str:
    """The card system's answer, recorded with its notice in one transaction (once, whoever delivered)."""
    now = services.clock.utcnow()
    with services.session() as db, db.begin():
        c = db.execute(select(CardCredit).where(CardCredit.id == credit_id).with_for_update()).scalar_one()
        if c.status != CreditStatus.PENDING:
            return c.status
        c.claimed_at, c.waiting_for, c.done_at = None, None, now
        if answer.result is CreditResult.OK:
            c.status, c.entry_id, c.balance_fen = CreditStatus.DELIVERED, answer.entry_id[:64], answer.balance_fen
            if services.card_system.remote:
                # as of this second: a terminal entry stamped in the same second (cardsys/1 times are whole seconds) is newer
                remember_balance(db, c.cardholder_id, answer.balance_fen, now.replace(microsecond=0))
            _receipt(services, db, c)
            services.metrics.credits.labels(kind=EntryKind.TOPUP if c.channel == CreditChannel.WECHAT_PAY else EntryKind.AUTODEBIT).inc()
        else:
            reason = answer.reason.value if answer.reason else "refused"
            c.status, c.reason = CreditStatus.REFUSED, reason
            log.warning("credit %s refused by the card system (%s): listed for the service center", c.ref, reason)
            notices.send(
                db,
                services.cfg,
                "credit_refused",
                c.openid,
                f"credit:{c.ref}:refused",
                amount=c.amount_fen,
                status=Said(f"credit_refused_{reason}"),
                advice=Said("credit_refused_advice"),
                time=f"{to_local(c.paid_at):%Y-%m-%d %H:%M}",
            )
        return c.status


def _receipt(services: Runtime, db: Session, c: CardCredit) -> None:
    balance = c.balance_fen or 0
    if c.channel == CreditChannel.WECHAT_PAY:
        notices.send(
            db,
            services.cfg,
            "topup_receipt",
            c.openid,
            f"topup:{c.ref}:topup_receipt:{c.openid}",
            amount=c.amount_fen,
            fee=c.fee_fen,
            balance=balance,
            time=f"{to_local(c.paid_at):%Y-%m-%d %H:%M:%S}",
        )
    else:
        notices.send(
            db,
            services.cfg,
            "autodebit_success",
            c.openid,
            f"autodebit:{c.ref.removeprefix('AD')}:ok",
            amount=c.amount_fen,
            balance=balance,
            time=f"{to_local(c.paid_at):%Y-%m-%d %H:%M}",
        )


def remember_balance(db: Session, cardholder_id: int, balance_fen: int, as_of: datetime) -> None:
    """Keep the card system's latest balance (``http``): what the bot shows when the card system does not answer."""
    db.execute(
        update(Cardholder)
        .where(Cardholder.id == cardholder_id, or_(Cardholder.balance_as_of.is_(None), Cardholder.balance_as_of <= as_of))
        .values(balance_fen=balance_fen, balance_as_of=as_of)
    )


def deliver_now(services: Runtime, credit_id: int | None) -> None:
    """Deliver right after the payment committed; anything unexpected is left to the worker, never to the payer."""
    if credit_id is None:
        return
    try:
        deliver(services, credit_id)
    except Exception:
        log.exception("credit %s: delivery failed unexpectedly; the worker will try again", credit_id)


def deliver_due(services: Runtime, limit: int = 2000) -> dict[str, int]:
    """The worker's pass: every pending credit whose time has come, several at once (safe across workers)."""
    now = services.clock.utcnow()
    with services.session() as db:
        ids = list(
            db.execute(
                select(CardCredit.id)
                .where(
                    CardCredit.status == CreditStatus.PENDING,
                    CardCredit.next_try_at <= now,
                    or_(CardCredit.claimed_at.is_(None), CardCredit.claimed_at < now - CLAIM_STALE),
                )
                .order_by(CardCredit.next_try_at, CardCredit.id)
                .limit(limit)
            ).scalars()
        )
    outcomes: dict[str, int] = {}
    if not ids:
        return outcomes
    with ThreadPoolExecutor(max_workers=min(DELIVER_THREADS, len(ids)), thread_name_prefix="credit") as pool:
        for status in pool.map(lambda i: _safe(services, i), ids):
            outcomes[status] = outcomes.get(status, 0) + 1
    return outcomes


def _safe(services: Runtime, credit_id: int) -> str:
    try:
        return deliver(services, credit_id)
    except Exception:
        log.exception("credit %s: delivery failed unexpectedly; left for the next pass", credit_id)
        return "error"


def told(c: CardCredit, lang: str, center: Localized) -> str:
    """A pending or refused credit in the student's words: how much, why it is not on the card, until when."""
    amount = yuan(c.amount_fen)
    if c.status == CreditStatus.REFUSED:
        return t(lang, "credit_refused_line", amount=amount, reason=t(lang, f"credit_refused_{c.reason or 'refused'}"), center=center)
    when = f"{to_local(c.next_try_at):%H:%M}"
    if c.waiting_for == Waiting.MAINTENANCE:
        why = t(lang, "credit_why_maintenance", until=when)
    elif c.waiting_for:
        why = t(lang, "credit_why_no_answer", at=when)
    else:
        why = t(lang, "credit_why_delivering")
    return t(lang, "credit_pending", amount=amount, why=why)


def waiting(db: Session, cardholder_id: int) -> list[CardCredit]:
    """The card's credits paid but not yet on the card, oldest first (what "已支付，待入账" lists)."""
    return list(
        db.execute(
            select(CardCredit).where(CardCredit.cardholder_id == cardholder_id, CardCredit.status == CreditStatus.PENDING).order_by(CardCredit.id)
        ).scalars()
    )
