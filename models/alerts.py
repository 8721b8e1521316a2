"""What each WeChat account asked to be told about its card (提醒设置): one row per account, none until it chooses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class AlertSettings(Base):
    __tablename__ = "alert_settings"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    spend: Mapped[bool] = mapped_column(Boolean, default=False)  # each spend (spends close together merged)
    low_balance: Mapped[bool] = mapped_column(Boolean, default=False)
    low_threshold_fen: Mapped[int] = mapped_column(Integer)
    large_spend: Mapped[bool] = mapped_column(Boolean, default=False)
    large_threshold_fen: Mapped[int] = mapped_column(Integer)
    # WeChat refused an alert for good (43101: the user refused the template; 43004: no longer following): no more
    # alerts are queued until the student saves the settings again
    paused_by: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
