"""autodebit_attempts.claimed_at: when the attempt became 'processing' (the sweep's staleness counts from it)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("autodebit_attempts") as batch:
        batch.add_column(sa.Column("claimed_at", sa.DateTime(), nullable=True))
    # The claim time of older rows is unknown: their creation is the earliest it can have been, so an attempt left
    # 'processing' is stale at once and the sweep asks the bank about it. Waiting and cancelled ones were never claimed.
    op.execute("UPDATE autodebit_attempts SET claimed_at = created_at WHERE status IN ('processing', 'succeeded', 'failed')")


def downgrade() -> None:
    with op.batch_alter_table("autodebit_attempts") as batch:
        batch.drop_column("claimed_at")
