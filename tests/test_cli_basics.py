"""The command line's promises: help, one-line errors and the exit codes of CONTRACTS.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passweb_tui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for word in ("erp-sim", "check", "--demo", "--db", "--erp-url", "--site-no"):
        assert word in result.stdout


def test_building_the_command_line_loads_neither_the_engine_nor_the_simulator() -> None:
    # every command (the simulator's own start included) parses its arguments first:
    # that must not pay for the store's and the ERP client's libraries
    probe = (
        "import sys; from passweb_tui.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('sqlalchemy', 'sqlmodel', 'httpx', 'textual', 'uvicorn')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_fields_help_names_every_entity_with_fields() -> None:
    from passweb_tui.commands.fields import ENTITY_NAMES
    from passweb_tui.engine.records import MAIN_ENTITIES

    assert ENTITY_NAMES == MAIN_ENTITIES
    assert ", ".join(MAIN_ENTITIES) in " ".join(run_cli("fields", "--help").stdout.split())


def test_fields_without_arguments_names_only_what_is_missing() -> None:
    done = run_cli("fields")
    assert done.returncode == 2
    assert "the following arguments are required: action (" in done.stderr, done.stderr
    assert "FIELD" not in done.stderr.splitlines()[-1]


def test_missing_settings_exit_2_with_one_line() -> None:
    result = run_cli("check")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "missing setting" in lines[0] and "ERP URL" in lines[0]
    assert "(no config file at " in lines[0]  # where the file was looked for


def test_broken_config_file_exit_2_names_the_file(isolated_home: Path) -> None:
    cfg = isolated_home / "broken.toml"
    cfg.write_text("[erp]\nurl = \n", encoding="utf-8")
    result = run_cli("check", env={"PASSWEB_TUI_CONFIG": str(cfg)})
    assert result.returncode == 2
    assert "broken.toml" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_out_of_range_setting_exit_2_names_where_it_was_given(isolated_home: Path) -> None:
    cfg = isolated_home / "shop.toml"
    cfg.write_text('[sync]\ncategory_mode = "terziaria"\n', encoding="utf-8")
    result = run_cli("check", env={"PASSWEB_TUI_CONFIG": str(cfg)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{cfg}:2: [sync] category_mode: must be primaria or secondaria" in lines[0]
    result = run_cli("check", env={"PASSWEB_TUI_SITE_NO": "12"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "environment PASSWEB_TUI_SITE_NO: site number must be 1-9, got 12" in lines[0]


def test_bad_flag_is_a_usage_error() -> None:
    result = run_cli("--anno", "soon", "check")
    assert result.returncode == 2
    assert "--anno" in result.stderr


def test_a_bad_command_line_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """As every error: one line starting "passweb-tui: " (a command's own parser's too),
    exit 2, pointing to the help (no usage block above it)."""
    from passweb_tui.cli import main

    for args, said in (
        (["--bogus", "check"], "passweb-tui: unrecognized arguments: --bogus"),
        (["sync", "bogus"], "passweb-tui: sync: argument kind: invalid choice: 'bogus'"),
        (["orders", "ack", "abc"], "passweb-tui: orders ack: argument UPDATE_ID: invalid int"),
        (["sync"], "passweb-tui: sync: the following arguments are required: kind"),
    ):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2, args
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith(said), (args, err)
        assert "--help" in err


def test_the_demos_first_sync_prints_only_its_report(isolated_home: Path) -> None:
    """The demo's first sync is short: it ends while its row builder's worker is still
    starting, and nothing of that worker (which then finds its queues gone) may reach
    the terminal."""
    result = run_cli("--demo", "sync", "changed")
    assert result.returncode == 0, result.stderr
    assert "runs as a TOTAL" in result.stdout
    assert result.stderr == ""


def test_a_demo_erp_state_file_that_cannot_be_read_says_how_to_start_afresh(
    isolated_home: Path,
) -> None:
    state = isolated_home / "xdg_data_home" / "passweb-tui" / "demo" / "erp-state.json"
    state.parent.mkdir(parents=True)
    state.write_text("garbage")
    result = run_cli("--demo", "check")
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "unexpected" not in line and "is not valid JSON" in line, line
    assert f"remove {str(state)!r} to start it afresh" in line, line
    assert state.read_text() == "garbage"  # left for the operator to look at


def test_demo_processes_on_one_folder_share_one_demo_erp(tmp_path: Path) -> None:
    """A second --demo process (the CLI beside the UI, a second terminal) uses the demo
    ERP the first one serves: they agree on what was pushed to it. Once it is gone, the
    next one starts its own."""

    from passweb_tui.demo import RUNNING, start_demo_erp

    probe = (
        "import sys; from pathlib import Path; from passweb_tui.demo import start_demo_erp;"
        "e = start_demo_erp(Path(sys.argv[1]), articles=50, customers=10);"
        "print(e.url, e.handle is None); e.stop()"
    )
    first = start_demo_erp(tmp_path, articles=50, customers=10)
    try:
        out = subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.stdout.split() == [first.url, "True"], out.stderr
    finally:
        first.stop()
    assert not (tmp_path / RUNNING).exists()
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert out.stdout.split()[1:] == ["False"], out.stderr  # its own demo ERP now


def test_demo_erp_sim_serves_the_demo_erp_the_other_demo_commands_use(
    isolated_home: Path,
) -> None:
    """`--demo erp-sim` serves the demo ERP itself (its state file, its user and company),
    which the other --demo commands then use; a second one is refused, naming the first;
    the ERP flags of the other commands are refused with erp-sim, not ignored."""
    import json as json_module
    import signal
    import time

    import httpx

    from passweb_tui.demo import RUNNING

    wrong = run_cli("--azienda", "X", "erp-sim", "--port", "0")
    assert wrong.returncode == 2 and "erp-sim --user U --azienda A" in wrong.stderr
    assert run_cli("--demo", "erp-sim", "--state", "x.json").returncode == 2
    server = subprocess.Popen(
        [sys.executable, "-m", "passweb_tui", "--demo", "erp-sim", "--port", "0",
         "--articles", "40", "--customers", "10", "--orders", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert ready.startswith("serving http://127.0.0.1:") and "azienda=DEM" in ready, ready
        url = ready.split()[1]
        folder = next((isolated_home / "xdg_data_home").rglob(RUNNING)).parent
        assert json_module.loads((folder / RUNNING).read_text())["url"] == url
        again = run_cli("--demo", "erp-sim", "--port", "0")
        assert again.returncode == 3 and f"served already, at {url}" in again.stderr
        synced = run_cli("--demo", "sync", "partial", "--entity", "articles", "--json")
        assert json_module.loads(synced.stdout)["entities"]["articles"]["fetched"] == 40
        stats = httpx.get(url.replace("/webapi", "/sim/stats")).json()
        assert stats["articoli"] == 40  # the one this process serves
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    deadline = time.monotonic() + 5
    while (folder / RUNNING).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (folder / RUNNING).exists()  # taken back at its end
    assert (folder / "erp-state.json").exists()


def test_a_store_of_a_newer_version_is_named_and_left_alone(tmp_path: Path) -> None:
    """A store whose schema a newer passweb-tui set up: every command says so in one line
    naming the store (exit 2: the version run or the store named is to correct, trying
    again changes nothing) and changes nothing; doctor says the same, not that the
    next command migrates it."""
    import sqlite3

    db = tmp_path / "store.db"
    assert run_cli("--db", f"sqlite:///{db}", "runs").returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'w999_future'")
    before = db.read_bytes()
    result = run_cli("--db", f"sqlite:///{db}", "runs")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "unexpected" not in line, line
    assert str(db) in line and "'w999_future'" in line and "newer passweb-tui" in line
    # the same for the commands that open the store their own way
    for command in (["orders", "list"], ["store", "copy", f"sqlite:///{tmp_path / 'copy.db'}"]):
        other = run_cli("--db", f"sqlite:///{db}", *command)
        assert other.returncode == 2 and "newer passweb-tui" in other.stderr, other.stderr
    assert not (tmp_path / "copy.db").exists()
    doctor = run_cli("--db", f"sqlite:///{db}", "doctor")
    assert doctor.returncode == 1
    store_line = next(x for x in doctor.stdout.splitlines() if " store: " in x)
    assert store_line.startswith("FAIL") and "newer passweb-tui" in store_line
    assert "migrates" not in doctor.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            "w999_future",
        )
    assert db.read_bytes() == before or os.path.exists(f"{db}-wal")


def test_a_write_the_database_refuses_is_one_line_without_the_statement(tmp_path: Path) -> None:
    """The database refusing a write (a read-only file, a full disk, a lock held too long;
    here a trigger that fails stands for it): one line naming the store, without the SQL statement
    and the customer details it was about to write."""
    import sqlite3

    sys.path.insert(0, str(Path(__file__).parent))
    from test_orders_helpers import article_rows, jsonl, new_customer, order_line

    db = tmp_path / "store.db"
    assert run_cli("--db", f"sqlite:///{db}", "runs").returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON web_customer"
            " BEGIN INSERT INTO disk_is_full VALUES (1); END"  # fails as the disk would
        )
    customer = new_customer(7)
    orders = tmp_path / "orders.jsonl"
    orders.write_text(jsonl(order_line("W1", customer=customer, rows=article_rows(1))))
    result = run_cli("--db", f"sqlite:///{db}", "orders", "import", str(orders))
    assert result.returncode == 1
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1, result.stderr
    assert line.startswith(f"passweb-tui: site store sqlite:///{db}: ")
    assert "no such table: main.disk_is_full" in line and "unexpected" not in line
    assert "SQL" not in line and "INSERT" not in line
    for value in customer.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in line


def test_numbers_beyond_what_the_store_holds_are_no_crash(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --limit past 64 bits means "all"; an update id past them is no update. An id
    past PostgreSQL's integers (2**31) made the database refuse the query ("integer out
    of range", exit 1): `orders ack` then acknowledged none of the others given."""
    from passweb_tui.cli import main

    db = db_url
    for big in ("2147483648", "9223372036854775807"):
        assert main(["--db", db, "orders", "ack", big]) == 2
        assert capsys.readouterr().err.strip() == f"passweb-tui: no order update {big}"
        assert main(["--db", db, "changes", "--run", big]) == 2
        assert capsys.readouterr().err.strip() == f"passweb-tui: no run {big} in the store"
    huge = "99999999999999999999"
    for args in (("runs", "--limit", huge), ("changes", "--limit", huge),
                 ("orders", "list", "--limit", huge)):  # fmt: skip
        assert main(["--db", db, *args]) == 0, args
        assert capsys.readouterr().err == "", args
    assert main(["--db", db, "orders", "ack", huge]) == 2
    assert capsys.readouterr().err.strip() == f"passweb-tui: no order update {huge}"
    assert main(["--db", db, "orders", "list", "--limit", "-1"]) == 2
    assert "--limit must be 0 or more" in capsys.readouterr().err


def test_a_missing_config_file_the_environment_names_stops_every_command(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "confg.toml"
    env = {"PASSWEB_TUI_CONFIG": str(missing)}
    result = run_cli("--db", f"sqlite:///{tmp_path / 'store.db'}", "runs", env=env)
    assert result.returncode == 2  # a configuration error: for doctor too, below
    assert f"PASSWEB_TUI_CONFIG names {missing}, which does not exist" in result.stderr
    assert not (tmp_path / "store.db").exists()  # no store made on defaults
    doctor = run_cli("--db", f"sqlite:///{tmp_path / 'store.db'}", "doctor", env=env)
    assert doctor.returncode == 2 and f"FAIL config file: none at {missing}" in doctor.stdout


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_postgresql_refusal_is_told_without_its_detail_lines(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL adds DETAIL lines naming the values it refused (a key and its value, a
    whole row): only its primary message is told."""
    import sqlalchemy as sa

    from passweb_tui.cli import main

    sys.path.insert(0, str(Path(__file__).parent))
    from test_orders_helpers import article_rows, jsonl, new_customer, order_line

    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " RAISE EXCEPTION 'could not extend file: No space left on device'"
                " USING DETAIL = 'Failing row contains (' || NEW.email || ').'; END $$"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TRIGGER refuse BEFORE INSERT ON web_customer"
                " FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )
    engine.dispose()
    customer = new_customer(7)
    orders = tmp_path / "orders.jsonl"
    orders.write_text(jsonl(order_line("W1", customer=customer, rows=article_rows(1))))
    assert main(["--db", db_url, "orders", "import", str(orders)]) == 1
    line = capsys.readouterr().err.strip()
    assert len(line.splitlines()) == 1, line
    assert line.endswith(
        "the database refused the work: could not extend file: No space left on device"
    )
    assert customer["email"] not in line and "DETAIL" not in line


def test_the_progress_line_groups_its_digits_and_shows_a_bar_once_the_total_is_known() -> None:
    import io

    from passweb_tui.commands.sync import ProgressBar
    from passweb_tui.commands.table import LiveLine
    from passweb_tui.engine.sync import ProgressEvent

    out = io.StringIO()
    line = LiveLine(out)
    assert not line.live  # not a terminal: nothing is drawn
    line.live = True
    bar = ProgressBar(line)
    # a first TOTAL does not know how many records there are: the count and the rate
    bar(ProgressEvent(1, "total", "articles", "articles", 164_000, None, 32_318.4, None, None))
    assert out.getvalue().endswith("TOTAL articles: 164,000 32,318/s")
    bar.last = 0.0  # the line is redrawn at most ten times a second
    bar(ProgressEvent(2, "total", "articles", "articles", 50_000, 200_000, 25_000.0, 6.0, None))
    assert out.getvalue().endswith(
        "TOTAL articles: [######..................] 50,000/200,000 25,000/s ETA 6s"
    )


def test_the_progress_line_fits_the_terminal_and_is_not_drawn_where_it_cannot_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line wider than the terminal wraps, and each redraw then went back to its last
    row only, leaving a trail of the rows above it on a 60-column terminal; TERM=dumb got
    the cursor escapes all the same; an ERP's word in the line reached the terminal raw."""
    import os
    import pty
    import select

    from passweb_tui.commands.sync import ProgressBar
    from passweb_tui.commands.table import LiveLine
    from passweb_tui.engine.sync import ProgressEvent

    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            monkeypatch.setenv("TERM", "dumb")
            assert not LiveLine(tty).live
            monkeypatch.setenv("TERM", "xterm")
            monkeypatch.setenv("COLUMNS", "40")
            line = LiveLine(tty)
            assert line.live
            bar = ProgressBar(line)
            bar(ProgressEvent(2, "total", "articles", "articles", 50, 200, 25_000.0, 6.0, None))
            bar.last = 0.0
            bar(ProgressEvent(2, "total", None, None, 0, None, None, None, "ERP \x1b[2J busy"))
            tty.flush()
            drawn = ""
            while drawn.count("\x1b[K") < 2 and select.select([leader], [], [], 5)[0]:
                drawn += os.read(leader, 4096).decode()  # a pty may hand it over in parts
        redraws = drawn.split("\r\x1b[K")[1:]
        assert len(redraws) == 2, drawn
        assert all(len(r) <= 39 for r in redraws), redraws
        assert redraws[0] == "TOTAL articles: [######...............…", redraws
        assert redraws[1] == "TOTAL ERP \u241b[2J busy", redraws
    finally:
        os.close(leader)
        os.close(follower)


def test_a_stream_that_is_not_unicode_gets_every_line_plainly_spelled(tmp_path: Path) -> None:
    """Under PYTHONIOENCODING=ascii (or a Latin-1 terminal) an ERP's accented word, or a
    mark of the command's own, ended the command halfway through its output with
    "unexpected error: UnicodeEncodeError"."""
    import sqlite3

    db = tmp_path / "store.db"
    assert run_cli("--db", f"sqlite:///{db}", "runs").returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO change_log (run_id, at, entity, key, change, field, old, new)"
            " VALUES (1, '2026-01-01 00:00:00', 'articles', 'ART1', 'updated', 'descrizione',"
            " 'Sedia qualità rossa', 'Sedia qualità blu')"
        )
    plain = {"PYTHONIOENCODING": "ascii", "LANG": "C", "LC_ALL": "C"}
    listed = run_cli("--db", f"sqlite:///{db}", "changes", env=plain)
    assert listed.returncode == 0, listed.stderr
    assert "Sedia qualit? rossa -> Sedia qualit? blu" in listed.stdout, listed.stdout
    missing = run_cli("--db", f"sqlite:///{db}", "show", "articles", "CAFÉ", env=plain)
    assert missing.returncode == 2, missing.stderr
    assert "holds no article 'CAF?'" in missing.stderr, missing.stderr
    # --json is ASCII already: the value comes back exact
    whole = run_cli("--db", f"sqlite:///{db}", "changes", "--json", env=plain)
    assert json.loads(whole.stdout)[0]["new"] == "Sedia qualità blu"


def _store_with_rows(db: Path) -> None:
    """A store with some thousand rows, so that its data lies on pages of its own."""
    import sqlite3

    assert run_cli("--db", f"sqlite:///{db}", "runs").returncode == 0
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO change_log (run_id, at, entity, key, change, field, old, new)"
            " VALUES (1, '2026-01-01 00:00:00', 'articles', ?, 'updated', 'descrizione',"
            " ?, ?)",
            [(f"ART{i:07d}", "x" * 80, "y" * 80) for i in range(5000)],
        )
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _store_line(out: str) -> str:
    return next(x for x in out.splitlines() if " store: " in x)


def test_doctor_names_keymap_ids_the_terminal_ui_does_not_know(
    isolated_home: Path, tmp_path: Path
) -> None:
    """An unknown binding id in [ui] keymap moves no key; the UI says so only once
    started, so doctor says it too, with the id meant and the file's line."""
    cfg = isolated_home / "shop.toml"
    cfg.write_text(
        '[ui]\nkeymap = { "orders.snd" = "ctrl+s", "app.quit" = "ctrl+x" }\n', encoding="utf-8"
    )
    env = {"PASSWEB_TUI_CONFIG": str(cfg)}
    store = f"sqlite:///{tmp_path / 'store.db'}"
    doctor = run_cli("--db", store, "--erp-url", "http://127.0.0.1:9/webapi", "doctor", env=env)
    line = next(x for x in doctor.stdout.splitlines() if " keymap: " in x)
    assert line.startswith("WARN keymap: "), doctor.stdout
    assert f"{cfg}:2: [ui] keymap names no binding of the terminal UI: orders.snd" in line
    assert "did you mean orders.send?" in line
    cfg.write_text('[ui]\nkeymap = { "orders.send" = "ctrl+s" }\n', encoding="utf-8")
    doctor = run_cli("--db", store, "--erp-url", "http://127.0.0.1:9/webapi", "doctor", env=env)
    line = next(x for x in doctor.stdout.splitlines() if " keymap: " in x)
    assert line.startswith("OK   keymap: 1 binding moved"), doctor.stdout
    # a key no terminal sends: the binding it moves has no key left
    cfg.write_text('[ui]\nkeymap = { "orders.send" = "ctrl+s, notakey!!" }\n', encoding="utf-8")
    doctor = run_cli("--db", store, "--erp-url", "http://127.0.0.1:9/webapi", "doctor", env=env)
    line = next(x for x in doctor.stdout.splitlines() if " keymap: " in x)
    assert line.startswith("WARN keymap: "), doctor.stdout
    assert "binds what no terminal sends" in line and "'notakey!!'" in line, line
    assert "'ctrl+s'" not in line
    # serve's trigger on without a token: serve refuses to start, so doctor fails it
    cfg.write_text("[service]\ntrigger = true\n", encoding="utf-8")
    cfg.chmod(0o600)
    doctor = run_cli("--db", store, "--erp-url", "http://127.0.0.1:9/webapi", "doctor", env=env)
    line = next(x for x in doctor.stdout.splitlines() if " trigger: " in x)
    assert line.startswith(f"FAIL trigger: on ({cfg}:2: [service] trigger) at 127.0.0.1:8765,")
    assert "but no token: serve refuses to start" in line and doctor.returncode == 1


def test_doctor_fails_a_store_the_commands_could_not_use(tmp_path: Path) -> None:
    """A table gone, the schema version gone, pages damaged inside, a data folder where
    the store cannot be made: doctor says FAIL (exit 1) with what to do, as the commands
    would fail on it; before, it said the store opened and its schema was current."""
    import os
    import sqlite3

    fine = tmp_path / "fine.db"
    _store_with_rows(fine)
    doctor = run_cli("--db", f"sqlite:///{fine}", "doctor")
    assert _store_line(doctor.stdout).startswith("OK"), doctor.stdout

    dropped = tmp_path / "dropped.db"
    _store_with_rows(dropped)
    with sqlite3.connect(dropped) as conn:
        conn.execute("DROP TABLE articles")
    doctor = run_cli("--db", f"sqlite:///{dropped}", "doctor")
    line = _store_line(doctor.stdout)
    assert doctor.returncode == 1 and line.startswith("FAIL"), doctor.stdout
    assert "table articles is missing" in line and "backup" in line

    unversioned = tmp_path / "unversioned.db"
    _store_with_rows(unversioned)
    with sqlite3.connect(unversioned) as conn:
        conn.execute("DROP TABLE alembic_version")
    doctor = run_cli("--db", f"sqlite:///{unversioned}", "doctor")
    line = _store_line(doctor.stdout)
    assert doctor.returncode == 1 and "not their schema version" in line, doctor.stdout

    def contents() -> tuple[list[str], int]:
        with sqlite3.connect(unversioned) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master ORDER BY 1")]
            return tables, conn.execute("SELECT count(*) FROM change_log").fetchone()[0]

    before = contents()
    runs = run_cli("--db", f"sqlite:///{unversioned}", "runs")
    assert runs.returncode == 1 and len(runs.stderr.splitlines()) == 1, runs.stderr
    # named, and not run over with the migrations ("table ... already exists")
    assert str(unversioned) in runs.stderr and "not their schema version" in runs.stderr
    assert "already exists" not in runs.stderr
    assert contents() == before

    damaged = tmp_path / "damaged.db"
    _store_with_rows(damaged)
    size = damaged.stat().st_size
    with damaged.open("r+b") as f:  # pages of the change log's rows, not of the schema
        f.seek(size * 3 // 4)
        f.write(os.urandom(16 * 1024))
    doctor = run_cli("--db", f"sqlite:///{damaged}", "doctor")
    line = _store_line(doctor.stdout)
    assert doctor.returncode == 1 and "is damaged" in line and "backup" in line, doctor.stdout

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    doctor = run_cli("doctor", env={"XDG_DATA_HOME": str(blocker)})
    line = _store_line(doctor.stdout)
    assert doctor.returncode == 1 and line.startswith("FAIL"), doctor.stdout
    assert f"cannot be created: {str(blocker)!r} is not a folder" in line


def test_doctor_and_the_commands_on_a_postgresql_store_they_may_not_write(
    tmp_path: Path,
) -> None:
    """A read-only database (a standby, or default_transaction_read_only), and a role
    that may not create the schema's tables: doctor fails them, and the commands say so
    in one line with the database's words only, not the statement and its values."""
    import json

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = os.environ.get("PASSWEB_TUI_TEST_PG")
    if not base:
        pytest.skip("PostgreSQL tests need PASSWEB_TUI_TEST_PG (an SQLAlchemy URL of a server)")
    tag = os.urandom(4).hex()
    ro, np_, role = f"pwt_ro_{tag}", f"pwt_np_{tag}", f"pwt_role_{tag}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{ro}"'))
            conn.execute(text(f'CREATE DATABASE "{np_}"'))
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        ro_url = make_url(base).set(database=ro).render_as_string(hide_password=False)
        assert run_cli("--db", ro_url, "runs").returncode == 0  # its schema set up
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{ro}" SET default_transaction_read_only = on'))
        doctor = run_cli("--db", ro_url, "doctor")
        line = _store_line(doctor.stdout)
        assert doctor.returncode == 1 and line.startswith("FAIL"), doctor.stdout
        assert "cannot be written: cannot execute INSERT in a read-only transaction" in line
        erp = {  # never reached: the run's record is written first
            "PASSWEB_TUI_ERP_URL": "http://127.0.0.1:9/webapi",
            "PASSWEB_TUI_ERP_USER": "demo",
            "PASSWEB_TUI_ERP_PASSWORD": "demo",
            "PASSWEB_TUI_AZIENDA": "DEM",
        }
        synced = run_cli(
            "--db", ro_url, "sync", "partial", "--entity", "customers", "--json", env=erp
        )
        error = json.loads(synced.stdout)["error"]
        assert "read-only transaction" in error, error
        assert "[SQL" not in error and "INSERT INTO" not in error, error

        # a role that may not read the store's tables (a restore made as another owner,
        # grants forgotten): said as the server's refusal, a setting to correct; it was
        # told the store's schema version was gone, and to restore it from a backup
        as_role = make_url(base).set(database=ro, username=role, password=None)
        as_role_url = as_role.render_as_string(False)
        runs = run_cli("--db", as_role_url, "runs")
        assert runs.returncode == 2, runs.stderr
        assert "permission denied for table alembic_version" in runs.stderr, runs.stderr
        assert "schema version" not in runs.stderr and "backup" not in runs.stderr
        doctor = run_cli("--db", as_role_url, "doctor")
        line = _store_line(doctor.stdout)
        assert doctor.returncode == 1 and line.startswith("FAIL"), doctor.stdout
        assert "permission denied for table alembic_version" in line, line

        np_admin = create_engine(
            make_url(base).set(database=np_).render_as_string(False), isolation_level="AUTOCOMMIT"
        )
        with np_admin.connect() as conn:
            conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        np_admin.dispose()
        np_url = (
            make_url(base).set(database=np_, username=role, password=None).render_as_string(False)
        )
        doctor = run_cli("--db", np_url, "doctor")
        line = _store_line(doctor.stdout)
        assert doctor.returncode == 1 and f"the role {role} may not create tables" in line, line
        runs = run_cli("--db", np_url, "runs")
        assert runs.returncode == 2, runs.stderr  # a setting to correct
        assert "permission denied for schema public" in runs.stderr
        assert "LINE" not in runs.stderr and "CREATE TABLE" not in runs.stderr, runs.stderr
    finally:
        with admin.connect() as conn:
            for name in (ro, np_):
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :n AND pid <> pg_backend_pid()"
                    ),
                    {"n": name},
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_a_database_error_that_stops_a_run_is_said_without_the_lines_below_it() -> None:
    """PostgreSQL adds CONTEXT (a row COPY was writing, say), DETAIL and LINE lines under
    its message; a run's recorded error keeps the message only."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    from passweb_tui.engine.sync import failure_text

    base = os.environ.get("PASSWEB_TUI_TEST_PG")
    if not base:
        pytest.skip("PostgreSQL tests need PASSWEB_TUI_TEST_PG (an SQLAlchemy URL of a server)")
    engine = create_engine(base)
    try:
        with engine.connect() as conn:
            conn.execute(text("DO $$ BEGIN RAISE EXCEPTION 'row ART0000359 refused'; END $$"))
    except DBAPIError as exc:
        assert "CONTEXT" in str(exc.orig)  # what the server sent below its message
        said = failure_text(exc)
    finally:
        engine.dispose()
    assert said == "database error (RaiseException): row ART0000359 refused", said
