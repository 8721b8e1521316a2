"""card_credits (money owed to the card system, delivered by ref) and cardholders.balance_as_of

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_credits",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ref", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(12), nullable=False),
        sa.Column("cardholder_id", sa.Integer(), sa.ForeignKey("cardholders.id", name=op.f("fk_card_credits_cardholder_id_cardholders")), nullable=False),
        sa.Column("student_no", sa.String(12), nullable=False),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("fee_fen", sa.Integer(), nullable=False),
        sa.Column("paid_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime()),
        sa.Column("waiting_for", sa.String(16)),
        sa.Column("reason", sa.String(32)),
        sa.Column("entry_id", sa.String(64)),
        sa.Column("balance_fen", sa.Integer()),
        sa.Column("refund_no", sa.String(64)),
        sa.Column("note", sa.String(256)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime()),
        sa.UniqueConstraint("ref", name=op.f("uq_card_credits_ref")),
        sa.UniqueConstraint("refund_no", name=op.f("uq_card_credits_refund_no")),
        sa.CheckConstraint("amount_fen > 0 AND fee_fen >= 0", name=op.f("ck_card_credits_amounts")),
        sa.CheckConstraint("status IN ('pending','delivered','refused','refunding','refunded')", name=op.f("ck_card_credits_status")),
        sa.CheckConstraint("channel IN ('wechat_pay','autodebit')", name=op.f("ck_card_credits_channel")),
    )
    op.create_index(op.f("ix_card_credits_cardholder_id"), "card_credits", ["cardholder_id"])
    op.create_index("ix_card_credits_due", "card_credits", ["status", "next_try_at"])
    with op.batch_alter_table("cardholders") as batch:
        batch.add_column(sa.Column("balance_as_of", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cardholders") as batch:
        batch.drop_column("balance_as_of")
    op.drop_index("ix_card_credits_due", "card_credits")
    op.drop_table("card_credits")
