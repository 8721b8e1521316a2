"""staff_users, audit_log (append-only: an UPDATE is refused by a trigger) and reconciliation_runs, for the console

Revision ID: 0010
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None

_PG_GUARD = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(12), nullable=False),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("totp_secret", sa.String(64)),
        sa.Column("setup_token_hash", sa.String(64)),
        sa.Column("setup_expires_at", sa.DateTime()),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime()),
        sa.UniqueConstraint("name", name=op.f("uq_staff_users_name")),
        sa.UniqueConstraint("setup_token_hash", name=op.f("uq_staff_users_setup_token_hash")),
        sa.CheckConstraint("role IN ('clerk','supervisor')", name=op.f("ck_staff_users_role")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("staff", sa.String(64), nullable=False),
        sa.Column("role", sa.String(12), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("detail", sa.String(256), nullable=False),
        sa.CheckConstraint("outcome IN ('done','refused','forbidden')", name=op.f("ck_audit_log_outcome")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_index("ix_audit_log_target", "audit_log", ["target"])
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("ran_at", sa.DateTime(), nullable=False),
        sa.Column("clean", sa.Boolean(), nullable=False),
        sa.Column("sides", sa.JSON(), nullable=False),
    )
    op.create_index(op.f("ix_reconciliation_runs_day"), "reconciliation_runs", ["day"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_GUARD)
        op.execute("CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")
    else:
        op.execute("CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_update" + (" ON audit_log" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_index(op.f("ix_reconciliation_runs_day"), "reconciliation_runs")
    op.drop_table("reconciliation_runs")
    op.drop_index("ix_audit_log_target", "audit_log")
    op.drop_index(op.f("ix_audit_log_at"), "audit_log")
    op.drop_table("audit_log")
    op.drop_table("staff_users")
