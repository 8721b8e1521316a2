"""Top-up rules and the life of a WeChat Pay order: create, credit exactly once, settle when no notify came, reconcile.

Rules (docs/contract.md, ``[topup]``): quick amounts carry ``quick_fee_rate`` on top of what is paid, rounded half-up to the
fen (``fee_fen``); custom amounts are ``custom_min..custom_max`` yuan in steps of ``custom_step``, no fee; every order
is at most ``single_limit``; the business day's paid and still-open orders together stay within ``daily_limit``.
The limits count the credited amount, not the fee.

Exactly once: the order row is locked, moved ``created → paid`` and the money owed to the card (``bot.credits``,
``ref`` = the order number) is written in the same transaction, whether the payment is learnt from a notify or from a
query; the card system receives it by that ``ref`` exactly once. A verified payment for an order we had closed is
still credited: WeChat took the money, so the card must get it, even if that day's limit is then passed (logged as a
warning; the alternative, a refund, is by school rule only done in person: only money the card system refuses goes
back through WeChat Pay). We close locally only after WeChat confirmed the close (or when the student
never got pay params for it), so this is the rare path of a lost WeChat answer, not a normal one.

Open orders count against the daily limit until they are closed, expired or not: an expired order might still
have been paid just before its ``time_expire``. ``create_order`` therefore first settles the card's expired orders
at WeChat (query, then close), so an abandoned order stops counting as soon as WeChat confirms it unpaid. When the
student cancels the pay sheet, ``cancel_order`` does the same at once, before the order expires.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from bot import credits, products
from bot.adapters.pay import BillRow, PayError
from bot.calendar import day_start_utc
from bot.cards import can_add_money, card_for
from bot.clock import SCHOOL_TZ
from bot.errors import UserError
from bot.money import fee_for, fen, yuan
from models import CardCredit, Cardholder, TopupOrder, WechatUser, lock_card
from models.enums import CreditChannel, CreditStatus, OrderStatus, Product

if TYPE_CHECKING:
    from bot.config import Config
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

ORDER_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
_ALPHABET = string.ascii_letters + string.digits
MAX_AMOUNT_FEN = 10**9  # anything larger is nonsense, refused before any arithmetic


# --- rules -------------------------------------------------------------------
TEXTS = "topup_err_"  # a top-up refusal's text is ``topup_err_{code}``


def refused(code: str, status: int = 400, **values: Any) -> UserError:
    return UserError(code, status, f"{TEXTS}{code}", **values)


def check_amount(cfg: Config, amount_fen: Any, mode: Any, product: Product = Product.CARD) -> tuple[int, int]:
    """Validate a request strictly against the product's rules; returns ``(amount_fen, fee_fen)`` or raises UserError (400)."""
    r = products.port(product).rules(cfg)
    if mode not in ("quick", "custom"):
        raise refused("invalid_mode")
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0 or amount_fen > MAX_AMOUNT_FEN:
        raise refused("invalid_amount")
    if mode == "quick":
        if amount_fen not in r.quick_fen:
            raise refused("not_quick_amount", amounts=" / ".join(str(a // 100) for a in r.quick_fen))
        return amount_fen, fee_for(amount_fen, r.quick_fee_rate)
    hi = min(r.custom_max_fen, r.single_fen)
    if amount_fen > r.single_fen:
        raise refused("over_single_limit", limit=r.single_fen // 100)
    if amount_fen < r.custom_min_fen or amount_fen > hi:
        raise refused("custom_range", min=r.custom_min_fen // 100, max=hi // 100)
    if amount_fen % r.custom_step_fen:
        raise refused("custom_step", step=r.custom_step_fen // 100)
    return amount_fen, 0


def card_refusal(card: Cardholder | None) -> UserError | None:
    """Why this card cannot be topped up (None when it can), in the top-up's words."""
    refusal = can_add_money(card)
    return refusal.keyed(TEXTS) if refusal is not None else None


def quick_options(cfg: Config) -> list[dict[str, Any]]:
    """What the page shows for each quick amount: credited, fee and what WeChat will charge."""
    out = []
    for a in cfg.topup.quick_amounts:
        amount = fen(a)
        fee = fee_for(amount, cfg.topup.quick_fee_rate)
        out.append(
            {"amount_fen": amount, "fee_fen": fee, "pay_fen": amount + fee, "amount": yuan(amount), "fee": yuan(fee), "pay": yuan(amount + fee)}
        )
    return out


def in_peak(cfg: Config, now: datetime) -> bool:
    local = now.astimezone(SCHOOL_TZ).time()
    return any(w.contains(local) for w in cfg.topup.peak_hours)


def used_today(db: Session, cardholder_id: int, day: date, product: Product = Product.CARD) -> int:
    """Fen already paid or still payable today for ``product``: every order of the day that is not closed.

    An expired order still counts until WeChat confirms it unpaid and it is closed (``settle_expired``): until
    then it might yet be paid, and counting it is what keeps the daily limit from ever being exceeded.
    """
    return int(
        db.execute(
            select(func.coalesce(func.sum(TopupOrder.amount_fen), 0)).where(
                TopupOrder.cardholder_id == cardholder_id,
                TopupOrder.product == product,
                TopupOrder.business_day == day,
                TopupOrder.status.in_((OrderStatus.CREATED, OrderStatus.PAID)),
            )
        ).scalar_one()
    )


def remaining_today(cfg: Config, db: Session, cardholder_id: int, day: date, product: Product = Product.CARD) -> int:
    return max(0, products.port(product).rules(cfg).daily_fen - used_today(db, cardholder_id, day, product))


# --- creating an order ---------------------------------------------------------
def new_order_no(now: datetime) -> str:
    """``T`` + local yyyymmddHHMMSS + 10 random letters/digits: 25 characters within WeChat's 6–32 [0-9A-Za-z_-|*]."""
    return "T" + now.astimezone(SCHOOL_TZ).strftime("%Y%m%d%H%M%S") + "".join(secrets.choice(_ALPHABET) for _ in range(10))


@dataclass
class CreatedOrder:
    order: TopupOrder
    pay_params: dict[str, str] = field(default_factory=dict)


def create_order(
    services: Runtime, openid: str, amount_fen: Any, mode: Any, product: Product = Product.CARD, target: str | None = None
) -> CreatedOrder:
    """Check the rules, reserve the amount against the product's daily limit under the payer's card row lock, then
    order at WeChat. ``target`` is the card's own student number for a card, the room (checked by the caller) for power.

    The order row is committed before WeChat is called, so a concurrent request already counts it; if WeChat
    refuses, the row is closed again and the student is told to retry.
    """
    cfg = services.cfg
    amount, fee = check_amount(cfg, amount_fen, mode, product)
    # money goes onto a card only while it is active; any bound student may pay a room's electricity
    may_pay = card_refusal if product == Product.CARD else _bound
    with services.session() as db:
        card = card_for(db, openid)
        if (refusal := may_pay(card)) is not None:
            raise refusal
        assert card is not None
        card_id = card.id
    settle_expired(services, card_id)
    now = services.clock.now()
    with services.session() as db, db.begin():
        card = lock_card(db, card_id)
        if (refusal := may_pay(card)) is not None:
            raise refusal
        left = remaining_today(cfg, db, card_id, now.date(), product)
        if amount > left:
            raise refused("daily_limit", 409, limit=products.port(product).rules(cfg).daily_fen // 100, remaining=yuan(left))
        expires = now + timedelta(minutes=cfg.pay.order_expire_minutes)
        order = TopupOrder(
            order_no=new_order_no(now),
            product=product,
            target=target or card.student_no,
            cardholder_id=card_id,
            openid=openid,
            mode=mode,
            amount_fen=amount,
            fee_fen=fee,
            status=OrderStatus.CREATED,
            business_day=now.date(),
            created_at=services.clock.utcnow(),
            expires_at=expires.astimezone(UTC).replace(tzinfo=None),
        )
        db.add(order)
    description = products.port(product).pay_description(cfg, amount, order.target)
    try:
        prepay_id = services.pay.jsapi_order(order.order_no, amount + fee, openid, description, expires)
    except PayError as exc:
        log.warning("jsapi order %s refused: %s %s", order.order_no, exc.status, exc.code)
        _close_locally(services, order.order_no)
        with contextlib.suppress(PayError):  # the order may never have reached WeChat; it expires there anyway
            services.pay.close(order.order_no)
        raise refused("pay_unavailable", 503) from None
    with services.session() as db, db.begin():
        row = db.execute(select(TopupOrder).where(TopupOrder.order_no == order.order_no)).scalar_one()
        row.prepay_id = prepay_id
        order = row
    return CreatedOrder(order, services.pay.pay_params(prepay_id))


def _bound(card: Cardholder | None) -> UserError | None:
    return refused("not_bound", 403) if card is None else None


def _close_locally(services: Runtime, order_no: str) -> bool:
    with services.session() as db, db.begin():
        order = _lock_order(db, order_no)
        if order is None or order.status != OrderStatus.CREATED:
            return False
        order.status = OrderStatus.CLOSED
        order.closed_at = services.clock.utcnow()
        return True


def _lock_order(db: Session, order_no: str) -> TopupOrder | None:
    return db.execute(select(TopupOrder).where(TopupOrder.order_no == order_no).with_for_update()).scalar_one_or_none()


# --- crediting -------------------------------------------------------------------
class Mismatch(Exception):
    """A verified message that does not match our order (wrong merchant, app, amount, payer, unknown order)."""


def _paid_at(transaction: dict[str, Any], fallback: datetime) -> datetime:
    try:
        return datetime.fromisoformat(str(transaction["success_time"])).astimezone(UTC).replace(tzinfo=None)
    except (KeyError, ValueError, TypeError):
        return fallback


class OrderFacts(Protocol):
    """What a transaction is checked against: an order, or its row as ``apply_payment`` reads it."""

    total_fen: int
    openid: str


def check_transaction(cfg: Config, order: OrderFacts | None, tx: dict[str, Any]) -> None:
    """Everything in a WeChat transaction must agree with our order before money moves."""
    if tx.get("mchid") != cfg.pay.mchid:
        raise Mismatch("mchid")
    if tx.get("appid") != cfg.wechat.appid:
        raise Mismatch("appid")
    if order is None:
        raise Mismatch("unknown out_trade_no")
    amount = tx.get("amount") or {}
    if not isinstance(amount, dict) or amount.get("total") != order.total_fen or amount.get("currency", "CNY") != "CNY":
        raise Mismatch("amount")
    payer = tx.get("payer") or {}
    if isinstance(payer, dict) and payer.get("openid") not in (None, order.openid):
        raise Mismatch("payer")
    if tx.get("trade_state") != "SUCCESS":
        raise Mismatch(f"trade_state {tx.get('trade_state')}")


_ORDERS, _HOLDERS, _USERS = (cast(Table, m.__table__) for m in (TopupOrder, Cardholder, WechatUser))
_ORDER_FACTS = (
    _ORDERS.c.status,
    _ORDERS.c.product,
    _ORDERS.c.target,
    _ORDERS.c.cardholder_id,
    _ORDERS.c.openid,
    _ORDERS.c.amount_fen,
    _ORDERS.c.fee_fen,
    (_ORDERS.c.amount_fen + _ORDERS.c.fee_fen).label("total_fen"),
    select(_HOLDERS.c.student_no).where(_HOLDERS.c.id == _ORDERS.c.cardholder_id).scalar_subquery().label("student_no"),
    select(_USERS.c.lang).where(_USERS.c.openid == _ORDERS.c.openid).scalar_subquery().label("lang"),
)
# Composed once (Core, bound per call): the order moved to ``paid``, returning what owing its credit needs.
_MARK_PAID = (
    update(_ORDERS)
    .where(_ORDERS.c.order_no == bindparam("b_no"))
    .values(status=OrderStatus.PAID, transaction_id=bindparam("b_tx"), paid_at=bindparam("b_at"), closed_at=None)
    .returning(*_ORDER_FACTS)
)
_PAY_OPEN = _MARK_PAID.where(_ORDERS.c.status == OrderStatus.CREATED)
_PAY_UNPAID = _MARK_PAID.where(_ORDERS.c.status != OrderStatus.PAID)
_ORDER_AS_IS = select(*_ORDER_FACTS).where(_ORDERS.c.order_no == bindparam("b_no"))


def apply_payment(services: Runtime, tx: dict[str, Any], deliver: Callable[[Runtime, credits.Claimed | None], None] = credits.deliver_now) -> bool:
    """Record the payment a verified SUCCESS transaction names; True when this call recorded it, False if already done.

    One transaction: the order moved ``created → paid`` by one UPDATE (its row lock makes a concurrent duplicate wait
    and then find it paid), checked against ``tx`` (a mismatch rolls it back) and its amount owed to the target (a
    ``CardCredit`` with ``ref`` = the order number, ``bot.credits.owe``). The credit is delivered inside this
    transaction when its target lives in the bot's database, else right after the commit, or by the worker when the
    target system cannot take it now; the receipt goes out when the target system took it. ``deliver`` is how the
    claimed credit goes on after the commit: in this call (default), or handed over (``/pay/notify`` answers first).
    """
    cfg = services.cfg
    order_no = str(tx.get("out_trade_no") or "")
    known = ORDER_NO.match(order_no) is not None
    paid_at = _paid_at(tx, services.clock.utcnow())
    bound = {"b_no": order_no, "b_tx": str(tx.get("transaction_id") or "")[:32] or None, "b_at": paid_at}
    with services.session() as db, db.begin():
        conn = db.connection()
        order = conn.execute(_PAY_OPEN, bound).one_or_none() if known else None
        if order is None:  # paid already, closed here, or unknown: looked at as it is now
            found = conn.execute(_ORDER_AS_IS, {"b_no": order_no}).one_or_none() if known else None
            check_transaction(cfg, found, tx)
            assert found is not None
            if found.status == OrderStatus.PAID:
                return False
            log.warning("order %s was %s locally but WeChat reports it paid: crediting", order_no, found.status)
            order = conn.execute(_PAY_UNPAID, bound).one_or_none()
            if order is None:  # a duplicate paid it meanwhile
                return False
        check_transaction(cfg, order, tx)
        claimed = credits.owe(
            services,
            db,
            credits.Owed(
                ref=order_no,
                channel=CreditChannel.WECHAT_PAY,
                product=Product(order.product),
                target=order.target,
                cardholder_id=order.cardholder_id,
                student_no=order.student_no,
                openid=order.openid,
                amount_fen=order.amount_fen,
                fee_fen=order.fee_fen,
                paid_at=paid_at,
                lang=order.lang,
            ),
        )
    deliver(services, claimed)
    return True


# --- settling orders nobody told us about --------------------------------------------
class Settled(StrEnum):
    """What asking WeChat about an open order led to (an outcome, not a stored state)."""

    CREDITED = "credited"
    CLOSED = "closed"
    OPEN = "open"  # still payable, or WeChat did not confirm: it keeps counting against the daily limit
    PAID = "paid"  # credited before


def settle_order(services: Runtime, order_no: str, *, cancel: bool = False, _again: bool = True) -> Settled:
    """Ask WeChat about one open order and act: ``credited``, ``closed``, ``open`` (still payable) or ``paid`` (already).

    An unpaid order is closed once it has expired, or at once with ``cancel`` (the student left the pay sheet).
    Whatever WeChat does not confirm leaves the order open, so it keeps counting against the daily limit.
    """
    now = services.clock.utcnow()
    with services.session() as db:
        order = db.execute(select(TopupOrder).where(TopupOrder.order_no == order_no)).scalar_one_or_none()
        if order is None or order.status != OrderStatus.CREATED:
            return Settled.PAID if order is not None and order.status == OrderStatus.PAID else Settled.CLOSED
        expired = order.expires_at <= now
    try:
        tx = services.pay.query(order_no)
    except PayError as exc:
        if exc.code == "ORDER_NOT_EXIST" and expired:
            return Settled.CLOSED if _close_locally(services, order_no) else Settled.OPEN
        log.warning("query %s failed: %s", order_no, exc.code)
        return Settled.OPEN
    state = tx.get("trade_state")
    if state in ("SUCCESS", "REFUND"):
        tx = {**tx, "trade_state": "SUCCESS"} if state == "REFUND" else tx  # refunded later: it was paid first
        try:
            return Settled.CREDITED if apply_payment(services, tx) else Settled.PAID
        except Mismatch as exc:
            log.error("query of %s does not match the order (%s): left open for a person to check", order_no, exc)
            return Settled.OPEN
    if state in ("CLOSED", "REVOKED", "PAYERROR"):
        return Settled.CLOSED if _close_locally(services, order_no) else Settled.OPEN
    if not expired and not (cancel and state == "NOTPAY"):  # USERPAYING: the student is still entering the password
        return Settled.OPEN
    try:
        services.pay.close(order_no)
    except PayError as exc:
        if exc.code in ("ORDERPAID", "ORDER_PAID"):  # paid in the meantime: the query now says SUCCESS
            return settle_order(services, order_no, cancel=cancel, _again=False) if _again else Settled.OPEN
        if exc.code not in ("ORDER_CLOSED", "ORDERCLOSED"):
            log.warning("close %s failed: %s", order_no, exc.code)
            return Settled.OPEN
    return Settled.CLOSED if _close_locally(services, order_no) else Settled.OPEN


def settle_stuck_orders(services: Runtime, limit: int = 200) -> int:
    """The worker's job: orders still 'created' after ``stuck_after_minutes`` are queried and credited or closed.

    Safe to run in several workers at once: crediting and closing re-check the locked order row.
    Returns how many orders were settled (credited or closed).
    """
    cutoff = services.clock.utcnow() - timedelta(minutes=services.cfg.topup.stuck_after_minutes)
    with services.session() as db:
        numbers = list(
            db.execute(
                select(TopupOrder.order_no)
                .where(TopupOrder.status == OrderStatus.CREATED, TopupOrder.created_at <= cutoff)
                .order_by(TopupOrder.created_at)
                .limit(limit)
            ).scalars()
        )
    return sum(1 for no in numbers if settle_order(services, no) in (Settled.CREDITED, Settled.CLOSED))


def settle_expired(services: Runtime, cardholder_id: int) -> None:
    """Before counting today's limit, settle this card's expired open orders so an abandoned one stops counting."""
    now = services.clock.utcnow()
    with services.session() as db:
        numbers = list(
            db.execute(
                select(TopupOrder.order_no)
                .where(TopupOrder.cardholder_id == cardholder_id, TopupOrder.status == OrderStatus.CREATED, TopupOrder.expires_at <= now)
                .limit(10)  # a day's limit allows only a handful; keeps a slow WeChat from stalling the request
            ).scalars()
        )
    for no in numbers:
        settle_order(services, no)


@dataclass
class Cancelled:
    """What a cancel request found: the order's state afterwards and what the student may still top up today."""

    order: TopupOrder
    remaining_fen: int
    balance_fen: int


def cancel_order(services: Runtime, openid: str, order_no: str) -> Cancelled:
    """The student left the pay sheet: close the order at WeChat so it stops counting (credit it if WeChat says paid).

    Only the order's own openid may cancel it; any other order number is ``not_found`` (404), like an unknown one.
    A paid or closed order is left as it is and its state is answered.
    """
    with services.session() as db:
        order = db.execute(select(TopupOrder).where(TopupOrder.order_no == order_no)).scalar_one_or_none() if ORDER_NO.match(order_no) else None
        if order is None or order.openid != openid:
            raise refused("not_found", 404)
    settle_order(services, order_no, cancel=True)
    with services.session() as db:
        order = db.execute(select(TopupOrder).where(TopupOrder.order_no == order_no)).scalar_one()
        card = db.get(Cardholder, order.cardholder_id)
        assert card is not None
        remaining = remaining_today(services.cfg, db, card.id, services.clock.now().date())
        return Cancelled(order, remaining, card.balance_fen)


# --- reconciliation -----------------------------------------------------------------
@dataclass(frozen=True)
class Difference:
    kind: str  # missing_locally | missing_at_wechat | amount_mismatch | refunded_at_wechat
    order_no: str
    local_fen: int | None
    wechat_fen: int | None
    note: str = ""

    def __str__(self) -> str:
        local = "-" if self.local_fen is None else yuan(self.local_fen)
        remote = "-" if self.wechat_fen is None else yuan(self.wechat_fen)
        return f"{self.kind:<19} {self.order_no:<32} local={local:>10} wechat={remote:>10} {self.note}".rstrip()


REFUNDS = (CreditStatus.REFUNDING, CreditStatus.REFUNDED)


def reconcile(services: Runtime, day: date, bill: list[BillRow] | None = None) -> list[Difference]:
    """Compare the day's paid orders (by WeChat's success time, school time) with WeChat Pay's trade bill. A refund
    row is a difference unless it is our refund of a credit the card system refused (``bot.credit_refunds``)."""
    rows = services.pay.trade_bill(day.isoformat()) if bill is None else bill
    start = day_start_utc(day)
    end = day_start_utc(day + timedelta(days=1))
    diffs: list[Difference] = []
    with services.session() as db:
        local = {
            o.order_no: o
            for o in db.execute(
                select(TopupOrder).where(TopupOrder.status == OrderStatus.PAID, TopupOrder.paid_at >= start, TopupOrder.paid_at < end)
            ).scalars()
        }
        paid_rows = [r for r in rows if r.trade_state == "SUCCESS"]
        for r in paid_rows:
            order = local.get(r.out_trade_no) or db.execute(select(TopupOrder).where(TopupOrder.order_no == r.out_trade_no)).scalar_one_or_none()
            if order is None or order.status != OrderStatus.PAID:
                note = "no such order" if order is None else f"local status {order.status}"
                diffs.append(Difference("missing_locally", r.out_trade_no, None, r.total_fen, note))
            elif order.total_fen != r.total_fen:
                diffs.append(Difference("amount_mismatch", r.out_trade_no, order.total_fen, r.total_fen))
        in_bill = {r.out_trade_no for r in paid_rows}
        for no, o in sorted(local.items()):
            if no not in in_bill:
                diffs.append(Difference("missing_at_wechat", no, o.total_fen, None))
        refund_rows = [r for r in rows if r.trade_state == "REFUND"]
        numbers = [r.out_refund_no for r in refund_rows if r.out_refund_no]
        ours = {c.refund_no: c for c in db.execute(select(CardCredit).where(CardCredit.refund_no.in_(numbers))).scalars()} if numbers else {}
        for r in refund_rows:
            c = ours.get(r.out_refund_no)
            if c is not None and c.ref == r.out_trade_no and c.amount_fen + c.fee_fen == r.refund_fen and c.status in REFUNDS:
                continue  # money the card system refused, given back by the service center: expected
            diffs.append(Difference("refunded_at_wechat", r.out_trade_no, None, r.refund_fen, "top-ups are refunded only in person"))
    return diffs
