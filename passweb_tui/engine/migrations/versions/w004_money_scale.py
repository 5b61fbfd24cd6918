"""Money with six decimals: prices and conditions' prices kept to 6 places, not 4.

Revision ID: w004_money_scale
Revises: w003_service_slot_claims
Create Date: 2026-12-03 12:00:00

The ERP may quote a unit price to more than four decimals; the site's typed price
columns rounded it. PostgreSQL's columns change type (every stored value fits); SQLite
keeps no precision in its columns, and reads them with the models' scale.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w004_money_scale"
down_revision = "w003_service_slot_claims"
branch_labels = None
depends_on = None

_COLUMNS = (("article_prices", "price", False), ("conditions", "price", True))


def _scale(old: int, new: int) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, nullable in _COLUMNS:
        op.alter_column(
            table,
            column,
            type_=sa.Numeric(18, new),
            existing_type=sa.Numeric(18, old),
            existing_nullable=nullable,
        )


def upgrade() -> None:
    _scale(4, 6)


def downgrade() -> None:
    _scale(6, 4)
