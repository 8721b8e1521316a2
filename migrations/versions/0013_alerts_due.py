"""ledger_entries, card_entry_pushes: ``alerts_due``, the spends whose alerts the worker is yet to queue

A spend on a card with alerts chosen is marked in the entry's own transaction; a worker queues the alerts of the
marked entries a batch at a time and clears the mark in the same transaction (bot.alerts.queue_due). A partial index
holds only the marked rows, so finding them costs nothing however long the ledger grows.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = (("ledger_entries", "ix_ledger_alerts_due"), ("card_entry_pushes", "ix_card_entry_pushes_alerts_due"))


def upgrade() -> None:
    for table, index in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("alerts_due", sa.Boolean(), nullable=True))
        op.create_index(index, table, ["id"], unique=False, postgresql_where=sa.text("alerts_due"), sqlite_where=sa.text("alerts_due"))


def downgrade() -> None:
    for table, index in TABLES:
        op.drop_index(index, table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("alerts_due")
