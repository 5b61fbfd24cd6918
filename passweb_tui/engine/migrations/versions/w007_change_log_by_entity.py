"""The change log gets an index by entity in the order of its entries

Revision ID: w007_change_log_by_entity
Revises: w006_push_reject_entities
Create Date: 2026-12-07 19:45:00

The change log is read newest first, and often for one entity (`changes --entity
articles`, the screen's entity filter). With the index on (entity, key) alone, the
database read every entry of the entity and sorted them to show the newest hundred:
two seconds and more for the articles of a log of a few million entries. Over (entity,
id) it reads just the newest ones.
"""

from __future__ import annotations

from alembic import op

revision = "w007_change_log_by_entity"
down_revision = "w006_push_reject_entities"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_change_log_entity_order", "change_log", ["entity", "id"])


def downgrade() -> None:
    op.drop_index("ix_change_log_entity_order", table_name="change_log")
