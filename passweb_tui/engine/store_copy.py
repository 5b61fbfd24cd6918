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
import json
import os
import re
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    String,
    Table,
    bindparam,
    create_engine,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from passweb_tui.engine.store import (
    _PG_MIGRATION_LOCK,
    _PG_SETTING,
    SQLITE_BUSY_TIMEOUT_MS,
    StoreError,
    StoreUrlError,
    _alembic_config,
    create_store_engine,
    current_revision,
    database_words,
    head_revision,
    known_revisions,
    present_tables,
    shown_url,
    sqlite_open_error,
    store_tables,
    unknown_schema,
    without_url_secrets,
)

#: rows read and written at a time: memory stays flat whatever the store's size
COPY_CHUNK = 5000

#: a killed copy's temporary files are removed once nobody has written to them for this
#: long (a process id alone does not tell: another machine or container may be copying)
ABANDONED_AFTER_S = 3600

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
    #: the rows each table of the target held when its transaction committed (the rows
    #: copied, as the migrations to this version's schema left them), checked again once
    #: the copy is one file
    held: dict[str, int] = field(default_factory=dict, repr=False)

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
        path = Path(os.path.abspath(os.path.expanduser(target)))  # "a/../b" is "b"
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
        plain = not (url.host or url.username or url.password or url.port or url.query)
        if database in ("", ":memory:") or database.startswith("file:") or not plain:
            raise StoreUrlError(
                f"{shown_url(url)}: a copy is written to a plain SQLite file"
                " (sqlite:///FILE, or the file name alone)"
            )
    return url


def _sqlite_path(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite":
        return None
    return Path(os.path.abspath(os.path.expanduser(url.database or "")))


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
    source_url: str,
    target: str,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> CopyResult:
    """Copy every row of the store at `source_url` into a new store at `target` (a URL
    or a file path). The source is read, never written (nor migrated): a backup made by
    an earlier version is copied as it is, and the copy brought to this version's schema.
    `progress(table, done, rows)` is called as rows go; `cancel` stops the copy, leaving
    the target as it was (StoreCopyCancelled). StoreUrlError: the source or the target
    cannot be the copy's (no store there, the target is the source, a file that exists,
    a database holding a store, a folder that cannot be written); StoreError: the copy
    failed, and the target was left as it was."""
    url = target_url(target)
    shown = shown_url(url)
    source = make_url(source_url)
    if _same_store(source, url):
        raise StoreUrlError(f"{shown} is the store being copied: give another file or database")
    result = CopyResult(source=shown_url(source), target=shown)
    started = time.monotonic()
    src_engine, revision = _open_source(source)
    try:
        path = _sqlite_path(url)
        if revision != head_revision() and _sqlite_path(source) is None:
            raise StoreUrlError(
                f"{result.source} is a store of an earlier passweb-tui (schema {revision}):"
                " open it once with this version (any command on it brings it to this"
                " version's schema, `status` say), then copy it"
            )
        if revision != head_revision() and path is None:
            raise StoreUrlError(
                f"{result.source} is a store of an earlier passweb-tui (schema {revision}):"
                " copy it to a SQLite file first, which brings the copy to this version's"
                " schema, then copy that file"
            )
        if path is not None:
            _copy_to_file(src_engine, revision, path, shown, result, progress, cancel)
        else:
            engine = create_store_engine(url.render_as_string(hide_password=False))
            try:
                _fill(src_engine, revision, engine, shown, result, progress, cancel)
            finally:
                engine.dispose()
    finally:
        src_engine.dispose()
    result.seconds = time.monotonic() - started
    return result


def _open_source(url: URL) -> tuple[Engine, str]:
    """An engine that reads the store at `url`, and its schema revision. A SQLite file
    is opened read-only."""
    shown = shown_url(url)
    path = _sqlite_path(url)
    if path is not None:
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise StoreUrlError(f"{shown}: {str(path)!r} {what}: there is no store to copy")
        # read-only whoever may write it: the file is left exactly as it is (a backup
        # restored is not changed, not even switched to WAL mode)
        engine = _read_only_sqlite(path, shown)
    else:
        engine = create_store_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn, conn.begin():
            revision = current_revision(conn)
    except DBAPIError as exc:
        engine.dispose()
        why = without_url_secrets(database_words(exc) or " ".join(str(exc).split()), url)
        if path is not None:
            raise sqlite_open_error(shown, str(path), why) from None
        kind = StoreUrlError if _PG_SETTING.search(why) else StoreError
        raise kind(f"{shown}: {why}") from None
    if revision is None:
        engine.dispose()
        raise StoreUrlError(f"{shown} holds no passweb-tui store: there is nothing to copy")
    if revision not in known_revisions():
        engine.dispose()
        raise type(unknown_schema(revision))(f"{shown}: {unknown_schema(revision)}")
    return engine, revision


def _read_only_sqlite(path: Path, shown: str) -> Engine:
    """A SQLite file read through a read-only connection, which sees a store being
    written as it was at one moment, as any reader does. A file in WAL mode on media
    that cannot be written cannot be opened so (SQLite needs its shared-memory file): it
    is then read as immutable, which is right only when no WAL or journal file beside it
    holds changes not yet in it; one that does is refused. Nothing else is read so: a
    store locked by another process fails the copy after the busy timeout."""
    uri = f"{path.as_uri()}?mode=ro"
    timeout = SQLITE_BUSY_TIMEOUT_MS / 1000
    try:
        probe = sqlite3.connect(uri, uri=True, timeout=timeout)
        try:
            probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            probe.close()
    except sqlite3.Error as exc:
        words = str(exc)
        if "locked" in words or "busy" in words:
            raise StoreError(
                f"{shown}: the store stayed locked by another process for"
                f" {timeout:.0f} s: try again once it is done"
            ) from None
        if os.access(path.parent, os.W_OK | os.X_OK):
            # not read-only media: what stops a reader here is the file itself
            raise sqlite_open_error(shown, str(path), words) from None
        for pending in ("-wal", "-journal"):
            there = Path(f"{path}{pending}")
            if there.exists() and there.stat().st_size > 0:
                raise StoreUrlError(
                    f"{shown}: {str(path)!r} cannot be read from where it is: its"
                    f" {pending} file holds changes that only a connection allowed to"
                    " write may settle: copy the files to a folder that can be written,"
                    " and copy from there"
                ) from None
        uri += "&immutable=1"
    engine = create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(
            uri, uri=True, check_same_thread=False, isolation_level=None, timeout=timeout
        ),
    )
    _PLAIN.add(engine)  # its transactions begun by hand (see _snapshot)
    return engine


def _copy_to_file(
    src_engine: Engine,
    revision: str,
    path: Path,
    shown: str,
    result: CopyResult,
    progress: Callable[[str, int, int], None] | None,
    cancel: threading.Event | None,
) -> None:
    """A new SQLite file: written under a temporary name beside `path`, checked, and
    renamed only once whole, as one file (its WAL folded in, in rollback-journal mode,
    so that it reads anywhere, read-only media included)."""
    if len(os.fsencode(path.name)) + len("-journal") > _NAME_MAX:
        raise StoreUrlError(
            f"{shown}: the file name is too long for a store (SQLite keeps files named"
            f" after it beside it): at most {_NAME_MAX - len('-journal')} bytes"
        )
    for suffix in ("", "-wal", "-shm", "-journal"):
        there = Path(f"{path}{suffix}")
        if there.exists() or there.is_symlink():
            raise StoreUrlError(
                f"{shown}: {str(there)!r} exists; a copy never writes over a file (nor"
                " beside one a store left): give a new name, or move that one aside first"
            )
    folder = path.parent
    made: list[Path] = []  # folders this copy made, taken back if it fails
    here = folder
    while not here.exists() and here != here.parent:
        made.insert(0, here)
        here = here.parent
    if here.exists() and not here.is_dir():
        raise StoreUrlError(f"{shown}: {str(here)!r} is not a folder")
    try:
        for f in made:
            f.mkdir(mode=0o700)
    except OSError as exc:
        _take_back(made)
        raise StoreUrlError(
            f"{shown}: the folder {str(folder)!r} cannot be made: {exc.strerror or exc}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreUrlError(f"{shown}: the folder {str(folder)!r} cannot be written by this user")
    _sweep_abandoned(path)
    temp = _temp_name(path, os.getpid())
    try:
        try:
            # made here first: a folder that takes no new files though its permission
            # bits allow it (a /proc, a read-only mount, as root) is the target's fault
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise StoreUrlError(
                f"{shown}: the folder {str(folder)!r} takes no new file"
                f" ({exc.strerror or exc}); nothing was written there"
            ) from None
        try:
            engine = create_store_engine(
                URL.create("sqlite", database=str(temp)).render_as_string()
            )
        except StoreError:
            raise
        except OSError as exc:  # a name too long, say
            raise StoreUrlError(f"{shown}: {exc.strerror or exc}") from None
        try:
            _fill(src_engine, revision, engine, shown, result, progress, cancel)
        finally:
            engine.dispose()
        _seal(temp, shown, result.held)
        _place(temp, path, shown)
        _sync_folder(folder)
    except BaseException:
        _remove_sqlite_files(temp)
        _take_back(made)
        raise


#: the longest file name most file systems take, in bytes
_NAME_MAX = 255


def _temp_name(path: Path, pid: int) -> Path:
    """Where a copy to `path` is written until whole: beside it, hidden, named after it
    (cut short where the name is long, so that SQLite's own files fit beside it too),
    with the process id and a random part (two containers may both run as process 1)."""
    return path.with_name(f".{path.name[:120]}.copy-{pid}-{secrets.token_hex(4)}.tmp")


def _seal(temp: Path, shown: str, tables: dict[str, int]) -> None:
    """The copy made one self-standing file, or a StoreError: its WAL folded into it (a
    checkpoint that must complete: a disk that fills now fails the copy rather than
    leaving a file cut short), rollback-journal mode, the file checked, then flushed to
    the disk."""
    try:
        # mode=rw: a file gone meanwhile (removed by someone) is an error, not a new,
        # empty database that every check below would pass
        conn = sqlite3.connect(f"{temp.as_uri()}?mode=rw", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"{shown}: the copy was taken away while it was made ({exc})") from None
    try:
        quote = '"{}"'.format
        for table, rows in tables.items():
            found = conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]
            if found != rows:
                raise StoreError(
                    f"{shown}: the copy holds {found} rows of {table} where {rows} were"
                    " written (its files were changed meanwhile); nothing was kept"
                )
        busy, frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy or frames != done:
            raise StoreError(
                f"{shown}: the copy could not be completed (its WAL was not folded in)"
            )
        mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
        if str(mode).lower() != "delete":
            raise StoreError(f"{shown}: the copy could not be completed (journal mode {mode})")
        checked = [r[0] for r in conn.execute("PRAGMA quick_check")]
        if checked != ["ok"]:
            raise StoreError(f"{shown}: the copy failed its check: {'; '.join(checked[:3])}")
    except sqlite3.Error as exc:
        raise StoreError(
            f"{shown}: the copy could not be completed: {exc}; nothing was written there"
        ) from None
    finally:
        conn.close()
    if Path(f"{temp}-wal").exists():
        raise StoreError(f"{shown}: the copy could not be completed (its WAL is still apart)")
    with open(temp, "rb+") as fh:
        os.fsync(fh.fileno())


def _place(temp: Path, path: Path, shown: str) -> None:
    """The finished copy given its name, only if nothing has that name by then: a hard
    link does that in one step (two copies racing to one name cannot both succeed);
    where the file system has no hard links, the name is checked and then replaced."""
    try:
        os.link(temp, path)
    except FileExistsError:
        raise StoreUrlError(
            f"{shown}: {str(path)!r} appeared while copying; left as it is"
        ) from None
    except OSError:
        if path.exists() or path.is_symlink():
            raise StoreUrlError(
                f"{shown}: {str(path)!r} appeared while copying; left as it is"
            ) from None
        os.replace(temp, path)
        return
    temp.unlink()


def _sync_folder(folder: Path) -> None:
    """The rename made durable too (where the system allows a folder to be flushed)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _take_back(made: list[Path]) -> None:
    for f in reversed(made):
        with contextlib.suppress(OSError):
            f.rmdir()


def _sweep_abandoned(path: Path) -> None:
    """Temporary files of copies to the same name whose process is gone (killed): they
    hold a store's data, so they are not left to pile up."""
    stem = re.escape(path.name[:120])
    pattern = re.compile(rf"^\.{stem}\.copy-(\d+)(-[0-9a-f]+)?\.tmp(-wal|-shm|-journal)?$")
    groups: dict[tuple[int, str], list[Path]] = {}
    with contextlib.suppress(OSError):
        for there in path.parent.iterdir():
            m = pattern.match(there.name)
            if m is not None:
                groups.setdefault((int(m[1]), m[2] or ""), []).append(there)
    now = time.time()
    for (pid, _), files in groups.items():
        if pid == os.getpid() or _alive(pid):
            continue
        try:  # a copy at work writes its files all along: one left alone an hour is not
            last = max(f.stat().st_mtime for f in files)
        except OSError:
            continue
        if now - last < ABANDONED_AFTER_S:
            continue
        for f in files:
            with contextlib.suppress(OSError):
                f.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's
    return True


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink()


def _copied_tables(revision: str, src: Connection) -> list[Table]:
    """The tables to copy, in an order that puts a table after those it refers to."""
    from passweb_tui.engine.models import metadata
    from passweb_tui.engine.service.slots import claims_t

    store_tables()  # every area's tables registered in the metadata
    tables = [t for t in metadata.sorted_tables if t.name not in NOT_COPIED]
    tables.append(claims_t)
    if revision == head_revision():
        return tables
    # a store of an earlier schema: its own tables, as it has them (read from it)
    from sqlalchemy import MetaData

    theirs = MetaData()
    theirs.reflect(src)
    known = [t.name for t in tables]
    found = [
        t for t in theirs.sorted_tables if t.name not in NOT_COPIED and t.name != "alembic_version"
    ]
    return sorted(found, key=lambda t: known.index(t.name) if t.name in known else len(known))


def _fill(
    src_engine: Engine,
    revision: str,
    engine: Engine,
    shown: str,
    result: CopyResult,
    progress: Callable[[str, int, int], None] | None,
    cancel: threading.Event | None,
) -> None:
    """The target's schema and every row, in one transaction of the target: the schema
    at the source's revision, the rows, then the migrations from there to this version's."""
    from alembic import command

    pg_target = engine.dialect.name == "postgresql"
    try:
        with engine.connect() as t0, _snapshot(src_engine) as src:
            tconn = t0.execution_options(pwt_immediate=True)
            with tconn.begin():
                if pg_target:
                    # as a migration does: a store opened there meanwhile waits for this
                    tconn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                else:
                    tconn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
                found = present_tables(tconn)
                if found or current_revision(tconn) is not None:
                    _clear_empty_store(tconn, found, shown)
                command.upgrade(_alembic_config(tconn), revision)
                with _reading(src_engine):
                    tables = _copied_tables(revision, src)
                    expected = {
                        t.name: src.execute(select(func.count()).select_from(t)).scalar_one()
                        for t in tables
                    }
                for table in tables:
                    result.tables[table.name] = _copy_table(
                        src_engine, src, tconn, table, expected[table.name], progress, cancel
                    )
                    if result.tables[table.name] != expected[table.name]:
                        raise StoreError(
                            f"{table.name}: {result.tables[table.name]} rows read of"
                            f" {expected[table.name]}; nothing was written to {shown}"
                        )
                if revision != head_revision():
                    command.upgrade(_alembic_config(tconn), "head")
                quote = tconn.dialect.identifier_preparer.quote
                result.held = {
                    name: tconn.exec_driver_sql(f"SELECT count(*) FROM {quote(name)}").scalar_one()
                    for name in result.tables
                }
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
    except _SourceError as exc:
        raise StoreError(str(exc)) from None
    except DBAPIError as exc:
        why = without_url_secrets(database_words(exc) or " ".join(str(exc).split()), engine.url)
        if _PG_SETTING.search(why):
            raise StoreUrlError(f"{shown}: {why}; nothing was written there") from None
        raise StoreError(f"{shown}: {why}; nothing was written there") from None
    except SQLAlchemyError as exc:
        raise StoreError(f"{shown}: {exc}; nothing was written there") from None


#: the tables a store holds rows in from its making: its schema version, the lease's row
_MADE_WITH_ROWS = ("alembic_version", "sync_lease")


def _clear_empty_store(conn: Connection, found: set[str], shown: str) -> None:
    """A target that holds store tables: a store of this program that never held a
    record (made by a command that opened it, `status` or `runs` to look at the new
    database, say) is dropped in the copy's transaction, and the copy goes in; any
    other is refused, saying what it holds. Tables of another program named as the
    store's, or a schema version this program does not know, are never touched."""
    from sqlalchemy import inspect

    from passweb_tui.engine.service.slots import claims_t

    quote = conn.dialect.identifier_preparer.quote
    revision = current_revision(conn)
    names = ", ".join(sorted(found)[:3]) + (", ..." if len(found) > 3 else "")
    if revision is None:
        raise StoreUrlError(
            f"{shown} holds tables named as the store's ({names}), of another program or"
            " of a store that lost its schema version: a copy goes into a new, empty database"
        )
    if revision not in known_revisions():
        raise StoreUrlError(
            f"{shown} holds a schema version this passweb-tui does not know ({revision!r},"
            " another program's or a newer passweb-tui's): a copy goes into a new, empty"
            " database"
        )
    # the service's slot claims are a table of the store too (of its own metadata)
    tables = found | ({claims_t.name} & set(inspect(conn).get_table_names()))
    if conn.dialect.name == "postgresql":
        # nobody writes a row in between the counting and the dropping (a process that
        # has the store open already: the migration lock keeps off only new ones)
        locked = ", ".join(quote(n) for n in sorted(tables | {"alembic_version"}))
        conn.exec_driver_sql(f"LOCK TABLE {locked} IN ACCESS EXCLUSIVE MODE")
    held = {
        name: conn.exec_driver_sql(f"SELECT count(*) FROM {quote(name)}").scalar_one()
        for name in sorted(tables - set(_MADE_WITH_ROWS))
    }
    leased = 0
    if "sync_lease" in tables:
        leased = conn.exec_driver_sql(
            f"SELECT count(*) FROM {quote('sync_lease')} WHERE holder IS NOT NULL"
        ).scalar_one()
    filled = {name: n for name, n in held.items() if n}
    if filled or leased:
        what = ", ".join(f"{name} {n:,}" for name, n in list(filled.items())[:3])
        raise StoreUrlError(
            f"{shown} holds a store already ({what or 'a sync under way'}): a copy goes into"
            " a new, empty one"
        )
    # no CASCADE: an object of another program that depends on a store table (a view, a
    # foreign key) makes the drop fail, and the copy with it, rather than go with it
    for name in [*sorted(tables, key=_drop_order), "alembic_version"]:
        conn.exec_driver_sql(f"DROP TABLE {quote(name)}")


def _drop_order(name: str) -> int:
    """Tables that others refer to last: the store's own foreign keys do not stop the
    drop of an empty store."""
    from passweb_tui.engine import models

    order = [t.name for t in models.metadata.sorted_tables]
    return -order.index(name) if name in order else -len(order) - 1


#: read-only SQLite engines, whose driver connections are in autocommit mode: a snapshot
#: on them begins its transaction itself (the store's own engines do, see store.py)
_PLAIN: weakref.WeakSet[Engine] = weakref.WeakSet()


@contextlib.contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction on the source: every table as it was at one moment."""
    with engine.connect() as c0:
        conn = c0
        if engine.dialect.name == "postgresql":
            conn = c0.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            if engine in _PLAIN:
                conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                if engine in _PLAIN:
                    conn.exec_driver_sql("ROLLBACK")


class _SourceError(Exception):
    """A database error met reading the source, said as the source's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


@contextlib.contextmanager
def _reading(src_engine: Engine) -> Iterator[None]:
    """Database errors met here are the source's: said naming it, not the target."""
    try:
        yield
    except DBAPIError as exc:
        url = src_engine.url
        why = without_url_secrets(database_words(exc) or " ".join(str(exc).split()), url)
        raise _SourceError(f"{shown_url(url)}: {why}; nothing was written to the copy") from None


def _copy_table(
    src_engine: Engine,
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
        with _reading(src_engine):
            found = src.exec_driver_sql(read)
        chunks = iter(lambda: found.fetchmany(COPY_CHUNK), [])
    else:
        moments = [
            (c.name, bool(getattr(c.type, "timezone", False)))
            for c in columns
            if isinstance(c.type, DateTime) or isinstance(getattr(c.type, "impl", None), DateTime)
        ]
        # a JSON column's None is written as SQL NULL (as the store writes a value it
        # leaves out), not as the JSON text 'null'
        statement = insert(table).values(
            {
                c.name: bindparam(c.name, type_=JSON(none_as_null=True))
                for c in columns
                if isinstance(c.type, JSON)
            }
        )
        streamed = src.execution_options(stream_results=True, yield_per=COPY_CHUNK)
        with _reading(src_engine):
            found = streamed.execute(select(table).order_by(*order))
        chunks = found.partitions()
    done = 0
    if progress is not None:
        progress(table.name, 0, rows)
    while True:
        with _reading(src_engine):
            part = next(chunks, None)
        if not part:
            break
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
            if dst.dialect.name == "postgresql":
                try:
                    _copy_in(dst, table, columns, values)
                except Exception:
                    # PostgreSQL's refusal names no row: the one that holds what it
                    # cannot keep is found in the chunk, to be corrected in the source
                    where = _nul_at(table, values)
                    if where is None:
                        raise
                    raise StoreError(
                        f"{where} holds a NUL character (0x00), which PostgreSQL cannot"
                        " keep: correct it in the source store, then copy again; nothing"
                        " was written to the copy"
                    ) from None
            else:
                dst.execute(statement, values)
        done += len(part)
        if progress is not None:
            progress(table.name, done, rows)
    return done


def _nul_at(table: Table, values: list[dict[str, Any]]) -> str | None:
    """The first row of `values` with a NUL character in a text column, which
    PostgreSQL cannot keep (a JSON column's `json` type keeps one, escaped), as "table
    key (column)"; None when there is none."""
    texts = [c.name for c in table.columns if isinstance(c.type, String)]
    keys = [c.name for c in table.primary_key.columns]
    for row in values:
        for name in texts:
            value = row.get(name)
            if isinstance(value, str) and "\x00" in value:
                key = "/".join(str(row.get(k)) for k in keys) or "(a row)"
                return f"{table.name} {key} ({name})"
    return None


def _copy_in(
    dst: Connection, table: Table, columns: list[Any], values: list[dict[str, Any]]
) -> None:
    """PostgreSQL: a chunk of rows by COPY (several times faster than inserts, as the
    sync's own writes, see sync._copy_rows), each value made what the column's type
    would bind it as; None stays NULL, a JSON column's included."""
    raw = dst.connection.dbapi_connection
    assert raw is not None
    quote = dst.dialect.identifier_preparer.quote
    names = [c.name for c in columns]
    binders = [
        json.dumps if isinstance(c.type, JSON) else c.type.bind_processor(dst.dialect)
        for c in columns
    ]
    sql = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
    dbapi = dst.dialect.dbapi
    try:
        with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[attr-defined]
            for v in values:
                copy.write_row(
                    [
                        None if v[n] is None else (b(v[n]) if b is not None else v[n])
                        for n, b in zip(names, binders, strict=True)
                    ]
                )
    except Exception as exc:  # the driver's own, unwrapped: said as any database error
        if dbapi is not None and isinstance(exc, dbapi.Error):
            raise DBAPIError.instance(sql, None, exc, dbapi.Error) from None
        raise


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
    or e-mail) and binds what it finds instead of sending it a second time. A new
    customer is marked when a waiting order is its, whatever its last attempt's outcome
    (a push tries a customer that failed again); one no waiting order names is not
    sent by a push, and is left as it is."""
    from passweb_tui.engine.orders import states
    from passweb_tui.engine.orders.models import WebCustomer, WebOrder

    orders = WebOrder.__table__  # type: ignore[attr-defined]
    customers = WebCustomer.__table__  # type: ignore[attr-defined]
    marked_orders = conn.execute(
        update(orders)
        .where(orders.c.state.in_(states.WAITING), orders.c.erp_key.is_(None))
        .values(uncertain=True)
    ).rowcount
    waiting = select(orders.c.web_customer_id).where(
        orders.c.state.in_(states.WAITING), orders.c.web_customer_id.is_not(None)
    )
    marked_customers = conn.execute(
        update(customers)
        .where(customers.c.erp_code.is_(None), customers.c.id.in_(waiting))
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
