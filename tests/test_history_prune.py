"""Pruning the sync history: old runs go with their rejects and change-log entries, what
the next sync and `status` read stays, a prune beside a running sync changes neither,
and the setting, the `prune` command and the service's hourly prune as a user meets them.

Runs are made by real syncs against the simulator, then made old by moving their times
back in the store."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from conftest import SimProcess, start_sim, wait_for
from sqlalchemy import func, insert, select, update

from passweb_tui.cli import main
from passweb_tui.config import ConfigError, load_settings
from passweb_tui.engine import history
from passweb_tui.engine.facade import Engine, EngineSettings
from passweb_tui.engine.history import PruneResult, prune_history
from passweb_tui.engine.models import ChangeEntry, RetryKey, SyncReject, SyncRun
from passweb_tui.engine.service.schedule import schedule_from_text
from passweb_tui.engine.service.service import Service, ServiceConfig
from passweb_tui.engine.state import WATERMARK, get_state
from passweb_tui.engine.store import Store
from passweb_tui.engine.sync import Scope, SyncOptions

_RUNS = SyncRun.__table__  # type: ignore[attr-defined]
_REJECTS = SyncReject.__table__  # type: ignore[attr-defined]
_CHANGES = ChangeEntry.__table__  # type: ignore[attr-defined]
_RETRY = RetryKey.__table__  # type: ignore[attr-defined]

OLD = 500  # days: older than the default 400


@pytest.fixture(scope="module")
def hsim() -> Iterator[SimProcess]:
    """A small simulator for the module; tests may change its records, never its size."""
    p = start_sim("--articles", "150", "--customers", "30", "--orders", "5", "--seed", "5")
    try:
        yield p
    finally:
        p.stop()


def erp_env(sim: SimProcess) -> dict[str, str]:
    return {
        "PASSWEB_TUI_ERP_URL": sim.url,
        "PASSWEB_TUI_ERP_USER": sim.user,
        "PASSWEB_TUI_ERP_PASSWORD": sim.password or "",
        "PASSWEB_TUI_AZIENDA": sim.azienda,
        "PASSWEB_TUI_ANNO": str(sim.anno),
    }


def open_engine(db_url: str, sim: SimProcess) -> Engine:
    from test_sync_rules import erp_config

    return Engine.open(EngineSettings(db_url, erp_config(sim), SyncOptions(page_size=100)))


def age(store: Store, run_ids: Sequence[int], days: float = OLD) -> None:
    """Move runs back in time: each started a minute before it finished, `days` ago."""
    end = datetime.now(UTC) - timedelta(days=days)
    with store.write() as conn:
        conn.execute(
            update(_RUNS)
            .where(_RUNS.c.id.in_(list(run_ids)))
            .values(started=end - timedelta(minutes=1), finished=end)
        )


def unfinish(store: Store, run_ids: Sequence[int]) -> None:
    """As a run whose process was killed reads until the next TOTAL or CHANGED closes it."""
    with store.write() as conn:
        conn.execute(
            update(_RUNS)
            .where(_RUNS.c.id.in_(list(run_ids)))
            .values(status="running", finished=None)
        )


def rows(store: Store, table: Any, run_id: int | None = None) -> int:
    q = select(func.count()).select_from(table)
    if run_id is not None:
        q = q.where(table.c.run_id == run_id)
    with store.read() as conn:
        return int(conn.execute(q).scalar_one())


def run_ids(store: Store) -> list[int]:
    with store.read() as conn:
        return list(conn.execute(select(_RUNS.c.id).order_by(_RUNS.c.id)).scalars())


def sizes(store: Store) -> tuple[int, int, int, int]:
    return tuple(rows(store, t) for t in (_RUNS, _REJECTS, _CHANGES, _RETRY))  # type: ignore[return-value]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command line's entry point in this process, as a user sees it."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env or {}), redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize("as_json", [False, True])
def test_a_prune_stopped_by_a_signal_says_what_it_removed_and_the_next_goes_on(
    tmp_path: Path, hsim: SimProcess, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    """SIGTERM between two of its transactions: the prune stops there (exit 1), saying
    what it removed, which stays gone; the next prune removes the rest. Before, it ended
    by the signal (status 143) saying nothing, and ctrl+c said only "interrupted"."""
    import signal

    db = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_engine(db, hsim)
    try:
        first = engine.run("total").run_id
        engine.run("total")
        assert first is not None
        logged = rows(engine.store, _CHANGES, first)
        age(engine.store, [first])
    finally:
        engine.close()
    assert logged > 30
    monkeypatch.setattr(history, "BATCH_ROWS", 10)
    real = history._delete_some

    def then_a_signal(*args: Any) -> int:
        n = real(*args)
        os.kill(os.getpid(), signal.SIGTERM)  # taken by the command's handler: noted
        return n

    monkeypatch.setattr(history, "_delete_some", then_a_signal)
    stopped = cli("--db", db, "prune", *(["--json"] if as_json else []))
    monkeypatch.setattr(history, "_delete_some", real)
    assert stopped.returncode == 1, stopped.stderr
    lines = stopped.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("passweb-tui: prune: stopped by SIGTERM")
    assert lines[0].endswith("the rest goes at the next prune"), lines[0]
    if as_json:
        said = json.loads(stopped.stdout)
        assert said["stopped"] is True and said["deleted"]["change_log"] == 10
    else:
        assert stopped.stdout == ""
        assert "after it removed 0 runs, 0 rejects, 10 change-log entries;" in lines[0]
    rest = json.loads(cli("--db", db, "prune", "--dry-run", "--json").stdout)
    assert rest["deleted"] == {"sync_runs": 1, "sync_rejects": 0, "change_log": logged - 10}
    done = json.loads(cli("--db", db, "prune", "--json").stdout)
    assert done["deleted"] == rest["deleted"] and done["stopped"] is False


def test_a_dry_run_prune_stopped_by_a_signal_says_so(
    tmp_path: Path, hsim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal while a dry run counts: exit 1 saying it was stopped and removed
    nothing, not the count and exit 0 as if nobody had asked it to stop."""
    import signal

    db = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_engine(db, hsim)
    try:
        engine.run("total")
    finally:
        engine.close()
    real = history._count

    def then_a_signal(*args: Any) -> Any:
        counted = real(*args)
        os.kill(os.getpid(), signal.SIGINT)
        return counted

    monkeypatch.setattr(history, "_count", then_a_signal)
    stopped = cli("--db", db, "prune", "--dry-run")
    assert (stopped.returncode, stopped.stdout) == (1, ""), stopped
    assert stopped.stderr == (
        "passweb-tui: prune: stopped by SIGINT; a dry run: nothing was removed\n"
    )


def test_old_runs_go_with_their_details_and_what_is_read_later_stays(
    db_url: str, hsim: SimProcess
) -> None:
    engine = open_engine(db_url, hsim)
    store = engine.store
    articles = Scope(("articles",), ())
    try:
        # before any category is stored, every article is a reject
        r1 = engine.run("partial", scope=articles)
        r2 = engine.run("partial", scope=articles)
        r3 = engine.run("total")  # a good TOTAL, with a newer one after it
        r4 = engine.run("total")  # the last good TOTAL
        hsim.admin("POST", "mutate", json={"resource": "clienti", "count": 4, "seed": 21})
        r5 = engine.run("changed")  # later left unfinished
        r6 = engine.run("partial")  # later left unfinished too
        r7 = engine.run("changed", dry_run=True)
        hsim.admin("POST", "mutate", json={"resource": "clienti", "count": 3, "seed": 22})
        r8 = engine.run("changed")  # a record waiting for a retry names it
        r9 = engine.run("partial")  # recent
        r10 = engine.run("changed")  # recent: the last correctly completed sync
        ids = [r.run_id for r in (r1, r2, r3, r4, r5, r6, r7, r8, r9, r10)]
        assert None not in ids
        i1, i2, i3, i4, i5, i6, i7, i8, i9, i10 = (int(i) for i in ids if i is not None)
        assert [r.status for r in (r1, r2)] == ["ok_with_rejects"] * 2
        assert all(r.status == "ok" for r in (r3, r4, r5, r6, r7, r8, r9, r10))
        assert rows(store, _REJECTS, i1) > 0 and rows(store, _REJECTS, i2) > 0
        assert rows(store, _CHANGES, i3) > 0 and rows(store, _CHANGES, i4) == 0
        assert rows(store, _CHANGES, i5) > 0 and rows(store, _CHANGES, i8) > 0

        age(store, [i1, i2, i3, i4, i5, i6, i7, i8])
        unfinish(store, [i5, i6])
        with store.write() as conn:
            conn.execute(insert(_RETRY).values(entity="customers", key="C-RETRY", run_id=i8))
            # change-log entries whose run is gone: an old one, and a recent one
            gone = i10 + 1000
            for at in (datetime.now(UTC) - timedelta(days=OLD), datetime.now(UTC)):
                conn.execute(
                    insert(_CHANGES).values(
                        run_id=gone, at=at, entity="articles", key="GONE", change="deleted"
                    )
                )
        expected = {
            "sync_runs": 3,  # r1, r3, r7
            "sync_rejects": rows(store, _REJECTS, i1),
            # r3's and the old orphan (r7, a dry run, logged nothing)
            "change_log": rows(store, _CHANGES, i3) + 1,
        }
        with store.read() as conn:
            watermark = get_state(conn, WATERMARK)
        before = sizes(store)

        would = prune_history(store, 400, dry_run=True)
        assert would.dry_run and would.deleted == expected
        assert sizes(store) == before  # a dry run deletes nothing

        done = prune_history(store, 400)
        assert done.deleted == expected and not done.dry_run
        assert done.cut is not None
        assert abs(done.cut - (datetime.now(UTC) - timedelta(days=400))) < timedelta(minutes=1)
        assert run_ids(store) == [i2, i4, i5, i6, i8, i9, i10]
        for gone_run in (i1, i3, i7):
            assert rows(store, _REJECTS, gone_run) == rows(store, _CHANGES, gone_run) == 0
        assert rows(store, _REJECTS, i2) > 0 and rows(store, _CHANGES, i5) > 0
        assert rows(store, _CHANGES, gone) == 1  # the recent one stays
        assert rows(store, _RETRY) == 1
        # nothing more to do: a second prune removes nothing
        assert prune_history(store, 400).deleted == dict.fromkeys(history.TABLES, 0)

        # what reads the history still works, and says what it said before
        with store.read() as conn:
            assert get_state(conn, WATERMARK) == watermark
        assert [r.run_id for r in engine.runs()] == [i10, i9, i8, i6, i5, i4, i2]
        board = engine.dashboard()
        assert board.last_success_run == i10 and board.last_success is not None
        status = cli("--db", db_url, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["last_success_run_id"] == i10
        listed = cli("--db", db_url, "runs", "--json")
        assert [r["run_id"] for r in json.loads(listed.stdout)] == [i10, i9, i8, i6, i5, i4, i2]

        # a CHANGED after the prune reads from the watermark as before
        hsim.admin("POST", "mutate", json={"resource": "clienti", "count": 2, "seed": 23})
        after = engine.run("changed")
        assert (after.kind, after.status) == ("changed", "ok"), after.error
        updated = after.entities["customers"]["updated"]
        assert updated > 0
        assert len({c.key for c in engine.changes(run_id=after.run_id, limit=1000)}) == updated
        assert after.run_id is not None and after.run_id > i10  # no run id given again
    finally:
        engine.close()


def test_keep_days_zero_keeps_everything_and_a_short_keep_is_refused(
    db_url: str, hsim: SimProcess
) -> None:
    engine = open_engine(db_url, hsim)
    try:
        first = engine.run("total").run_id
        engine.run("partial")
        engine.run("total")
        assert first is not None
        age(engine.store, [first], days=36600)
        before = sizes(engine.store)
        kept = prune_history(engine.store, 0)
        assert kept == PruneResult(0, None, False)
        assert kept.to_json() == {
            "keep_days": 0,
            "cut": None,
            "dry_run": False,
            "deleted": {"sync_runs": 0, "sync_rejects": 0, "change_log": 0},
            "stopped": False,
        }
        assert sizes(engine.store) == before
        for days in (-1, 1, 34, 36601):
            with pytest.raises(ValueError, match=r"must be 0 \(keep everything\) or 35-36600"):
                prune_history(engine.store, days)
        assert sizes(engine.store) == before
        # 35 days is enough for the quota's month: a run 36 days old may go
        assert prune_history(engine.store, 35).deleted["sync_runs"] == 1
    finally:
        engine.close()


def test_a_prune_beside_a_running_sync_changes_neither_outcome(
    tmp_path: Path, hsim: SimProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CHANGED runs in another process while a prune, in many small transactions,
    deletes old runs: the sync ends as it would have, and the prune removes what it
    would have removed without the sync."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_engine(db, hsim)
    store = engine.store
    try:
        total = engine.run("total").run_id
        old = []
        for seed in (31, 32, 33):
            hsim.admin("POST", "mutate", json={"resource": "articoli", "count": 20, "seed": seed})
            old.append(engine.run("changed").run_id)
        recent = engine.run("changed").run_id
        assert total is not None and recent is not None and None not in old
        age(store, [total, *old])  # type: ignore[list-item]
        would = prune_history(store, 400, dry_run=True).deleted
        assert would["sync_runs"] == 3 and would["change_log"] >= 60
        hsim.admin("POST", "mutate", json={"resource": "clienti", "count": 5, "seed": 34})
        # what the sync will do, as a dry run reads it with no prune going on
        expected = engine.run("changed", dry_run=True)
        assert expected.entities["customers"]["updated"] > 0
        # many short transactions, to interleave with the sync's
        monkeypatch.setattr(history, "BATCH_ROWS", 7)
        monkeypatch.setattr(history, "BATCH_RUNS", 1)
        hsim.admin("PUT", "faults", json={"latency_ms": 150})
        sync = subprocess.Popen(
            [sys.executable, "-m", "passweb_tui", "--db", db, "sync", "changed", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **erp_env(hsim)},
        )
        try:

            def running() -> int | None:
                with store.read() as conn:
                    return conn.execute(
                        select(_RUNS.c.id).where(_RUNS.c.status == "running")
                    ).scalar()

            run_id = wait_for("the sync to start", running, timeout=60)
            done = prune_history(store, 400)
            assert running() == run_id, "the sync should still run while the prune works"
            out, err = sync.communicate(timeout=120)
        finally:
            if sync.poll() is None:
                sync.kill()
                sync.wait()
            hsim.admin("DELETE", "faults")
        assert sync.returncode == 0, err
        result = json.loads(out)
        assert (result["run_id"], result["kind"], result["status"]) == (run_id, "changed", "ok")
        assert result["entities"] == expected.to_json()["entities"]
        assert done.deleted == would
        assert run_ids(store) == [total, recent, expected.run_id, run_id]
        updated = result["entities"]["customers"]["updated"]
        assert len({c.key for c in engine.changes(run_id=run_id, limit=1000)}) == updated
        assert engine.runs()[0].status == "ok"
    finally:
        engine.close()


def test_the_setting_is_checked_naming_where_it_was_given(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    assert load_settings({}, env={}, path=cfg).keep_history_days == 400
    for text, site, said in (
        ("[store]\nkeep_history_days = 20\n", None, r"c\.toml:2: \[store\] keep_history_days: "),
        ("[store]\nkeep_history_days = -1\n", None, r"\[store\] keep_history_days: .*got -1$"),
        (
            "[store]\nkeep_history_days = 90\n[sites.shop.store]\nkeep_history_days = 34\n",
            "shop",
            r"c\.toml:4: \[sites\.shop\.store\] keep_history_days: .*got 34$",
        ),
        ('[store]\nkeep_history_days = "a year"\n', None, r"keep_history_days: expected a whole"),
    ):
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=said) as caught:
            load_settings({"site": site}, env={}, path=cfg)
        if "expected" not in said:
            assert "must be 0 (keep everything) or 35-36600 days" in str(caught.value)
    cfg.write_text('[store]\nkeep_history_days = "0"\n[sites.shop.store]\nkeep_history_days = 35\n')
    assert load_settings({}, env={}, path=cfg).keep_history_days == 0
    shop = load_settings({"site": "shop"}, env={}, path=cfg)
    assert shop.keep_history_days == 35
    assert ServiceConfig.from_settings(shop).keep_history_days == 35


def test_the_prune_command_says_what_it_removed_or_would(tmp_path: Path, hsim: SimProcess) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_engine(db, hsim)
    try:
        first = engine.run("total").run_id
        second = engine.run("total").run_id
        third = engine.run("partial").run_id
        engine.run("partial")
        assert first is not None and second is not None and third is not None
        logged = rows(engine.store, _CHANGES, first)
        assert logged > 0
        age(engine.store, [first, second])
        age(engine.store, [third], days=40)
        before = sizes(engine.store)
    finally:
        engine.close()

    dry = cli("--db", db, "prune", "--dry-run")
    assert dry.returncode == 0 and dry.stderr == "", dry.stderr
    assert dry.stdout.startswith("history older than 400 days (finished before 20")
    assert dry.stdout.rstrip().endswith(
        f": would remove 1 run, 0 rejects, {logged} change-log entries (dry run)"
    )
    dry_json = json.loads(cli("--db", db, "prune", "--dry-run", "--json").stdout)
    assert dry_json["dry_run"] is True and dry_json["deleted"]["sync_runs"] == 1
    engine = open_engine(db, hsim)
    try:
        assert sizes(engine.store) == before
    finally:
        engine.close()

    done = cli("--db", db, "prune", "--json")
    assert done.returncode == 0, done.stderr
    shape = json.loads(done.stdout)
    assert set(shape) == {"keep_days", "cut", "dry_run", "deleted", "stopped"}
    assert (shape["keep_days"], shape["dry_run"]) == (400, False)
    assert shape["deleted"] == {"sync_runs": 1, "sync_rejects": 0, "change_log": logged}
    cut = datetime.fromisoformat(shape["cut"])
    assert abs(cut - (datetime.now(UTC) - timedelta(days=400))) < timedelta(minutes=1)

    again = cli("--db", db, "prune")
    assert again.returncode == 0
    assert again.stdout.rstrip().endswith(": removed 0 runs, 0 rejects, 0 change-log entries")
    keep = cli("--db", db, "prune", "--keep-days", "0")
    assert (keep.returncode, keep.stdout) == (
        0,
        "--keep-days is 0: the whole sync history is kept; nothing removed\n",
    )
    assert json.loads(cli("--db", db, "prune", "--keep-days", "0", "--json").stdout) == {
        "keep_days": 0,
        "cut": None,
        "dry_run": False,
        "deleted": {"sync_runs": 0, "sync_rejects": 0, "change_log": 0},
        "stopped": False,
    }
    short = cli("--db", db, "prune", "--keep-days", "10")
    assert short.returncode == 2 and short.stdout == ""
    assert short.stderr.startswith(
        "passweb-tui: --keep-days must be 0 (keep everything) or 35-36600 days"
    )

    # the setting, and a bad one refused naming the file and key
    cfg = tmp_path / "c.toml"
    cfg.write_text("[store]\nkeep_history_days = 0\n")
    zero = cli("--db", db, "prune", env={"PASSWEB_TUI_CONFIG": str(cfg)})
    assert (
        zero.stdout == "keep_history_days is 0: the whole sync history is kept; nothing removed\n"
    )
    cfg.write_text("[store]\nkeep_history_days = 30\n")
    bad = cli("--db", db, "prune", env={"PASSWEB_TUI_CONFIG": str(cfg)})
    assert bad.returncode == 2
    assert bad.stderr.startswith(
        f"passweb-tui: configuration error: {cfg}:2: [store] keep_history_days: must be 0"
    )
    cfg.write_text("[store]\nkeep_history_days = 35\n")
    mine = json.loads(
        cli("--db", db, "prune", "--json", env={"PASSWEB_TUI_CONFIG": str(cfg)}).stdout
    )
    assert mine["keep_days"] == 35 and mine["deleted"]["sync_runs"] == 1  # the third


def test_the_service_prunes_hourly_and_a_failed_prune_stops_nothing(
    db_url: str,
    hsim: SimProcess,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from test_service_run import Clock, Ticker

    engine = open_engine(db_url, hsim)
    clock = Clock(datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC))
    ticker = Ticker()
    config = ServiceConfig(
        site="shop", schedule=schedule_from_text("15m"), timezone=ZoneInfo("UTC"), tick_s=0.1
    )
    svc = Service(engine, replace(config, keep_history_days=60), clock=clock, monotonic=ticker)
    try:
        first = engine.run("partial").run_id
        engine.run("partial")
        assert first is not None
        age(engine.store, [first], days=61)
        handle = svc.tick()
        assert handle is not None and handle.wait(120) is not None
        assert first not in run_ids(engine.store)  # pruned at the tick

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise OSError("disk full")

        monkeypatch.setattr("passweb_tui.engine.service.service.prune_history", broken)
        caplog.set_level(logging.WARNING, logger="passweb_tui.service")
        for _ in range(2):
            clock.advance(minutes=15)
            ticker.advance(3601)
            handle = svc.tick()  # the next slot still runs
            assert handle is not None
            result = handle.wait(120)
            assert result is not None and result.status == "ok"
        said = [r.getMessage() for r in caplog.records if "pruning" in r.getMessage()]
        assert said == ["pruning the sync history failed: OSError: disk full"]
    finally:
        svc.stop(60)
        engine.close()


def test_a_service_without_a_schedule_prunes_too(db_url: str, hsim: SimProcess) -> None:
    """A service that only sends orders or answers its trigger has no slots: its history
    is pruned all the same, once an hour."""
    from test_service_run import Clock, Ticker

    engine = open_engine(db_url, hsim)
    clock = Clock(datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC))
    ticker = Ticker()
    config = ServiceConfig(site="shop", timezone=ZoneInfo("UTC"), tick_s=0.1)
    assert not config.schedule.enabled
    svc = Service(engine, replace(config, keep_history_days=60), clock=clock, monotonic=ticker)
    try:
        first = engine.run("partial").run_id
        second = engine.run("partial").run_id
        age(engine.store, [first, second], days=61)
        assert svc.tick() is None  # nothing to launch
        assert first not in run_ids(engine.store)
        assert second in run_ids(engine.store)  # the newest of its status stays
    finally:
        svc.stop(60)
        engine.close()


def test_a_run_that_found_an_update_still_to_review_stays(db_url: str, hsim: SimProcess) -> None:
    """An ERP-side update to a web order names the run that found it, and its review
    shows that run: kept until the update is reviewed, however old."""
    from test_orders_helpers import jsonl, order_line

    from passweb_tui.engine.orders.api import WebOrders
    from passweb_tui.engine.orders.models import WebOrderUpdate

    engine = open_engine(db_url, hsim)
    store = engine.store
    try:
        ids = [engine.run("partial").run_id for _ in range(3)]
        first, second, newest = (int(i or 0) for i in ids)
        assert WebOrders(store).import_lines(jsonl(order_line("U1")).splitlines()).stored
        with store.write() as conn:
            for run_id, reviewed in ((first, False), (second, True)):
                conn.execute(
                    insert(WebOrderUpdate.__table__).values(  # type: ignore[attr-defined]
                        order_id="U1",
                        run_id=run_id,
                        detected_at=datetime.now(UTC),
                        state_before="open",
                        state_after="fulfilled",
                        reviewed=reviewed,
                    )
                )
        age(store, [first, second])
        assert prune_history(store, 400).deleted["sync_runs"] == 1
        assert run_ids(store) == [first, newest]
    finally:
        engine.close()
