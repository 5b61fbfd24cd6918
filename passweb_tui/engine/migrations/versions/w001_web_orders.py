"""Web orders: site-born customers, orders and rows, push attempts, order updates for review.

Revision ID: w001_web_orders
Revises: 0001
Create Date: 2026-11-27 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w001_web_orders"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "web_customer",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(120), nullable=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("vat_number", sa.String(20), nullable=True),
        sa.Column("tax_code", sa.String(20), nullable=True),
        sa.Column("address", sa.String(120), nullable=True),
        sa.Column("zip", sa.String(10), nullable=True),
        sa.Column("city", sa.String(60), nullable=True),
        sa.Column("province", sa.String(4), nullable=True),
        sa.Column("country", sa.String(4), nullable=True),
        sa.Column("erp_code", sa.String(20), nullable=True),
        sa.Column("uncertain", sa.Boolean(), nullable=False),
        sa.Column("claim_owner", sa.String(80), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.UniqueConstraint("erp_code", name="uq_web_customer_erp_code"),
    )
    op.create_index("ix_web_customer_email", "web_customer", ["email"])
    op.create_index("ix_web_customer_vat_number", "web_customer", ["vat_number"])
    op.create_table(
        "web_order",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created", TS, nullable=False),
        sa.Column("payment", sa.String(12), nullable=False),
        sa.Column("customer_code", sa.String(20), nullable=True),
        sa.Column("web_customer_id", sa.Integer(), sa.ForeignKey("web_customer.id"), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payment_code", sa.String(10), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("erp_key", sa.String(40), nullable=True),
        sa.Column("uncertain", sa.Boolean(), nullable=False),
        sa.Column("claim_owner", sa.String(80), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("imported_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("refreshed_at", TS, nullable=True),
        sa.Column("sent_snapshot", sa.JSON(), nullable=True),
        sa.Column("erp_snapshot", sa.JSON(), nullable=True),
        sa.Column("site_edit", sa.JSON(), nullable=True),
        sa.UniqueConstraint("erp_key", name="uq_web_order_erp_key"),
    )
    op.create_index("ix_web_order_state", "web_order", ["state"])
    op.create_index("ix_web_order_web_customer_id", "web_order", ["web_customer_id"])
    op.create_table(
        "web_order_row",
        sa.Column(
            "order_id",
            sa.String(40),
            sa.ForeignKey("web_order.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("line_no", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("article", sa.String(40), nullable=False),
        sa.Column("qty", sa.String(40), nullable=False),
        sa.Column("price", sa.String(40), nullable=False),
        sa.Column("discount", sa.String(20), nullable=True),
        sa.Column("vat_code", sa.String(4), nullable=False),
        sa.Column("description", sa.String(240), nullable=True),
    )
    op.create_table(
        "web_order_update",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.String(40), sa.ForeignKey("web_order.id"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("detected_at", TS, nullable=False),
        sa.Column("state_before", sa.String(20), nullable=False),
        sa.Column("state_after", sa.String(20), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("site_edit", sa.JSON(), nullable=True),
        sa.Column("reviewed", sa.Boolean(), nullable=False),
        sa.Column("reviewed_at", TS, nullable=True),
    )
    op.create_index("ix_web_order_update_order_id", "web_order_update", ["order_id"])
    op.create_index("ix_web_order_update_reviewed", "web_order_update", ["reviewed"])
    op.create_table(
        "web_push_attempt",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("entity", sa.String(10), nullable=False),
        sa.Column("site_id", sa.String(40), nullable=False),
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("erp_key", sa.String(40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_web_push_attempt_site_id", "web_push_attempt", ["site_id"])


def downgrade() -> None:
    op.drop_table("web_push_attempt")
    op.drop_table("web_order_update")
    op.drop_table("web_order_row")
    op.drop_table("web_order")
    op.drop_table("web_customer")
