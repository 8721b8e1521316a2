"""Paid money on its way to its target: owed in the payment's own transaction, delivered to the target system by ``ref``.

One machinery for every product (``bot.products``): money for a card goes to the card system, money for a dorm
room's electricity to the electricity system; ``target`` is the student number or the room id.

A payment WeChat Pay confirmed (``ref`` = our order number) or an auto top-up the bank confirmed (``ref`` =
``AD{attempt id}``) is written as a ``CardCredit`` in the same transaction that records the payment (``owe``). The
payment's own request delivers it at once (a notify right after its answer); whatever is left (maintenance, no
answer, a killed process) the worker delivers (``deliver_due``). Delivery is safe to repeat and to race: the card
system answers a repeated ``ref`` with its first answer and moves no money again, and only the ``pending →
delivered/refused`` transition of the locked row sends the receipt. An outcome we did not hear is asked about
(``credit_status(ref)``) before the same ``ref`` is sent again; a new ``ref`` is never made for the same money.

While a credit waits the student is told once why and until when ("已支付，待入账"); a delivered credit sends the
receipt with the card system's new balance; a refused one is told and listed for the service center, who may retry it
or refund it (WeChat Pay refund, or the bank for an auto top-up) — only money the card system refused goes back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from bot import notices, products
from bot.adapters.target import TargetNoAnswer, TargetProtocolError, TargetUnavailable
from bot.clock import to_local
from bot.money import yuan
from bot.notices import Said
from bot.texts import Localized, t
from models import CardCredit, Cardholder, WechatUser
from models.enums import CreditChannel, CreditStatus, Product

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


_CREDITS = cast(Table, CardCredit.__table__)
_OWE = insert(_CREDITS).returning(_CREDITS.c.id)


@dataclass(frozen=True)
class Owed:
    """Money a payment owes to its target, as the payment's transaction knows it (no row is loaded to owe it)."""

    ref: str
    channel: CreditChannel
    product: Product
    target: str  # the student number (card) or the room id (power)
    cardholder_id: int  # the payer's card
    student_no: str  # the payer's student number
    openid: str
    amount_fen: int
    fee_fen: int
    paid_at: datetime  # naive UTC
    lang: str | None = None  # the payer's language when the caller knows it (the receipt's)
    balance_fen: int | None = None  # the target system's answer, once delivered
    kwh_after: Decimal | None = None


def owe(services: Runtime, db: Session, owed: Owed, *, claim: bool = True) -> Claimed | None:
    """Record, in the caller's (the payment's) transaction, that ``owed`` is owed to its target: one INSERT, once per
    ``ref`` (the caller's locked state change makes this the first time; the unique ``ref`` is the backstop).

    A target in the bot's own database (the ``ledger`` card system) is delivered right here: the payment, the ledger
    entry, the delivered credit and its receipt commit together, and None is returned. Any other is written claimed
    by this caller and returned, for ``deliver_now`` to send as soon as the transaction has committed, with no claim
    of its own; a caller that dies meanwhile leaves a claim that goes stale, and the worker asks about the ``ref``
    before it sends again. ``claim=False`` leaves the credit to the worker (``deliver_due``)."""
    now = services.clock.utcnow()
    port = products.port(owed.product)
    d = products.Delivery(owed.ref, owed.target, owed.amount_fen, owed.channel, owed.paid_at.replace(tzinfo=UTC))
    answer = port.deliver_in(services, db, d) if claim else None
    values: dict[str, Any] = {
        "ref": owed.ref,
        "channel": owed.channel,
        "product": owed.product,
        "target": owed.target,
        "cardholder_id": owed.cardholder_id,
        "student_no": owed.student_no,
        "openid": owed.openid,
        "amount_fen": owed.amount_fen,
        "fee_fen": owed.fee_fen,
        "paid_at": owed.paid_at,
        "status": CreditStatus.PENDING,
        "tries": 0,
        "next_try_at": now,
        "created_at": now,
    }
    if answer is not None and answer.ok:
        values |= {"status": CreditStatus.DELIVERED, "entry_id": answer.entry_id[:64], "balance_fen": answer.balance_fen}
        values |= {"kwh_after": answer.kwh_after, "tries": 1, "done_at": now}
    elif claim:  # across the network, or refused (the usual way, which lists a refusal)
        values |= {"tries": 1, "claimed_at": now}
    credit_id = db.connection().execute(_OWE, values).scalar_one()
    if values["status"] == CreditStatus.DELIVERED:
        assert answer is not None
        port.on_delivered(services, db, replace(owed, balance_fen=answer.balance_fen, kwh_after=answer.kwh_after))
        return None
    return Claimed(credit_id, d, owed.product, unsure=False) if claim else None


# --- delivery ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claimed:
    id: int
    delivery: products.Delivery
    product: Product
    unsure: bool  # an earlier try may have reached the target system: ask before sending again


_CLAIMED = (
    CardCredit.id,
    CardCredit.ref,
    CardCredit.target,
    CardCredit.amount_fen,
    CardCredit.channel,
    CardCredit.paid_at,
    CardCredit.product,
    CardCredit.tries,
    CardCredit.waiting_for,
)


def _claimable(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (CardCredit.status == CreditStatus.PENDING, or_(CardCredit.claimed_at.is_(None), CardCredit.claimed_at < now - CLAIM_STALE))


def _claimed(c: Any) -> Claimed:
    unsure = c.tries > 1 and c.waiting_for != Waiting.MAINTENANCE
    d = products.Delivery(c.ref, c.target, c.amount_fen, CreditChannel(c.channel), c.paid_at.replace(tzinfo=UTC))
    return Claimed(c.id, d, Product(c.product), unsure)


def _claim(services: Runtime, credit_id: int) -> Claimed | None:
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


def _claim_due(services: Runtime, n: int) -> list[Claimed]:
    """Up to ``n`` credits whose time has come, claimed in one statement; rows another worker holds are skipped."""
    now = services.clock.utcnow()
    due = (
        select(CardCredit.id)
        .where(*_claimable(now), CardCredit.next_try_at <= now)
        .order_by(CardCredit.next_try_at, CardCredit.id)
        .limit(n)
        .with_for_update(skip_locked=True)
        # computed once (bot.outbox.claim's reason): as a subquery a nested-loop join re-ran it per row, each run
        # skipping the rows the UPDATE had just claimed, and one claim took every due credit instead of ``n``
        .cte("due")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    with services.session() as db, db.begin():
        rows = (
            db.connection()
            .execute(
                update(CardCredit)
                .where(CardCredit.id.in_(select(due.c.id)), *_claimable(now))
                .values(claimed_at=now, tries=CardCredit.tries + 1)
                .returning(*_CLAIMED)
            )
            .all()
        )
    return sorted((_claimed(r) for r in rows), key=lambda c: c.id)


def deliver(services: Runtime, credit_id: int) -> str:
    """Take one pending credit as far as it can go now; returns its status (``pending`` while it must wait).

    Never raises for the target system's failures: they leave the credit pending with the reason and the next try."""
    claimed = _claim(services, credit_id)
    if claimed is None:
        with services.session() as db:
            return str(db.execute(select(CardCredit.status).where(CardCredit.id == credit_id)).scalar_one())
    return _deliver_claimed(services, claimed)


Recorder = Callable[["Runtime", int, products.Delivered], str]


def _deliver_claimed(services: Runtime, claimed: Claimed, record: Recorder | None = None) -> str:
    try:
        return _send(services, claimed, record or _record)
    except Exception:
        # the target may have taken it (our own database failed us): release for a try that asks about the ref
        log.exception("credit %s: delivery failed unexpectedly; the next try asks the target system about it", claimed.delivery.ref)
        with contextlib.suppress(Exception):
            _wait(services, claimed.id, Waiting.NO_ANSWER)
        return CreditStatus.PENDING


def _send(services: Runtime, claimed: Claimed, record: Recorder) -> str:
    credit_id = claimed.id
    port, ref = products.port(claimed.product), claimed.delivery.ref
    try:
        answer = port.ask(services, ref) if claimed.unsure else None
        if answer is None:
            answer = port.send(services, claimed.delivery)
    except TargetUnavailable as exc:
        return _wait(services, credit_id, Waiting.MAINTENANCE, timedelta(seconds=max(1, exc.retry_after)))
    except TargetNoAnswer as exc:
        log.warning("credit %s: no answer from the %s (%s); will ask about the same ref", ref, port.system, exc)
        return _wait(services, credit_id, Waiting.NO_ANSWER)
    except TargetProtocolError as exc:
        log.error("credit %s: the %s broke the protocol (%s); will ask about the same ref", ref, port.system, exc)
        return _wait(services, credit_id, Waiting.PROTOCOL)
    return record(services, credit_id, answer)


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
        port = products.port(c.product)
        notices.send(
            db,
            services.cfg,
            port.delayed_kind,
            c.openid,
            f"credit:{c.ref}:delayed",
            amount=c.amount_fen,
            status=Said(f"{port.texts}wait_maintenance", {"until": f"{to_local(c.next_try_at):%H:%M}"})
            if why == Waiting.MAINTENANCE
            else Said(f"{port.texts}wait_no_answer"),
            advice=Said(f"{port.texts}wait_advice"),
            time=f"{to_local(c.paid_at):%Y-%m-%d %H:%M}",
        )
        return CreditStatus.PENDING


def _record(services: Runtime, credit_id: int, answer: products.Delivered) -> str:
    """The target system's answer, recorded with its notice in one transaction (once, whoever delivered)."""
    with services.session() as db, db.begin():
        return _record_in(services, db, credit_id, answer, services.clock.utcnow())


def _record_in(services: Runtime, db: Session, credit_id: int, answer: products.Delivered, now: datetime) -> str:
    """Only the ``pending`` row's own update returns it (with the payer's language), so a second recorder finds
    nothing to do."""
    if answer.ok:
        stmt, done = _DELIVERED, {"b_entry": answer.entry_id[:64], "b_balance": answer.balance_fen, "b_kwh": answer.kwh_after}
    else:
        stmt, done = _REFUSED, {"b_reason": answer.reason or "refused"}
    c = db.connection().execute(stmt, {"b_id": credit_id, "b_now": now, **done}).one_or_none()
    if c is None:
        return str(db.execute(select(CardCredit.status).where(CardCredit.id == credit_id)).scalar_one())
    port = products.port(c.product)
    if answer.ok:
        port.on_delivered(services, db, c)
        return CreditStatus.DELIVERED
    log.warning("credit %s refused by the %s (%s): listed for the service center", c.ref, port.system, c.reason)
    notices.send(
        db,
        services.cfg,
        port.refused_kind,
        c.openid,
        f"credit:{c.ref}:refused",
        c.lang or "zh",
        amount=c.amount_fen,
        status=Said(f"{port.texts}refused_{c.reason}"),
        advice=Said(f"{port.texts}refused_advice"),
        time=f"{to_local(c.paid_at):%Y-%m-%d %H:%M}",
    )
    return CreditStatus.REFUSED


_RECORDED = tuple(
    _CREDITS.c[name]
    for name in (
        "ref",
        "product",
        "channel",
        "target",
        "cardholder_id",
        "openid",
        "amount_fen",
        "fee_fen",
        "paid_at",
        "balance_fen",
        "kwh_after",
        "reason",
    )
)
_PENDING = update(_CREDITS).where(_CREDITS.c.id == bindparam("b_id"), _CREDITS.c.status == CreditStatus.PENDING)
_DONE: dict[str, Any] = {"claimed_at": None, "waiting_for": None, "done_at": bindparam("b_now")}
_USERS = cast(Table, WechatUser.__table__)
_LANG = select(_USERS.c.lang).where(_USERS.c.openid == _CREDITS.c.openid).scalar_subquery().label("lang")
# Composed once (Core, bound per call): the answer recorded, returning what the receipt or the refusal notice needs.
_DELIVERED = _PENDING.values(
    status=CreditStatus.DELIVERED, entry_id=bindparam("b_entry"), balance_fen=bindparam("b_balance"), kwh_after=bindparam("b_kwh"), **_DONE
).returning(*_RECORDED, _LANG)
_REFUSED = _PENDING.values(status=CreditStatus.REFUSED, reason=bindparam("b_reason"), **_DONE).returning(*_RECORDED, _LANG)
_DELIVERED_MANY = _PENDING.values(
    status=CreditStatus.DELIVERED, entry_id=bindparam("b_entry"), balance_fen=bindparam("b_balance"), kwh_after=bindparam("b_kwh"), **_DONE
)
_PENDING_ROWS = (
    select(_CREDITS.c.id, *_RECORDED, _LANG)
    .where(_CREDITS.c.id.in_(bindparam("b_ids", expanding=True)), _CREDITS.c.status == CreditStatus.PENDING)
    .order_by(_CREDITS.c.id)
    .with_for_update(of=_CREDITS)
)


def _record_batch(services: Runtime, db: Session, batch: list[tuple[str, int, products.Delivered]]) -> None:
    """Answers of several credits recorded in the caller's transaction, in a few statements whatever their number: the
    still ``pending`` rows locked and read in one query (a row another recorder moved meanwhile is not among them, so
    its receipt is not sent twice), moved to ``delivered`` in one executed UPDATE, their receipts by their product's
    ``on_delivered_many``. Refusals (rare) are recorded one by one."""
    now = services.clock.utcnow()
    ok = {credit_id: answer for _, credit_id, answer in batch if answer.ok}
    for _, credit_id, answer in batch:
        if not answer.ok:
            _record_in(services, db, credit_id, answer, now)
    if not ok:
        return
    conn = db.connection()
    rows = conn.execute(_PENDING_ROWS, {"b_ids": sorted(ok)}).all()
    if not rows:
        return
    conn.execute(
        _DELIVERED_MANY,
        [
            {"b_id": r.id, "b_now": now, "b_entry": ok[r.id].entry_id[:64], "b_balance": ok[r.id].balance_fen, "b_kwh": ok[r.id].kwh_after}
            for r in rows
        ],
    )
    by_product: dict[str, list[SimpleNamespace]] = {}
    for r in sorted(rows, key=lambda r: (r.target, r.id)):  # rows the receipts lock, locked in one order
        c = SimpleNamespace(**{**r._asdict(), "balance_fen": ok[r.id].balance_fen, "kwh_after": ok[r.id].kwh_after})
        by_product.setdefault(c.product, []).append(c)
    for product, delivered in by_product.items():
        products.port(product).on_delivered_many(services, db, delivered)


def remember_balance(db: Session, cardholder_id: int, balance_fen: int, as_of: datetime) -> None:
    """Keep the card system's latest balance (``http``): what the bot shows when the card system does not answer."""
    db.connection().execute(
        update(Cardholder)
        .where(Cardholder.id == cardholder_id, or_(Cardholder.balance_as_of.is_(None), Cardholder.balance_as_of <= as_of))
        .values(balance_fen=balance_fen, balance_as_of=as_of)
    )


def deliver_now(services: Runtime, claimed: Claimed | None) -> None:
    """Deliver what ``owe`` claimed, right after the payment committed; anything unexpected is left to the worker,
    never to the payer."""
    if claimed is not None:
        _deliver_claimed(services, claimed)


class AfterAnswer:
    """Deliveries handed over by requests that answer before delivering (``/pay/notify``): their credits are committed
    and claimed (``owe``), so the answer is safe; delivery follows at once on a few threads of this process. When those
    are all busy the request delivers itself, so a slow target system slows the notifies instead of piling up claims;
    a process that dies meanwhile leaves claims that go stale, and the worker asks about their refs.

    The threads only call the target system: its answers are recorded by one recorder thread, every answer that came
    in meanwhile in one transaction (group commit), so a busy process spends one transaction, not one per answer, and
    one database connection, not one per delivery thread. At most ``4 × threads`` answers wait for it; beyond that a
    thread records its own answer (a slow database slows the deliveries, answers never pile up). A batch that fails
    to record leaves each of its credits waiting for a try that asks about its ref, as a failed ``_record`` does."""

    def __init__(self, threads: int = DELIVER_THREADS) -> None:
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="deliver")
        self.room = threading.BoundedSemaphore(2 * threads)
        self.recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="record")
        self.lock = threading.Lock()
        self.answers: list[tuple[str, int, products.Delivered]] = []  # (target, credit id, answer)
        self.backlog = 4 * threads
        self.recording = False

    def deliver(self, services: Runtime, claimed: Claimed | None) -> None:
        if claimed is None:
            return
        if not self.room.acquire(blocking=False):
            deliver_now(services, claimed)
            return
        future = self.pool.submit(_deliver_claimed, services, claimed, self._handed(claimed.delivery.target))
        future.add_done_callback(lambda _: self.room.release())

    def _handed(self, target: str) -> Recorder:
        def hand(services: Runtime, credit_id: int, answer: products.Delivered) -> str:
            with self.lock:
                behind = len(self.answers) >= self.backlog
                if not behind:
                    self.answers.append((target, credit_id, answer))
                    start, self.recording = not self.recording, True
            if behind:
                return _record(services, credit_id, answer)
            if start:
                self.recorder.submit(self._record_waiting, services)
            return CreditStatus.PENDING  # until the recorder has it

        return hand

    def _record_waiting(self, services: Runtime) -> None:
        while True:
            with self.lock:
                batch, self.answers = self.answers, []
                if not batch:
                    self.recording = False
                    return
            # rows locked in one order (the target's, as the receipt locks the room or the card), so the batches of
            # two processes cannot deadlock
            batch.sort(key=lambda a: (a[0], a[1]))
            try:
                with services.session() as db, db.begin():
                    _record_batch(services, db, batch)
            except Exception:
                log.exception("%d answers not recorded; each credit's next try asks the target system about its ref", len(batch))
                for _, credit_id, _ in batch:
                    with contextlib.suppress(Exception):
                        _wait(services, credit_id, Waiting.NO_ANSWER)

    def close(self) -> None:
        """Let the deliveries under way finish (each is bounded by the target system's timeout), then their recording."""
        self.pool.shutdown(wait=True)
        self.recorder.shutdown(wait=True)


def deliver_due(services: Runtime, limit: int = 2000) -> dict[str, int]:
    """The worker's pass: up to ``limit`` pending credits whose time has come, several at once (safe across workers).

    Credits are claimed a few at a time, as threads come free, so a claim is never much older than the call it waits
    for (a claim left ``CLAIM_STALE`` would be taken again by another worker)."""
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    room = threading.BoundedSemaphore(2 * DELIVER_THREADS)

    def done(future: Future[str]) -> None:
        status = future.result()
        with lock:
            outcomes[status] = outcomes.get(status, 0) + 1
        room.release()

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


def _safe(services: Runtime, claimed: Claimed) -> str:
    try:
        return _deliver_claimed(services, claimed)
    except Exception:
        log.exception("credit %s: delivery failed unexpectedly; left for the next pass", claimed.delivery.ref)
        return "error"


def told(c: CardCredit, lang: str, center: Localized) -> str:
    """A pending or refused credit in the student's words: how much, why it has not arrived, until when."""
    amount, texts = yuan(c.amount_fen), products.port(c.product).texts
    if c.status == CreditStatus.REFUSED:
        return t(lang, f"{texts}refused_line", amount=amount, reason=t(lang, f"{texts}refused_{c.reason or 'refused'}"), center=center)
    when = f"{to_local(c.next_try_at):%H:%M}"
    if c.waiting_for == Waiting.MAINTENANCE:
        why = t(lang, f"{texts}why_maintenance", until=when)
    elif c.waiting_for:
        why = t(lang, f"{texts}why_no_answer", at=when)
    else:
        why = t(lang, f"{texts}why_delivering")
    return t(lang, f"{texts}pending", amount=amount, why=why)


def waiting(db: Session, cardholder_id: int) -> list[CardCredit]:
    """The card's credits paid but not yet on the card, oldest first (what "已支付，待入账" lists)."""
    return list(
        db.execute(
            select(CardCredit)
            .where(CardCredit.cardholder_id == cardholder_id, CardCredit.product == Product.CARD, CardCredit.status == CreditStatus.PENDING)
            .order_by(CardCredit.id)
        ).scalars()
    )
