"""drop cardholders.pending_fen: never written (pending credits come from the card-system credits instead)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cardholders") as batch:
        batch.drop_constraint(op.f("ck_cardholders_pending_nonneg"), type_="check")
        batch.drop_column("pending_fen")


def downgrade() -> None:
    with op.batch_alter_table("cardholders") as batch:
        batch.add_column(sa.Column("pending_fen", sa.Integer(), nullable=False, server_default="0"))
        batch.create_check_constraint(op.f("ck_cardholders_pending_nonneg"), "pending_fen >= 0")
