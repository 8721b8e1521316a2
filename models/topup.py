"""WeChat Pay orders of the payment hall: one row per JSAPI order for one product and target, delivered at most once."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Index, Integer, String, select
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.cardholder import Cardholder
from models.enums import OrderStatus, Product, check_in


def _payer_card(ctx: DefaultExecutionContext) -> str:
    """An order written without a target is a top-up of the payer's own card."""
    card_id = ctx.get_current_parameters()["cardholder_id"]
    return str(ctx.connection.execute(select(Cardholder.student_no).where(Cardholder.id == card_id)).scalar_one())


class TopupOrder(Base):
    __tablename__ = "topup_orders"
    __table_args__ = (
        CheckConstraint("amount_fen > 0 AND fee_fen >= 0", name="amounts"),
        check_in("status", OrderStatus, name="status"),
        check_in("product", Product, name="product"),
        Index("ix_topup_card_day", "cardholder_id", "business_day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_no: Mapped[str] = mapped_column(String(32), unique=True)
    product: Mapped[str] = mapped_column(String(8), default=Product.CARD.value, server_default=Product.CARD.value)
    target: Mapped[str] = mapped_column(String(32), default=_payer_card)  # the card's student number / the room's id
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"))  # the payer's bound card (daily limits)
    openid: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(8))
    amount_fen: Mapped[int] = mapped_column(Integer)
    fee_fen: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(8), default=OrderStatus.CREATED.value, index=True)
    business_day: Mapped[date] = mapped_column(Date)
    prepay_id: Mapped[str | None] = mapped_column(String(64))
    transaction_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)

    @property
    def total_fen(self) -> int:
        return self.amount_fen + self.fee_fen
