"""`passweb-tui store copy`: a whole store copied into a new SQLite file or an empty
PostgreSQL database (a backup, a move, a restore), row for row, from one moment of the
source, all or nothing at the target."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import SimProcess
from hard_support import cli, cli_env, cli_here
from sqlalchemy import create_engine, insert, select, text
from test_orders_helpers import jsonl, order_line

from passweb_tui.engine.store import StoreError, open_store, store_tables
from passweb_tui.engine.store_copy import StoreCopyCancelled, copy_store


def every_row(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every store table's rows, in key order, values as Python gives them back."""
    from passweb_tui.engine.models import metadata
    from passweb_tui.engine.service.slots import claims_t

    store_tables()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
                for t in [*metadata.sorted_tables, claims_t]
                if t.name != "sync_lease"
            }
    finally:
        engine.dispose()


def utc(value: Any) -> Any:
    """A stored moment as the store means it: UTC (SQLite keeps it without a zone,
    PostgreSQL gives it back in its session's zone)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def differences(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> list[str]:
    """Where two stores' rows differ: table, row, column, both values."""
    from passweb_tui.engine.models import metadata

    found = []
    for name in sorted(set(a) | set(b)):
        rows_a, rows_b = a.get(name, []), b.get(name, [])
        if len(rows_a) != len(rows_b):
            found.append(f"{name}: {len(rows_a)} rows against {len(rows_b)}")
            continue
        table = metadata.tables.get(name)
        columns = [c.name for c in table.columns] if table is not None else []
        columns += [f"column {i}" for i in range(len(columns), len(rows_a[0]) if rows_a else 0)]
        for i, (ra, rb) in enumerate(zip(rows_a, rows_b, strict=True)):
            for column, va, vb in zip(columns, ra, rb, strict=True):
                va, vb = utc(va), utc(vb)
                if va != vb or type(va) is not type(vb):
                    found.append(f"{name}[{i}].{column}: {va!r} against {vb!r}")
    return found[:10]


def filled_store(sim: SimProcess, db: str, tmp_path: Path) -> dict[str, str]:
    """A store with what an installation keeps: a TOTAL, web orders (one sent), runs and
    their change log."""
    env = cli_env(sim, db)
    assert cli_here("sync", "total", env=env).returncode == 0
    orders = tmp_path / "orders.jsonl"
    orders.write_text(jsonl(order_line("W1"), order_line("W2")), encoding="utf-8")
    assert cli_here("orders", "import", str(orders), env=env).returncode == 0
    from passweb_tui.engine.service.slots import claims_t

    engine = create_engine(db)
    with engine.begin() as conn:  # a scheduled time the service ran
        conn.execute(
            insert(claims_t).values(
                site="default", slot="2026-12-07T17:00:00", holder="h",
                claimed_at=datetime(2026, 12, 7, 16, 0, tzinfo=UTC), run_id=1, outcome="ok",
            )
        )  # fmt: skip
    engine.dispose()
    sim.admin("POST", "mutate", json={"resource": "articoli", "count": 3, "seed": 1})
    assert cli_here("sync", "changed", env=env).returncode == 0
    return env


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_a_copy_holds_every_row_and_is_a_working_store(
    sim: SimProcess, db_url: str, tmp_path: Path
) -> None:
    """Copied to a new SQLite file (a backup) and back into a new store (a restore), the
    rows are the source's, value for value; the copy is owner-only, and a sync on it
    carries on where the source was (a CHANGED, not a first TOTAL; new ids past the
    copied ones)."""
    env = filled_store(sim, db_url, tmp_path)
    backup = tmp_path / "backups" / "store-copy.db"  # the folder is made
    done = cli_here("store", "copy", str(backup), "--json", env=env)
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    source_rows = every_row(db_url)
    assert said["tables"] == {name: len(rows) for name, rows in source_rows.items()}
    assert said["rows"] == sum(len(rows) for rows in source_rows.values()) > 1000
    assert said["tables"]["web_order"] == 2 and said["tables"]["sync_runs"] == 2
    assert said["tables"]["service_slot_claims"] == 1
    assert differences(every_row(f"sqlite:///{backup}"), source_rows) == []
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert [p.name for p in backup.parent.iterdir()] == [backup.name]  # no temporary left

    restored = tmp_path / "restored.db"
    kept = backup.read_bytes()
    back = cli_here("--db", f"sqlite:///{backup}", "store", "copy", str(restored), env=env)
    assert back.returncode == 0, back.stderr
    assert backup.read_bytes() == kept  # a backup restored is only read
    assert f"to sqlite:///{restored}:" in back.stdout and "web_order " in back.stdout
    assert differences(every_row(f"sqlite:///{restored}"), source_rows) == []

    def sql_nulls(url: str) -> int:  # JSON values the store left out, not JSON 'null'
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        text("SELECT count(*) FROM web_order WHERE site_edit IS NULL")
                    ).scalar_one()
                )
        finally:
            engine.dispose()

    assert sql_nulls(db_url) == sql_nulls(f"sqlite:///{backup}") == 2
    assert sql_nulls(f"sqlite:///{restored}") == 2

    env_restored = {**env, "PASSWEB_TUI_DB": f"sqlite:///{restored}"}
    run = cli_here("sync", "changed", "--json", env=env_restored)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["kind"] == "changed"  # the watermark came along
    assert json.loads(run.stdout)["run_id"] == 3


@pytest.mark.parametrize("empty_db_url", ["postgres"], indirect=True)
def test_a_move_to_postgresql_goes_on_from_the_copied_ids(
    sim: SimProcess, tmp_path: Path, empty_db_url: str
) -> None:
    """SQLite to an empty PostgreSQL database: every row, and the id sequences moved past
    the copied ids, so that the next run and its change log do not meet them."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = filled_store(sim, db, tmp_path)
    moved = cli_here("store", "copy", empty_db_url, env=env)
    assert moved.returncode == 0, moved.stderr
    assert differences(every_row(empty_db_url), every_row(db)) == []
    env_pg = {**env, "PASSWEB_TUI_DB": empty_db_url}
    sim.admin("POST", "mutate", json={"resource": "articoli", "count": 3, "seed": 2})
    run = cli_here("sync", "changed", "--json", env=env_pg)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["run_id"] == 3
    changes = cli_here("changes", "--run", "3", "--json", env=env_pg)
    assert changes.returncode == 0 and json.loads(changes.stdout), changes.stderr


@pytest.mark.parametrize("empty_db_url", ["postgres"], indirect=True)
def test_a_nul_character_postgresql_cannot_keep_is_named_with_its_row(
    sim: SimProcess, tmp_path: Path, empty_db_url: str
) -> None:
    """An order's note with a NUL character (imported before the import refused one): the
    copy to PostgreSQL failed saying only that text fields cannot hold NUL bytes, not
    where; it names the table, the row and the column, and writes nothing."""
    import sqlite3

    path = tmp_path / "store.db"
    env = cli_env(sim, f"sqlite:///{path}")
    orders = tmp_path / "orders.jsonl"
    orders.write_text(jsonl(order_line("W1"), order_line("W2")), encoding="utf-8")
    assert cli_here("orders", "import", str(orders), env=env).returncode == 0
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE web_order SET note = 'ring' || char(0) || 'twice' WHERE id = 'W2'")
    moved = cli_here("store", "copy", empty_db_url, env=env)
    assert moved.returncode == 1, moved.stderr
    (line,) = moved.stderr.splitlines()
    assert "web_order W2 (note) holds a NUL character" in line, line
    assert "nothing was written" in line
    from sqlalchemy import inspect

    engine = create_engine(empty_db_url)
    try:
        assert "web_order" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_only_a_nul_in_a_text_column_is_blamed() -> None:
    """A JSON column keeps a NUL (PostgreSQL's `json` escapes it): a row holding one
    there is not the row PostgreSQL refused, so it is never the one named."""
    from passweb_tui.engine.orders.push import orders_t
    from passweb_tui.engine.store_copy import _nul_at

    rows = [{"id": "A", "erp_duplicates": ["x\x00y"]}, {"id": "B", "note": "a\x00b"}]
    assert _nul_at(orders_t, rows) == "web_order B (note)"
    assert _nul_at(orders_t, rows[:1]) is None


def test_a_target_is_never_written_over(sim: SimProcess, tmp_path: Path) -> None:
    """A file that exists, the store itself, a URL of another kind: refused (exit 2)
    naming the target, and nothing is touched."""
    db_file = tmp_path / "store.db"
    env = cli_env(sim, f"sqlite:///{db_file}")
    assert cli_here("sync", "total", env=env).returncode == 0
    other = tmp_path / "other.db"
    other.write_bytes(b"someone's file")
    refused = cli_here("store", "copy", str(other), env=env)
    assert refused.returncode == 2 and "exists; a copy never writes over a file" in refused.stderr
    assert other.read_bytes() == b"someone's file"
    before = db_file.read_bytes()
    for itself in (str(db_file), f"sqlite:///{db_file}"):
        same = cli_here("store", "copy", itself, env=env)
        assert same.returncode == 2 and "is the store being copied" in same.stderr, same.stderr
    assert db_file.read_bytes() == before
    mysql = cli_here("store", "copy", "mysql://u@h/db", env=env)
    assert mysql.returncode == 2 and "SQLite or PostgreSQL, not mysql" in mysql.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_postgresql_database_holding_a_store_is_refused_unless_it_never_held_a_record(
    sim: SimProcess, tmp_path: Path, db_url: str
) -> None:
    """`db_url` is a store that never held a record (as `status` or `runs` leave a new
    database they looked at): the copy goes in. Then it holds one, and a copy is
    refused, saying what it holds."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = cli_env(sim, db)
    assert cli_here("sync", "total", env=env).returncode == 0
    copied = cli_here("store", "copy", db_url, env=env)
    assert copied.returncode == 0, copied.stderr
    source = every_row(db)
    assert every_row(db_url) == source and source["articles"]
    refused = cli_here("store", "copy", db_url, env=env)
    assert refused.returncode == 2 and "holds a store already (" in refused.stderr
    assert f"articles {len(source['articles']):,}" in refused.stderr, refused.stderr
    assert every_row(db_url) == source


def test_a_postgresql_database_with_tables_named_as_the_stores_is_named_and_kept(
    sim: SimProcess, tmp_path: Path, empty_pg_url: str
) -> None:
    """Another program's `customers` table: refused naming it, and left as it was."""
    engine = create_engine(empty_pg_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE customers (id int, name text)")
            conn.exec_driver_sql("INSERT INTO customers VALUES (1, 'theirs')")
        env = cli_env(sim, f"sqlite:///{tmp_path / 'store.db'}")
        assert cli_here("sync", "total", env=env).returncode == 0
        refused = cli_here("store", "copy", empty_pg_url, env=env)
        assert refused.returncode == 2, refused.stderr
        assert "holds tables named as the store's (customers)" in refused.stderr
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT * FROM customers").all() == [(1, "theirs")]
            tables = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ).scalar_one()
            assert tables == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("case", ["their-revision", "a-claim", "their-view"])
def test_an_empty_looking_postgresql_target_that_is_not_an_empty_store_is_left_alone(
    sim: SimProcess, tmp_path: Path, empty_pg_url: str, case: str
) -> None:
    """Refused, and nothing in it dropped: another Alembic program's schema with empty
    tables named as the store's; an empty store whose service has claimed a slot; an
    empty store another program's view depends on."""
    from passweb_tui.engine.store import open_store

    engine = create_engine(empty_pg_url)
    try:
        if case == "their-revision":
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE alembic_version (version_num varchar(32))")
                conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('3f2a_their_app')")
                conn.exec_driver_sql("CREATE TABLE customers (id int PRIMARY KEY)")
                conn.exec_driver_sql(
                    "CREATE TABLE invoices (id int, customer int REFERENCES customers (id))"
                )
        else:
            open_store(empty_pg_url).close()
            with engine.begin() as conn:
                if case == "a-claim":
                    conn.exec_driver_sql(
                        "INSERT INTO service_slot_claims (site, slot, holder, claimed_at)"
                        " VALUES ('default', '2026-12-08T02:00', 'h', now())"
                    )
                else:
                    conn.exec_driver_sql("CREATE VIEW their_view AS SELECT * FROM articles")

        def tables() -> list[str]:
            with engine.connect() as conn:
                return sorted(
                    conn.exec_driver_sql(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                    ).scalars()
                )

        before = tables()
        env = cli_env(sim, f"sqlite:///{tmp_path / 'store.db'}")
        assert cli_here("sync", "total", env=env).returncode == 0
        refused = cli_here("store", "copy", empty_pg_url, env=env)
        assert refused.returncode in (1, 2), refused.stderr
        said = {
            "their-revision": "holds a schema version this passweb-tui does not know"
            " ('3f2a_their_app'",
            "a-claim": "holds a store already (service_slot_claims 1)",
            "their-view": "cannot drop table articles because other objects depend on it",
        }[case]
        assert said in refused.stderr, refused.stderr
        assert tables() == before
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        assert (version == "3f2a_their_app") == (case == "their-revision")
    finally:
        engine.dispose()


def test_a_cancelled_copy_leaves_nothing_at_the_target(
    sim: SimProcess, tmp_path: Path, empty_db_url: str
) -> None:
    """Cancelled partway (after the first rows went in), the target is as it was: no
    file and no temporary file beside it; a PostgreSQL database without a table."""
    db = f"sqlite:///{tmp_path / 'source.db'}"
    assert cli_here("sync", "total", env=cli_env(sim, db)).returncode == 0

    def there() -> list[str]:  # the source's own -wal and -shm come and go with readers
        return sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("source.db-"))

    before = there()
    cancel = threading.Event()
    seen: list[tuple[str, int]] = []

    def progress(table: str, done: int, rows: int) -> None:
        seen.append((table, done))
        if table == "articles" and done > 0:
            cancel.set()

    with pytest.raises(StoreCopyCancelled):
        copy_store(db, empty_db_url, progress=progress, cancel=cancel)
    assert ("articles", 0) in seen
    assert there() == before
    if empty_db_url.startswith("postgresql"):
        engine = create_engine(empty_db_url)
        try:
            with engine.connect() as conn:
                tables = conn.execute(
                    text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                ).scalar_one()
        finally:
            engine.dispose()
        assert tables == 0


def test_the_copy_is_one_moment_of_a_store_being_written(sim: SimProcess, tmp_path: Path) -> None:
    """A write transaction open on the source (a sync writing a page, say) neither holds
    the copy up nor gets into it half; a run under way is in the copy unfinished, shown
    interrupted there, and said so."""
    db_file = tmp_path / "store.db"
    db = f"sqlite:///{db_file}"
    env = cli_env(sim, db)
    assert cli_here("sync", "total", env=env).returncode == 0
    from passweb_tui.engine.models import SyncRun

    runs = SyncRun.__table__  # type: ignore[attr-defined]
    writer = create_engine(db)
    with writer.connect() as conn:
        with conn.begin():  # a run under way, committed
            conn.execute(
                insert(runs).values(
                    id=7, kind="total", requested_kind="total", origin="cli", dry_run=False,
                    status="running", started=text("CURRENT_TIMESTAMP"), counts="{}",
                )
            )  # fmt: skip
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        conn.exec_driver_sql("DELETE FROM articles")  # not committed while the copy runs
        copied = cli("store", "copy", str(tmp_path / "copy.db"), env=env, timeout=60)
        conn.exec_driver_sql("ROLLBACK")
    writer.dispose()
    assert copied.returncode == 0, copied.stderr
    assert "run 7 under way when copied: interrupted in the copy" in copied.stdout
    copy_url = f"sqlite:///{tmp_path / 'copy.db'}"
    assert differences(every_row(copy_url), every_row(db)) == []
    shown = cli_here("runs", "--json", env={**env, "PASSWEB_TUI_DB": copy_url})
    assert shown.returncode == 0, shown.stderr
    seven = next(r for r in json.loads(shown.stdout) if r["run_id"] == 7)
    assert seven["status"] == "failed" and "interrupted" in seven["error"], seven
    assert os.stat(db_file).st_size > 0


def test_an_order_sent_after_the_backup_is_not_sent_again_from_the_restored_copy(
    sim: SimProcess, tmp_path: Path
) -> None:
    """An order waiting when the backup was made, then sent from the store it came from:
    the store restored from the backup looks it up in the ERP by its marker and binds
    the document it finds; the ERP holds it once."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = cli_env(sim, db)
    assert cli_here("sync", "total", env=env).returncode == 0
    orders = tmp_path / "orders.jsonl"
    orders.write_text(jsonl(order_line("W9")), encoding="utf-8")
    assert cli_here("orders", "import", str(orders), env=env).returncode == 0
    listed = json.loads(cli_here("orders", "list", "--json", env=env).stdout)
    assert [(o["id"], o["state"]) for o in listed] == [("W9", "new")]

    backup = tmp_path / "backup.db"
    done = cli_here("store", "copy", str(backup), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["to_look_up"] == {"orders": 1, "customers": 0}

    assert cli_here("sync", "changed", env=env).returncode == 0  # the source sends W9
    sent = sim.admin("GET", "orders", params={"marker": "W9"}).json()["keys"]
    assert len(sent) == 1

    restored = tmp_path / "restored.db"
    back = cli_here("--db", f"sqlite:///{backup}", "store", "copy", str(restored), env=env)
    assert back.returncode == 0, back.stderr

    env_restored = {**env, "PASSWEB_TUI_DB": f"sqlite:///{restored}"}
    run = cli_here("sync", "changed", "--json", env=env_restored)
    assert run.returncode == 0, run.stderr
    assert sim.admin("GET", "orders", params={"marker": "W9"}).json()["keys"] == sent
    shown = json.loads(cli_here("orders", "show", "W9", "--json", env=env_restored).stdout)
    assert shown["erp_key"] == sent[0] and shown["state"] != "new", shown


def test_files_a_store_left_beside_the_target_are_refused_and_a_killed_copys_are_swept(
    sim: SimProcess, tmp_path: Path
) -> None:
    """A `-wal` or `-shm` left where the copy is to go (a store moved aside without
    them) would be read into the new file: refused, naming it. The temporary files of a
    copy to the same name whose process was killed are removed by the next copy; a live
    one's, and files written to within the hour (a copy at work on another machine), are
    left alone. A target under a file, or in a folder that holds no files, is refused as
    a setting (exit 2)."""
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = cli_env(sim, db)
    assert cli_here("sync", "total", env=env).returncode == 0
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "b.db-wal").write_bytes(b"left by a store moved aside")
    refused = cli_here("store", "copy", str(backups / "b.db"), env=env)
    assert refused.returncode == 2 and "b.db-wal' exists" in refused.stderr, refused.stderr
    assert not (backups / "b.db").exists()
    (backups / "b.db-wal").unlink()

    gone = subprocess.Popen([sys.executable, "-c", "pass"])  # a process id now free
    gone.wait()
    abandoned = [backups / f".b.db.copy-{gone.pid}-0a1b.tmp{s}" for s in ("", "-wal", "-shm")]
    live = backups / f".b.db.copy-{os.getppid()}-0a1b.tmp"  # a process still running
    recent = backups / ".b.db.copy-999999999-0a1b.tmp"  # at work elsewhere (another machine)
    for f in [*abandoned, live, recent]:
        f.write_bytes(b"customers' data")
    two_hours_ago = time.time() - 7200
    for f in [*abandoned, live]:
        os.utime(f, (two_hours_ago, two_hours_ago))
    done = cli_here("store", "copy", str(backups / "b.db"), env=env)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in backups.iterdir()) == sorted(["b.db", live.name, recent.name])

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    under = cli_here("store", "copy", str(a_file / "x.db"), env=env)
    assert under.returncode == 2 and "is not a folder" in under.stderr, under.stderr
    # a folder whose permission bits allow it but that holds no files (as root, or a
    # file system mounted read-only): the target's fault too, not a failed copy
    if Path("/proc/self").is_dir():
        proc = cli_here("store", "copy", "/proc/x.db", env=env)
        assert proc.returncode == 2, proc.stderr
        assert "the folder '/proc' takes no new file (" in proc.stderr, proc.stderr


def test_a_backup_that_fills_the_disk_is_not_kept_cut_short(
    sim: SimProcess, tmp_path: Path
) -> None:
    """A disk that fills while the copy is folded into one file fails the copy (exit 1),
    leaving no file: before, the copy said it was done and left a file cut short."""
    import subprocess

    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = cli_env(sim, db)
    assert cli_here("sync", "total", env=env).returncode == 0
    size = (tmp_path / "store.db").stat().st_size
    full = tmp_path / "full"
    full.mkdir()
    # room for the copy's WAL, not also for the file it is then folded into
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size * 3 // 2 // 1024}k", "tmpfs", str(full)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip("needs to mount a small tmpfs (root)")
    try:
        failed = cli_here("store", "copy", str(full / "x.db"), env=env)
        assert failed.returncode == 1, (failed.stdout, failed.stderr)
        assert list(full.iterdir()) == []
    finally:
        subprocess.run(["umount", str(full)], check=False)


def test_a_backup_of_an_earlier_version_is_read_as_it_is_and_the_copy_brought_up(
    tmp_path: Path,
) -> None:
    """A store at an earlier schema (a backup an earlier version made) is copied without
    being changed, and the copy is at this version's schema with the rows brought up by
    the migrations as any store of that version would be."""
    import hashlib

    from alembic import command

    from passweb_tui.engine.store import _alembic_config, create_store_engine, head_revision

    old = tmp_path / "old.db"
    engine = create_store_engine(f"sqlite:///{old}")
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "w005_order_duplicates")
        conn.exec_driver_sql(
            "INSERT INTO sync_rejects (run_id, entity, key, reason) VALUES"
            " (1, 'orders', 'W1', 'not sent: the ERP did not take it: alq_iva 99')"
        )
    engine.dispose()
    before = hashlib.sha256(old.read_bytes()).hexdigest()
    copy = tmp_path / "copy.db"
    done = cli_here("--db", f"sqlite:///{old}", "store", "copy", str(copy), env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert hashlib.sha256(old.read_bytes()).hexdigest() == before
    check = create_engine(f"sqlite:///{copy}")
    with check.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        assert version == head_revision()
        assert conn.exec_driver_sql("SELECT entity FROM sync_rejects").scalar() == "web_orders"
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
    check.dispose()


def test_a_new_customer_of_a_waiting_order_is_looked_up_whatever_its_last_attempt(
    tmp_path: Path,
) -> None:
    """A new customer whose last push failed (the ERP away) is pushed again by the next
    sync: in a copy it is marked to be looked up in the ERP first, as its waiting order
    is, so that a restore does not create it a second time. One no waiting order names
    is left as it is."""
    from passweb_tui.engine.orders.models import WebCustomer, WebOrder

    db = f"sqlite:///{tmp_path / 'store.db'}"
    open_store(db).close()
    customers = WebCustomer.__table__  # type: ignore[attr-defined]
    orders = WebOrder.__table__  # type: ignore[attr-defined]
    engine = create_engine(db)
    now = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    with engine.begin() as conn:
        for cid, error in ((1, "the ERP did not answer"), (2, None), (3, None)):
            conn.execute(
                insert(customers).values(
                    id=cid, name=f"Cliente {cid}", email=f"c{cid}@example.it", uncertain=False,
                    attempts=1, last_error=error, created_at=now,
                )
            )  # fmt: skip
        for oid, cid, state in (("W1", 1, "new"), ("W2", 2, "payment_unconfirmed")):
            conn.execute(
                insert(orders).values(
                    id=oid, created=now, payment="confirmed", web_customer_id=cid,
                    currency="EUR", state=state, uncertain=False, attempts=1, imported_at=now,
                )
            )  # fmt: skip
    engine.dispose()
    said = copy_store(db, str(tmp_path / "copy.db"))
    assert said.to_look_up == {"orders": 2, "customers": 2}
    check = create_engine(f"sqlite:///{tmp_path / 'copy.db'}")
    with check.connect() as conn:
        marked = conn.execute(
            select(customers.c.id, customers.c.uncertain).order_by(customers.c.id)
        ).all()
    check.dispose()
    assert [tuple(r) for r in marked] == [(1, True), (2, True), (3, False)]


def test_a_backup_on_read_only_media_is_restored(sim: SimProcess, tmp_path: Path) -> None:
    """A backup is one file in rollback-journal mode, so it reads where nothing can be
    written (a read-only mount); a store in WAL mode there is read too (as immutable,
    its WAL being empty). A file there whose journal holds a transaction cut short is
    refused: only a connection that may write can undo it."""
    import shutil
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = cli_env(sim, db)
    assert cli_here("sync", "total", env=env).returncode == 0
    media = tmp_path / "media"
    media.mkdir()
    assert cli_here("store", "copy", str(media / "backup.db"), env=env).returncode == 0
    engine = create_engine(db)
    engine.dispose()  # the WAL folded in: a WAL-mode file alone
    shutil.copyfile(tmp_path / "store.db", media / "wal-mode.db")
    shutil.copyfile(media / "backup.db", media / "hot.db")
    # a transaction cut short by a kill: its changes in the file, the journal to undo them
    subprocess.run(
        [
            sys.executable, "-c",
            "import os, sqlite3; c = sqlite3.connect('hot.db', isolation_level=None);"
            " c.execute('PRAGMA cache_size = 1'); c.execute('BEGIN');"
            " c.execute('UPDATE article_prices SET price = price + 1'); os._exit(0)",
        ],
        cwd=media, check=True,
    )  # fmt: skip
    assert (media / "hot.db-journal").stat().st_size > 0
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(media), str(ro)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("needs to bind-mount a folder read-only (root)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        for name in ("backup.db", "wal-mode.db"):
            restored = tmp_path / f"restored-{name}"
            done = cli_here(
                "--db", f"sqlite:///{ro / name}", "store", "copy", str(restored), env=env
            )
            assert done.returncode == 0, done.stderr
            assert differences(every_row(f"sqlite:///{restored}"), every_row(db)) == []
        hot = cli_here("--db", f"sqlite:///{ro / 'hot.db'}", "store", "copy", "h.db", env=env)
        assert hot.returncode == 2 and "holds changes" in hot.stderr, hot.stderr
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_two_copies_to_one_name_and_a_copy_taken_away_while_made(
    sim: SimProcess, tmp_path: Path
) -> None:
    """Two copies racing to one name: one is kept, the other refused (exit 2), never
    one over the other. A copy whose files someone removes while it is made fails
    (before, it left an empty file and said it was done). Names no store can have
    (too long, a SQLite URL naming a host) are refused as settings."""
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = cli_env(sim, db)
    assert cli_here("sync", "total", env=env).returncode == 0
    target = tmp_path / "same.db"
    command = [sys.executable, "-m", "passweb_tui", "store", "copy", str(target)]
    racers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outcomes = sorted(p.wait(timeout=120) for p in racers)
    assert outcomes == [0, 2], [p.stderr.read() for p in racers if p.stderr]  # type: ignore[union-attr]
    assert differences(every_row(f"sqlite:///{target}"), every_row(db)) == []

    taken = tmp_path / "taken.db"

    def progress(table: str, done: int, rows: int) -> None:
        if table == "articles" and done:
            for f in tmp_path.glob(".taken.db.copy-*"):
                f.unlink()

    with pytest.raises(StoreError):
        copy_store(db, str(taken), progress=progress)
    assert not taken.exists()

    long_name = cli_here("store", "copy", str(tmp_path / ("b" * 250)), env=env)
    assert long_name.returncode == 2 and "file name is too long" in long_name.stderr
    hosted = cli_here("store", "copy", "sqlite://somehost/rel.db", env=env)
    assert hosted.returncode == 2 and "plain SQLite file" in hosted.stderr, hosted.stderr


def test_a_source_locked_by_a_writer_fails_the_copy_and_is_not_read_past_its_lock(
    sim: SimProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer holding the source's lock with no journal file (journal_mode MEMORY)
    keeps the copy waiting, then fails it (exit 1's StoreError, not a refusal of the
    source): before, the copy read the file past the lock and kept the writer's
    changes, never committed. Two copies in one process id never share a temporary
    file."""
    import sqlite3

    from passweb_tui.engine import store_copy

    db = f"sqlite:///{tmp_path / 'store.db'}"
    assert cli_here("sync", "total", env=cli_env(sim, db)).returncode == 0
    backup = tmp_path / "backup.db"
    copy_store(db, str(backup))
    writer = sqlite3.connect(backup, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode = MEMORY")
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("UPDATE articles SET description = 'TORN'")
        monkeypatch.setattr(store_copy, "SQLITE_BUSY_TIMEOUT_MS", 300)
        with pytest.raises(StoreError) as failed:
            copy_store(f"sqlite:///{backup}", str(tmp_path / "torn.db"))
        assert "locked by another process" in str(failed.value)
        assert not isinstance(failed.value, store_copy.StoreUrlError)
        assert not (tmp_path / "torn.db").exists()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    path = tmp_path / "x.db"
    assert store_copy._temp_name(path, 1) != store_copy._temp_name(path, 1)
