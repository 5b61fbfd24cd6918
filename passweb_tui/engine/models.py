"""The site store's tables (SQLModel): the site's copy of ERP data and the sync history.

New areas of the store (web orders, for instance) add their tables in their own
module on the same `SQLModel.metadata` and a new Alembic revision after the last one.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Column, DateTime, Dialect, Index, Numeric, Text, TypeDecorator
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata

#: the largest id the store's numbered rows (runs, order updates) can have: their keys
#: are PostgreSQL integers, which refuse a larger number in a query ("integer out of
#: range") rather than find nothing
MAX_ID = 2**31 - 1


def storable_id(value: int) -> bool:
    """Whether a row of the store can have this id (1 to MAX_ID): one beyond is no row."""
    return 1 <= value <= MAX_ID


class ExactNumeric(TypeDecorator[Decimal]):
    """NUMERIC(precision, scale) that reads back the number written.

    SQLite keeps such a value as an 8-byte float, and SQLAlchemy's Numeric reads it
    back by printing it to `scale` places, which shows the float's binary error once
    the number is large (999999999999.99 read as 999999999999.989990). Here the float
    is read by its shortest spelling, which is the number as written whenever it had
    at most 15 significant digits (what the sync lets in: records.EXACT_DIGITS), then
    rounded to `scale` places as PostgreSQL rounds it when it stores it."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision, scale)
        self.precision = precision
        self.scale = scale
        self._step = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=False))
        return dialect.type_descriptor(Numeric(self.precision, self.scale))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if isinstance(value, float):
            d = Decimal(repr(value))
            exponent = d.as_tuple().exponent
            if isinstance(exponent, int) and exponent < -self.scale:
                d = d.quantize(self._step, ROUND_HALF_UP)
            return d
        if isinstance(value, int):
            return Decimal(value)
        return value  # type: ignore[no-any-return]


MONEY = ExactNumeric(18, 6)  # the ERP may quote unit prices to more than 4 places


def _text(nullable: bool = True) -> Column:  # type: ignore[type-arg]
    return Column(Text, nullable=nullable)


# --- ERP data, as the site sees it -------------------------------------------------
# Every synced table keeps the used fields as canonical JSON (`data`) and a digest
# of it, so a page is compared with one SELECT of (code, digest); the typed columns
# beside them are derived from `data` for searches and the UI.


class Article(SQLModel, table=True):
    __tablename__ = "articles"
    code: str = Field(primary_key=True, max_length=64)
    description: str | None = Field(default=None)
    category: str | None = Field(default=None, index=True, max_length=64)
    vat: str | None = Field(default=None, max_length=16)
    unit: str | None = Field(default=None, max_length=16)
    published: bool = Field(default=True)
    data: str = Field(sa_column=_text(False))
    digest: str = Field(max_length=32)
    synced_at: datetime


class ArticlePrice(SQLModel, table=True):
    __tablename__ = "article_prices"
    article_code: str = Field(primary_key=True, max_length=64)
    price_list: int = Field(primary_key=True)
    price: Decimal = Field(sa_column=Column(MONEY, nullable=False))


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    code: str = Field(primary_key=True, max_length=64)
    name: str | None = Field(default=None)
    vat_number: str | None = Field(default=None, max_length=32)
    tax_code: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None)
    city: str | None = Field(default=None)
    price_list: int | None = Field(default=None)
    payment: str | None = Field(default=None, max_length=16)
    # site-only: never written by a sync
    login: str | None = Field(default=None)
    password_hash: str | None = Field(default=None)
    data: str = Field(sa_column=_text(False))
    digest: str = Field(max_length=32)
    synced_at: datetime


class Condition(SQLModel, table=True):
    """A particolarita: special price or discount per customer x article or group."""

    __tablename__ = "conditions"
    code: str = Field(primary_key=True, max_length=128)
    customer: str | None = Field(default=None, index=True, max_length=64)
    kind: str | None = Field(default=None, max_length=4)
    article: str | None = Field(default=None, max_length=64)
    article_group: str | None = Field(default=None, max_length=64)
    price: Decimal | None = Field(default=None, sa_column=Column(MONEY, nullable=True))
    discount: str | None = Field(default=None, max_length=64)
    data: str = Field(sa_column=_text(False))
    digest: str = Field(max_length=32)
    synced_at: datetime


class Category(SQLModel, table=True):
    __tablename__ = "categories"
    code: str = Field(primary_key=True, max_length=64)
    description: str | None = Field(default=None)
    parent: str | None = Field(default=None, max_length=64)
    web: bool = Field(default=False)
    data: str = Field(sa_column=_text(False))
    digest: str = Field(max_length=32)
    synced_at: datetime


class PriceList(SQLModel, table=True):
    __tablename__ = "price_lists"
    code: str = Field(primary_key=True, max_length=16)
    description: str | None = Field(default=None)
    vat_included: bool = Field(default=False)
    data: str = Field(sa_column=_text(False))
    digest: str = Field(max_length=32)
    synced_at: datetime


class Currency(SQLModel, table=True):
    __tablename__ = "currencies"
    code: str = Field(primary_key=True, max_length=16)
    iso_code: str | None = Field(default=None, max_length=3)
    description: str | None = Field(default=None)
    rate: Decimal | None = Field(default=None, sa_column=Column(ExactNumeric(24, 8), nullable=True))
    data: str = Field(sa_column=_text(False))
    digest: str = Field(max_length=32)
    synced_at: datetime


class Payment(SQLModel, table=True):
    __tablename__ = "payments"
    code: str = Field(primary_key=True, max_length=16)
    description: str | None = Field(default=None)
    data: str = Field(sa_column=_text(False))
    digest: str = Field(max_length=32)
    synced_at: datetime


class LookupRecord(SQLModel, table=True):
    """Smaller lookup tables (warehouses, discount tables...) that need no columns of their own."""

    __tablename__ = "lookup_records"
    entity: str = Field(primary_key=True, max_length=64)
    code: str = Field(primary_key=True, max_length=64)
    description: str | None = Field(default=None)
    data: str = Field(sa_column=_text(False))
    digest: str = Field(max_length=32)
    synced_at: datetime


# --- the ERP's structure and the site's choice of fields ---------------------------


class ErpField(SQLModel, table=True):
    __tablename__ = "erp_fields"
    entity: str = Field(primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=128)
    type: str | None = Field(default=None, max_length=4)
    length: int | None = Field(default=None)
    is_key: bool = Field(default=False)
    array_size: int = Field(default=0)
    description: str | None = Field(default=None)
    used: bool = Field(default=False)
    seen_at: datetime


# --- sync history ------------------------------------------------------------------


class SyncRun(SQLModel, table=True):
    __tablename__ = "sync_runs"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    requested_kind: str = Field(max_length=16)
    origin: str = Field(max_length=16)
    scope: str | None = Field(default=None, sa_column=_text())  # JSON
    dry_run: bool = Field(default=False)
    status: str = Field(max_length=20, index=True)  # running, ok, ok_with_rejects, ...
    started: datetime = Field(index=True)
    finished: datetime | None = Field(default=None)
    # data_ric_elab of the first reply: the ERP's naive local time
    erp_clock: datetime | None = Field(default=None, sa_column=Column(DateTime, nullable=True))
    counts: str = Field(sa_column=_text(False))  # JSON: entity -> counters
    orders: str | None = Field(default=None, sa_column=_text())  # JSON, order push counters
    error: str | None = Field(default=None, sa_column=_text())
    message: str | None = Field(default=None, sa_column=_text())


class SyncReject(SQLModel, table=True):
    __tablename__ = "sync_rejects"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True)
    entity: str = Field(max_length=64)
    key: str | None = Field(default=None, max_length=256)
    reason: str = Field(sa_column=_text(False))


class RetryKey(SQLModel, table=True):
    """Records rejected by an earlier run, fetched again by the next CHANGED."""

    __tablename__ = "sync_retry_keys"
    entity: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=256)
    run_id: int


class ChangeEntry(SQLModel, table=True):
    __tablename__ = "change_log"
    __table_args__ = (
        Index("ix_change_log_record", "entity", "key"),
        # an entity's newest entries, without sorting all of them (migration w007)
        Index("ix_change_log_entity_order", "entity", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True)
    at: datetime = Field(index=True)
    entity: str = Field(max_length=64)
    key: str = Field(max_length=256)
    change: str = Field(max_length=16)  # inserted, updated, deleted
    field: str | None = Field(default=None, max_length=128)
    old: str | None = Field(default=None, sa_column=_text())
    new: str | None = Field(default=None, sa_column=_text())


class SyncState(SQLModel, table=True):
    """Named values of the sync: the CHANGED watermark, pending refills, ..."""

    __tablename__ = "sync_state"
    name: str = Field(primary_key=True, max_length=128)
    value: str | None = Field(default=None, sa_column=_text())
    updated_at: datetime


class SyncLease(SQLModel, table=True):
    """Who may run TOTAL/CHANGED now; one row per lease name, expiring unless renewed."""

    __tablename__ = "sync_lease"
    name: str = Field(primary_key=True, max_length=32)
    holder: str | None = Field(default=None, max_length=200)
    run_id: int | None = Field(default=None)
    started_at: datetime | None = Field(default=None)
    heartbeat_at: datetime | None = Field(default=None)
    expires_at: datetime | None = Field(default=None)
