"""Automatic top-up (自动圈存): agreements, attempts through the bank, the sweep, reminders and refunds.

An attempt's life: ``waiting`` (created by a trigger; outside ``bank_hours`` it stays so until the next window)
→ ``processing`` (claimed with the card row locked, committed before the bank is called) → ``succeeded`` /
``failed``, or ``cancelled`` when it is no longer needed (balance back above the threshold, agreement ended,
another attempt of the same card already under way). The bank call carries the reference ``AD{attempt id}`` and the
bank answers a repeated reference with its first outcome. An attempt left in ``processing`` (answer lost, worker
killed) is settled by the sweep asking the bank about that reference before anything else: what the bank took is
credited even if the card no longer needs it, the agreement ended or the card was blocked; only a reference the bank
never received is decided again. What the bank took is owed to the card (``bot.credits``, ``ref`` = ``AD{attempt
id}``) in the same transaction as the attempt's status, and delivered to the card system exactly once. Locks are
always taken card → agreement → attempt.

Triggers, at most one attempt per card and trigger (unique ``trigger_key``): a spend that leaves the card below its
threshold (``entry:{entry_id}``), signing while already below it, and the sweep (``sweep:{day}:{card}``). A card with
an open attempt, or with a failed one today (the student was told; trying again on every swipe would only repeat the
bad news), gets no new one; the sweep adds one only for cards with no attempt at all that day, so a failure is
retried once a day.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, String, and_, bindparam, cast, exists, insert, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import credits, notices
from bot.adapters.bank import INSUFFICIENT_FUNDS, NO_ACCOUNT, UNKNOWN_REFERENCE, BankResult, BankUnavailable
from bot.calendar import day_start_utc, month_start
from bot.cards import CardState, can_add_money, card_for
from bot.clock import SCHOOL_TZ, to_local
from bot.errors import UserError
from bot.money import fen, yuan
from bot.notices import Said
from bot.texts import t
from models import (
    AutodebitAgreement,
    AutodebitAttempt,
    CardCredit,
    Cardholder,
    InsufficientBalance,
    RefundRequest,
    WechatUser,
    lang_of,
    lock_card,
    post_entry,
)
from models.enums import AgreementStatus, AttemptStatus, CardStatus, CreditChannel, CreditStatus, EntryKind, Product, RefundStatus

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

OPEN = (AttemptStatus.WAITING, AttemptStatus.PROCESSING)
ACCOUNT = re.compile(r"^\d{12,20}$")
STALE_PROCESSING = timedelta(minutes=2)  # claimed longer ago than this, a 'processing' attempt is in no one's hands
SWEEP_THREADS = 8


TEXTS = "autodebit_err_"  # an auto top-up refusal's text is ``autodebit_err_{code}``


def refused(code: str, status: int = 400, **values: Any) -> UserError:
    return UserError(code, status, f"{TEXTS}{code}", **values)


# --- small helpers -----------------------------------------------------------------
def expires_on(services: Runtime, today: date | None = None) -> date:
    """Agreements end on the 1st of ``renew_month`` (the first such day after ``today``) and must be signed again."""
    today = today or services.clock.today()
    month = services.cfg.autodebit.renew_month
    end = date(today.year, month, 1)
    return end if end > today else date(today.year + 1, month, 1)


def in_bank_hours(services: Runtime, now: datetime | None = None) -> bool:
    return services.cfg.autodebit.bank_hours.contains((now or services.clock.now()).time().replace(tzinfo=None))


def next_window(services: Runtime) -> datetime:
    """When the bank next opens (school time)."""
    now = services.clock.now()
    start = services.cfg.autodebit.bank_hours.start
    at = datetime.combine(now.date(), start, tzinfo=SCHOOL_TZ)
    return at if at > now else at + timedelta(days=1)


def refund_deadline(services: Runtime, done_at_utc: datetime) -> date:
    """The last day a refund of this top-up may be asked for: ``refund_request_day`` of the following month."""
    return month_start(to_local(done_at_utc).date(), back=-1).replace(day=services.cfg.autodebit.refund_request_day)


def stamp(services: Runtime) -> str:
    return f"{services.clock.now():%Y-%m-%d %H:%M}"


def active_agreement(db: Session, cardholder_id: int, today: date) -> AutodebitAgreement | None:
    return db.execute(
        select(AutodebitAgreement)
        .where(
            AutodebitAgreement.cardholder_id == cardholder_id,
            AutodebitAgreement.status == AgreementStatus.ACTIVE,
            AutodebitAgreement.expires_on > today,
        )
        .order_by(AutodebitAgreement.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _terms(cardholder_id: Any, *columns: Any) -> Any:
    return (
        select(*columns)
        .where(
            AutodebitAgreement.cardholder_id == cardholder_id,
            AutodebitAgreement.status == AgreementStatus.ACTIVE,
            AutodebitAgreement.expires_on > bindparam("today"),
        )
        .order_by(AutodebitAgreement.id.desc())
        .limit(1)
    )


_TERMS = _terms(bindparam("card"), AutodebitAgreement.id, AutodebitAgreement.threshold_fen, AutodebitAgreement.amount_fen)


def threshold_of(cardholder_id: Any) -> Any:
    """The threshold of the card's active agreement (NULL: none) as a scalar subquery on ``cardholder_id``, a column
    or parameter: a statement that already touches the card asks it in the same round trip (bot.card_entries)."""
    return _terms(cardholder_id, AutodebitAgreement.threshold_fen).scalar_subquery()


def active_terms(conn: Connection, cardholder_id: int, today: date) -> Row[int, int, int] | None:
    """``active_agreement``'s id, threshold and amount in one Core statement: asked on every debit (card pushes)."""
    return conn.execute(_TERMS, {"card": cardholder_id, "today": today}).first()


# --- agreements --------------------------------------------------------------------
@dataclass(frozen=True)
class Signed:
    """A new agreement as the page shows it; ``autodebit`` is the status of the top-up signing started, if any."""

    bank_last4: str
    expires_on: date
    threshold_fen: int
    amount_fen: int
    autodebit: str | None = None


def sign(services: Runtime, openid: str, bank_account: Any) -> Signed:
    """Sign for the openid's bound card after the bank confirms the account; a card already below the threshold
    gets its top-up at once (signing is a trigger too).

    The bank is asked before the card row is locked (no lock held over a network call); under the lock the binding
    and the check for an active agreement are repeated, so a family member who signed meanwhile wins and this one
    gets a clean 409. The partial unique index stays the last word."""
    today = services.clock.today()
    with services.session() as db:
        card = card_for(db, openid)
        if (refusal := can_add_money(card)) is not None:
            raise _blocked(refusal)
        assert card is not None
        card_id = card.id
        account = re.sub(r"[\s-]", "", bank_account) if isinstance(bank_account, str) else ""
        if not ACCOUNT.match(account):
            raise refused("invalid_account")
        if active_agreement(db, card_id, today) is not None:
            raise refused("already_signed", 409)
    try:
        checked = services.bank.check_account(account)
    except BankUnavailable:
        raise refused("bank_unavailable", 503) from None
    if not checked.ok:
        raise refused("no_account" if checked.reason == NO_ACCOUNT else "bank_refused_sign", 409)
    with services.session() as db, db.begin():
        card = lock_card(db, card_id)
        still = card_for(db, openid)
        if (refusal := can_add_money(still if still is not None and still.id == card_id else None)) is not None:
            raise _blocked(refusal)
        for ended in _active_agreements(db, card.id):
            if ended.expires_on > today:
                raise refused("already_signed", 409)
            ended.status = AgreementStatus.EXPIRED  # its day has come; the hourly job has not marked it yet
        c = services.cfg.autodebit
        ends = expires_on(services, today)
        agreement = AutodebitAgreement(
            cardholder_id=card.id,
            openid=openid,
            bank_account=account,
            bank_last4=account[-4:],
            threshold_fen=fen(c.threshold),
            amount_fen=fen(c.amount),
            status=AgreementStatus.ACTIVE,
            signed_at=services.clock.utcnow(),
            expires_on=ends,
            # signed inside the reminder window: the page already says when it ends, no reminder needed
            reminder_sent_on=today if ends - timedelta(days=c.reminder_days_before) <= today else None,
        )
        try:
            with db.begin_nested():
                db.add(agreement)
        except IntegrityError:
            raise refused("already_signed", 409) from None
        signed = Signed(agreement.bank_last4, agreement.expires_on, agreement.threshold_fen, agreement.amount_fen)
        attempt = open_attempt(services, db, card, f"sign:{agreement.id}")
        attempt_id = attempt.id if attempt else None
    if attempt_id is None:
        return signed
    return replace(signed, autodebit=process_attempt(services, attempt_id))


def _blocked(refusal: UserError) -> UserError:
    """The card rule's refusal in the auto top-up's words (409: the card's state, not the request, is the problem)."""
    return refused("not_bound" if refusal.code == "not_bound" else "card_blocked", 409)


def _active_agreements(db: Session, cardholder_id: int) -> list[AutodebitAgreement]:
    """The card's agreements marked active (ended ones too), locked; call with the card row locked."""
    return list(
        db.execute(
            select(AutodebitAgreement)
            .where(AutodebitAgreement.cardholder_id == cardholder_id, AutodebitAgreement.status == AgreementStatus.ACTIVE)
            .with_for_update()
        ).scalars()
    )


def cancel(services: Runtime, openid: str) -> None:
    """End the card's agreement and its waiting attempts (locks: card → agreement → attempts). Once this commits no
    new debit starts: ``process_attempt`` re-reads the agreement under the same locks before claiming an attempt."""
    with services.session() as db, db.begin():
        card = card_for(db, openid)
        if card is None:
            raise refused("not_bound", 409)
        lock_card(db, card.id)
        today = services.clock.today()
        agreement = next((a for a in _active_agreements(db, card.id) if a.expires_on > today), None)
        if agreement is None:
            raise refused("no_agreement", 404)
        now = services.clock.utcnow()
        agreement.status, agreement.cancelled_at = AgreementStatus.CANCELLED, now
        waiting = select(AutodebitAttempt).where(AutodebitAttempt.agreement_id == agreement.id, AutodebitAttempt.status == AttemptStatus.WAITING)
        for attempt in db.execute(waiting.with_for_update()).scalars():
            attempt.status, attempt.reason, attempt.done_at = AttemptStatus.CANCELLED, "agreement_cancelled", now


# --- triggers ------------------------------------------------------------------------
def open_attempt(services: Runtime, db: Session, card: CardState, trigger_key: str) -> AutodebitAttempt | None:
    """Create a waiting attempt if this card needs one now. Part of its trigger's transaction (the debit that left the
    card low, or the signing), with the card row locked: the trigger and its attempt land together or not at all."""
    today = services.clock.today()
    if card.status != CardStatus.ACTIVE:
        return None
    db.flush()  # the lookup below is Core: it sees what this session changed (an agreement just ended, say) once flushed
    agreement = active_terms(db.connection(), card.id, today)
    if agreement is None or card.balance_fen >= agreement.threshold_fen:
        return None
    busy = db.execute(
        select(AutodebitAttempt.id)
        .where(
            AutodebitAttempt.cardholder_id == card.id,
            or_(
                AutodebitAttempt.status.in_(OPEN),
                AutodebitAttempt.trigger_key == trigger_key,
                and_(AutodebitAttempt.status == AttemptStatus.FAILED, AutodebitAttempt.created_at >= day_start_utc(today)),
            ),
        )
        .limit(1)
    ).first()
    if busy or _credit_on_its_way(db, card.id):
        return None
    attempt = AutodebitAttempt(
        trigger_key=trigger_key[:128],
        agreement_id=agreement.id,
        cardholder_id=card.id,
        amount_fen=agreement.amount_fen,
        status=AttemptStatus.WAITING,
        created_at=services.clock.utcnow(),
    )
    db.add(attempt)
    db.flush()
    return attempt


def _credit_on_its_way(db: Session, cardholder_id: int) -> bool:
    """An auto top-up the bank paid is still waiting for the card system: the card is not low, only late."""
    return db.execute(select(_pending_autodebit_credit(cardholder_id))).scalar_one()


def _pending_autodebit_credit(cardholder_id: Any) -> Any:
    return exists().where(
        CardCredit.cardholder_id == cardholder_id, CardCredit.channel == CreditChannel.AUTODEBIT, CardCredit.status == CreditStatus.PENDING
    )


def _locked(db: Session, attempt_id: int) -> tuple[AutodebitAttempt, AutodebitAgreement, Cardholder]:
    """The attempt with its card and agreement, locked in the one order used everywhere: card → agreement → attempt."""
    card_id, agreement_id = db.execute(
        select(AutodebitAttempt.cardholder_id, AutodebitAttempt.agreement_id).where(AutodebitAttempt.id == attempt_id)
    ).one()
    card = lock_card(db, card_id)
    agreement = db.execute(select(AutodebitAgreement).where(AutodebitAgreement.id == agreement_id).with_for_update()).scalar_one()
    attempt = db.execute(select(AutodebitAttempt).where(AutodebitAttempt.id == attempt_id).with_for_update()).scalar_one()
    return attempt, agreement, card


def process_attempt(services: Runtime, attempt_id: int) -> str:
    """Take one attempt as far as it can go now; returns its status (``waiting`` outside bank hours).

    An attempt left ``processing`` may have been debited (answer lost, process killed): the bank is asked about its
    reference first, and only a reference the bank never received is decided again (cancel, or debit once more with
    the same reference)."""
    if not in_bank_hours(services):
        return AttemptStatus.WAITING
    ref = f"AD{attempt_id}"
    with services.session() as db:
        status = db.execute(select(AutodebitAttempt.status).where(AutodebitAttempt.id == attempt_id)).scalar_one()
    if status not in OPEN:
        return status
    if status == AttemptStatus.PROCESSING:
        try:
            known = services.bank.query(ref)
        except BankUnavailable as exc:
            log.warning("auto top-up %s: bank did not answer the query (%s); the sweep will ask again", attempt_id, exc)
            return AttemptStatus.PROCESSING
        if known.ok or known.reason != UNKNOWN_REFERENCE:
            return _settle(services, attempt_id, known)
    with services.session() as db, db.begin():
        attempt, agreement, card = _locked(db, attempt_id)
        if attempt.status != status:  # claimed or finished by another worker meanwhile: theirs to settle
            return attempt.status
        why = _no_longer_needed(services, db, attempt, agreement, card)
        if why:
            attempt.status, attempt.reason, attempt.done_at = AttemptStatus.CANCELLED, why, services.clock.utcnow()
            return attempt.status
        attempt.status, attempt.claimed_at = AttemptStatus.PROCESSING, services.clock.utcnow()
        account, amount = agreement.bank_account, attempt.amount_fen
    try:
        result = services.bank.debit(account, amount, ref)
    except BankUnavailable as exc:
        log.warning("auto top-up %s: bank unavailable (%s); the sweep will ask the bank about it", attempt_id, exc)
        return AttemptStatus.PROCESSING
    return _settle(services, attempt_id, result)


def _settle(services: Runtime, attempt_id: int, result: BankResult) -> str:
    """Record the bank's answer. A debit is owed to the card whatever became of the card, the agreement or the attempt
    since (the money is the student's) and delivered to the card system once it committed; a refusal only fails an
    attempt still in flight."""
    status, claimed = _record_bank_answer(services, attempt_id, result)
    credits.deliver_now(services, claimed)
    return status


def _record_bank_answer(services: Runtime, attempt_id: int, result: BankResult) -> tuple[str, credits.Claimed | None]:
    claimed: credits.Claimed | None = None
    with services.session() as db, db.begin():
        attempt, agreement, _ = _locked(db, attempt_id)
        if attempt.status == AttemptStatus.SUCCEEDED or (not result.ok and attempt.status != AttemptStatus.PROCESSING):
            return attempt.status, None
        lang = lang_of(db, agreement.openid)
        now = services.clock.utcnow()
        amount = attempt.amount_fen
        if result.ok:
            if attempt.status != AttemptStatus.PROCESSING:
                log.warning("auto top-up %s: the bank debited an attempt left %s; crediting it", attempt_id, attempt.status)
            attempt.status, attempt.reason, attempt.bank_ref, attempt.done_at = AttemptStatus.SUCCEEDED, None, result.bank_ref[:64], now
            card = db.get(Cardholder, attempt.cardholder_id)
            assert card is not None
            claimed = credits.owe(
                services,
                db,
                credits.Owed(
                    ref=f"AD{attempt_id}",
                    channel=CreditChannel.AUTODEBIT,
                    product=Product.CARD,
                    target=card.student_no,
                    cardholder_id=card.id,
                    student_no=card.student_no,
                    openid=agreement.openid,
                    amount_fen=amount,
                    fee_fen=0,
                    paid_at=now,
                    lang=lang,
                ),
            )
        else:
            reason = result.reason if result.reason in (INSUFFICIENT_FUNDS, NO_ACCOUNT) else "refused"
            attempt.status, attempt.reason, attempt.done_at = AttemptStatus.FAILED, reason, now
            notices.send(
                db,
                services.cfg,
                "autodebit_failure",
                agreement.openid,
                f"autodebit:{attempt_id}:fail",
                lang,
                amount=amount,
                reason=Said(f"notice_reason_{reason}"),
                advice=Said(f"notice_advice_{reason}"),
                time=stamp(services),
            )
        log.info("auto top-up %s: %s", attempt_id, attempt.status)
        return attempt.status, claimed


def _no_longer_needed(services: Runtime, db: Session, attempt: AutodebitAttempt, agreement: AutodebitAgreement, card: Cardholder) -> str:
    if agreement.status != AgreementStatus.ACTIVE or agreement.expires_on <= services.clock.today():
        return "agreement_ended"
    if card.status != CardStatus.ACTIVE:
        return "card_blocked"
    if card.balance_fen >= agreement.threshold_fen or _credit_on_its_way(db, card.id):
        return "not_needed"
    other = db.execute(
        select(AutodebitAttempt.id)
        .where(
            AutodebitAttempt.cardholder_id == attempt.cardholder_id,
            AutodebitAttempt.id != attempt.id,
            AutodebitAttempt.status == AttemptStatus.PROCESSING,
        )
        .limit(1)
    ).first()
    return "superseded" if other else ""


# --- the sweep -----------------------------------------------------------------------
def sweep(services: Runtime) -> dict[str, int]:
    """Catch what triggers missed (set-based, one INSERT … SELECT), then process open attempts inside bank hours."""
    created = create_missed_attempts(services)
    outcomes: dict[str, int] = {"created": created}
    if not in_bank_hours(services):
        return outcomes
    stale = services.clock.utcnow() - STALE_PROCESSING
    with services.session() as db:
        ids = list(
            db.execute(
                select(AutodebitAttempt.id)
                .where(
                    or_(
                        AutodebitAttempt.status == AttemptStatus.WAITING,
                        and_(AutodebitAttempt.status == AttemptStatus.PROCESSING, AutodebitAttempt.claimed_at < stale),
                    )
                )
                .order_by(AutodebitAttempt.id)
            ).scalars()
        )
    if ids:
        with ThreadPoolExecutor(max_workers=min(SWEEP_THREADS, len(ids)), thread_name_prefix="sweep") as pool:
            for status in pool.map(lambda i: _safe_process(services, i), ids):
                outcomes[status] = outcomes.get(status, 0) + 1
    return outcomes


def _safe_process(services: Runtime, attempt_id: int) -> str:
    try:
        return process_attempt(services, attempt_id)
    except Exception:
        log.exception("auto top-up %s failed unexpectedly; left for the next sweep", attempt_id)
        return "error"


def create_missed_attempts(services: Runtime) -> int:
    """Cards below their threshold with an active agreement and no attempt open or made today get a waiting attempt."""
    today = services.clock.today()
    a, c, t_ = AutodebitAgreement, Cardholder, AutodebitAttempt
    key = literal(f"sweep:{today.isoformat()}:", String) + cast(a.cardholder_id, String)
    rows = (
        select(key, a.id, a.cardholder_id, a.amount_fen, literal(AttemptStatus.WAITING.value, String), literal(services.clock.utcnow()))
        .join(c, c.id == a.cardholder_id)
        .where(
            a.status == AgreementStatus.ACTIVE,
            a.expires_on > today,
            c.status == CardStatus.ACTIVE,
            c.balance_fen < a.threshold_fen,
            ~exists().where(t_.cardholder_id == a.cardholder_id, or_(t_.status.in_(OPEN), t_.created_at >= day_start_utc(today))),
            ~_pending_autodebit_credit(a.cardholder_id),
        )
    )
    stmt = insert(t_).from_select(["trigger_key", "agreement_id", "cardholder_id", "amount_fen", "status", "created_at"], rows)
    try:
        with services.session() as db, db.begin():
            return len(db.connection().execute(stmt.returning(t_.id)).all())
    except IntegrityError:
        log.info("another sweep created today's attempts first")
        return 0


# --- reconciliation with the bank ----------------------------------------------------
@dataclass(frozen=True)
class BankDifference:
    kind: str  # missing_locally (debited, not credited) | missing_at_bank (credited, not debited) | amount_mismatch
    ref: str
    local_fen: int | None
    bank_fen: int | None
    note: str = ""

    def __str__(self) -> str:
        local = "-" if self.local_fen is None else yuan(self.local_fen)
        remote = "-" if self.bank_fen is None else yuan(self.bank_fen)
        return f"{self.kind:<19} {self.ref:<32} local={local:>10} bank={remote:>10} {self.note}".rstrip()


def reconcile_bank(services: Runtime, day: date) -> list[BankDifference]:
    """The bank's debits of ``day`` against the auto top-ups we owe the card for that school day (``CardCredit``,
    written with the bank's confirmation, whichever card system is configured). A debit is matched with its credit
    whatever day that was written; a credit missing from the day's statement is asked about by reference (it may
    have been debited the day before). Raises ``BankUnavailable`` when the bank does not answer."""
    debits = services.bank.debits(day)
    start, end = day_start_utc(day), day_start_utc(day + timedelta(days=1))
    refs = [d.ref for d in debits]
    with services.session() as db:
        matched = {c.ref: c for c in db.execute(select(CardCredit).where(CardCredit.ref.in_(refs))).scalars()} if refs else {}
        ours = db.execute(
            select(CardCredit.ref, CardCredit.amount_fen)
            .where(CardCredit.channel == CreditChannel.AUTODEBIT, CardCredit.paid_at >= start, CardCredit.paid_at < end)
            .order_by(CardCredit.id)
        ).all()
    diffs: list[BankDifference] = []
    for d in debits:
        credit = matched.get(d.ref) if re.fullmatch(r"AD\d+", d.ref) else None
        if credit is None:
            diffs.append(BankDifference("missing_locally", d.ref, None, d.amount_fen, "" if re.fullmatch(r"AD\d+", d.ref) else "not our reference"))
        elif credit.amount_fen != d.amount_fen:
            diffs.append(BankDifference("amount_mismatch", d.ref, credit.amount_fen, d.amount_fen))
    on_statement = set(refs)
    for ref, amount in ours:
        if ref in on_statement:
            continue
        known = services.bank.query(ref)
        if not known.ok:
            diffs.append(BankDifference("missing_at_bank", ref, amount, None, known.reason))
    return diffs


# --- agreements ending ------------------------------------------------------------
def run_agreement_reminders(services: Runtime, batch: int = 500) -> dict[str, int]:
    """End agreements whose day has come, and remind ``reminder_days_before`` the end; each with a notice."""
    today = services.clock.today()
    a = AutodebitAgreement
    before = today + timedelta(days=services.cfg.autodebit.reminder_days_before)

    def expire(ag: AutodebitAgreement) -> None:
        ag.status = AgreementStatus.EXPIRED

    def remind(ag: AutodebitAgreement) -> None:
        ag.reminder_sent_on = today

    return {
        "expired": _agreement_notices(services, batch, [a.expires_on <= today], expire, "agreement_expired", "notice_agreement_ended"),
        "reminded": _agreement_notices(
            services,
            batch,
            [a.reminder_sent_on.is_(None), a.expires_on > today, a.expires_on <= before],
            remind,
            "agreement_expiring",
            "notice_agreement_ending",
        ),
    }


def _agreement_notices(services: Runtime, batch: int, where: list[Any], change: Any, kind: str, status_key: str) -> int:
    """Apply ``change`` to active agreements matching ``where`` in batches (rows locked, skipped if another worker
    has them), queueing ``kind`` to the signer in their language in the same transaction."""
    done = 0
    while True:
        with services.session() as db, db.begin():
            rows = db.execute(
                select(AutodebitAgreement, WechatUser.lang)
                .outerjoin(WechatUser, WechatUser.openid == AutodebitAgreement.openid)
                .where(AutodebitAgreement.status == AgreementStatus.ACTIVE, *where)
                .order_by(AutodebitAgreement.id)
                .limit(batch)
                .with_for_update(of=AutodebitAgreement, skip_locked=True)
            ).all()
            for ag, lang in rows:
                change(ag)
                notices.send(
                    db,
                    services.cfg,
                    kind,
                    ag.openid,
                    f"agreement:{ag.id}:{kind}",
                    lang or "zh",
                    status=Said(status_key),
                    date=f"{ag.expires_on:%Y-%m-%d}",
                    advice=Said("notice_agreement_advice"),
                )
        done += len(rows)
        if len(rows) < batch:
            return done


# --- refunds -------------------------------------------------------------------------
@dataclass(frozen=True)
class RecentTopup:
    attempt: AutodebitAttempt
    request: RefundRequest | None
    deadline: date
    refundable: bool


def recent_topups(services: Runtime, db: Session, cardholder_id: int) -> list[RecentTopup]:
    """This and last month's auto top-ups, newest first, with any refund request and its deadline."""
    today = services.clock.today()
    since = day_start_utc(month_start(today, back=1))
    attempts = (
        db.execute(
            select(AutodebitAttempt)
            .where(
                AutodebitAttempt.cardholder_id == cardholder_id, AutodebitAttempt.status == AttemptStatus.SUCCEEDED, AutodebitAttempt.done_at >= since
            )
            .order_by(AutodebitAttempt.done_at.desc())
        )
        .scalars()
        .all()
    )
    requests = (
        {r.attempt_id: r for r in db.execute(select(RefundRequest).where(RefundRequest.attempt_id.in_([a.id for a in attempts]))).scalars()}
        if attempts
        else {}
    )
    out = []
    for a in attempts:
        assert a.done_at is not None
        deadline = refund_deadline(services, a.done_at)
        out.append(RecentTopup(a, requests.get(a.id), deadline, a.id not in requests and today <= deadline))
    return out


def request_refund(services: Runtime, openid: str, attempt_id: Any) -> RefundRequest:
    """Ask for a refund of one of the card's own auto top-ups until its deadline; one request per top-up.

    Only where the bot keeps the balance: a remote card system has no call to take money off a card (cardsys/1), so
    there the service center does it in person."""
    _refunds_here(services)
    with services.session() as db, db.begin():
        card = card_for(db, openid)
        if card is None:
            raise refused("not_bound", 409)
        if not isinstance(attempt_id, int) or isinstance(attempt_id, bool) or not 0 < attempt_id < 2**31:
            raise refused("not_found", 404)
        attempt = db.get(AutodebitAttempt, attempt_id)
        if attempt is None or attempt.cardholder_id != card.id or attempt.status != AttemptStatus.SUCCEEDED or attempt.done_at is None:
            raise refused("not_found", 404)
        deadline = refund_deadline(services, attempt.done_at)
        if services.clock.today() > deadline:
            raise refused("too_late", 409, deadline=f"{deadline:%Y-%m-%d}")
        req = RefundRequest(attempt_id=attempt.id, openid=openid, status=RefundStatus.PENDING, requested_at=services.clock.utcnow())
        try:
            with db.begin_nested():
                db.add(req)
        except IntegrityError:  # the unique attempt_id: asked before, or by a family member at the same moment
            raise refused("already_requested", 409) from None
        return req


def _refunds_here(services: Runtime) -> None:
    if services.card_system.remote:
        raise refused("refund_at_desk", 409, center=services.cfg.school.center)


def _refund_locked(db: Session, request_id: int) -> RefundRequest | None:
    """The refund request, locked after its card (the one lock order: card first, then what hangs off it). The card
    is found by a plain read (a request never changes its attempt); the request is read again under the lock, so the
    caller checks its state as it is now."""
    card_of = select(AutodebitAttempt.cardholder_id).join(RefundRequest, RefundRequest.attempt_id == AutodebitAttempt.id)
    card_id = db.execute(card_of.where(RefundRequest.id == request_id)).scalar_one_or_none()
    if card_id is None:
        return None
    lock_card(db, card_id)
    return db.execute(select(RefundRequest).where(RefundRequest.id == request_id).with_for_update()).scalar_one()


def approve_refund(services: Runtime, request_id: int, operator: str) -> RefundRequest:
    """Take the money off the card (ledger, idempotent), return it to the bank (idempotent by reference), tell the
    student. Safe to run again after an interruption: each step is keyed on the attempt."""
    _refunds_here(services)
    with services.session() as db, db.begin():
        req = _refund_locked(db, request_id)
        if req is None:
            raise refused("not_found", 404)
        if req.status == RefundStatus.APPROVED:
            return req
        if req.status not in (RefundStatus.PENDING, RefundStatus.APPROVING):
            raise refused("already_decided", 409, state=req.status)
        attempt = db.get(AutodebitAttempt, req.attempt_id)
        assert attempt is not None and attempt.bank_ref
        agreement = db.get(AutodebitAgreement, attempt.agreement_id)
        assert agreement is not None
        lang = lang_of(db, req.openid)
        try:
            post_entry(
                db,
                attempt.cardholder_id,
                -attempt.amount_fen,
                EntryKind.REFUND,
                f"autodebit-refund:{attempt.id}",
                description=t(lang, "kind_refund"),
                ref=attempt.bank_ref,
                at=services.clock.utcnow(),
            )
        except InsufficientBalance:
            raise refused("balance_too_low", 409) from None
        req.status = RefundStatus.APPROVING
        account, amount, original = agreement.bank_account, attempt.amount_fen, attempt.bank_ref
        attempt_id, card_id = attempt.id, attempt.cardholder_id
    try:
        result = services.bank.refund(account, amount, f"RF{attempt_id}", original)
    except BankUnavailable:
        raise refused("bank_unavailable", 503) from None
    with services.session() as db, db.begin():
        req = _refund_locked(db, request_id)
        assert req is not None
        if req.status != RefundStatus.APPROVING:
            return req
        lang = lang_of(db, req.openid)
        now = services.clock.utcnow()
        req.decided_at, req.decided_by = now, operator[:64]
        if not result.ok:
            # The bank will not take it back: give the card its money again and leave the case to the service center.
            post_entry(db, card_id, amount, EntryKind.ADJUST, f"autodebit-refund-undo:{attempt_id}", description=t(lang, "kind_adjust"), at=now)
            req.status, req.note = RefundStatus.FAILED, f"bank: {result.reason} {result.message}"[:256]
            raise_after = refused("bank_refused_refund", 409, reason=result.reason)
        else:
            req.status = RefundStatus.APPROVED
            raise_after = None
            notices.send(
                db,
                services.cfg,
                "refund_result",
                req.openid,
                f"refund:{req.id}:approved",
                lang,
                amount=amount,
                result=Said("notice_refund_approved"),
                time=stamp(services),
            )
    if raise_after is not None:
        raise raise_after
    return req


def reject_refund(services: Runtime, request_id: int, operator: str, note: str = "") -> RefundRequest:
    with services.session() as db, db.begin():
        req = db.execute(select(RefundRequest).where(RefundRequest.id == request_id).with_for_update()).scalar_one_or_none()
        if req is None:
            raise refused("not_found", 404)
        if req.status == RefundStatus.REJECTED:
            return req
        if req.status != RefundStatus.PENDING:
            raise refused("already_decided", 409, state=req.status)
        attempt = db.get(AutodebitAttempt, req.attempt_id)
        assert attempt is not None
        req.status, req.decided_at, req.decided_by, req.note = RefundStatus.REJECTED, services.clock.utcnow(), operator[:64], note[:256] or None
        notices.send(
            db,
            services.cfg,
            "refund_result",
            req.openid,
            f"refund:{req.id}:rejected",
            amount=attempt.amount_fen,
            result=Said("notice_refund_rejected"),
            time=stamp(services),
        )
        return req


@dataclass(frozen=True)
class RefundCase:
    """A refund request as the service center lists it."""

    request: RefundRequest
    attempt: AutodebitAttempt
    student_no: str
    bank_last4: str


def refund_cases(services: Runtime, *, open_only: bool = True, cardholder_id: int | None = None) -> list[RefundCase]:
    """Refund requests (waiting ones unless ``open_only`` is False), oldest first; one card's if ``cardholder_id``."""
    q = (
        select(RefundRequest, AutodebitAttempt, Cardholder.student_no, AutodebitAgreement.bank_last4)
        .join(AutodebitAttempt, AutodebitAttempt.id == RefundRequest.attempt_id)
        .join(Cardholder, Cardholder.id == AutodebitAttempt.cardholder_id)
        .join(AutodebitAgreement, AutodebitAgreement.id == AutodebitAttempt.agreement_id)
        .order_by(RefundRequest.id)
    )
    if open_only:
        q = q.where(RefundRequest.status.in_((RefundStatus.PENDING, RefundStatus.APPROVING)))
    if cardholder_id is not None:
        q = q.where(AutodebitAttempt.cardholder_id == cardholder_id)
    with services.session() as db:
        return [RefundCase(req, attempt, no, last4) for req, attempt, no, last4 in db.execute(q).all()]


@dataclass(frozen=True)
class AutodebitFile:
    """A card's auto top-up as the service center sees it: its newest agreement and attempts."""

    agreement: AutodebitAgreement | None
    attempts: list[AutodebitAttempt]


def autodebit_file(services: Runtime, cardholder_id: int, limit: int = 20) -> AutodebitFile:
    with services.session() as db:
        agreement = db.execute(
            select(AutodebitAgreement).where(AutodebitAgreement.cardholder_id == cardholder_id).order_by(AutodebitAgreement.id.desc()).limit(1)
        ).scalar_one_or_none()
        attempts = db.execute(
            select(AutodebitAttempt).where(AutodebitAttempt.cardholder_id == cardholder_id).order_by(AutodebitAttempt.id.desc()).limit(limit)
        ).scalars()
        return AutodebitFile(agreement, list(attempts))
