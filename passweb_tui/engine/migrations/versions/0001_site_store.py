"""Site store: ERP data, field catalogue, sync history, watermarks and the lease.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-27 17:04:58.045557
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "article_prices",
        sa.Column("article_code", sa.String(length=64), nullable=False),
        sa.Column("price_list", sa.Integer(), nullable=False),
        sa.Column("price", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.PrimaryKeyConstraint("article_code", "price_list"),
    )
    op.create_table(
        "articles",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("vat", sa.String(length=16), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_articles_category"), ["category"], unique=False)

    op.create_table(
        "categories",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("parent", sa.String(length=64), nullable=True),
        sa.Column("web", sa.Boolean(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "change_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("field", sa.String(length=128), nullable=True),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_log_at"), ["at"], unique=False)
        batch_op.create_index("ix_change_log_record", ["entity", "key"], unique=False)
        batch_op.create_index(batch_op.f("ix_change_log_run_id"), ["run_id"], unique=False)

    op.create_table(
        "conditions",
        sa.Column("code", sa.String(length=128), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=4), nullable=True),
        sa.Column("article", sa.String(length=64), nullable=True),
        sa.Column("article_group", sa.String(length=64), nullable=True),
        sa.Column("price", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("discount", sa.String(length=64), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("conditions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conditions_customer"), ["customer"], unique=False)

    op.create_table(
        "currencies",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("iso_code", sa.String(length=3), nullable=True),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("rate", sa.Numeric(precision=24, scale=8), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "customers",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("vat_number", sa.String(length=32), nullable=True),
        sa.Column("tax_code", sa.String(length=32), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("city", sa.String(), nullable=True),
        sa.Column("price_list", sa.Integer(), nullable=True),
        sa.Column("payment", sa.String(length=16), nullable=True),
        sa.Column("login", sa.String(), nullable=True),
        sa.Column("password_hash", sa.String(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "erp_fields",
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=4), nullable=True),
        sa.Column("length", sa.Integer(), nullable=True),
        sa.Column("is_key", sa.Boolean(), nullable=False),
        sa.Column("array_size", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entity", "name"),
    )
    op.create_table(
        "lookup_records",
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entity", "code"),
    )
    op.create_table(
        "payments",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "price_lists",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("vat_included", sa.Boolean(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "sync_lease",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "sync_rejects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sync_rejects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_rejects_run_id"), ["run_id"], unique=False)

    op.create_table(
        "sync_retry_keys",
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("entity", "key"),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("requested_kind", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erp_clock", sa.DateTime(), nullable=True),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("orders", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_runs_started"), ["started"], unique=False)
        batch_op.create_index(batch_op.f("ix_sync_runs_status"), ["status"], unique=False)

    op.create_table(
        "sync_state",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # the one lease TOTAL and CHANGED take turns on (engine/lease.py)
    op.execute(sa.text("INSERT INTO sync_lease (name) VALUES ('pull')"))


def downgrade() -> None:
    op.drop_table("sync_state")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_runs_status"))
        batch_op.drop_index(batch_op.f("ix_sync_runs_started"))

    op.drop_table("sync_runs")
    op.drop_table("sync_retry_keys")
    with op.batch_alter_table("sync_rejects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_rejects_run_id"))

    op.drop_table("sync_rejects")
    op.drop_table("sync_lease")
    op.drop_table("price_lists")
    op.drop_table("payments")
    op.drop_table("lookup_records")
    op.drop_table("erp_fields")
    op.drop_table("customers")
    op.drop_table("currencies")
    with op.batch_alter_table("conditions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conditions_customer"))

    op.drop_table("conditions")
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_log_run_id"))
        batch_op.drop_index("ix_change_log_record")
        batch_op.drop_index(batch_op.f("ix_change_log_at"))

    op.drop_table("change_log")
    op.drop_table("categories")
    with op.batch_alter_table("articles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_articles_category"))

    op.drop_table("articles")
    op.drop_table("article_prices")
