"""The site's data is the user's own: the data folder and the SQLite store the program
makes are owner-only whatever the umask (doctor warns of ones others can read), and a
database password is never shown, wherever in the store's URL it is written."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SimProcess
from hard_support import cli_env, cli_here

from passweb_tui.config import ConfigError, data_dir, file_secrets, load_settings
from passweb_tui.demo import start_demo_erp
from passweb_tui.engine.store import (
    StoreUrlError,
    create_store_engine,
    open_store,
    shown_url,
    url_has_secret,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask of a login (files 644, folders 755 unless the program says
    otherwise); the commands the test starts inherit it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`passweb-tui ARGS` as a user runs it: a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "passweb_tui", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env if env is not None else dict(os.environ),
    )


def doctor_lines(out: str) -> dict[str, str]:
    """doctor's `STATUS what: detail` lines by `what`, as `STATUS detail`."""
    found = {}
    for line in out.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("OK", "WARN", "FAIL"):
            what, _, detail = rest.strip().partition(": ")
            found[what] = f"{status} {detail}"
    return found


# --- A: what the program makes is owner-only ------------------------------------------


def test_a_sync_makes_the_data_folder_and_the_store_owner_only(
    sim: SimProcess, isolated_home: Path, umask_022: None
) -> None:
    """The reviewer's case: `sync total` on the default store, as a user whose umask
    is 022, made the data folder 755 and the store 644, readable by every local user."""
    done = run("sync", "total", env=cli_env(sim))
    assert done.returncode == 0, done.stderr
    folder = data_dir()
    share = isolated_home / "xdg_data_home"
    assert folder.parent == share
    # every folder the program made, down to the data folder, is the user's alone
    for made in (share, folder):
        assert mode(made) == 0o700, f"{made}: {mode(made):o}"
    assert mode(folder / "store.db") == 0o600
    # and doctor finds nothing to say about them
    checked = doctor_lines(cli_here("doctor", env=cli_env(sim)).stdout)
    assert checked["data folder"] == f"OK {folder} owner-only (mode 700)"
    assert checked["store file"] == f"OK {folder / 'store.db'} owner-only (mode 600)"


def test_a_sites_and_the_demos_data_folders_are_owner_only(
    isolated_home: Path, umask_022: None, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[sites.shop.sync]\nlease_seconds = 300\n")
    for args, folder in (
        (["--site", "shop", "runs"], data_dir() / "sites" / "shop"),
        (["--demo", "runs"], data_dir() / "demo"),
    ):
        done = run(*args, env=dict(os.environ, PASSWEB_TUI_CONFIG=str(config)))
        assert done.returncode == 0, done.stderr
        made = [folder, *[p for p in folder.parents if isolated_home in p.parents]]
        for path in made:
            assert mode(path) == 0o700, f"{args}: {path} is {mode(path):o}"
        assert mode(folder / "store.db") == 0o600


def test_the_demo_erps_folder_is_owner_only_when_it_comes_first(
    tmp_path: Path, umask_022: None
) -> None:
    """The UI's demo starts its ERP before it opens the store: the folder it makes then
    (the ERP's state names the demo's customers) is owner-only too."""
    folder = tmp_path / "data" / "demo"
    erp = start_demo_erp(folder, articles=20, customers=5)
    try:
        assert mode(folder) == 0o700 and mode(folder.parent) == 0o700
    finally:
        erp.stop()


def test_the_stores_wal_and_shm_files_are_owner_only_too(tmp_path: Path, umask_022: None) -> None:
    """SQLite gives its -wal and -shm files the permissions of the database file: the
    store made 600 before SQLite first opens it keeps all three from other users."""
    from sqlalchemy import text

    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    try:
        with store.write() as conn:
            conn.execute(
                text("INSERT INTO sync_state (name, value, updated_at) VALUES ('x', NULL, :at)"),
                {"at": "2024-01-01 00:00:00"},
            )
        with store.read() as conn:  # a reader holds the WAL open: both files are there
            conn.execute(text("SELECT count(*) FROM sync_state")).one()
            files = {p.name: mode(p) for p in tmp_path.iterdir()}
    finally:
        store.close()
    assert files == {"store.db": 0o600, "store.db-wal": 0o600, "store.db-shm": 0o600}


def test_a_store_or_folder_the_user_made_keeps_its_mode_and_doctor_warns(
    isolated_home: Path, umask_022: None
) -> None:
    """A folder or store that is there already may have been shared on purpose: it is
    left as it is; doctor warns that others can read it and says the chmod to run."""
    folder = data_dir()
    folder.mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)
    assert run("runs").returncode == 0
    store = folder / "store.db"
    assert mode(folder) == 0o755  # the user's folder: untouched
    assert mode(store) == 0o600  # the store it made in it: owner-only
    os.chmod(store, 0o644)
    assert cli_here("runs", env=dict(os.environ)).returncode == 0
    assert mode(store) == 0o644 and mode(folder) == 0o755

    done = cli_here("doctor", env=dict(os.environ))
    checked = doctor_lines(done.stdout)
    assert checked["data folder"] == (
        f"WARN {folder} can be read by others (mode 755); it holds the site's data"
        f" (customers, orders): run chmod 700 {folder}"
    )
    assert checked["store file"].startswith(f"WARN {store} can be read by others (mode 644)")
    assert checked["store file"].endswith(f"run chmod 600 {store}")
    assert checked["store"].startswith("OK")  # warnings: the commands work on
    assert done.stdout.rstrip().endswith(", 2 warnings")  # (the ERP is not set up here)
    os.chmod(folder, 0o700)
    os.chmod(store, 0o600)
    checked = doctor_lines(cli_here("doctor", env=dict(os.environ)).stdout)
    assert checked["data folder"].startswith("OK") and checked["store file"].startswith("OK")


def test_a_store_url_that_is_refused_still_makes_no_file(tmp_path: Path) -> None:
    """The store file is made, owner-only, only for a store SQLite is to open."""
    with pytest.raises(StoreUrlError):
        create_store_engine(f"sqlite://u:pw@host/{tmp_path / 'store.db'}")
    assert list(tmp_path.iterdir()) == []


# --- B: a database password is a secret wherever the URL holds it --------------------

SECRET = "QPASSWORD-Zx81"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:QPASSWORD-Zx81@h/db", "postgresql+psycopg://u:***@h/db"),
        (
            "postgresql+psycopg://u@h:5432/db?password=QPASSWORD-Zx81",
            "postgresql+psycopg://u@h:5432/db?password=***",
        ),
        (
            "postgresql+psycopg://u@h/db?sslmode=require&sslpassword=QPASSWORD-Zx81&connect_timeout=5",
            "postgresql+psycopg://u@h/db?sslmode=require&sslpassword=***&connect_timeout=5",
        ),
        (
            "postgresql+psycopg://u@h/db?oauth_client_secret=QPASSWORD-Zx81",
            "postgresql+psycopg://u@h/db?oauth_client_secret=***",
        ),
        (  # the key percent-encoded still names the password
            "postgresql+psycopg://u@h/db?pass%77ord=QPASSWORD-Zx81",
            "postgresql+psycopg://u@h/db?pass%77ord=***",
        ),
        (  # an unescaped @ in the password: hidden up to the authority's last @
            "postgresql+psycopg://u:QPASS@WORD-Zx81@127.0.0.1:5432/db",
            "postgresql+psycopg://u:***@127.0.0.1:5432/db",
        ),
        (
            "postgresql+psycopg://u@127.0.0.1:5432/db?password=QPASS@WORD-Zx81",
            "postgresql+psycopg://u@127.0.0.1:5432/db?password=***",
        ),
        (  # both at once, and a query value with an @ of its own that is no secret
            "postgresql+psycopg://u:QPASSWORD-Zx81@h/db?application_name=a@b&password=QPASSWORD-Zx81",
            "postgresql+psycopg://u:***@h/db?application_name=a@b&password=***",
        ),
        (  # does not parse (a port with a typo): still hidden
            "postgresql+psycopg://u:QPASS@WORD-Zx81@h:54x2/db",
            "postgresql+psycopg://u:***@h:54x2/db",
        ),
    ],
)
def test_shown_url_hides_every_password_the_url_holds(url: str, shown: str) -> None:
    assert shown_url(url) == shown
    assert url_has_secret(url)
    assert file_secrets({"store": {"db": url}}) == ["a database password"]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u@h/db",
        "postgresql+psycopg://u@h/db?sslmode=require&application_name=pass@word",
        "postgresql+psycopg://u@h/db?passfile=/home/u/.pgpass",
        "sqlite:////var/lib/a@b/store.db",
    ],
)
def test_a_url_without_a_password_is_shown_as_it_is(url: str) -> None:
    assert shown_url(url) == url and not url_has_secret(url)
    assert file_secrets({"store": {"db": url}}) == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://sync@db.example.it/passweb?password=QPASSWORD-Zx81",
        "postgresql+psycopg://sync@db.example.it/passweb?sslpassword=QPASSWORD-Zx81",
        "postgresql+psycopg://sync:QPASS@WORD-Zx81@db.example.it/passweb",
    ],
)
def test_a_password_in_the_urls_query_makes_a_readable_config_file_refused(
    tmp_path: Path, url: str
) -> None:
    """Exactly as `user:pw@`: a file others can read that holds it is refused."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\ndb = "{url}"\n')
    os.chmod(cfg, 0o644)
    with pytest.raises(ConfigError, match="holds a database password") as info:
        load_settings({}, env={}, path=cfg)
    assert "WORD-Zx81" not in str(info.value)
    os.chmod(cfg, 0o600)
    assert load_settings({}, env={}, path=cfg).db_url == url
    # doctor's line for the file says so as well
    os.chmod(cfg, 0o640)
    done = cli_here("doctor", env=dict(os.environ, PASSWEB_TUI_CONFIG=str(cfg)))
    assert done.returncode == 2
    assert doctor_lines(done.stdout)["config file"].startswith(
        f"FAIL {cfg} holds a database password but is readable by others"
    )
    assert "WORD-Zx81" not in done.stdout + done.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://pguser@127.0.0.1:{port}/x?password=QPASSWORD-Zx81",
        "postgresql+psycopg://pguser@127.0.0.1:{port}/x?sslmode=disable&sslpassword=QPASSWORD-Zx81",
        "postgresql+psycopg://pguser:QPASS@WORD-Zx81@127.0.0.1:{port}/x",
        "postgresql+psycopg://pguser@127.0.0.1:{port}/x?password=QPASS@WORD-Zx81",
    ],
)
def test_a_store_password_is_in_no_output_of_a_command_that_cannot_connect(url: str) -> None:
    """The reviewer's case: a PostgreSQL server that is not there (nothing listens on
    the port), the password in the URL's query or holding an unescaped @. Its words
    (a part of them taken for the server's name, `WORD-Zx81@127.0.0.1`) are nowhere.
    `doctor` and `sync --json` run as the user runs them; the others in this process."""
    pytest.importorskip("psycopg")
    db = url.format(port=free_port())
    env = dict(
        os.environ,
        PASSWEB_TUI_ERP_URL="http://127.0.0.1:9/webapi",
        PASSWEB_TUI_ERP_USER="u",
        PASSWEB_TUI_ERP_PASSWORD="erp-pw",
        PASSWEB_TUI_AZIENDA="A",
    )
    outputs = {}
    for command in (["doctor"], ["sync", "changed", "--json"], ["runs"], ["status"]):
        runner = run if command[0] in ("doctor", "sync") else cli_here
        done = runner("--db", db, *command, env=env)
        assert done.returncode != 0, command
        outputs[" ".join(command)] = done.stdout + done.stderr
        if "--json" in command:
            error = json.loads(done.stdout)["error"]
            assert "***" in error and "Zx81" not in error, error
    for command, text in outputs.items():
        assert "Zx81" not in text and "WORD" not in text, f"{command}: {text}"
        assert "***" in text, f"{command}: {text}"
    # doctor names the store, failing, with its password hidden
    store = doctor_lines(outputs["doctor"])["store"]
    assert store.startswith(f"FAIL {shown_url(db)}"), store
    if "@WORD" in db:  # said what is wrong: the @ to escape (a setting: exit 2)
        assert "%40" in outputs["runs"]


def test_a_postgresql_url_with_its_password_in_the_query_is_used_and_hidden(
    empty_pg_url: str, tmp_path: Path
) -> None:
    """On a real server: a `?password=` URL opens the store as any other, and the
    server's refusal (a database that is not there) is said without the password."""
    from sqlalchemy.engine import make_url

    base = make_url(empty_pg_url)
    if base.password:  # the server's own password goes in the query instead
        secret = base.password
        with_query = base.set(password=None).update_query_dict({"password": secret})
    else:  # a server that trusts the user takes any password: one to look for
        secret = SECRET
        with_query = base.update_query_dict({"password": secret})
    url = with_query.render_as_string(hide_password=False)
    assert secret in url and url_has_secret(url)
    done = run("--db", url, "status", "--json")
    assert done.returncode in (0, 4), done.stderr  # opened (4: no sync yet)
    done = cli_here("--db", url, "doctor", env=dict(os.environ))
    assert doctor_lines(done.stdout)["store"].split()[0] in ("OK", "WARN")
    assert secret not in done.stdout + done.stderr and "password=***" in done.stdout

    missing = with_query.set(database="passweb_tui_no_such_database")
    url = missing.render_as_string(hide_password=False)
    for command in (["runs"], ["doctor"], ["sync", "changed", "--json"]):
        done = cli_here("--db", url, *command, env=dict(os.environ))
        assert done.returncode != 0
        text = done.stdout + done.stderr
        assert "passweb_tui_no_such_database" in text and "password=***" in text, text
        assert secret not in text
