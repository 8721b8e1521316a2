"""card_losses: lost-card reports (挂失), one open report per card; alert_settings: the alerts each account chose

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0011"
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('pending', 'lost')")


def upgrade() -> None:
    op.create_table(
        "card_losses",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("cardholder_id", sa.Integer(), sa.ForeignKey("cardholders.id", name=op.f("fk_card_losses_cardholder_id_cardholders")), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reported_by", sa.String(64), nullable=False),
        sa.Column("reported_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("found_by", sa.String(64), nullable=True),
        sa.Column("found_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("status IN ('pending','lost','found','refused')", name=op.f("ck_card_losses_status")),
    )
    op.create_index(op.f("ix_card_losses_cardholder_id"), "card_losses", ["cardholder_id"])
    op.create_index("uq_card_losses_open_card", "card_losses", ["cardholder_id"], unique=True, postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_table(
        "alert_settings",
        sa.Column("openid", sa.String(64), primary_key=True),
        sa.Column("spend", sa.Boolean(), nullable=False),
        sa.Column("low_balance", sa.Boolean(), nullable=False),
        sa.Column("low_threshold_fen", sa.Integer(), nullable=False),
        sa.Column("large_spend", sa.Boolean(), nullable=False),
        sa.Column("large_threshold_fen", sa.Integer(), nullable=False),
        sa.Column("paused_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_settings")
    op.drop_index("uq_card_losses_open_card", table_name="card_losses")
    op.drop_index(op.f("ix_card_losses_cardholder_id"), "card_losses")
    op.drop_table("card_losses")
