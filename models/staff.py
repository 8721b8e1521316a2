"""Service-center staff of the web console (bot/admin) and the append-only audit log of what they saw and did."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.enums import AuditOutcome, StaffRole, check_in


class StaffUser(Base):
    """A console account. Created with a one-time setup link (only its hash is kept); the password is an argon2 hash,
    the TOTP secret is set for supervisors at setup."""

    __tablename__ = "staff_users"
    __table_args__ = (check_in("role", StaffRole, name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(12))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    setup_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    setup_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)


class AuditEntry(Base):
    """One console request: who (name and role at the time), when, what, on which target, the typed reason, and what
    came of it. Rows are only ever added: the database refuses an UPDATE (migration 0010's trigger)."""

    __tablename__ = "audit_log"
    __table_args__ = (check_in("outcome", AuditOutcome, name="outcome"), Index("ix_audit_log_target", "target"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    staff: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(12))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(String(256), default="")
    outcome: Mapped[str] = mapped_column(String(12))
    detail: Mapped[str] = mapped_column(String(256), default="")


class ReconciliationRun(Base):
    """The result of one ``cardbot reconcile DAY`` (the console shows the last): each side's lines, clean or not."""

    __tablename__ = "reconciliation_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    ran_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    clean: Mapped[bool] = mapped_column(Boolean)
    sides: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
