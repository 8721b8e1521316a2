"""card_entry_pushes: terminal entries a remote card system pushed, once per entry_id

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_entry_pushes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("entry_id", sa.String(64), nullable=False),
        sa.Column(
            "cardholder_id", sa.Integer(), sa.ForeignKey("cardholders.id", name=op.f("fk_card_entry_pushes_cardholder_id_cardholders")), nullable=False
        ),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("balance_after_fen", sa.Integer(), nullable=False),
        sa.Column("merchant", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("entry_id", name=op.f("uq_card_entry_pushes_entry_id")),
    )
    op.create_index(op.f("ix_card_entry_pushes_cardholder_id"), "card_entry_pushes", ["cardholder_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_card_entry_pushes_cardholder_id"), "card_entry_pushes")
    op.drop_table("card_entry_pushes")
