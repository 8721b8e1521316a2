"""The campus card and its holder, as the school's roster describes them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.enums import CardStatus, check_in


class Cardholder(Base):
    __tablename__ = "cardholders"
    __table_args__ = (check_in("status", CardStatus, name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    student_no: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    id_number: Mapped[str | None] = mapped_column(String(18))
    passport_no: Mapped[str | None] = mapped_column(String(20), index=True)
    campus: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(12), default=CardStatus.ACTIVE.value)
    left_on: Mapped[date | None] = mapped_column(Date)
    password_hash: Mapped[str] = mapped_column(String(255))
    # With the ``ledger`` card system the balance itself (moved only by the ledger); with ``http`` the card system's
    # last reported balance, as of ``balance_as_of`` (what the bot shows when the card system does not answer).
    balance_fen: Mapped[int] = mapped_column(Integer, default=0)
    balance_as_of: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    @property
    def masked_name(self) -> str:
        """张三 → *三, 欧阳娜娜 → **娜娜 style: enough to recognise, not to identify."""
        n = self.name
        if len(n) <= 1:
            return "*"
        if " " in n:
            parts = n.split()
            return " ".join([parts[0][0] + "*" * (len(parts[0]) - 1)] + ["*" * len(p) for p in parts[1:]])
        return "*" * (len(n) - 1 if len(n) <= 2 else len(n) - 2) + n[-1 if len(n) <= 2 else -2 :]
