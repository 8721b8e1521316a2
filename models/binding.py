"""Which WeChat user may see and top up which card: one card per openid, a few openids per card."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow
from models.cardholder import Cardholder


class Binding(Base):
    __tablename__ = "bindings"

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    cardholder: Mapped[Cardholder] = relationship(lazy="joined")
