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
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, or_, select, update
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
from bot.texts import t
from models import CardCredit, Cardholder, WechatUser
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
    id: int
    ref: str
    student_no: str
    amount_fen: int
    channel: Channel
    paid_at: datetime
    unsure: bool  # an earlier try may have reached the card system: ask before sending again


_CLAIMED = (
    CardCredit.id,
    CardCredit.ref,
    CardCredit.student_no,
    CardCredit.amount_fen,
    CardCredit.channel,
    CardCredit.paid_at,
    CardCredit.tries,
    CardCredit.waiting_for,
)


def _claimable(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (CardCredit.status == CreditStatus.PENDING, or_(CardCredit.claimed_at.is_(None), CardCredit.claimed_at < now - CLAIM_STALE))


def _claimed(row: Any) -> _Claimed:
    unsure = row.tries > 1 and row.waiting_for != Waiting.MAINTENANCE
    return _Claimed(row.id, row.ref, row.student_no, row.amount_fen, Channel(row.channel), row.paid_at.replace(tzinfo=UTC), unsure)


def _claim(services: Runtime, credit_id: int) -> _Claimed | None:
    now = services.clock.utcnow()
    with services.session() as db, db.begin():
        row = (
            db.connection()
            .execute(
                update(CardCredit)
                .where(CardCredit.id == credit_id, *_claimable(now))
                .values(claimed_at=now, tries=CardCredit.tries + 1)
                .returning(*_CLAIMED)
            )
            .one_or_none()
        )
        return None if row is None else _claimed(row)


def _claim_due(services: Runtime, n: int) -> list[_Claimed]:
    """Up to ``n`` credits whose time has come, claimed in one statement; rows another worker holds are skipped."""
    now = services.clock.utcnow()
    due = (
        select(CardCredit.id)
        .where(*_claimable(now), CardCredit.next_try_at <= now)
        .order_by(CardCredit.next_try_at, CardCredit.id)
        .limit(n)
        .with_for_update(skip_locked=True)
    )
    with services.session() as db, db.begin():
        rows = (
            db.connection()
            .execute(
                update(CardCredit)
                .where(CardCredit.id.in_(due.scalar_subquery()), *_claimable(now))
                .values(claimed_at=now, tries=CardCredit.tries + 1)
                .returning(*_CLAIMED)
            )
            .all()
        )
    return sorted((_claimed(r) for r in rows), key=lambda c: c.id)


def deliver(services: Runtime, credit_id: int) -> str:
    """Take one pending credit as far as it can go now; returns its status (``pending`` while it must wait).

    Never raises for the card system's failures: they leave the credit pending with the reason and the next try."""
    claimed = _claim(services, credit_id)
    if claimed is None:
        with services.session() as db:
            return str(db.execute(select(CardCredit.status).where(CardCredit.id == credit_id)).scalar_one())
    return _deliver_claimed(services, claimed)


def _deliver_claimed(services: Runtime, claimed: _Claimed) -> str:
    try:
        return _send(services, claimed)
    except Exception:
        # the card system may have credited (our own database failed us): release for a try that asks about the ref
        log.exception("credit %s: delivery failed unexpectedly; the next try asks the card system about it", claimed.ref)
        with contextlib.suppress(Exception):
            _wait(services, claimed.id, Waiting.NO_ANSWER)
        return CreditStatus.PENDING


def _send(services: Runtime, claimed: _Claimed) -> str:
    credit_id = claimed.id
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
    """The card system's answer, recorded with its notice in one transaction (once, whoever delivered): only the
    ``pending`` row's own update returns it, so a second recorder finds nothing to do."""
    now = services.clock.utcnow()
    done: dict[str, Any] = {"claimed_at": None, "waiting_for": None, "done_at": now}
    if answer.result is CreditResult.OK:
        done |= {"status": CreditStatus.DELIVERED, "entry_id": answer.entry_id[:64], "balance_fen": answer.balance_fen}
    else:
        done |= {"status": CreditStatus.REFUSED, "reason": answer.reason.value if answer.reason else "refused"}
    with services.session() as db, db.begin():
        c = (
            db.connection()
            .execute(
                update(CardCredit)
                .where(CardCredit.id == credit_id, CardCredit.status == CreditStatus.PENDING)
                .values(**done)
                .returning(
                    CardCredit.ref,
                    CardCredit.channel,
                    CardCredit.cardholder_id,
                    CardCredit.openid,
                    CardCredit.amount_fen,
                    CardCredit.fee_fen,
                    CardCredit.paid_at,
                    CardCredit.balance_fen,
                    CardCredit.reason,
                    select(WechatUser.lang).where(WechatUser.openid == CardCredit.openid).scalar_subquery().label("lang"),
                )
            )
            .one_or_none()
        )
        if c is None:
            return str(db.execute(select(CardCredit.status).where(CardCredit.id == credit_id)).scalar_one())
        if answer.result is CreditResult.OK:
            if services.card_system.remote:
                # as of this second: a terminal entry stamped in the same second (cardsys/1 times are whole seconds) is newer
                remember_balance(db, c.cardholder_id, answer.balance_fen, now.replace(microsecond=0))
            _receipt(services, db, c)
            services.metrics.credits.labels(kind=EntryKind.TOPUP if c.channel == CreditChannel.WECHAT_PAY else EntryKind.AUTODEBIT).inc()
            return CreditStatus.DELIVERED
        log.warning("credit %s refused by the card system (%s): listed for the service center", c.ref, c.reason)
        notices.send(
            db,
            services.cfg,
            "credit_refused",
            c.openid,
            f"credit:{c.ref}:refused",
            c.lang or "zh",
            amount=c.amount_fen,
            status=Said(f"credit_refused_{c.reason}"),
            advice=Said("credit_refused_advice"),
            time=f"{to_local(c.paid_at):%Y-%m-%d %H:%M}",
        )
        return CreditStatus.REFUSED


def _receipt(services: Runtime, db: Session, c: Any) -> None:
    """The receipt for a delivered credit ``c`` (the row ``_record`` returned, with the payer's ``lang``)."""
    balance = c.balance_fen or 0
    if c.channel == CreditChannel.WECHAT_PAY:
        notices.send(
            db,
            services.cfg,
            "topup_receipt",
            c.openid,
            f"topup:{c.ref}:topup_receipt:{c.openid}",
            c.lang or "zh",
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
            c.lang or "zh",
            amount=c.amount_fen,
            balance=balance,
            time=f"{to_local(c.paid_at):%Y-%m-%d %H:%M}",
        )


def remember_balance(db: Session, cardholder_id: int, balance_fen: int, as_of: datetime) -> None:
    """Keep the card system's latest balance (``http``): what the bot shows when the card system does not answer."""
    db.connection().execute(
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
    """The worker's pass: up to ``limit`` pending credits whose time has come, several at once (safe across workers).

    Credits are claimed a few at a time, as threads come free, so a claim is never much older than the call it waits
    for (a claim left ``CLAIM_STALE`` would be taken again by another worker)."""
    outcomes: dict[str, int] = {}
    room = threading.BoundedSemaphore(2 * DELIVER_THREADS)

    def done(future: Future[str]) -> None:
        status = future.result()
        with lock:
            outcomes[status] = outcomes.get(status, 0) + 1
        room.release()

    lock = threading.Lock()
    taken = 0
    with ThreadPoolExecutor(max_workers=DELIVER_THREADS, thread_name_prefix="credit") as pool:
        while taken < limit:
            batch = _claim_due(services, min(DELIVER_THREADS, limit - taken))
            if not batch:
                break
            taken += len(batch)
            for claimed in batch:
                room.acquire()
                pool.submit(_safe, services, claimed).add_done_callback(done)
    return outcomes


def _safe(services: Runtime, claimed: _Claimed) -> str:
    try:
        return _deliver_claimed(services, claimed)
    except Exception:
        log.exception("credit %s: delivery failed unexpectedly; left for the next pass", claimed.ref)
        return "error"


def told(c: CardCredit, lang: str, center: str) -> str:
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
