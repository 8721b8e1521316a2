"""outbox: the account's index on (openid, kind, id), replacing the openid-only one

An entry's alerts look up the account's newest spend alert still held and count its alerts today. With the openid
index PostgreSQL's plans went through the status index, which reads every pending notice: during a burst (a canteen
at noon, thousands of alerts pending) each lookup grew with the backlog. This index answers the lookup in the order
it asks for (newest first, no sort), reading the account's own few rows.

Revision ID: 0012
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_notices") as batch:
        batch.create_index("ix_outbox_notices_account", ["openid", "kind", "id"], unique=False)
        batch.drop_index("ix_outbox_notices_openid")


def downgrade() -> None:
    with op.batch_alter_table("outbox_notices") as batch:
        batch.create_index("ix_outbox_notices_openid", ["openid"], unique=False)
        batch.drop_index("ix_outbox_notices_account")
