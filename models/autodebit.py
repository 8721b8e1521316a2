"""Automatic top-up (自动圈存): the signed agreement, each attempt, and refund requests."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.enums import AgreementStatus, AttemptStatus, RefundStatus, check_in

ACTIVE = text("status = 'active'")


class AutodebitAgreement(Base):
    __tablename__ = "autodebit_agreements"
    # one active agreement per card, whoever of the family signs and however they race (partial unique index)
    __table_args__ = (
        check_in("status", AgreementStatus, name="status"),
        Index("uq_autodebit_agreements_active_card", "cardholder_id", unique=True, postgresql_where=ACTIVE, sqlite_where=ACTIVE),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    openid: Mapped[str] = mapped_column(String(64))
    bank_account: Mapped[str] = mapped_column(String(64))
    bank_last4: Mapped[str] = mapped_column(String(4))
    threshold_fen: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default=AgreementStatus.ACTIVE.value, index=True)
    signed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_on: Mapped[date] = mapped_column(Date)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime)
    reminder_sent_on: Mapped[date | None] = mapped_column(Date)


class AutodebitAttempt(Base):
    __tablename__ = "autodebit_attempts"
    __table_args__ = (check_in("status", AttemptStatus, name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger_key: Mapped[str] = mapped_column(String(128), unique=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("autodebit_agreements.id"), index=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default=AttemptStatus.WAITING.value, index=True)
    reason: Mapped[str | None] = mapped_column(String(64))
    bank_ref: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)  # became 'processing': staleness counts from here
    done_at: Mapped[datetime | None] = mapped_column(DateTime)


class RefundRequest(Base):
    __tablename__ = "autodebit_refund_requests"
    __table_args__ = (check_in("status", RefundStatus, name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("autodebit_attempts.id"), unique=True)
    openid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), default=RefundStatus.PENDING.value, index=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(256))
