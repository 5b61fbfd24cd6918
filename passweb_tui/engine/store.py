"""Opening the site store: the SQLAlchemy engine, SQLite tuning, and migrations under a lock.

Nothing here runs at import time; `open_store(url)` builds the engine and brings the
schema to the latest Alembic revision (a no-op costing one small query when current).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
# an arbitrary, fixed number every process agrees on for the PostgreSQL advisory lock
_PG_MIGRATION_LOCK = zlib.crc32(b"passweb-tui migrations")


class StoreError(Exception):
    """The site store cannot be opened or brought up to date; the message says which and why."""

    #: whether the setup is what to correct (the store named, the version run), so that
    #: trying again as it is changes nothing: a command's exit 2, not 1
    to_correct = False


class StoreUrlError(StoreError):
    """The database URL itself is wrong (a setting to correct, not a store to repair)."""

    to_correct = True


class UnknownSchemaError(StoreError):
    """The store's schema is at a revision this version does not ship (a newer one's):
    that version is the one to use with it, or another store."""

    to_correct = True


#: the modules of the database drivers, whose errors are the database's own refusals
DB_DRIVER_MODULES = ("sqlite3", "psycopg", "psycopg2")


def database_words(exc: BaseException) -> str | None:
    """What the database said, on one line, of an error of its own (bare, or wrapped by
    SQLAlchemy); None for any other error. Its first words only: SQLAlchemy's text adds
    the statement and its values, and PostgreSQL's the LINE, DETAIL and CONTEXT lines,
    which can name a customer's details or quote a whole row."""
    from sqlalchemy.exc import DBAPIError

    cause: BaseException | None = exc.orig if isinstance(exc, DBAPIError) else exc
    if cause is None or type(cause).__module__.split(".")[0] not in DB_DRIVER_MODULES:
        return None
    primary = getattr(getattr(cause, "diag", None), "message_primary", None)
    first = (str(primary or cause).strip().splitlines() or [""])[0]
    return " ".join(first.split()) or type(cause).__name__


#: libpq's connection settings that hold a secret (those its PQconndefaults() marks for
#: hiding, "*"): a URL's query may set them like any other (`?password=...`)
SECRET_URL_KEYS = frozenset({"password", "sslpassword", "oauth_client_secret"})
#: a query setting: its separator, key and value (up to the next `&`, as SQLAlchemy reads it)
_QUERY_ITEM = re.compile(r"([?&])([^=&]*)=([^&]*)")
#: the user part's password, as SQLAlchemy reads it (the user name stops at `:` or `/`),
#: up to the authority's last `@`: a password holding an unescaped `@` (`pa@ss@host`)
#: is hidden whole, not up to its own `@`
_USERINFO = re.compile(r"(://[^:/]*:)([^@]*(?:@[^@/?]*)*)@")


def _mask_url(url: str) -> tuple[str, bool]:
    """The URL with every secret it holds replaced by `***`, and whether it held one."""
    found = False

    def query(m: re.Match[str]) -> str:
        nonlocal found
        if m[3] and unquote_plus(m[2]).strip().lower() in SECRET_URL_KEYS:
            found = True
            return f"{m[1]}{m[2]}=***"
        return m[0]

    def userinfo(m: re.Match[str]) -> str:
        nonlocal found
        if not m[2]:
            return m[0]
        found = True
        return f"{m[1]}***@"

    # the query first: a query password's own `@` must not pass for the user part's end
    shown = _USERINFO.sub(userinfo, _QUERY_ITEM.sub(query, url))
    return shown, found


def shown_url(url: str | URL) -> str:
    """A database URL as messages show it: never with a password, even when it does not
    parse. The user part's password is hidden up to the authority's last `@`
    (`scheme://user:pa@ss@host` -> `scheme://user:***@host`), and so are the query's
    secret settings (`?password=`, `?sslpassword=`, `?oauth_client_secret=`)."""
    if not isinstance(url, str):
        url = url.render_as_string(hide_password=False)
    return _mask_url(url)[0]


def url_has_secret(url: str) -> bool:
    """Whether a database URL holds a password (in its user part or its query), whether
    or not it parses: what `shown_url` hides."""
    return _mask_url(url)[1]


def without_url_secrets(text: str, url: str | URL) -> str:
    """A message about the store at `url` (a driver's, or SQLAlchemy's quoting the URL)
    without the URL's secrets: the URL in any spelling is shown as `shown_url` shows it,
    and a name SQLAlchemy read out of a part that holds a secret (the host it found in a
    password's unescaped `@`, say) is hidden too."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except Exception:
        parsed = None
    shown = shown_url(url)
    spellings = {url if isinstance(url, str) else ""}
    if parsed is not None:
        spellings |= {
            parsed.render_as_string(hide_password=False),
            parsed.render_as_string(hide_password=True),
        }
    for spelling in sorted(spellings - {""}, key=len, reverse=True):
        text = text.replace(spelling, shown)
    if parsed is None:
        # the parser's words quote the piece it could not read (a port, say), which may
        # be a piece of a password
        return re.sub(
            r"""(['"])(.+?)\1""",
            lambda m: m[0] if not _hidden(m[2], shown) else f"{m[1]}***{m[1]}",
            text,
        )
    for part in (parsed.host, parsed.database, parsed.username):
        if part and _hidden(part, shown):
            text = _word(part).sub("***", text)
    return text


def _word(part: str) -> re.Pattern[str]:
    """`part` as a whole word of a message (a name in quotes, say)."""
    return re.compile(rf"(?<![\w.-]){re.escape(part)}(?![\w-]|\.\w)")


def _hidden(part: str, shown: str) -> bool:
    """Whether a piece SQLAlchemy read out of a URL is nowhere in the URL as shown: it
    came out of a secret (`shown` hides them all)."""
    return not any(_word(part).search(v) for v in (shown, unquote_plus(shown)))


def _alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


_REVISION = re.compile(r"""^revision\s*=\s*["']([^"']+)["']\s*$""", re.M)
_DOWN = re.compile(r"""^down_revision\s*=\s*(?:None|["']([^"']+)["'])\s*$""", re.M)


def _plain_graph() -> tuple[frozenset[str], str] | None:
    """Every revision and the head, read straight from the revision files' `revision`
    and `down_revision` lines without loading Alembic (a third of a second at every
    start); None when a file does not spell them plainly (a merge, say), which Alembic
    then reads."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        if path.name.startswith("_"):
            continue
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(source), _DOWN.findall(source)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        if down[0]:
            downs.add(down[0])
    heads = revisions - downs
    if len(heads) != 1 or not downs <= revisions:
        return None
    return frozenset(revisions), heads.pop()


def _plain_head() -> str | None:
    graph = _plain_graph()
    return graph[1] if graph else None


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration shipped with this version of the package."""
    plain = _plain_head()
    if plain is not None:
        return plain
    return alembic_head()


@lru_cache(maxsize=1)
def known_revisions() -> frozenset[str]:
    """Every migration shipped with this version of the package."""
    graph = _plain_graph()
    if graph is not None:
        return graph[0]
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    return frozenset(r.revision for r in script.walk_revisions())


def alembic_head() -> str:
    """The head as Alembic reads the migrations."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(_alembic_config()).get_heads()
    if len(heads) != 1:
        raise StoreError(f"the migrations have {len(heads)} heads; expected one")
    return heads[0]


def unknown_schema(revision: str) -> UnknownSchemaError:
    """Why a store at a revision this version does not ship cannot be used."""
    return UnknownSchemaError(
        f"its schema is at revision {revision!r}, which this version of passweb-tui does not"
        f" know (its newest is {head_revision()!r}): the store was set up or upgraded by a"
        " newer passweb-tui; use that version with it, or another store"
    )


class Store:
    """An open site store: its engine, and short read and write transactions on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._closed = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The store's URL as messages show it (no password, see shown_url)."""
        return shown_url(self.engine.url)

    @contextlib.contextmanager
    def write(self, conn: Connection | None = None) -> Iterator[Connection]:
        """One short write transaction (BEGIN IMMEDIATE on SQLite, so it never fails mid-way
        for a stale snapshot); on an existing connection if given."""
        if conn is not None:
            # execution_options changes the connection in place: undo it afterwards
            conn.execution_options(pwt_immediate=True)
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.execution_options(pwt_immediate=False)
            return
        with self.engine.connect() as c0:
            c = c0.execution_options(pwt_immediate=True)
            with c.begin():
                yield c

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.engine.dispose()


def _wal(cur: Any) -> None:
    """Put the file in WAL mode. Switching a new file needs it alone for a moment, and
    SQLite answers "locked" at once, without waiting out the busy timeout, when another
    process opens it in the same instant (two processes starting on a new store): so
    the switch is tried again, within the busy timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # the driver's own transaction handling is switched off; we emit BEGIN ourselves
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _wal(cur)
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("pwt_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


#: libpq settings of a PostgreSQL store's connections, unless its URL sets them: how long
#: to wait for a connection, and TCP keepalives that notice a server gone quiet in about
#: a minute (a request then fails instead of waiting for ever)
PG_CONNECT = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


#: how long a PostgreSQL store's statements wait for a lock another session holds (a
#: transaction left open in psql, a process stopped in the middle of a write) before
#: failing with the database's own words, as SQLite's busy timeout does: a command, the
#: trigger endpoint or the service's stop would otherwise wait for as long as the lock
#: is held. A lock_timeout set in the URL, or for the database or its role, is kept.
PG_LOCK_TIMEOUT_MS = SQLITE_BUSY_TIMEOUT_MS


def _tune_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            # the server's default only: one the URL, the database, the role or the
            # server's configuration sets (0, no timeout, included) is theirs to keep
            cur.execute("SELECT source FROM pg_settings WHERE name = 'lock_timeout'")
            row = cur.fetchone()
            if row is not None and row[0] == "default":
                cur.execute(f"SET lock_timeout = {int(PG_LOCK_TIMEOUT_MS)}")
        finally:
            cur.close()
        dbapi_conn.commit()  # a session setting: it outlives this first transaction


def create_store_engine(url: str, make_folder: bool = False) -> Engine:
    """The engine for the store at `url`. A SQLite file's folder is made only with
    `make_folder` (the default store, in the data folder): a folder that a URL someone
    wrote names and that does not exist is much likelier a typo than a wish for a new,
    empty store, which would then take a first TOTAL."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        # the parser's words may quote a piece of the URL, a password's included
        raise StoreUrlError(
            f"not a database URL: {shown_url(url)!r} ({without_url_secrets(str(exc), url)})"
        ) from None
    if parsed.host and ("@" in parsed.host or _hidden(parsed.host, shown_url(url))):
        # a password's own `@`, unescaped, made a piece of it pass for the server's name
        # (which every connection error would then show): `pa@ss@host` is read as the
        # password `pa` for the server `ss@host`
        raise StoreUrlError(
            f"{shown_url(url)!r}: a password in it holds an '@', which a URL must write as"
            " %40 (as it stands, the part after it would be taken for the server's name)"
        )
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in str(parsed):
            # each connection would get an empty database of its own, gone at exit
            raise StoreUrlError(
                f"{shown_url(url)!r} is an in-memory SQLite database, which keeps nothing:"
                " name a file, e.g. sqlite:///store.db"
            )
        if not database.startswith("file:"):
            folder = Path(database).expanduser().parent
            if not make_folder and not folder.is_dir():
                what = "is not a folder" if folder.exists() else "does not exist"
                raise StoreUrlError(
                    f"{str(folder)!r}, the folder of the SQLite file in {shown_url(url)!r},"
                    f" {what}: correct the store's URL, or make the folder first"
                )
            from passweb_tui.config import make_private_folder

            try:
                # the data folder's (made only with make_folder): owner-only, like the store
                make_private_folder(folder)
            except OSError as exc:
                raise StoreError(
                    f"the store's folder {str(folder)!r} cannot be created: {exc.strerror or exc}"
                ) from None
        try:
            engine = create_engine(parsed, connect_args={"check_same_thread": False})
        except Exception as exc:  # a SQLite URL with a host or a user: its text quotes it
            reason = without_url_secrets(" ".join(str(exc).split()), parsed)
            raise StoreUrlError(f"cannot use database {shown_url(parsed)!r}: {reason}") from None
        if not database.startswith("file:"):
            if not _truthy(parsed.query.get("uri")):
                # the very path SQLite opens (not expanded, relative to the working folder)
                _create_owner_only(Path(database))
            _refuse_foreign(Path(database).expanduser(), shown_url(url))
        _tune_sqlite(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        # a server that does not answer (stopped, a link gone quiet) is given up after a
        # while instead of hanging a command (and its monitoring) for good; the URL's own
        # settings win
        connect_args = {k: v for k, v in PG_CONNECT.items() if k not in parsed.query}
    try:
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except Exception as exc:
        # an unknown kind of database, or one whose driver is not installed: the setting
        # names something this installation cannot use
        reason = " ".join(str(exc).split())
        if isinstance(exc, ModuleNotFoundError) and parsed.get_backend_name() == "postgresql":
            # the driver comes with the extra: pip install 'passweb-tui[postgres]'
            reason += "; PostgreSQL needs the postgres extra: pip install 'passweb-tui[postgres]'"
        raise StoreUrlError(
            f"cannot use database {shown_url(parsed)!r}: {without_url_secrets(reason, parsed)}"
        ) from None
    if parsed.get_backend_name() == "postgresql":
        _tune_postgresql(engine)
    return engine


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _create_owner_only(path: Path) -> None:
    """A SQLite file the store is about to be made in is made first, empty and
    owner-only (600): SQLite then keeps it so, and gives its -wal and -shm files the
    same permissions, where it would otherwise make all three readable by every local
    user (the umask's 644), customers' details included. A file already there (a store,
    or one that its user made) is left as it is; a file that cannot be made is left to
    SQLite to say why."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    os.close(fd)


def current_revision(conn: Connection) -> str | None:
    """The store's schema version; None where it has none (no alembic_version table).
    A role that may not read the table is the server's refusal, raised as it is: taken
    for "no version", it passed for a store whose version was lost."""
    try:
        with conn.begin_nested() if conn.in_transaction() else contextlib.nullcontext():
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except (OperationalError, ProgrammingError) as exc:
        if getattr(exc.orig, "sqlstate", None) == _INSUFFICIENT_PRIVILEGE:
            raise
        return None
    return row[0] if row else None


#: PostgreSQL's SQLSTATE for a right the role does not have
_INSUFFICIENT_PRIVILEGE = "42501"


def migrate(engine: Engine) -> bool:
    """Bring the schema to the head revision; returns whether anything was applied."""
    head = head_revision()
    with engine.connect() as conn, conn.begin():
        revision = current_revision(conn)
        if revision == head:
            return False
    if revision is not None and revision not in known_revisions():
        raise unknown_schema(revision)
    from alembic import command

    with engine.connect() as conn0:
        conn = conn0.execution_options(pwt_immediate=True)
        with conn.begin():
            # the lock: BEGIN IMMEDIATE holds SQLite's write lock; PostgreSQL takes an
            # advisory lock for the transaction. A second process waits here and then
            # finds the schema current.
            if conn.dialect.name == "postgresql":
                # another process's migration is work under way, however long it takes
                # on a large store: waited for, not given up after the lock timeout
                conn.execute(text("SET LOCAL lock_timeout = 0"))
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            revision = current_revision(conn)
            if revision == head:
                return False
            if revision is not None and revision not in known_revisions():
                raise unknown_schema(revision)
            if revision is None:
                found = present_tables(conn)
                if found:
                    shown = shown_url(engine.url)
                    raise StoreError(f"{shown}: {unversioned_schema(found)}")
            command.upgrade(_alembic_config(conn), "head")
    return True


def present_tables(conn: Connection) -> set[str]:
    """The store's tables that the database holds (in the connection's schema)."""
    from sqlalchemy import inspect

    return store_tables() & set(inspect(conn).get_table_names())


def unversioned_schema(found: set[str]) -> str:
    """What to say of a database holding store tables but no schema version: it cannot
    be told which migrations it had, so none is run over it."""
    names = ", ".join(sorted(found)[:3]) + (", ..." if len(found) > 3 else "")
    return (
        f"it holds the store's tables ({names}) but not their schema version (the"
        " alembic_version table is gone), so it cannot be migrated safely: restore it from"
        " a backup, or move it aside for a new store that the next sync fills again"
    )


def _refuse_foreign(path: Path, shown: str) -> None:
    """A SQLite file that is no store but holds another program's tables (a wrong
    --db, say) is left as it is, not made a store beside them: it is looked at read-only
    before the store's engine touches it (which would set WAL mode, a change of its
    own). A PostgreSQL database may well be shared with other programs' tables: it is
    not looked at."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except (OSError, sqlite3.Error):
        return  # what is wrong with it is said when the store opens it
    try:
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    except sqlite3.Error:
        return  # not a database, or not readable: said when the store opens it
    finally:
        conn.close()
    if tables and not tables & {"alembic_version", *store_tables()}:
        names = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreUrlError(
            f"{shown}: the database holds another program's tables ({names}) and no"
            " passweb-tui store; it was left as it is: correct the URL, or give a new file"
            " for a new store"
        )


def store_tables() -> set[str]:
    """The names of the store's tables (every area's)."""
    from passweb_tui.engine import models
    from passweb_tui.engine.orders import models as order_models  # noqa: F401 (registers)

    return set(models.metadata.tables)


def open_store(url: str, make_folder: bool = False) -> Store:
    """Open (and migrate) the site store at `url` (`make_folder`: see create_store_engine)."""
    engine = create_store_engine(url, make_folder)
    try:
        migrate(engine)
    except UnknownSchemaError as exc:
        engine.dispose()
        safe = shown_url(engine.url)
        raise UnknownSchemaError(f"{safe}: {exc}") from None
    except StoreError:
        engine.dispose()
        raise
    except DBAPIError as exc:
        engine.dispose()
        safe = shown_url(engine.url)
        why = without_url_secrets(database_words(exc) or " ".join(str(exc).split()), engine.url)
        if engine.dialect.name == "sqlite":
            raise sqlite_open_error(safe, engine.url.database or "", why) from None
        if _PG_SETTING.search(why):
            raise StoreUrlError(
                f"{safe}: {why} (a setting to correct: the URL, or the database or role on"
                " the server)"
            ) from None
        raise StoreError(f"{safe}: {why}") from None
    return Store(engine)


#: a PostgreSQL server's refusals that a store URL's setting causes, not the moment: a
#: database or role that is not there, a wrong password, a database the role may not use,
#: a schema it may not create its tables in or a table of the store it may not read
_PG_SETTING = re.compile(
    r'(database|role) "[^"]*" does not exist|password authentication failed'
    r"|permission denied for (database|schema|table)|no pg_hba\.conf entry"
)


def sqlite_open_error(shown: str, database: str, why: str) -> StoreError:
    """What SQLite's terse refusals mean for the file a store's URL names: another
    kind of file or a folder (the URL to correct), or a folder SQLite cannot write its
    journal in (read-only: a store is written even to be read, in WAL mode)."""
    path = Path(database).expanduser()
    if "file is not a database" in why:
        return StoreUrlError(
            f"{shown}: {str(path)!r} is not a SQLite database (another kind of file, or a"
            " store damaged from its first page): correct the URL, or restore the store"
            " from a backup"
        )
    if "unable to open database file" in why:
        if path.is_dir():
            return StoreUrlError(f"{shown}: {str(path)!r} is a folder, not a database file")
        folder = path.parent
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            return StoreError(
                f"{shown}: the store's folder {str(folder)!r} cannot be written (read-only"
                " or not yours): SQLite keeps its journal beside the file, even to read it"
            )
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            return StoreError(f"{shown}: {str(path)!r} cannot be read and written by this user")
    if "readonly database" in why or "read-only" in why:
        folder = path.parent
        if path.is_file() and os.access(path, os.W_OK) and not os.access(folder, os.W_OK):
            return StoreError(
                f"{shown}: the store's folder {str(folder)!r} cannot be written (read-only"
                " or not yours): SQLite keeps its journal beside the file"
            )
        return StoreError(f"{shown}: the store cannot be written: {why}")
    return StoreError(f"{shown}: {why}")
