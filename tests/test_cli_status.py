"""`passweb-tui status`: the sync at a glance from the store alone, and an exit status that
says whether anything needs the operator (the simulator over a socket, a real store)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hard_support import cli_env
from test_cli_sync import cli

from passweb_tui.engine.sync import INTERRUPTED

LEASE_SECONDS = 2


def status(sim: Any, db: str, *args: str) -> tuple[int, dict[str, Any]]:
    done = cli(sim, "status", "--json", *args, db=db)
    assert done.returncode in (0, 4), done.stderr
    return done.returncode, json.loads(done.stdout)


def start_sync(sim: Any, db: str, *args: str) -> subprocess.Popen[bytes]:
    """`passweb-tui sync ARGS` as a process of its own (in a session of its own)."""
    return subprocess.Popen(
        [sys.executable, "-m", "passweb_tui", "sync", *args],
        env=cli_env(sim, db),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_under_way(sim: Any, db: str, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """`status --json` once it shows a run under way (the process still running)."""
    deadline = time.monotonic() + 60
    while not (seen := status(sim, db)[1])["under_way"]:
        assert time.monotonic() < deadline and proc.poll() is None, seen
        time.sleep(0.1)
    return seen


def test_a_new_store_needs_its_first_sync_then_all_is_well(sim: Any, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    code, first = status(sim, db)
    assert code == 4 and first["last_success"] is None and first["last_run"] is None
    assert first["attention"] == ["no sync has completed correctly yet"]
    text = cli(sim, "status", db=db)
    assert text.returncode == 4
    assert text.stdout.startswith("last successful sync  never\n"), text.stdout
    assert "needs attention:\n  no sync has completed correctly yet" in text.stdout

    run = json.loads(cli(sim, "sync", "total", "--json", db=db).stdout)
    code, after = status(sim, db)
    assert code == 0 and after["attention"] == []
    assert after["last_success_run_id"] == run["run_id"] == after["last_run"]["run_id"]
    assert after["last_success"] == run["finished"] and after["last_success_age_s"] >= 0
    assert after["running"] is None
    stored = run["entities"]
    assert after["store"]["articles"] == stored["articles"]["inserted"]
    assert after["store"]["customers"] == stored["customers"]["inserted"]
    assert after["store"]["categories"] == stored["categories"]["inserted"]
    assert 0 < after["store"]["published_articles"] <= after["store"]["articles"]
    assert set(after["orders"]) == {
        "waiting", "payment_unconfirmed", "failed", "open", "to_check", "unreviewed_updates",
        "customers_failed",
    }  # fmt: skip

    # a sync older than the age allowed needs attention; a young one does not
    assert status(sim, db, "--max-age", "60")[0] == 0
    time.sleep(0.1)
    code, old = status(sim, db, "--max-age", "0.001")
    assert code == 4 and "old (more than 0.001 minutes)" in old["attention"][0]
    refused = cli(sim, "status", "--max-age", "0", db=db)
    assert refused.returncode == 2 and "--max-age must be more than 0" in refused.stderr


def test_a_failed_run_and_a_lease_left_behind_need_attention(sim: Any, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    assert cli(sim, "sync", "total", db=db).returncode == 0
    sim.admin("PUT", "users/" + sim.user, json={"password": "changed-meanwhile"})
    failed = cli(sim, "sync", "changed", db=db)
    assert failed.returncode != 0
    code, now = status(sim, db)
    assert code == 4 and now["last_run"]["status"] == "failed"
    assert now["last_success_run_id"] != now["last_run"]["run_id"]
    assert any(line.startswith(f"the last run ({now['last_run']['run_id']}) failed: ")
               for line in now["attention"])  # fmt: skip


@pytest.mark.parametrize(
    ("command", "kind", "hint"),
    [
        (["total"], "total", "the next TOTAL or CHANGED completes its work"),
        (["partial", "--entity", "articles"], "partial", "run it again to complete its work"),
    ],
)
def test_a_killed_sync_is_under_way_until_its_lease_or_mark_lapses_then_interrupted(
    sim: Any, tmp_path: Path, isolated_home: Path, command: list[str], kind: str, hint: str
) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    config = isolated_home / "xdg_config_home" / "passweb-tui" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"[sync]\nlease_seconds = {LEASE_SECONDS}\n")
    sim.admin("PUT", "faults", json={"latency_ms": 150})  # still paging when killed
    proc = start_sync(sim, db, *command)
    try:
        seen = wait_under_way(sim, db, proc)
        (going,) = seen["under_way"]
        run_id = going["run_id"]
        assert going["kind"] == kind and seen["last_run"] is None
        # a TOTAL holds the lease; a PARTIAL takes none
        assert (seen["running"] is not None) == (kind == "total")
        text = cli(sim, "status", db=db).stdout
        assert f"sync under way        run {run_id} (" in text
        runs = json.loads(cli(sim, "runs", "--json", db=db).stdout)
        assert runs[0]["run_id"] == run_id and runs[0]["status"] == "running"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        sim.admin("DELETE", "faults")
    # once its lease (or mark) has lapsed, the run reads as failed, interrupted, everywhere
    killed = time.monotonic()
    while (after := status(sim, db)[1])["under_way"]:
        assert time.monotonic() - killed < LEASE_SECONDS + 30, after["under_way"]
        time.sleep(0.1)
    code, after = status(sim, db)
    assert code == 4 and after["running"] is None
    assert after["last_run"]["run_id"] == run_id and after["last_run"]["status"] == "failed"
    assert after["last_run"]["error"] == INTERRUPTED
    assert f"the last run ({run_id}) failed: {INTERRUPTED}; {hint}" in after["attention"]
    runs = json.loads(cli(sim, "runs", "--json", db=db).stdout)
    assert (runs[0]["run_id"], runs[0]["status"]) == (run_id, "failed")
    # the next TOTAL/CHANGED records it so (and completes the work)
    assert cli(sim, "sync", "changed", db=db).returncode == 0
    code, done = status(sim, db)
    assert code == 0 and done["attention"] == [] and done["under_way"] == []
    runs = json.loads(cli(sim, "runs", "--json", db=db).stdout)
    assert [(r["status"], r["error"]) for r in runs[1:]] == [("failed", INTERRUPTED)]


def test_a_new_customer_the_erp_refused_needs_attention_until_mended(
    sim: Any, tmp_path: Path
) -> None:
    from test_orders_helpers import jsonl, new_customer, order_line

    db = f"sqlite:///{tmp_path / 'store.db'}"
    assert cli(sim, "sync", "total", db=db).returncode == 0
    wrong = new_customer(61, tax_code="RSSMRA80A01F205Y")  # its check character is X
    lines = tmp_path / "orders.jsonl"
    lines.write_text(jsonl(order_line("W61", customer=wrong)), encoding="utf-8")
    assert cli(sim, "orders", "import", str(lines), db=db).returncode == 0
    # a partial of the orders entity as a whole re-reads them, and says it sent nothing
    reread = cli(sim, "sync", "partial", "--entity", "orders", db=db)
    assert reread.returncode == 0
    assert "1 web order waiting, not sent: a partial sync of whole entities" in reread.stdout
    pushed = cli(sim, "sync", "partial", db=db)
    assert pushed.returncode == 4, (pushed.stdout, pushed.stderr)
    code, seen = status(sim, db)
    assert code == 4 and seen["orders"]["customers_failed"] == 1
    assert any(
        "1 new web customer(s) could not be created in the ERP" in line
        and "orders customer ID" in line
        for line in seen["attention"]
    ), seen["attention"]
    # the order's line says what holds it, without its own id again
    listed = cli(sim, "orders", "list", db=db).stdout
    (line,) = [x for x in listed.splitlines() if x.startswith("W61 ")]
    assert "new customer: the ERP did not create it" in line, listed
    assert line.count("W61") == 1
    mended = cli(sim, "orders", "customer", "W61", "--set", "tax_code=RSSMRA80A01F205X", db=db)
    assert mended.returncode == 0, mended.stderr
    code, after = status(sim, db)
    assert after["orders"]["customers_failed"] == after["orders"]["failed"] == 0
    assert not any("customer" in line for line in after["attention"]), after["attention"]
    # `runs` says what each run did with web orders
    assert cli(sim, "sync", "partial", db=db).returncode == 0
    lines = cli(sim, "runs", db=db).stdout.splitlines()
    assert lines[0].split()[-2:] == ["web", "orders"], lines
    assert [line.split("  ")[-1].strip() for line in lines[1:4]] == ["1 sent", "1 failed", "-"]


def test_a_dry_run_is_named_so_and_a_killed_one_needs_nothing(sim: Any, tmp_path: Path) -> None:
    """The last run a dry one: said so, as the run list says it. One whose process was
    killed wrote nothing and left nothing to complete: it is not a matter for the
    operator (a failed real run is)."""
    import sqlite3

    db = f"sqlite:///{tmp_path / 'store.db'}"
    assert cli(sim, "sync", "total", db=db).returncode == 0
    assert cli(sim, "sync", "changed", "--dry-run", db=db).returncode == 0
    text = cli(sim, "status", db=db).stdout
    (line,) = [x for x in text.splitlines() if x.startswith("last run")]
    assert " changed dry run ok in " in line, line
    with sqlite3.connect(tmp_path / "store.db") as conn:
        conn.execute(
            "UPDATE sync_runs SET status = 'failed', error = ? WHERE dry_run", (INTERRUPTED,)
        )
    code, seen = status(sim, db)
    assert (code, seen["attention"]) == (0, [])


def test_a_failed_changed_stays_a_matter_after_a_dry_run_or_a_partial(
    sim: Any, tmp_path: Path
) -> None:
    """A CHANGED that failed left the watermark where it was: status keeps saying so
    while a dry run or a PARTIAL are the runs after it, until a TOTAL or CHANGED runs."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    assert cli(sim, "sync", "total", db=db).returncode == 0
    # a refused login fails the run at once (an ERP error would first be retried)
    sim.admin("PUT", "users/" + sim.user, json={"password": "changed-meanwhile"})
    try:
        failed = json.loads(cli(sim, "sync", "changed", "--json", db=db).stdout)
    finally:
        sim.admin("PUT", "users/" + sim.user, json={"password": sim.password})
    assert failed["status"] == "failed"
    for later in (["sync", "changed", "--dry-run"], ["sync", "partial", "--entity", "payments"]):
        assert cli(sim, *later, db=db).returncode == 0
        code, seen = status(sim, db)
        said = [
            a
            for a in seen["attention"]
            if a.startswith(f"the last CHANGED ({failed['run_id']}) failed: ")
        ]
        assert code == 4 and said, seen["attention"]
    assert cli(sim, "sync", "changed", db=db).returncode == 0
    code, seen = status(sim, db)
    assert (code, seen["attention"]) == (0, [])


def test_a_run_under_way_is_shown_however_many_runs_came_after_it(sim: Any, tmp_path: Path) -> None:
    """A long PARTIAL, then ten more runs recorded (the terminal UI's compare records a
    dry run a key): still under way, and the last success keeps its kind; before,
    `status` looked at the newest ten runs only and said "sync under way none"."""
    import sqlite3

    path = tmp_path / "store.db"
    db = f"sqlite:///{path}"
    assert cli(sim, "sync", "total", db=db).returncode == 0
    sim.admin("PUT", "faults", json={"latency_ms": 4000})  # still reading while we look
    proc = start_sync(sim, db, "partial", "--entity", "articles")
    try:
        (going,) = wait_under_way(sim, db, proc)["under_way"]
        # ten dry runs after it, as the runs table keeps them (made here at once: ten
        # real ones would outlast the PARTIAL's slowest read)
        with sqlite3.connect(path) as conn:
            columns = [c[1] for c in conn.execute("PRAGMA table_info(sync_runs)") if c[1] != "id"]
            names = ", ".join(columns)
            for _ in range(10):
                conn.execute(
                    f"INSERT INTO sync_runs ({names}) SELECT {names} FROM sync_runs WHERE id = 1"
                )
            conn.execute(
                "UPDATE sync_runs SET kind = 'partial', dry_run = 1 WHERE id > ?",
                (going["run_id"],),
            )
        code, seen = status(sim, db)
        assert code == 0, seen["attention"]
        assert proc.poll() is None, "the PARTIAL ended before the check"
        assert [r["run_id"] for r in seen["under_way"]] == [going["run_id"]], seen
        assert seen["under_way"][0]["kind"] == "partial"
        assert seen["last_run"]["run_id"] == going["run_id"] + 10
        text = cli(sim, "status", db=db).stdout
        assert f"run {going['run_id']} (partial) since" in text, text
        assert "(run 1, total)" in text, text
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        sim.admin("DELETE", "faults")
