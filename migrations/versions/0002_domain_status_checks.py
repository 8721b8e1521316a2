"""CHECK constraints for every state column that lacked one (ledger kind, notice, agreement, attempt, refund status)

Revision ID: 0002_domain
Revises: 0001
Create Date: 2026-11-26

The values are written out here, not imported from models.enums: a migration states the schema of its day.
Batch mode, so SQLite recreates each table with the constraint.
"""

from __future__ import annotations

from alembic import op

revision = "0002_domain"
down_revision = "0001"
branch_labels = None
depends_on = None

CHECKS = {
    "ledger_entries": ("kind", ("opening", "topup", "spend", "autodebit", "refund", "adjust", "withdraw")),
    "outbox_notices": ("status", ("pending", "sending", "sent", "unconfirmed", "uncertain", "undeliverable", "failed")),
    "autodebit_agreements": ("status", ("active", "cancelled", "expired")),
    "autodebit_attempts": ("status", ("waiting", "processing", "succeeded", "failed", "cancelled")),
    "autodebit_refund_requests": ("status", ("pending", "approving", "approved", "rejected", "failed")),
}


def upgrade() -> None:
    for table, (column, values) in CHECKS.items():
        allowed = ",".join(f"'{v}'" for v in values)
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_check_constraint(column, f"{column} IN ({allowed})")


def downgrade() -> None:
    for table, (column, _values) in CHECKS.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
