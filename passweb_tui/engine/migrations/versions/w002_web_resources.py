"""Article resources: files by content hash, and the articles whose attachments were listed.

Revision ID: w002_web_resources
Revises: w001_web_orders
Create Date: 2026-11-27 17:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w002_web_resources"
down_revision = "w001_web_orders"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "web_resource",
        sa.Column("article_code", sa.String(64), primary_key=True),
        sa.Column("nome", sa.String(40), primary_key=True),
        sa.Column("tipo", sa.String(20), nullable=False),
        sa.Column("dt_mod", sa.String(15), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.String(80), nullable=False),
        sa.Column("fetched_at", TS, nullable=False),
    )
    op.create_index("ix_web_resource_sha256", "web_resource", ["sha256"])
    op.create_table(
        "web_resource_article",
        sa.Column("article_code", sa.String(64), primary_key=True),
        sa.Column("listed_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("web_resource_article")
    op.drop_table("web_resource")
