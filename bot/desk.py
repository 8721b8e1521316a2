"""What the service center sees (the console at /admin): a student's whole file, the search that finds it, and the
day at a glance. Read-only: actions go through the domain functions the CLI uses (binding, autodebit, credit_refunds,
outbox, announcements). Outside systems are asked only where the file needs their word now (the card system's
balance and entries, WeChat Pay's state of the newest orders); an outside system that does not answer is said so.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis
import requests
from sqlalchemy import func, or_, select

from bot import balances, outbox, reconciliation
from bot.adapters.cardsystem import CardSystemError, Entry
from bot.adapters.pay import PayError
from bot.autodebit import AutodebitFile, RefundCase, autodebit_file, refund_cases
from bot.binding_lock import BindingLock, Lock
from bot.calendar import day_start_utc
from bot.clock import to_local
from models import AutodebitAttempt, Binding, CardCredit, Cardholder, OutboxNotice, ReconciliationRun, TopupOrder
from models.enums import CreditStatus, OrderStatus

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

SEARCH_LIMIT = 20
ORDERS_SHOWN = 15
ORDERS_ASKED = 5  # the newest orders whose state WeChat Pay is asked for on each view
UNANSWERED = "?"


def mask_openid(openid: str) -> str:
    """``oAbc…x9Zq`` plus a short hash: enough to tell accounts apart at the counter, not to message them."""
    if len(openid) <= 8:
        return "*" * len(openid)
    return f"{openid[:4]}…{openid[-4:]} #{hashlib.sha256(openid.encode()).hexdigest()[:6]}"


def find(services: Runtime, query: str) -> list[Cardholder]:
    """Cards whose student number or name contains ``query``, or whose top-up order or credit has that number."""
    q = query.strip()[:64]
    if not q:
        return []
    like = f"%{q.replace('%', '').replace('_', '')}%"
    with services.session() as db:
        by_order = select(TopupOrder.cardholder_id).where(TopupOrder.order_no == q)
        by_credit = select(CardCredit.cardholder_id).where(CardCredit.ref == q)
        rows = db.execute(
            select(Cardholder)
            .where(or_(Cardholder.student_no.like(like), Cardholder.name.like(like), Cardholder.id.in_(by_order), Cardholder.id.in_(by_credit)))
            .order_by(Cardholder.student_no)
            .limit(SEARCH_LIMIT)
        ).scalars()
        return list(rows)


@dataclass(frozen=True)
class BoundAccount:
    id: int
    masked: str
    bound_at: datetime  # school time
    lock: Lock | None


@dataclass(frozen=True)
class OrderLine:
    order: TopupOrder
    wechat_state: str  # WeChat Pay's trade_state, "" when not asked, UNANSWERED when it did not answer


@dataclass
class StudentFile:
    card: Cardholder
    shown: balances.Shown
    bindings: list[BoundAccount]
    card_lock: Lock | None
    entries: list[Entry] | None  # None: the card system did not answer
    orders: list[OrderLine]
    credits: list[CardCredit]
    autodebit: AutodebitFile
    refunds: list[RefundCase]
    notices: list[OutboxNotice]
    openids: dict[str, str] = field(default_factory=dict)  # masked, per openid seen on the page


def card_by_no(services: Runtime, student_no: str) -> Cardholder | None:
    with services.session() as db:
        return db.execute(select(Cardholder).where(Cardholder.student_no == student_no.strip())).scalar_one_or_none()


def student_file(services: Runtime, student_no: str) -> StudentFile | None:
    """Everything the counter needs about one card (None: no such card)."""
    card = card_by_no(services, student_no)
    if card is None:
        return None
    lock = BindingLock(services)
    with services.session() as db:
        bound = list(db.execute(select(Binding).where(Binding.cardholder_id == card.id).order_by(Binding.created_at, Binding.id)).scalars())
        orders = list(
            db.execute(
                select(TopupOrder)
                .where(TopupOrder.cardholder_id == card.id)
                .order_by(TopupOrder.created_at.desc(), TopupOrder.id.desc())
                .limit(ORDERS_SHOWN)
            ).scalars()
        )
        credits = list(
            db.execute(select(CardCredit).where(CardCredit.cardholder_id == card.id).order_by(CardCredit.id.desc()).limit(ORDERS_SHOWN)).scalars()
        )
    try:
        card_lock = lock.card_lock(card.student_no)
        bindings = [BoundAccount(b.id, mask_openid(b.openid), to_local(b.created_at), lock.locked(b.openid)) for b in bound]
    except redis.RedisError:
        card_lock, bindings = None, [BoundAccount(b.id, mask_openid(b.openid), to_local(b.created_at), None) for b in bound]
    try:
        entries: list[Entry] | None = services.card_system.entries(card.student_no, limit=10)
    except CardSystemError:
        entries = None
    openids = {b.openid for b in bound} | {o.openid for o in orders} | {c.openid for c in credits}
    return StudentFile(
        card=card,
        shown=balances.read(services, card),
        bindings=bindings,
        card_lock=card_lock,
        entries=entries,
        orders=[OrderLine(o, _wechat_state(services, o) if i < ORDERS_ASKED else "") for i, o in enumerate(orders)],
        credits=credits,
        autodebit=autodebit_file(services, card.id),
        refunds=refund_cases(services, open_only=False, cardholder_id=card.id),
        notices=outbox.notices_to(services, sorted(openids)),
        openids={o: mask_openid(o) for o in openids},
    )


def _wechat_state(services: Runtime, order: TopupOrder) -> str:
    try:
        return str(services.pay.query(order.order_no).get("trade_state") or UNANSWERED)
    except PayError as exc:  # e.g. ORDER_NOT_EXIST: WeChat Pay never saw it
        return str(exc.code) or UNANSWERED
    except (requests.RequestException, ValueError):
        return UNANSWERED


# --- the day at a glance -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tally:
    count: int
    fen: int


@dataclass(frozen=True)
class DayRate:
    day: date
    paid: int
    finished: int  # paid + closed + failed

    @property
    def rate(self) -> float | None:
        return self.paid / self.finished if self.finished else None


@dataclass
class Glance:
    day: date
    topups: dict[str, Tally]
    autodebits: dict[str, Tally]
    credits: dict[str, Tally]
    refunds: list[RefundCase]
    notices: list[OutboxNotice]
    reconciliation: ReconciliationRun | None
    hourly_fen: list[int]  # paid top-ups by local hour of today
    success: list[DayRate]  # the last 30 days, oldest first


def _tally(rows: Sequence[Any]) -> dict[str, Tally]:
    return {status: Tally(count, fen or 0) for status, count, fen in rows}


def glance(services: Runtime, days: int = 30) -> Glance:
    today = services.clock.today()
    start, end = day_start_utc(today), day_start_utc(today + timedelta(days=1))
    with services.session() as db:
        topups = db.execute(
            select(TopupOrder.status, func.count(), func.sum(TopupOrder.amount_fen))
            .where(TopupOrder.business_day == today)
            .group_by(TopupOrder.status)
        ).all()
        autodebits = db.execute(
            select(AutodebitAttempt.status, func.count(), func.sum(AutodebitAttempt.amount_fen))
            .where(AutodebitAttempt.created_at >= start, AutodebitAttempt.created_at < end)
            .group_by(AutodebitAttempt.status)
        ).all()
        credit_rows = db.execute(
            select(CardCredit.status, func.count(), func.sum(CardCredit.amount_fen))
            .where(or_(CardCredit.paid_at >= start, CardCredit.status.in_((CreditStatus.PENDING, CreditStatus.REFUSED, CreditStatus.REFUNDING))))
            .group_by(CardCredit.status)
        ).all()
        paid_today = db.execute(
            select(TopupOrder.paid_at, TopupOrder.amount_fen).where(
                TopupOrder.status == OrderStatus.PAID, TopupOrder.paid_at >= start, TopupOrder.paid_at < end
            )
        ).all()
        per_day = db.execute(
            select(TopupOrder.business_day, TopupOrder.status, func.count())
            .where(TopupOrder.business_day >= today - timedelta(days=days - 1), TopupOrder.status != OrderStatus.CREATED)
            .group_by(TopupOrder.business_day, TopupOrder.status)
        ).all()
    hourly = [0] * 24
    for paid_at, amount in paid_today:
        if paid_at is not None:
            hourly[to_local(paid_at).hour] += amount
    counts: dict[date, dict[str, int]] = defaultdict(dict)
    for day, status, n in per_day:
        counts[day][status] = n
    success = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        c = counts.get(day, {})
        success.append(DayRate(day, c.get(OrderStatus.PAID, 0), sum(c.values())))
    return Glance(
        day=today,
        topups=_tally(topups),
        autodebits=_tally(autodebits),
        credits=_tally(credit_rows),
        refunds=refund_cases(services),
        notices=outbox.needing_operator(services),
        reconciliation=reconciliation.last(services),
        hourly_fen=hourly,
        success=success,
    )
