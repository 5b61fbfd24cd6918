"""Web orders remember the ERP documents that carry them more than once.

Revision ID: w005_order_duplicates
Revises: w004_money_scale
Create Date: 2026-12-03 21:30:00

A look-up that finds two ERP documents with one order's marker binds the order to the
first and puts it in `to_check`. Before this revision nothing kept the others, so the
next refresh derived the order's state from the first document alone and the flag was
gone. The keys are kept until the ERP holds one document for the order again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w005_order_duplicates"
down_revision = "w004_money_scale"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("web_order") as batch:
        batch.add_column(sa.Column("erp_duplicates", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("web_order") as batch:
        batch.drop_column("erp_duplicates")
