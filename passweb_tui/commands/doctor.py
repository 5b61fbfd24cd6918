"""`passweb-tui doctor`: check config, store, ERP, TLS, lease, disk and log, one line each.

Each check prints `OK`, `WARN` or `FAIL` with what it found. Nothing is changed: the
store is neither created nor migrated. Exit status 0 unless a check FAILs: 2 when the
settings cannot be read (a configuration error, as for every command), else 1.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import stat
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from passweb_tui.commands import Context, ExitCode
from passweb_tui.config import ConfigError, Settings, config_path, file_secrets

OK, WARN, FAIL = "OK", "WARN", "FAIL"
#: below this much free space in the data folder a sync may not finish
DISK_FAIL_BYTES = 100 * 1024 * 1024
DISK_WARN_BYTES = 1024 * 1024 * 1024

Check = tuple[str, str, str]  # (status, what, detail)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check config, store, ERP, TLS, sync lock, mail server, disk space and log file",
        description="Run each check and print one line per check (OK, WARN or FAIL). "
        "Exit status 0 when nothing FAILs; 2 when the settings cannot be read (a"
        " configuration error), 1 when another check FAILs. Changes nothing.",
    )
    p.set_defaults(handler=run)


#: how long doctor waits for the mail server at each step
MAIL_CHECK_TIMEOUT_S = 10.0


def run(args: argparse.Namespace, ctx: Context) -> int:
    results: list[Check] = []

    def emit(check: Check) -> None:
        results.append(check)
        status, what, detail = check
        print(f"{status:<4} {what}: {detail}", flush=True)

    for line in check_config_file(config_path()):
        emit(line)
    try:
        settings = ctx.settings
    except ConfigError as exc:
        emit((FAIL, "settings", str(exc)))
        failed = sum(1 for r in results if r[0] == FAIL)
        print(f"doctor: {_count(failed, 'check')} failed; the others need the settings")
        return int(ExitCode.USAGE)
    emit((OK, "settings", f"site {settings.site!r}, site number {settings.site_no}"))
    if settings.keymap:
        emit(check_keymap(settings))
    for line in check_store(settings):
        emit(line)
    for line in check_private(settings):
        emit(line)
    for line in check_erp(ctx, settings):
        emit(line)
    for line in check_mail(settings):
        emit(line)
    trigger = check_trigger(settings)
    if trigger is not None:
        emit(trigger)
    emit(check_disk(settings.site_data_dir))
    emit(check_log_file())
    failed = sum(1 for r in results if r[0] == FAIL)
    warned = sum(1 for r in results if r[0] == WARN)
    warnings = _count(warned, "warning")
    if failed:
        print(f"doctor: {_count(failed, 'check')} failed, {warnings}")
        return int(ExitCode.FAILED)
    print(f"doctor: all checks passed ({warnings})" if warned else "doctor: all checks passed")
    return int(ExitCode.OK)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def check_config_file(path: Path) -> list[Check]:
    if not path.exists():
        if os.environ.get("PASSWEB_TUI_CONFIG"):
            return [(FAIL, "config file", f"none at {path}, which PASSWEB_TUI_CONFIG names")]
        return [(OK, "config file", f"none at {path} (defaults, environment and flags)")]
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [(FAIL, "config file", f"{path} cannot be read ({exc.strerror})")]
    try:
        doc = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return [(FAIL, "config file", f"{path} is not UTF-8 text")]
    except tomllib.TOMLDecodeError as exc:
        return [(FAIL, "config file", f"{path} is not valid TOML ({exc})")]
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        # whoever can write it chooses the ERP, the store, a password_command to run
        return [
            (
                WARN,
                "config file",
                f"{path} can be changed by others (mode {mode:o}); run chmod 600 on it",
            )
        ]
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        secrets = file_secrets(doc)
        if secrets:
            return [
                (
                    FAIL,
                    "config file",
                    f"{path} holds {secrets[0]} but is readable by others (mode {mode:o});"
                    " run chmod 600 on it",
                )
            ]
        return [
            (
                OK,
                "config file",
                f"{path} readable by others too (mode {mode:o}); it holds no secret",
            )
        ]
    return [(OK, "config file", f"{path} readable, owner-only (mode {mode:o})")]


def check_keymap(settings: Settings) -> Check:
    """[ui] keymap against the binding ids the terminal UI declares: an id it does not
    know moves no key (the UI says so only once it is started)."""
    import difflib

    from passweb_tui.app import PasswebApp

    known = PasswebApp.declared_keys()
    unknown = sorted(set(settings.keymap) - set(known))
    where = settings.where("keymap")
    no_keys = {
        key.strip()
        for keys in settings.keymap.values()
        for key in str(keys).split(",")
        if not _is_key(key.strip())
    }
    if no_keys and not unknown:
        return (
            WARN,
            "keymap",
            f"{where} binds what no terminal sends, so that binding has no key:"
            f" {', '.join(repr(k) for k in sorted(no_keys))} (keys are written as"
            " ctrl+s, f5, slash, a)",
        )
    if not unknown:
        return (OK, "keymap", f"{_count(len(settings.keymap), 'binding')} moved ({where})")
    near = dict.fromkeys(
        m for bad in unknown for m in difflib.get_close_matches(bad, sorted(known), n=1)
    )
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    return (
        WARN,
        "keymap",
        f"{where} names no binding of the terminal UI: {', '.join(unknown)}{hint}"
        " (the README lists the ids)",
    )


def _is_key(key: str) -> bool:
    """Whether `key` names a key as Textual reads them: a character or a key's name
    (slash, f5, escape), after modifiers (ctrl+, shift+, alt+...)."""
    from textual.keys import Keys, _character_to_key

    *modifiers, name = key.split("+") if key != "+" else ["+"]
    if not name or any(
        m not in ("ctrl", "shift", "alt", "meta", "super", "hyper") for m in modifiers
    ):
        return False
    if len(name) == 1:
        return name.isprintable()
    names = {k.value for k in Keys} | {"space"}
    printable = {_character_to_key(chr(c)) for c in range(0x21, 0x7F)}
    return name in names or name in printable or f"ctrl+{name}" in names


def check_store(settings: Settings) -> list[Check]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from passweb_tui.engine.lease import read_lease
    from passweb_tui.engine.store import (
        Store,
        StoreError,
        create_store_engine,
        current_revision,
        head_revision,
        known_revisions,
        present_tables,
        shown_url,
        unknown_schema,
        unversioned_schema,
        without_url_secrets,
    )

    url = settings.resolved_db_url
    try:
        make_url(url)
    except Exception as exc:  # a URL that does not parse: said without its password
        said = without_url_secrets(str(exc), url)
        return [(FAIL, "store", f"not a database URL: {shown_url(url)!r} ({said})")]
    # as written (a password misread as the server's name shows in SQLAlchemy's reading)
    shown = shown_url(url)
    if url.startswith("sqlite:///"):
        file = Path(url.removeprefix("sqlite:///"))
        if not file.exists() and settings.db_url and not file.expanduser().parent.is_dir():
            try:  # a store named by a setting, in a folder that is not there: its error
                create_store_engine(url).dispose()
            except StoreError as exc:
                return [(FAIL, "store", str(exc))]
        if not file.exists():
            blocked = _uncreatable(file.expanduser().parent)
            if blocked is not None:
                return [(FAIL, "store", f"{shown} cannot be created: {blocked}")]
            return [
                (WARN, "store", f"{shown} does not exist yet (created by the first sync)"),
                (OK, "sync lock", "free (no store yet)"),
            ]
    try:
        engine = create_store_engine(url)
    except (SQLAlchemyError, StoreError, ValueError) as exc:
        return [(FAIL, "store", f"{shown}: {exc.__class__.__name__}: {exc}")]
    store = Store(engine)
    try:
        try:
            with store.read() as conn:
                revision = current_revision(conn)
        except SQLAlchemyError as exc:
            reason = without_url_secrets(
                str(getattr(exc, "orig", None) or exc).splitlines()[0], url
            )
            return [(FAIL, "store", f"{shown} cannot be opened: {reason}")]
        head = head_revision()
        if revision is None:
            with store.read() as conn:
                found = present_tables(conn)
                refused = None if found else _create_refused(conn)
            if found:
                return [(FAIL, "store", f"{shown}: {unversioned_schema(found)}")]
            if refused is not None:
                return [(FAIL, "store", f"{shown}: {refused}")]
            return [
                (WARN, "store", f"{shown} opens but has no schema yet (set up by the first sync)"),
                (OK, "sync lock", "free (no schema yet)"),
            ]
        if revision is not None and revision not in known_revisions():
            return [(FAIL, "store", f"{shown}: {unknown_schema(revision)}")]
        trouble = _store_trouble(store, revision == head)
        if trouble is not None:
            return [trouble]
        if revision != head:
            lines = [
                (
                    WARN,
                    "store",
                    f"{shown} opens; schema {revision} is not current ({head}); "
                    "the next command migrates it",
                )
            ]
        else:
            lines = [(OK, "store", f"{shown} opens, schema current ({head})")]
        try:
            lines.append(check_lease(read_lease(store)))
        except SQLAlchemyError as exc:
            lines.append((FAIL, "sync lock", f"cannot be read: {exc.__class__.__name__}"))
        return lines
    finally:
        store.close()


def check_private(settings: Settings) -> list[Check]:
    """Whether others may read the site's data: its data folder (the store, when it is
    the default one, and the downloaded resources) and a SQLite store's files, which
    name customers and orders. Made owner-only by the program; one that others can read
    (made so by hand, or by an older version) is a warning with the chmod to fix it."""
    from sqlalchemy.engine import make_url

    lines: list[Check] = []
    folder = settings.site_data_dir
    if folder.is_dir():
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            detail = (
                f"{folder} can be read by others (mode {mode:o}); it holds the site's data"
                f" (customers, orders): run chmod 700 {shlex.quote(str(folder))}"
            )
            lines.append((WARN, "data folder", detail))
        else:
            lines.append((OK, "data folder", f"{folder} owner-only (mode {mode:o})"))
    try:
        parsed = make_url(settings.resolved_db_url)
    except Exception:
        return lines  # said by the store's check
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database.startswith("file:"):
        return lines
    file = Path(database).expanduser()
    if not file.is_file():
        return lines
    loose = [
        path
        for path in (file, file.with_name(file.name + "-wal"), file.with_name(file.name + "-shm"))
        if path.is_file() and stat.S_IMODE(path.stat().st_mode) & (stat.S_IRWXG | stat.S_IRWXO)
    ]
    if loose:
        mode = stat.S_IMODE(loose[0].stat().st_mode)
        names = " ".join(shlex.quote(str(path)) for path in loose)
        detail = (
            f"{loose[0]} can be read by others (mode {mode:o}); it holds customers' details:"
            f" run chmod 600 {names}"
        )
        lines.append((WARN, "store file", detail))
    else:
        mode = stat.S_IMODE(file.stat().st_mode)
        lines.append((OK, "store file", f"{file} owner-only (mode {mode:o})"))
    return lines


def _uncreatable(folder: Path) -> str | None:
    """Why a store could not be made in `folder` (made with its parents), or None."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{str(probe)!r} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"the folder {str(probe)!r} cannot be written by this user"
    return None


def _create_refused(conn: Any) -> str | None:
    """Why the first sync could not set up the schema of a database with none: on
    PostgreSQL, a role that may not create tables in its schema."""
    from sqlalchemy import text

    if conn.dialect.name != "postgresql":
        return None
    schema, user, allowed = conn.execute(
        text(
            "SELECT current_schema(), current_user,"
            " coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)"
        )
    ).one()
    if allowed:
        return None
    where = f"schema {schema}" if schema else "any schema of its search_path"
    return (
        f"the role {user} may not create tables in {where}, as the first sync must (a"
        " setting to correct on the server: GRANT CREATE ON SCHEMA, or another role)"
    )


def _store_trouble(store: Any, current: bool) -> Check | None:
    """A store that opens but that the commands could not use: a table gone, a store
    that cannot be written (a read-only file or folder, a read-only database or a
    standby server), a SQLite file damaged inside. None when it is fine."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from passweb_tui.engine.store import database_words, present_tables, store_tables

    shown = store.url
    try:
        with store.read() as conn:
            missing = store_tables() - present_tables(conn) if current else set()
            if missing:
                names = ", ".join(sorted(missing))
                return (
                    FAIL,
                    "store",
                    f"{shown}: table {names} is missing; restore the store from a backup",
                )
            if conn.dialect.name == "sqlite":
                found = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check(3)")]
                if found != ["ok"]:
                    said = "; ".join(" ".join(str(f).split()) for f in found)
                    return (
                        FAIL,
                        "store",
                        f"{shown} is damaged ({said}): restore it from a backup",
                    )
    except SQLAlchemyError as exc:
        said = database_words(exc) or exc.__class__.__name__
        return (FAIL, "store", f"{shown} cannot be read whole: {said}")
    # a write that is taken back: what every sync and import begins with
    engine = store.engine
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:  # another process writing: waited for briefly, not half a minute
                conn.exec_driver_sql("PRAGMA busy_timeout = 3000")
                conn.commit()
            trans = conn.begin()
            try:
                if not sqlite:
                    conn.execute(text("SET LOCAL lock_timeout = '3s'"))
                conn.execute(
                    text("INSERT INTO sync_state (name, value, updated_at) VALUES (:n, NULL, :at)"),
                    {"n": f"doctor write check {os.getpid()}", "at": datetime.now(UTC)},
                )
            finally:
                trans.rollback()
                if sqlite:
                    from passweb_tui.engine.store import SQLITE_BUSY_TIMEOUT_MS

                    conn.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                    conn.commit()
    except SQLAlchemyError as exc:
        said = database_words(exc) or exc.__class__.__name__
        if "locked" in said or "lock timeout" in said:
            return (WARN, "store", f"{shown}: busy, another process is writing it ({said})")
        return (FAIL, "store", f"{shown} cannot be written: {said}")
    return None


def check_lease(info: object) -> Check:
    if info is None:
        return (OK, "sync lock", "free")
    from passweb_tui.engine.lease import LeaseInfo

    assert isinstance(info, LeaseInfo)
    if info.expires_at < datetime.now(UTC):
        return (
            WARN,
            "sync lock",
            f"expired, left by {info.describe()}; the next TOTAL/CHANGED takes it over",
        )
    return (OK, "sync lock", f"held: {info.describe()}")


def check_erp(ctx: Context, settings: Settings) -> list[Check]:
    from passweb_tui.commands.check import check_config
    from passweb_tui.engine.erp.client import MexalClient
    from passweb_tui.engine.erp.errors import AuthError, ContextMissingError, ErpError

    try:
        config = ctx.erp_config()
    except ConfigError as exc:
        return [(FAIL, "ERP", f"not configured: {exc}")]
    config = check_config(config)
    lines = [tls_line(config.base_url, config.verify_tls, config.ca_file)]
    try:
        with MexalClient(config) as client:
            found = client.check()
    except (AuthError, ContextMissingError) as exc:
        lines.append((OK, "ERP reachable", config.base_url))
        lines.append((FAIL, "ERP login", str(exc)))
        return lines
    except ErpError as exc:
        text = str(exc)
        if any(w in text.lower() for w in ("certificate", "ssl", "tls")):
            # the TLS line says what was found, not what the settings ask for
            lines[0] = (FAIL, "TLS", f"{config.base_url}: {text}")
            return lines
        if lines[0][0] == OK and urlsplit(config.base_url).scheme == "https":
            lines[0] = (WARN, "TLS", "not checked: the ERP was not reached")
        lines.append((FAIL, "ERP reachable", f"{config.base_url}: {text}"))
        return lines
    lines.append((OK, "ERP reachable", f"{config.base_url}, version {found['version']}"))
    lines.append(
        (OK, "ERP login", f"user {config.user}, company {found['azienda']} year {found['anno']}")
    )
    return lines


def tls_line(url: str, verify: bool, ca_file: str | None) -> Check:
    parts = urlsplit(url)
    if parts.scheme == "https":
        if not verify:
            return (WARN, "TLS", "certificate verification is OFF (verify_tls = false)")
        where = f"CA file {ca_file}" if ca_file else "the system's trusted CAs"
        if ca_file and not os.access(ca_file, os.R_OK):
            return (FAIL, "TLS", f"CA file {ca_file} cannot be read")
        return (OK, "TLS", f"certificate verified against {where}")
    if parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return (OK, "TLS", "plain HTTP on this machine (loopback)")
    return (WARN, "TLS", f"plain HTTP to {parts.hostname}: the password crosses the network")


def check_trigger(settings: Settings) -> Check | None:
    """`serve`'s trigger endpoint, when the settings turn it on: `serve` refuses to start
    it without a token."""
    if not settings.trigger_enabled:
        return None
    where = f"{settings.trigger_host}:{settings.trigger_port}"
    if not settings.trigger_token:
        return (
            FAIL,
            "trigger",
            f"on ({settings.where('trigger_enabled')}) at {where}, but no token: serve refuses to start;"
            " set trigger_token in [service] (owner-only file) or PASSWEB_TUI_TRIGGER_TOKEN",
        )
    return (OK, "trigger", f"on at {where}, with a token")


def check_mail(settings: Settings) -> list[Check]:
    """The outcome e-mails' server, reached and logged in to as a send would, with no
    message sent; nothing to check when nobody is to be e-mailed."""
    from passweb_tui.engine.service.notify import MailNotSent, Notifier
    from passweb_tui.engine.service.service import cleartext_warning, mail_settings

    mail = mail_settings(settings)
    if mail is None:
        return [(OK, "mail", "no outcome e-mails (set notify and smtp_host in [service])")]
    lines: list[Check] = []
    warning = cleartext_warning(mail)
    if warning:
        lines.append((WARN, "mail TLS", warning))
    try:
        said = Notifier(mail, settings.site).check(timeout_s=MAIL_CHECK_TIMEOUT_S)
    except MailNotSent as exc:
        lines.append((FAIL, "mail server", str(exc)))
    else:
        lines.append((OK, "mail server", said))
    return lines


def check_disk(folder: Path, usage: Callable[[Path], object] = shutil.disk_usage) -> Check:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = usage(probe).free  # type: ignore[attr-defined]
    text = f"{free / 1024**3:.1f} GiB free for {folder}"
    if free < DISK_FAIL_BYTES:
        return (FAIL, "disk space", text)
    if free < DISK_WARN_BYTES:
        return (WARN, "disk space", text)
    return (OK, "disk space", text)


#: less room than this on the log's disk, and its lines are as good as lost
LOG_FAIL_BYTES = 1024 * 1024


def check_log_file(usage: Callable[[Path], object] = shutil.disk_usage) -> Check:
    from passweb_tui.logs import log_file, open_private

    path = log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(open_private(str(path)))  # made as the program makes it: owner only
    except OSError as exc:
        return (FAIL, "log file", f"{path} is not writable ({exc.strerror})")
    free = usage(path.parent).free  # type: ignore[attr-defined]
    if free < LOG_FAIL_BYTES:  # opened, but its lines would not go in
        return (FAIL, "log file", f"{path}: its disk is full ({free // 1024} KiB free)")
    return (OK, "log file", f"{path} writable")
