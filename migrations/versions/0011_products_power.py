"""generic orders and credits (product, target); dorm rooms and the rooms each WeChat account saved

Existing orders and credits are card top-ups: product 'card', target = the card's student number.

Revision ID: 0011
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

PRODUCTS = "product IN ('card','power')"


def upgrade() -> None:
    op.add_column("topup_orders", sa.Column("product", sa.String(8), nullable=False, server_default="card"))
    op.add_column("topup_orders", sa.Column("target", sa.String(32), nullable=True))
    op.execute("UPDATE topup_orders SET target = (SELECT student_no FROM cardholders WHERE cardholders.id = topup_orders.cardholder_id)")
    with op.batch_alter_table("topup_orders") as batch:
        batch.alter_column("target", existing_type=sa.String(32), nullable=False)
        batch.create_check_constraint(op.f("ck_topup_orders_product"), PRODUCTS)
    op.add_column("card_credits", sa.Column("product", sa.String(8), nullable=False, server_default="card"))
    op.add_column("card_credits", sa.Column("target", sa.String(32), nullable=True))
    op.add_column("card_credits", sa.Column("kwh_after", sa.Numeric(10, 2), nullable=True))
    op.execute("UPDATE card_credits SET target = student_no")
    with op.batch_alter_table("card_credits") as batch:
        batch.alter_column("target", existing_type=sa.String(32), nullable=False)
        batch.create_check_constraint(op.f("ck_card_credits_product"), PRODUCTS)
    op.create_table(
        "power_rooms",
        sa.Column("room_id", sa.String(32), primary_key=True),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("remaining_kwh", sa.Numeric(10, 2), nullable=True),
        sa.Column("read_at", sa.DateTime(), nullable=True),
        sa.Column("threshold_kwh", sa.Numeric(10, 2), nullable=False),
        sa.Column("alerted_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("room_id", name=op.f("pk_power_rooms")),
    )
    op.create_table(
        "saved_rooms",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("openid", sa.String(64), nullable=False),
        sa.Column("room_id", sa.String(32), sa.ForeignKey("power_rooms.room_id", name=op.f("fk_saved_rooms_room_id_power_rooms")), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_rooms")),
        sa.UniqueConstraint("openid", "room_id", name=op.f("uq_saved_rooms_openid")),
    )
    op.create_index(op.f("ix_saved_rooms_openid"), "saved_rooms", ["openid"])
    op.create_index(op.f("ix_saved_rooms_room_id"), "saved_rooms", ["room_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_saved_rooms_room_id"), "saved_rooms")
    op.drop_index(op.f("ix_saved_rooms_openid"), "saved_rooms")
    op.drop_table("saved_rooms")
    op.drop_table("power_rooms")
    with op.batch_alter_table("card_credits") as batch:
        batch.drop_constraint(op.f("ck_card_credits_product"), type_="check")
        batch.drop_column("kwh_after")
        batch.drop_column("target")
        batch.drop_column("product")
    with op.batch_alter_table("topup_orders") as batch:
        batch.drop_constraint(op.f("ck_topup_orders_product"), type_="check")
        batch.drop_column("target")
        batch.drop_column("product")
