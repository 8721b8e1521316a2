"""one active auto-debit agreement per card (partial unique index)

Revision ID: 0002_bank
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_bank"
down_revision = "0001"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    # Concurrent signing could leave a card with two active agreements: keep the newest, cancel the others.
    op.execute(
        "UPDATE autodebit_agreements SET status = 'cancelled', cancelled_at = CURRENT_TIMESTAMP "
        "WHERE status = 'active' AND id < (SELECT MAX(a2.id) FROM autodebit_agreements a2 "
        "WHERE a2.cardholder_id = autodebit_agreements.cardholder_id AND a2.status = 'active')"
    )
    op.create_index("uq_autodebit_agreements_active_card", "autodebit_agreements", ["cardholder_id"], unique=True,
                    postgresql_where=ACTIVE, sqlite_where=ACTIVE)


def downgrade() -> None:
    op.drop_index("uq_autodebit_agreements_active_card", table_name="autodebit_agreements")
