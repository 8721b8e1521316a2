"""The service center's side of credits (``cardbot credits list|retry|refund``): what waits, what the card system
refused, and giving refused money back.

Only money the card system refused goes back, and only the way it came: a WeChat Pay top-up through WeChat Pay's
refund API (the whole amount paid, fee included), an auto top-up to the bank card it was debited from. A delivered
credit is never refunded here: mistaken top-ups are refunded in person, by school rule.

A refund is keyed on a number derived from the credit's ``ref`` (``RC{ref}``; ``RC{ref}-2``, ``-3`` … only after a
refund that WeChat closed or the bank refused, which moved no money). The number is stored in ``refund_no`` with the
status ``refunding`` before WeChat or the bank is called, so a re-run, the refund notify and the worker's settle pass
all ask about that same number: the money goes back at most once.

A retry sends the same ``ref`` again. The card system answers a repeated ``ref`` with its first answer, so a refused
credit stays refused unless the school's integration decides that ref again (some vendors' middleware does, since a
refusal moved no money); that choice is the integrator's, not the bot's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import credits, notices, products
from bot.adapters.bank import BankResult, BankUnavailable
from bot.adapters.pay import PayError, PayUnavailable, RefundResult, RefundStatus
from bot.calendar import day_start_utc
from bot.clock import to_local
from bot.errors import UserError
from bot.notices import Said
from models import AutodebitAgreement, AutodebitAttempt, CardCredit, RefundRequest
from models.enums import CreditChannel, CreditStatus, Product
from models.enums import RefundStatus as RequestStatus

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

TEXTS = "credit_ops_err_"  # a refusal's text is ``credit_ops_err_{code}``
RECHECK = timedelta(minutes=1)  # a refund under way is asked about again after this (the worker's settle pass)
RECHECK_ABNORMAL = timedelta(hours=1)  # WeChat could not pay it out: a person finishes it in the merchant platform


def refused(code: str, status: int = 409, **values: str) -> UserError:
    return UserError(code, status, f"{TEXTS}{code}", **values)


class Answer(StrEnum):
    """What WeChat Pay or the bank said about a refund (an outcome, not a stored state)."""

    SUCCESS = "success"  # the money is back with the payer
    PROCESSING = "processing"  # WeChat took the refund; its notify or a query finishes it
    ABNORMAL = "abnormal"  # WeChat could not pay it out (e.g. the payer's card was cancelled): merchant platform
    NOT_MADE = "not_made"  # WeChat refused or closed it, or the bank refused: nothing went back
    NO_ANSWER = "no_answer"  # unknown: ask again with the same number


@dataclass(frozen=True)
class Outcome:
    credit: CardCredit
    answer: Answer | None = None  # None: nothing was asked (already refunded)
    detail: str = ""


def next_refund_no(ref: str, previous: str | None) -> str:
    """``RC{ref}`` for a first refund; after one that moved no money, the next number (a spent one is never reused)."""
    first = f"RC{ref}"
    if previous is None:
        return first
    suffix = previous.removeprefix(first)
    return f"{first}-{int(suffix[1:]) + 1 if suffix[1:].isdigit() else 2}"


# --- listing -------------------------------------------------------------------------------------------------
def listed(services: Runtime, status: CreditStatus | None = None, day: date | None = None) -> list[CardCredit]:
    """Credits in ``status`` (default: every one not delivered), paid on the school day ``day`` if given, oldest first."""
    query = select(CardCredit).where(CardCredit.status == status if status else CardCredit.status != CreditStatus.DELIVERED)
    if day is not None:
        query = query.where(CardCredit.paid_at >= day_start_utc(day), CardCredit.paid_at < day_start_utc(day + timedelta(days=1)))
    with services.session() as db:
        return list(db.execute(query.order_by(CardCredit.paid_at, CardCredit.id)).scalars())


def why(c: CardCredit) -> str:
    """The operator's one-word reason a credit is where it is."""
    if c.status == CreditStatus.PENDING:
        return f"{c.waiting_for or 'delivering'}, next {to_local(c.next_try_at):%m-%d %H:%M}"
    if c.status == CreditStatus.REFUSED:
        return c.reason or "refused"
    if c.status in (CreditStatus.REFUNDING, CreditStatus.REFUNDED):
        return " ".join(x for x in (c.reason, c.refund_no, c.note) if x)
    return c.entry_id or ""


def _locked(db: Session, ref: str) -> CardCredit:
    c = db.execute(select(CardCredit).where(CardCredit.ref == ref).with_for_update()).scalar_one_or_none()
    if c is None:
        raise refused("not_found", 404, ref=ref[:40])
    return c


def _get(services: Runtime, credit_id: int) -> CardCredit:
    with services.session() as db:
        c = db.get(CardCredit, credit_id)
        assert c is not None
        return c


# --- retry ---------------------------------------------------------------------------------------------------
def retry(services: Runtime, ref: str) -> CardCredit:
    """Deliver a pending or refused credit now, with its own ``ref`` (the card system decides; see the docstring)."""
    with services.session() as db, db.begin():
        c = _locked(db, ref)
        if c.status not in (CreditStatus.PENDING, CreditStatus.REFUSED):
            raise refused("not_retryable", state=c.status)
        if c.status == CreditStatus.REFUSED:
            log.info("credit %s: the service center retries it after the refusal %s", c.ref, c.reason)
            c.status, c.reason, c.done_at = CreditStatus.PENDING, None, None
        c.next_try_at = services.clock.utcnow()
        credit_id = c.id
    credits.deliver(services, credit_id)
    return _get(services, credit_id)


# --- refund --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    credit_id: int
    ref: str
    channel: CreditChannel
    refund_no: str
    total_fen: int
    fresh: bool  # this call started the refund: no earlier call can have reached WeChat or the bank with it
    product: Product = Product.CARD
    bank_account: str = ""
    bank_ref: str = ""


def refund(services: Runtime, ref: str) -> Outcome:
    """Give refused money back (WeChat Pay or the bank); safe to run again: it asks about the same refund number."""
    with services.session() as db, db.begin():
        c = _locked(db, ref)
        if c.status == CreditStatus.REFUNDED:
            return Outcome(c)
        if c.status == CreditStatus.DELIVERED:
            raise refused("delivered")
        if c.status == CreditStatus.PENDING:
            raise refused("not_refused", state=c.status)
        fresh = c.status == CreditStatus.REFUSED
        account = bank_ref = ""
        if c.channel == CreditChannel.AUTODEBIT:
            account, bank_ref = _bank_side(db, c)
        if fresh:
            c.refund_no, c.status, c.note = next_refund_no(c.ref, c.refund_no), CreditStatus.REFUNDING, None
            c.next_try_at = services.clock.utcnow() + RECHECK
        assert c.refund_no is not None
        plan = _Plan(c.id, c.ref, CreditChannel(c.channel), c.refund_no, c.amount_fen + c.fee_fen, fresh, Product(c.product), account, bank_ref)
    answer, detail = _ask(services, plan)
    return Outcome(_record(services, plan.credit_id, plan.refund_no, answer, detail), answer, detail)


def _bank_side(db: Session, c: CardCredit) -> tuple[str, str]:
    """The bank account and debit reference an auto top-up's money came from; refused if the student's own refund
    request for that top-up already took the money back."""
    attempt = db.get(AutodebitAttempt, int(c.ref.removeprefix("AD")))
    assert attempt is not None and attempt.bank_ref, f"credit {c.ref} names no bank debit"
    request = db.execute(select(RefundRequest).where(RefundRequest.attempt_id == attempt.id)).scalar_one_or_none()
    if request is not None and request.status in (RequestStatus.APPROVING, RequestStatus.APPROVED):
        raise refused("refund_requested", request=str(request.id))
    agreement = db.get(AutodebitAgreement, attempt.agreement_id)
    assert agreement is not None
    return agreement.bank_account, attempt.bank_ref


def _ask(services: Runtime, plan: _Plan) -> tuple[Answer, str]:
    """Make the refund (``fresh``) or ask about it; never raises for WeChat's or the bank's failures."""
    if plan.channel == CreditChannel.AUTODEBIT:
        try:  # the bank answers a repeated reference with its first outcome: asking again is the same call
            return _bank_answer(services.bank.refund(plan.bank_account, plan.total_fen, plan.refund_no, plan.bank_ref))
        except BankUnavailable as exc:
            return Answer.NO_ANSWER, f"bank: {exc}"
    try:
        if not plan.fresh:
            try:
                return _pay_answer(services.pay.query_refund(plan.refund_no))
            except PayError as exc:
                if isinstance(exc, PayUnavailable) or exc.code != "RESOURCE_NOT_EXISTS":
                    raise
                # the earlier call never reached WeChat: make it now, with the same number
        reason = products.port(plan.product).refund_reason
        return _pay_answer(services.pay.refund(plan.ref, plan.refund_no, plan.total_fen, plan.total_fen, reason))
    except PayUnavailable as exc:
        return Answer.NO_ANSWER, f"wechat: {exc.code}"
    except PayError as exc:
        return Answer.NOT_MADE, f"wechat refused: {exc.code} {exc.message}"


def _pay_answer(r: RefundResult) -> tuple[Answer, str]:
    answer = {
        RefundStatus.SUCCESS: Answer.SUCCESS,
        RefundStatus.PROCESSING: Answer.PROCESSING,
        RefundStatus.ABNORMAL: Answer.ABNORMAL,
        RefundStatus.CLOSED: Answer.NOT_MADE,
    }[r.status]
    return answer, f"wechat: {r.status.value}"


def _bank_answer(r: BankResult) -> tuple[Answer, str]:
    return (Answer.SUCCESS, f"bank: {r.bank_ref}") if r.ok else (Answer.NOT_MADE, f"bank refused: {r.reason} {r.message}".strip())


def _record(services: Runtime, credit_id: int, refund_no: str, answer: Answer, detail: str) -> CardCredit:
    """What WeChat or the bank said, recorded under the row lock for the refund it was about (once, whoever asked)."""
    now = services.clock.utcnow()
    with services.session() as db, db.begin():
        c = db.execute(select(CardCredit).where(CardCredit.id == credit_id).with_for_update()).scalar_one()
        if c.status != CreditStatus.REFUNDING or c.refund_no != refund_no:
            return c  # settled meanwhile (notify, worker), or about an older refund number
        c.note = detail[:256]
        if answer is Answer.SUCCESS:
            c.status, c.done_at = CreditStatus.REFUNDED, now
            log.info("credit %s: %s fen refunded (%s)", c.ref, c.amount_fen + c.fee_fen, refund_no)
            notices.send(
                db,
                services.cfg,
                "refund_result",
                c.openid,
                f"credit:{c.ref}:refunded",
                amount=c.amount_fen + c.fee_fen,
                result=Said("notice_credit_refunded_wechat" if c.channel == CreditChannel.WECHAT_PAY else "notice_refund_approved"),
                time=f"{to_local(now):%Y-%m-%d %H:%M}",
            )
        elif answer is Answer.NOT_MADE:
            c.status = CreditStatus.REFUSED  # nothing went back: listed again; the next refund takes a new number
            log.warning("credit %s: refund %s made nothing (%s); listed again", c.ref, refund_no, detail)
        else:
            c.next_try_at = now + (RECHECK_ABNORMAL if answer is Answer.ABNORMAL else RECHECK)
        return c


class RefundMismatch(Exception):
    """A verified refund notify that names no refund of ours, or not the one we asked for."""


def refund_notified(services: Runtime, r: RefundResult) -> CardCredit:
    """A verified REFUND.* notify: the refund of that number settles (idempotent; repeats change nothing)."""
    with services.session() as db:
        c = db.execute(select(CardCredit).where(CardCredit.refund_no == r.out_refund_no)).scalar_one_or_none()
        if c is None:
            raise RefundMismatch("unknown out_refund_no")
        if (c.ref, c.amount_fen + c.fee_fen) != (r.out_trade_no, r.refund_fen):
            raise RefundMismatch("order or amount")
        credit_id = c.id
    answer, detail = _pay_answer(r)
    return _record(services, credit_id, r.out_refund_no, answer, detail)


def settle_refunds(services: Runtime, limit: int = 200) -> dict[str, int]:
    """The worker's pass: every refund under way whose time has come is asked about again (same number)."""
    now = services.clock.utcnow()
    with services.session() as db:
        rows = db.execute(
            select(CardCredit.id)
            .where(CardCredit.status == CreditStatus.REFUNDING, CardCredit.next_try_at <= now)
            .order_by(CardCredit.next_try_at)
            .limit(limit)
        ).scalars()
        ids = list(rows)
    outcomes: dict[str, int] = {}
    for credit_id in ids:
        with services.session() as db, db.begin():
            c = db.execute(select(CardCredit).where(CardCredit.id == credit_id).with_for_update()).scalar_one()
            if c.status != CreditStatus.REFUNDING or c.refund_no is None:
                continue
            c.next_try_at = now + RECHECK  # taken for this pass: another worker will not ask at the same time
            account, bank_ref = _bank_side(db, c) if c.channel == CreditChannel.AUTODEBIT else ("", "")
            plan = _Plan(c.id, c.ref, CreditChannel(c.channel), c.refund_no, c.amount_fen + c.fee_fen, False, Product(c.product), account, bank_ref)
        answer, detail = _ask(services, plan)
        status = _record(services, credit_id, plan.refund_no, answer, detail).status
        outcomes[status] = outcomes.get(status, 0) + 1
    return outcomes
