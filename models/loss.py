"""Lost-card reports (挂失): one row per report, the card system's reference for it, and who reported and found it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.enums import LossStatus, check_in

OPEN = text("status IN ('pending', 'lost')")


class CardLoss(Base):
    __tablename__ = "card_losses"
    # one open report per card, however many family members press 挂失 at once (partial unique index)
    __table_args__ = (
        check_in("status", LossStatus, name="status"),
        Index("uq_card_losses_open_card", "cardholder_id", unique=True, postgresql_where=OPEN, sqlite_where=OPEN),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default=LossStatus.PENDING.value)
    reported_by: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(String(32))  # the card system's refusal
    found_by: Mapped[str | None] = mapped_column(String(64))
    found_at: Mapped[datetime | None] = mapped_column(DateTime)

    @property
    def ref(self) -> str:
        """The report's reference at the card system, the same for every retry of this report."""
        return f"LOSS{self.id}"
