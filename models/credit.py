"""Money paid and owed to a target system: one row per payment, written in the payment's own transaction, delivered by
reference (``ref``) exactly once — to the card system for a card (docs/card-system.md), to the electricity system for
a room (docs/electricity.md)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, Numeric, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.enums import CreditChannel, CreditStatus, Product, check_in


class CardCredit(Base):
    __tablename__ = "card_credits"
    __table_args__ = (
        CheckConstraint("amount_fen > 0 AND fee_fen >= 0", name="amounts"),
        check_in("status", CreditStatus, name="status"),
        check_in("channel", CreditChannel, name="channel"),
        check_in("product", Product, name="product"),
        Index("ix_card_credits_due", "status", "next_try_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(32), unique=True)  # our order number / ``AD{attempt id}``, for ever
    channel: Mapped[str] = mapped_column(String(12))
    product: Mapped[str] = mapped_column(String(8), default=Product.CARD.value, server_default=Product.CARD.value)
    # where it goes: the student number (a row written without one is a card's credit) / the room's id
    target: Mapped[str] = mapped_column(String(32), default=lambda ctx: ctx.get_current_parameters()["student_no"])
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    student_no: Mapped[str] = mapped_column(String(12))
    openid: Mapped[str] = mapped_column(String(64))  # who paid: told of the outcome
    amount_fen: Mapped[int] = mapped_column(Integer)  # what the card is owed
    fee_fen: Mapped[int] = mapped_column(Integer, default=0)  # charged on top by WeChat Pay (refunded with it)
    paid_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(12), default=CreditStatus.PENDING.value)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)  # a deliverer holds it until this is stale
    waiting_for: Mapped[str | None] = mapped_column(String(16))  # why it is still pending: maintenance | no_answer | …
    reason: Mapped[str | None] = mapped_column(String(32))  # the card system's refusal
    entry_id: Mapped[str | None] = mapped_column(String(64))
    balance_fen: Mapped[int | None] = mapped_column(Integer)  # the card system's balance right after the credit
    kwh_after: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))  # a room's remaining kWh right after it
    refund_no: Mapped[str | None] = mapped_column(String(64), unique=True)
    note: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(DateTime)


class CardEntryPush(Base):
    """A terminal entry a remote card system pushed (``/integration/card-entries``): kept once per ``entry_id`` so a
    replay changes nothing. Not money the bot moves (the card system already did): a notification, and the record
    that its auto top-up was considered exactly once."""

    __tablename__ = "card_entry_pushes"
    __table_args__ = (Index("ix_card_entry_pushes_alerts_due", "id", postgresql_where=text("alerts_due"), sqlite_where=text("alerts_due")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[str] = mapped_column(String(64), unique=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(Integer)  # negative: a spend
    balance_after_fen: Mapped[int] = mapped_column(Integer)
    merchant: Mapped[str] = mapped_column(String(64), default="")
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    alerts_due: Mapped[bool | None] = mapped_column(Boolean)  # True: a spend whose alerts are yet to be queued (bot.alerts)
