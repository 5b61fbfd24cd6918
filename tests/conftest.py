"""Shared fixtures: an isolated home, the simulator on a real socket, site stores.

The simulator runs as a separate process (`passweb-tui erp-sim --port 0`), so
every test that talks to it crosses a real loopback socket.
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

READY = re.compile(r"serving (http\S+/webapi) user=(\S+) azienda=(\S+) anno=(\d+)")

# The suite runs at the clock of the shops the product is made for (Italy's: one or two
# hours east of UTC, with summer time), whatever the machine's, often UTC: a moment shown
# or compared in the wrong zone then fails a test instead of misleading an operator.
# PASSWEB_TUI_TEST_TZ picks another zone (POSIX rules need no zone files). Processes the
# tests start inherit it.
os.environ["TZ"] = os.environ.get("PASSWEB_TUI_TEST_TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
time.tzset()


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile the package once, before any worker starts: the suite starts the
    program in hundreds of processes, and where PYTHONDONTWRITEBYTECODE is set (as in
    many containers) each of them would otherwise compile every module it imports from
    source again (about a tenth of a second a process)."""
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller did it
        return
    import compileall

    import passweb_tui

    compileall.compile_dir(Path(passweb_tui.__file__).parent, quiet=1)


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Config, data and log folders of a fresh user; no settings leak in from outside."""
    home = tmp_path_factory.mktemp("home")
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    for var in list(os.environ):
        if var.startswith("PASSWEB_TUI_") and var not in (
            "PASSWEB_TUI_TEST_PG",
            "PASSWEB_TUI_TEST_TZ",
        ):
            monkeypatch.delenv(var)
    monkeypatch.setenv("NO_COLOR", "1")
    return home


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A command run in-process sets up the program's logging (its own handlers, no
    propagation to the root logger): undone after each test, so that what a later test
    captures does not depend on which tests ran before it in the same process."""
    logger = logging.getLogger("passweb_tui")
    level, propagate, handlers = logger.level, logger.propagate, list(logger.handlers)
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)
    logger.propagate = propagate


@dataclass
class SimProcess:
    """A simulator serving on loopback in its own process."""

    url: str  # .../webapi
    user: str
    password: str | None  # None: started without --password (the state file's, else demo)
    azienda: str
    anno: int
    process: subprocess.Popen[str]
    args: list[str] = field(default_factory=list)

    @property
    def root(self) -> str:
        return self.url[: -len("/webapi")]

    def admin(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """Call the /sim/ admin API."""
        response = httpx.request(
            method, f"{self.root}/sim/{path.lstrip('/')}", timeout=60, **kwargs
        )  # type: ignore[arg-type]
        response.raise_for_status()
        return response

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_sim(
    *extra: str, password: str | None = "secret-pw", timeout: float = 120.0
) -> SimProcess:
    """Start `passweb-tui erp-sim --port 0` and wait for its ready line; `password`
    None leaves out --password."""
    given = ["--password", password] if password is not None else []
    args = [sys.executable, "-m", "passweb_tui", "erp-sim", "--port", "0", *given, *extra]
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert process.stdout is not None
    seen: list[str] = []
    sel = selectors.DefaultSelector()
    sel.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.5):
            if process.poll() is not None:
                break
            continue
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = READY.search(line)
        if m:
            sel.close()
            # keep draining output so the simulator never blocks on a full pipe
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # type: ignore[union-attr]
            return SimProcess(
                m.group(1), m.group(2), password, m.group(3), int(m.group(4)), process, args
            )
    process.kill()
    raise RuntimeError("simulator did not start:\n" + "".join(seen[-30:]))


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll state that has no event to wait on (rows another process writes to the store)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    """A small simulator (500 articles, 100 customers, 20 orders) for one test."""
    p = start_sim("--articles", "500", "--customers", "100", "--orders", "20", "--seed", "7")
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimProcess]:
    """A simulator shared by the tests of one module; tests must not mutate it."""
    p = start_sim("--articles", "2000", "--customers", "300", "--orders", "30", "--seed", "3")
    try:
        yield p
    finally:
        p.stop()


def _pg_base() -> str | None:
    return os.environ.get("PASSWEB_TUI_TEST_PG") or None


STORES = ["sqlite", "postgres"]


class _Templates:
    """Stores already migrated, made once per test process and copied for each test: a
    test that needs a store gets one at the head revision without paying for the
    migrations again (tests of the migrations themselves take `empty_db_url`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sqlite: Path | None = None
        self._pg: str | None = None
        self._admin: Any = None

    def sqlite_file(self) -> Path:
        if self._sqlite is None:
            from passweb_tui.engine.store import open_store

            path = self.folder / "template.db"
            open_store(f"sqlite:///{path}").close()  # its last close folds the WAL back in
            self._sqlite = path
        return self._sqlite

    def admin(self, base: str) -> Any:
        if self._admin is None:
            from sqlalchemy import create_engine

            self._admin = create_engine(base, isolation_level="AUTOCOMMIT")
        return self._admin

    def pg_template(self, base: str) -> str:
        if self._pg is None:
            from sqlalchemy import text
            from sqlalchemy.engine import make_url

            from passweb_tui.engine.store import open_store

            name = f"pwt_tpl_{uuid.uuid4().hex[:12]}"
            with self.admin(base).connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            open_store(make_url(base).set(database=name).render_as_string(False)).close()
            self._pg = name
        return self._pg

    def close(self) -> None:
        if self._admin is None:
            return
        if self._pg is not None:
            from sqlalchemy import text

            with self._admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self._pg}"'))
        self._admin.dispose()


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Templates]:
    templates = _Templates(tmp_path_factory.mktemp("templates"))
    try:
        yield templates
    finally:
        templates.close()


def _store_url(kind: str, folder: Path, templates: _Templates, migrated: bool) -> Iterator[str]:
    if kind == "sqlite":
        path = folder / "store.db"
        if migrated:
            shutil.copyfile(templates.sqlite_file(), path)
        yield f"sqlite:///{path}"
        return
    base = _pg_base()
    if not base:
        pytest.skip("PostgreSQL tests need PASSWEB_TUI_TEST_PG (an SQLAlchemy URL of a server)")
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"pwt_{uuid.uuid4().hex[:12]}"
    admin = templates.admin(base)
    like = f' TEMPLATE "{templates.pg_template(base)}"' if migrated else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{like}'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


@pytest.fixture
def empty_pg_url(tmp_path: Path, _templates: _Templates) -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server (skipped without one), dropped
    afterwards: the server's own database named by PASSWEB_TUI_TEST_PG is left alone."""
    yield from _store_url("postgres", tmp_path, _templates, migrated=False)


@pytest.fixture(params=STORES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, _templates: _Templates) -> Iterator[str]:
    """A site store at the head revision with no data: SQLite in a temp folder, and
    PostgreSQL when available."""
    yield from _store_url(request.param, tmp_path, _templates, migrated=True)


@pytest.fixture(params=STORES)
def empty_db_url(
    request: pytest.FixtureRequest, tmp_path: Path, _templates: _Templates
) -> Iterator[str]:
    """An empty database, not yet migrated (a new SQLite file's place, or a new
    PostgreSQL database)."""
    yield from _store_url(request.param, tmp_path, _templates, migrated=False)
