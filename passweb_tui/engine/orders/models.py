"""Store tables for web orders, their rows, site-born customers, push attempts and
the review queue of ERP-side order updates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class DecimalText(TypeDecorator[Decimal]):
    """An exact decimal kept as canonical text, so SQLite never turns money into floats."""

    impl = sa.String(40)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        return decimal_text(Decimal(value))

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


def decimal_text(value: Decimal) -> str:
    """Canonical text of a decimal: no exponent, no trailing zeros ("12.5", "2", "0")."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """A stored time in UTC: naive from SQLite (written as UTC), and from PostgreSQL in
    the session's time zone (the server's or the database's setting), which must not
    change what the JSON outputs say."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


TS = sa.DateTime(timezone=True)


class WebCustomer(SQLModel, table=True):
    """A customer born on the site; `erp_code` binds it to its ERP account once created."""

    __tablename__ = "web_customer"
    __table_args__ = (sa.UniqueConstraint("erp_code", name="uq_web_customer_erp_code"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str | None = Field(default=None, sa_column=sa.Column(sa.String(120), index=True))
    name: str = Field(sa_column=sa.Column(sa.String(120), nullable=False))
    vat_number: str | None = Field(default=None, sa_column=sa.Column(sa.String(20), index=True))
    tax_code: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))
    address: str | None = Field(default=None, sa_column=sa.Column(sa.String(120)))
    zip: str | None = Field(default=None, sa_column=sa.Column(sa.String(10)))
    city: str | None = Field(default=None, sa_column=sa.Column(sa.String(60)))
    province: str | None = Field(default=None, sa_column=sa.Column(sa.String(4)))
    country: str | None = Field(default=None, sa_column=sa.Column(sa.String(4)))
    # the binding to the ERP: one site customer, one ERP account, never two
    erp_code: str | None = Field(default=None, sa_column=sa.Column(sa.String(20), nullable=True))
    # push bookkeeping: see push.py for the protocol
    uncertain: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False))
    claim_owner: str | None = Field(default=None, sa_column=sa.Column(sa.String(80)))
    claimed_at: datetime | None = Field(default=None, sa_column=sa.Column(TS))
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(TS, nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=sa.Column(TS))


class WebOrder(SQLModel, table=True):
    """A web order: header, payment, site state, and the ERP key once it is in the ERP."""

    __tablename__ = "web_order"
    __table_args__ = (sa.UniqueConstraint("erp_key", name="uq_web_order_erp_key"),)

    id: str = Field(sa_column=sa.Column(sa.String(40), primary_key=True))
    created: datetime = Field(sa_column=sa.Column(TS, nullable=False))
    payment: str = Field(sa_column=sa.Column(sa.String(12), nullable=False))
    # exactly one of the two: an existing ERP customer, or a customer born on the site
    customer_code: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))
    web_customer_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("web_customer.id"), index=True),
    )
    currency: str = Field(default="EUR", sa_column=sa.Column(sa.String(3), nullable=False))
    payment_code: str | None = Field(default=None, sa_column=sa.Column(sa.String(10)))
    note: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    state: str = Field(sa_column=sa.Column(sa.String(20), nullable=False, index=True))
    # the binding to the ERP document ("OC+1+36"): unique, so no two orders share one
    erp_key: str | None = Field(default=None, sa_column=sa.Column(sa.String(40), nullable=True))
    # every ERP document found with this order's marker, when there was more than one
    # (the order is bound to the first and stays to_check until the ERP holds one)
    erp_duplicates: list[str] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    uncertain: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False))
    claim_owner: str | None = Field(default=None, sa_column=sa.Column(sa.String(80)))
    claimed_at: datetime | None = Field(default=None, sa_column=sa.Column(TS))
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    imported_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(TS, nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=sa.Column(TS))
    refreshed_at: datetime | None = Field(default=None, sa_column=sa.Column(TS))
    # the document as the site sent it, and as last seen in the ERP (normalized; see
    # documents.py): the first says whether the ERP modified it, the second what changed
    sent_snapshot: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    erp_snapshot: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    # an edit made on the site that the ERP has not seen yet; the ERP wins a conflict
    site_edit: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))


class WebOrderRow(SQLModel, table=True):
    """One row of a web order as the shopper placed it."""

    __tablename__ = "web_order_row"

    order_id: str = Field(
        sa_column=sa.Column(
            sa.String(40), sa.ForeignKey("web_order.id", ondelete="CASCADE"), primary_key=True
        )
    )
    line_no: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    article: str = Field(sa_column=sa.Column(sa.String(40), nullable=False))
    qty: Decimal = Field(sa_column=sa.Column(DecimalText, nullable=False))
    price: Decimal = Field(sa_column=sa.Column(DecimalText, nullable=False))
    discount: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))
    vat_code: str = Field(sa_column=sa.Column(sa.String(4), nullable=False))
    description: str | None = Field(default=None, sa_column=sa.Column(sa.String(240)))


class WebOrderUpdate(SQLModel, table=True):
    """An ERP-side change to a web order, waiting for an operator to review it."""

    __tablename__ = "web_order_update"

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(
        sa_column=sa.Column(
            sa.String(40), sa.ForeignKey("web_order.id"), nullable=False, index=True
        )
    )
    run_id: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    detected_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(TS, nullable=False))
    state_before: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    state_after: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    before: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    # the site's own edit that this ERP update overrode, kept for the operator
    site_edit: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    reviewed: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, index=True)
    )
    reviewed_at: datetime | None = Field(default=None, sa_column=sa.Column(TS))


class WebPushAttempt(SQLModel, table=True):
    """One attempt to create a customer or an order in the ERP, written before the request."""

    __tablename__ = "web_push_attempt"

    id: int | None = Field(default=None, primary_key=True)
    entity: str = Field(sa_column=sa.Column(sa.String(10), nullable=False))  # customer | order
    site_id: str = Field(sa_column=sa.Column(sa.String(40), nullable=False, index=True))
    owner: str = Field(sa_column=sa.Column(sa.String(80), nullable=False))
    started_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(TS, nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=sa.Column(TS))
    # sending (outcome unknown yet) | created | found | matched (the ERP's customer
    # already, by VAT number or tax code) | operator (bound by `orders customer
    # --erp-code`) | failed | uncertain; and an operator's decisions on an order (owner
    # "operator"): resent (`orders resend`) | paid (`orders confirm-payment`)
    outcome: str = Field(sa_column=sa.Column(sa.String(12), nullable=False))
    erp_key: str | None = Field(default=None, sa_column=sa.Column(sa.String(40)))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))


class WebResource(SQLModel, table=True):
    """An article's image or technical sheet, kept as a file named by its content hash."""

    __tablename__ = "web_resource"

    article_code: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    nome: str = Field(sa_column=sa.Column(sa.String(40), primary_key=True))
    tipo: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    dt_mod: str = Field(sa_column=sa.Column(sa.String(15), nullable=False))  # ERP's stamp
    size: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    sha256: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, index=True))
    path: str = Field(sa_column=sa.Column(sa.String(80), nullable=False))
    fetched_at: datetime = Field(sa_column=sa.Column(TS, nullable=False))


class WebResourceArticle(SQLModel, table=True):
    """Articles whose attachments were listed at least once (the others are new to it)."""

    __tablename__ = "web_resource_article"

    article_code: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    listed_at: datetime = Field(sa_column=sa.Column(TS, nullable=False))


TABLES = [
    WebCustomer.__table__,  # type: ignore[attr-defined]
    WebOrder.__table__,  # type: ignore[attr-defined]
    WebOrderRow.__table__,  # type: ignore[attr-defined]
    WebOrderUpdate.__table__,  # type: ignore[attr-defined]
    WebPushAttempt.__table__,  # type: ignore[attr-defined]
    WebResource.__table__,  # type: ignore[attr-defined]
    WebResourceArticle.__table__,  # type: ignore[attr-defined]
]
