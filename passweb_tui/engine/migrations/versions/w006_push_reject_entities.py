"""A run's rejects of web customers and orders it could not send get entities of their own

Revision ID: w006_push_reject_entities
Revises: w005_order_duplicates
Create Date: 2026-12-06 22:30:00

Until this revision a web customer the ERP refused was recorded among a run's rejects
under `customers`, the entity of the ERP's customers, with its site id as the key (and
an unsent web order under `orders`, beside the open orders a refresh could not read);
only the reason's "not sent: " told them apart. They are recorded as `web_customers` and
`web_orders` now, and the rows already stored are moved there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w006_push_reject_entities"
down_revision = "w005_order_duplicates"
branch_labels = None
depends_on = None

_MOVES = (("customers", "web_customers"), ("orders", "web_orders"))


def upgrade() -> None:
    rejects = sa.table("sync_rejects", sa.column("entity", sa.String), sa.column("reason", sa.Text))
    for old, new in _MOVES:
        op.execute(
            rejects.update()
            .where(rejects.c.entity == old, rejects.c.reason.like("not sent: %"))
            .values(entity=new)
        )


def downgrade() -> None:
    rejects = sa.table("sync_rejects", sa.column("entity", sa.String), sa.column("reason", sa.Text))
    for old, new in _MOVES:
        op.execute(rejects.update().where(rejects.c.entity == new).values(entity=old))
