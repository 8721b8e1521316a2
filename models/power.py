"""Dorm rooms of the electricity system as the bot knows them: the last reading, the low-power threshold and the day
it was last alerted (one row per room, however many accounts saved it), and which WeChat accounts saved which room."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, DateTime, ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

DEFAULT_THRESHOLD_KWH = Decimal(10)


class PowerRoom(Base):
    __tablename__ = "power_rooms"

    room_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the electricity system's id
    label: Mapped[str] = mapped_column(String(64))  # campus · building · room, as the electricity system names them
    remaining_kwh: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    read_at: Mapped[datetime | None] = mapped_column(DateTime)  # the meter's reading time (UTC)
    threshold_kwh: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=DEFAULT_THRESHOLD_KWH)
    alerted_on: Mapped[date | None] = mapped_column(Date)  # the school day of the last low-power alert (once a day)


class SavedRoom(Base):
    """A room one WeChat account keeps on its electricity page (a student may keep several; roommates share one)."""

    __tablename__ = "saved_rooms"
    __table_args__ = (UniqueConstraint("openid", "room_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("power_rooms.room_id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
