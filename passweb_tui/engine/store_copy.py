"""A whole site store copied into a new one: a backup (to a SQLite file), a move to
PostgreSQL as an installation grows, or a restore (from a backup, into a new store).

The source is read in one transaction, so the copy is the store as it was at one moment
even while a sync or the service writes to it (SQLite in WAL mode and PostgreSQL's
REPEATABLE READ both give a reader a fixed snapshot). The target is all or nothing: a
SQLite file is written under a temporary name beside the one given and renamed only
once whole; a PostgreSQL database gets its schema and every row in one transaction. A
target that already holds something is refused, never written over.

The lease table's rows are not copied: the target starts with its lock free. A run
under way in the snapshot is in the copy as its process would have left it if killed:
not finished, and shown interrupted (nothing renews its lease in the target)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, Table, func, insert, select, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from passweb_tui.engine.store import (
    _PG_MIGRATION_LOCK,
    _PG_SETTING,
    Store,
    StoreError,
    StoreUrlError,
    _alembic_config,
    create_store_engine,
    current_revision,
    database_words,
    present_tables,
    shown_url,
    without_url_secrets,
)

#: rows read and written at a time: memory stays flat whatever the store's size
COPY_CHUNK = 5000

#: tables whose rows stay behind: the lease (the target's lock starts free; its one
#: 'pull' row is made by the schema's first migration)
NOT_COPIED = frozenset({"sync_lease"})


class StoreCopyCancelled(StoreError):
    """The copy was cancelled; the target was left as it was."""


@dataclass
class CopyResult:
    source: str  # the URLs as shown (no password)
    target: str
    tables: dict[str, int] = field(default_factory=dict)  # rows copied, per table
    seconds: float = 0.0
    #: runs under way at the moment copied: not finished in the copy (interrupted)
    under_way: list[int] = field(default_factory=list)
    #: web orders and customers not yet in the ERP when copied, which the copy looks up
    #: in the ERP before it sends them: {"orders": n, "customers": m}
    to_look_up: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "tables": dict(self.tables),
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "under_way": list(self.under_way),
            "to_look_up": dict(self.to_look_up),
        }


def target_url(target: str) -> URL:
    """The store URL a `store copy` target names: a SQLAlchemy URL, or a plain file path
    (a SQLite file, `~` expanded)."""
    if "://" not in target:
        if not target.strip():
            raise StoreUrlError("the target is empty: give a file name or a database URL")
        path = Path(target).expanduser().absolute()
        return URL.create("sqlite", database=str(path))
    try:
        url = make_url(target)
    except Exception:
        raise StoreUrlError(
            f"{shown_url(target)}: not a database URL (sqlite:///FILE,"
            " postgresql+psycopg://USER@HOST/DB, or a plain file name)"
        ) from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreUrlError(
            f"{shown_url(url)}: a store is SQLite or PostgreSQL, not {url.get_backend_name()}"
        )
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:") or url.query:
            raise StoreUrlError(
                f"{shown_url(url)}: a copy is written to a plain SQLite file"
                " (sqlite:///FILE, or the file name alone)"
            )
    return url


def _sqlite_path(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite":
        return None
    return Path(url.database or "").expanduser().absolute()


def _same_store(source: URL, target: URL) -> bool:
    s_path, t_path = _sqlite_path(source), _sqlite_path(target)
    if s_path is not None or t_path is not None:
        if s_path is None or t_path is None:
            return False
        if s_path == t_path:
            return True
        with contextlib.suppress(OSError):
            return os.path.samefile(s_path, t_path)
        return False
    return (source.host or "", source.port or 5432, source.database) == (
        target.host or "",
        target.port or 5432,
        target.database,
    )


def copy_store(
    source: Store,
    target: str,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> CopyResult:
    """Copy every row of `source` into a new store at `target` (a URL or a file path).
    `progress(table, done, rows)` is called as rows go; `cancel` stops the copy, leaving
    the target as it was (StoreCopyCancelled). StoreUrlError: the target cannot be the
    copy's (the source itself, a file that exists, a database holding a store);
    StoreError: the copy failed, and the target was left as it was."""
    url = target_url(target)
    shown = shown_url(url)
    if _same_store(source.engine.url, url):
        raise StoreUrlError(f"{shown} is the store being copied: give another file or database")
    result = CopyResult(source=source.url, target=shown)
    started = time.monotonic()
    path = _sqlite_path(url)
    if path is not None:
        if path.exists() or path.is_symlink():
            raise StoreUrlError(
                f"{shown}: {str(path)!r} exists; a copy never writes over a file: give a new"
                " name, or move that one aside first"
            )
        temp = path.with_name(f".{path.name}.copy-{os.getpid()}.tmp")
        _remove_sqlite_files(temp)
        engine = create_store_engine(
            URL.create("sqlite", database=str(temp)).render_as_string(), make_folder=True
        )
        try:
            _fill(source, engine, shown, result, progress, cancel)
            engine.dispose()  # the last connection closed: SQLite folds its WAL into the file
            for leftover in ("-wal", "-shm"):
                Path(f"{temp}{leftover}").unlink(missing_ok=True)
            if path.exists():  # made meanwhile by someone else: theirs is kept
                raise StoreUrlError(f"{shown}: {str(path)!r} appeared while copying; left as it is")
            os.replace(temp, path)
        except BaseException:
            engine.dispose()
            _remove_sqlite_files(temp)
            raise
    else:
        engine = create_store_engine(url.render_as_string(hide_password=False))
        try:
            _fill(source, engine, shown, result, progress, cancel)
        finally:
            engine.dispose()
    result.seconds = time.monotonic() - started
    return result


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink()


def _fill(
    source: Store,
    engine: Engine,
    shown: str,
    result: CopyResult,
    progress: Callable[[str, int, int], None] | None,
    cancel: threading.Event | None,
) -> None:
    """The target's schema and every row, in one transaction of the target."""
    from alembic import command

    from passweb_tui.engine.store import store_tables

    store_tables()  # every area's tables registered in the metadata
    from passweb_tui.engine.models import metadata

    tables = [t for t in metadata.sorted_tables if t.name not in NOT_COPIED]
    pg_target = engine.dialect.name == "postgresql"
    try:
        with engine.connect() as t0, _snapshot(source) as src:
            tconn = t0.execution_options(pwt_immediate=True)
            with tconn.begin():
                if pg_target:
                    # as a migration does: a store opened there meanwhile waits for this
                    tconn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                found = present_tables(tconn)
                if found or current_revision(tconn) is not None:
                    raise StoreUrlError(
                        f"{shown} holds a store already: a copy goes into a new, empty one"
                    )
                command.upgrade(_alembic_config(tconn), "head")
                expected = {
                    t.name: src.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in tables
                }
                for table in tables:
                    result.tables[table.name] = _copy_table(
                        src, tconn, table, expected[table.name], progress, cancel
                    )
                    if result.tables[table.name] != expected[table.name]:
                        raise StoreError(
                            f"{table.name}: {result.tables[table.name]} rows read of"
                            f" {expected[table.name]}; nothing was written to {shown}"
                        )
                if pg_target:
                    _advance_sequences(tconn, tables)
                result.to_look_up = _look_up_first(tconn)
                from passweb_tui.engine.models import SyncRun

                runs = SyncRun.__table__  # type: ignore[attr-defined]
                result.under_way = list(
                    tconn.execute(
                        select(runs.c.id).where(runs.c.status == "running").order_by(runs.c.id)
                    ).scalars()
                )
    except StoreError:
        raise
    except DBAPIError as exc:
        why = without_url_secrets(database_words(exc) or " ".join(str(exc).split()), engine.url)
        if _PG_SETTING.search(why):
            raise StoreUrlError(f"{shown}: {why}; nothing was written there") from None
        raise StoreError(f"{shown}: {why}; nothing was written there") from None
    except SQLAlchemyError as exc:
        raise StoreError(f"{shown}: {exc}; nothing was written there") from None


@contextlib.contextmanager
def _snapshot(source: Store) -> Iterator[Connection]:
    """One read transaction on the source: every table as it was at one moment."""
    with source.engine.connect() as c0:
        conn = c0
        if source.engine.dialect.name == "postgresql":
            conn = c0.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn


def _copy_table(
    src: Connection,
    dst: Connection,
    table: Table,
    rows: int,
    progress: Callable[[str, int, int], None] | None,
    cancel: threading.Event | None,
) -> int:
    """The table's rows, a chunk at a time, in key order. Between two SQLite files the
    values go as SQLite holds them, untouched; otherwise through the columns' types, a
    moment made UTC on the way (see `_moment`)."""
    order = list(table.primary_key.columns) or list(table.columns)
    columns = list(table.columns)
    raw = src.dialect.name == dst.dialect.name == "sqlite"
    if raw:
        quote = dst.dialect.identifier_preparer.quote
        names = ", ".join(quote(c.name) for c in columns)
        keys = ", ".join(quote(c.name) for c in order)
        read = f"SELECT {names} FROM {quote(table.name)} ORDER BY {keys}"
        write = (
            f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join('?' for _ in columns)})"
        )
        found = src.exec_driver_sql(read)
        chunks = iter(lambda: found.fetchmany(COPY_CHUNK), [])
    else:
        moments = [
            (c.name, bool(getattr(c.type, "timezone", False)))
            for c in columns
            if isinstance(c.type, DateTime) or isinstance(getattr(c.type, "impl", None), DateTime)
        ]
        streamed = src.execution_options(stream_results=True, yield_per=COPY_CHUNK)
        found = streamed.execute(select(table).order_by(*order))
        chunks = found.partitions()
    done = 0
    if progress is not None:
        progress(table.name, 0, rows)
    for part in chunks:
        if cancel is not None and cancel.is_set():
            found.close()
            raise StoreCopyCancelled("cancelled; nothing was written")
        if raw:
            dst.exec_driver_sql(write, [tuple(r) for r in part])
        else:
            values = [dict(r._mapping) for r in part]
            for name, aware in moments:
                for v in values:
                    v[name] = _moment(v[name], aware)
            dst.execute(insert(table), values)
        done += len(part)
        if progress is not None:
            progress(table.name, done, rows)
    return done


def _moment(value: Any, aware: bool) -> Any:
    """A stored moment as the target's column takes it. The store's moments are UTC: a
    naive one read from SQLite is UTC, and an aware one PostgreSQL gives back (in its
    session's zone) is made UTC, so that no column is shifted by a server's or a
    session's time zone on the way."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC) if aware else value
    value = value.astimezone(UTC)
    return value if aware else value.replace(tzinfo=None)


def _look_up_first(conn: Connection) -> dict[str, int]:
    """Web orders and customers waiting to go to the ERP at the moment copied may yet be
    sent from the source store after it: in the copy they are marked as after a lost
    answer (`uncertain`), so that a push from the copy (a restored backup, say) looks
    each up in the ERP first (an order by its marker, a customer by VAT number, tax code
    or e-mail) and binds what it finds instead of sending it a second time. A customer
    the ERP refused waits for the operator's correction as it did, and is left so."""
    from passweb_tui.engine.orders import states
    from passweb_tui.engine.orders.models import WebCustomer, WebOrder

    orders = WebOrder.__table__  # type: ignore[attr-defined]
    customers = WebCustomer.__table__  # type: ignore[attr-defined]
    marked_orders = conn.execute(
        update(orders)
        .where(orders.c.state.in_(states.WAITING), orders.c.erp_key.is_(None))
        .values(uncertain=True)
    ).rowcount
    marked_customers = conn.execute(
        update(customers)
        .where(customers.c.erp_code.is_(None), customers.c.last_error.is_(None))
        .values(uncertain=True)
    ).rowcount
    return {"orders": marked_orders, "customers": marked_customers}


def _advance_sequences(conn: Connection, tables: list[Table]) -> None:
    """PostgreSQL: the rows came with their ids, so each id sequence is moved past the
    highest one copied (the next row the store writes must not meet a copied id)."""
    for table in tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or keys[0].autoincrement is False:
            continue
        column = keys[0]
        try:
            python_type = column.type.python_type
        except NotImplementedError:
            continue
        if python_type is not int:
            continue
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence(:t, :c),"
                f" COALESCE((SELECT max({conn.dialect.identifier_preparer.quote(column.name)})"
                f" FROM {conn.dialect.identifier_preparer.quote(table.name)}), 0) + 1, false)"
            ),
            {"t": table.name, "c": column.name},
        )
