"""What the payment hall sells, one ``Port`` each: the amount rules and daily limit of its orders, the system a paid
order is delivered to (by ``ref``, exactly once: ``bot.credits``), its receipt, and its side of ``cardbot reconcile``.

Orders, credits, ``/pay/notify``, the stuck-order job, refunds and reconciliation are written once, against this
registry (``port(product)``); nothing else asks which product it handles. ``card`` is money on a campus card
(``target`` = the student number, delivered to the card system); ``power`` is prepaid electricity for a dorm room
(``target`` = the electricity system's room id, delivered to the electricity system).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from bot import notices
from bot.adapters.cardsystem import CardSystemError, Credit, CreditResult
from bot.adapters.electricity import ElectricityError, Recharge, RechargeRefusal, RechargeResult
from bot.cards import mask_student_no
from bot.clock import to_local
from bot.money import fen
from models.enums import CreditChannel, EntryKind, Product

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.config import Config
    from bot.runtime import Runtime


@dataclass(frozen=True)
class Rules:
    """An order's amount rules, in fen (docs/contract.md ``[topup]`` / ``[electricity]``)."""

    quick_fen: tuple[int, ...]
    quick_fee_rate: float
    custom_min_fen: int
    custom_max_fen: int
    custom_step_fen: int
    single_fen: int
    daily_fen: int


@dataclass(frozen=True)
class Delivered:
    """A target system's answer to one ``ref`` (the same for ever), in the delivery machinery's words."""

    ok: bool
    entry_id: str = ""
    reason: str = ""  # a refusal, as the product's texts name it (``{texts}refused_{reason}``)
    balance_fen: int | None = None  # the card's balance right after (card)
    kwh_after: Decimal | None = None  # the room's remaining kWh right after (power)


@dataclass(frozen=True)
class Delivery:
    """One credit as it is sent: the same ``ref`` on every try."""

    ref: str
    target: str
    amount_fen: int
    channel: CreditChannel
    paid_at: datetime


@dataclass(frozen=True)
class Record:
    """A delivery the target system lists for a day (reconciliation)."""

    ref: str
    target: str
    amount_fen: int


class Port(Protocol):
    product: Product
    system: str  # the target system and what is delivered to it, as reports name them
    noun: str
    texts: str  # the prefix of its texts: ``{texts}wait_maintenance``, ``{texts}refused_{reason}``, …
    delayed_kind: str  # notice kinds: paid but waiting, refused
    refused_kind: str
    system_error: type[Exception]  # the target system's failures (``cardbot reconcile`` reports them)
    refund_reason: str  # what WeChat Pay shows the payer when refused money goes back

    def rules(self, cfg: Config) -> Rules: ...

    def shown(self, target: str) -> str: ...

    def pay_description(self, cfg: Config, amount_fen: int, target: str) -> str: ...

    def send(self, services: Runtime, d: Delivery) -> Delivered: ...

    def ask(self, services: Runtime, ref: str) -> Delivered | None: ...

    def deliver_in(self, services: Runtime, db: Session, d: Delivery) -> Delivered | None:
        """Deliver inside the caller's transaction when the target lives in the bot's own database; else None."""
        ...

    def delivered_on(self, services: Runtime, day: date) -> list[Record]: ...

    def on_delivered(self, services: Runtime, db: Session, c: Any) -> None:
        """``c``: the delivered credit as ``bot.credits`` recorded it (its columns, and ``lang``, the payer's)."""

    def on_delivered_many(self, services: Runtime, db: Session, delivered: list[Any]) -> None:
        """``on_delivered`` for several credits recorded in one transaction, in as few statements as it can."""


class CardPort:
    product = Product.CARD
    system = "card system"
    noun = "credit"
    texts = "credit_"
    delayed_kind = "credit_delayed"
    refused_kind = "credit_refused"
    system_error: type[Exception] = CardSystemError
    refund_reason = "一卡通拒绝入账，原路退回 Refused by the campus card system"

    def shown(self, target: str) -> str:
        return mask_student_no(target)

    def rules(self, cfg: Config) -> Rules:
        c = cfg.topup
        return Rules(
            tuple(fen(a) for a in c.quick_amounts),
            c.quick_fee_rate,
            fen(c.custom_min),
            fen(c.custom_max),
            fen(c.custom_step),
            fen(c.single_limit),
            fen(c.daily_limit),
        )

    def pay_description(self, cfg: Config, amount_fen: int, target: str) -> str:
        return f"{cfg.school.name[:40]} 校园卡充值 {amount_fen / 100:.2f}"

    def send(self, services: Runtime, d: Delivery) -> Delivered:
        return _card(services.card_system.credit(d.ref, d.target, d.amount_fen, d.channel, d.paid_at))

    def ask(self, services: Runtime, ref: str) -> Delivered | None:
        answer = services.card_system.credit_status(ref)
        return None if answer is None else _card(answer)

    def deliver_in(self, services: Runtime, db: Session, d: Delivery) -> Delivered | None:
        answer = services.card_system.credit_in(db, d.ref, d.target, d.amount_fen, d.channel, d.paid_at)
        return None if answer is None else _card(answer)

    def delivered_on(self, services: Runtime, day: date) -> list[Record]:
        return [Record(r.ref, r.student_no, r.amount_fen) for r in services.card_system.credits_on(day)]

    def on_delivered(self, services: Runtime, db: Session, c: Any) -> None:
        from bot.credits import remember_balance  # bot.credits delivers through this registry

        balance = c.balance_fen or 0
        if services.card_system.remote:
            # as of this second: a terminal entry stamped in the same second (cardsys/1 times are whole seconds) is newer
            remember_balance(db, c.cardholder_id, balance, services.clock.utcnow().replace(microsecond=0))
        if c.channel == CreditChannel.WECHAT_PAY:
            services.metrics.credits.labels(kind=EntryKind.TOPUP).inc()
            notices.send(
                db,
                services.cfg,
                "topup_receipt",
                c.openid,
                f"topup:{c.ref}:topup_receipt:{c.openid}",
                getattr(c, "lang", None),
                amount=c.amount_fen,
                fee=c.fee_fen,
                balance=balance,
                time=f"{to_local(c.paid_at):%Y-%m-%d %H:%M:%S}",
            )
        else:
            services.metrics.credits.labels(kind=EntryKind.AUTODEBIT).inc()
            notices.send(
                db,
                services.cfg,
                "autodebit_success",
                c.openid,
                f"autodebit:{c.ref.removeprefix('AD')}:ok",
                getattr(c, "lang", None),
                amount=c.amount_fen,
                balance=balance,
                time=f"{to_local(c.paid_at):%Y-%m-%d %H:%M}",
            )

    def on_delivered_many(self, services: Runtime, db: Session, delivered: list[Any]) -> None:
        for c in delivered:
            self.on_delivered(services, db, c)


def _card(answer: Credit) -> Delivered:
    if answer.result is CreditResult.OK:
        return Delivered(True, answer.entry_id, balance_fen=answer.balance_fen)
    return Delivered(False, reason=answer.reason.value if answer.reason else "refused")


POWER_REASONS = {RechargeRefusal.UNKNOWN_ROOM: "unknown_room", RechargeRefusal.ROOM_CLOSED: "room_closed", RechargeRefusal.OVER_LIMIT: "meter_full"}


class PowerPort:
    product = Product.POWER
    system = "electricity system"
    noun = "electricity recharge"
    texts = "power_"
    delayed_kind = "power_delayed"
    refused_kind = "power_refused"
    system_error: type[Exception] = ElectricityError
    refund_reason = "电费未能充入电表，原路退回 Refused by the electricity system"

    def shown(self, target: str) -> str:
        return target

    def rules(self, cfg: Config) -> Rules:
        c = cfg.electricity
        return Rules(
            tuple(fen(a) for a in c.quick_amounts),
            0.0,
            fen(c.custom_min),
            fen(c.custom_max),
            fen(c.custom_step),
            fen(c.single_limit),
            fen(c.daily_limit),
        )

    def pay_description(self, cfg: Config, amount_fen: int, target: str) -> str:
        return f"{cfg.school.name[:40]} 宿舍电费 {target} {amount_fen / 100:.2f}"

    def send(self, services: Runtime, d: Delivery) -> Delivered:
        return _power(services.electricity.recharge(d.ref, d.target, d.amount_fen, d.paid_at))

    def ask(self, services: Runtime, ref: str) -> Delivered | None:
        answer = services.electricity.recharge_status(ref)
        return None if answer is None else _power(answer)

    def deliver_in(self, services: Runtime, db: Session, d: Delivery) -> Delivered | None:
        return None  # the electricity system is always across the network

    def delivered_on(self, services: Runtime, day: date) -> list[Record]:
        return [Record(r.ref, r.room_id, r.amount_fen) for r in services.electricity.recharges_on(day)]

    def on_delivered(self, services: Runtime, db: Session, c: Any) -> None:
        from bot.power import receipt  # bot.power builds on this registry

        receipt(services, db, c)

    def on_delivered_many(self, services: Runtime, db: Session, delivered: list[Any]) -> None:
        from bot.power import receipts  # bot.power builds on this registry

        receipts(services, db, delivered)


def _power(answer: Recharge) -> Delivered:
    if answer.result is RechargeResult.OK:
        return Delivered(True, answer.entry_id, kwh_after=answer.remaining_kwh)
    return Delivered(False, reason=POWER_REASONS.get(answer.reason, "refused") if answer.reason else "refused")


PORTS: dict[Product, Port] = {Product.CARD: CardPort(), Product.POWER: PowerPort()}


def port(product: str) -> Port:
    return PORTS[Product(product)]
