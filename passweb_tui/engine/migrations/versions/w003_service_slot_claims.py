"""Service bookkeeping: claims of scheduled slots and of one-off service work.

Revision ID: w003_service_slot_claims
Revises: w002_web_resources
Create Date: 2026-11-27 23:50:00

Stores that ran `serve` before this revision already have the table (the service
created it itself): it is left as it is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w003_service_slot_claims"
down_revision = "w002_web_resources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("service_slot_claims"):
        return
    op.create_table(
        "service_slot_claims",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("slot", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("service_slot_claims")
