"""The engine as the UI runs it, a CLI sync and a CLI PARTIAL, all at once, on SQLite
and PostgreSQL: nobody deadlocks, no update is lost, every refusal says who and since.

CI runs 2 rounds per store; the full 10 rounds:
`PASSWEB_TUI_TEST_PG=... pytest -m slow tests/test_hard_concurrency.py`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import SimProcess, start_sim
from hard_support import cli_env, in_step, open_engine, store_vs_erp, unfinished_runs

from passweb_tui.engine import lease as lease_mod
from passweb_tui.engine.facade import LaunchRefused, ProgressEvent
from passweb_tui.engine.lease import Lease, LeaseRefused
from passweb_tui.engine.owners import token_label
from passweb_tui.engine.store import open_store

# "run 12 (held by host, pid N) since ..." or "a run being set up (held by ...) since ..."
EXPLAINED = re.compile(r"\(held by [^()]+\) since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


@pytest.fixture
def busy_sim() -> Iterator[SimProcess]:
    p = start_sim("--articles", "400", "--customers", "60", "--orders", "2", "--seed", "41")
    try:
        yield p
    finally:
        p.stop()


def rounds_at_once(sim: SimProcess, db_url: str, rounds: int, tmp: Path, first: int = 0) -> None:
    """Rounds alternate: even ones start the UI's TOTAL first, odd ones the CLI's."""
    env = cli_env(sim, db=db_url)
    engine = open_engine(db_url, sim)
    try:
        assert engine.run("total").status == "ok"
        # a slower ERP: runs last seconds, so the three really overlap
        sim.admin("PUT", "faults", json={"latency_ms": 150})
        refusals = 0
        for n in range(first, first + rounds):
            sim.admin("POST", "mutate", json={"resource": "articoli", "count": 60, "seed": n})
            sim.admin("POST", "mutate", json={"resource": "clienti", "count": 10, "seed": n})
            ui_first = n % 2 == 0
            ui_refused: str | None = None
            handle = None
            # the UI's run must outlast the CLI's start-up (about a second) to collide with it
            sim.admin("PUT", "faults", json={"latency_ms": 400 if ui_first else 150})
            cli: list[subprocess.Popen[str]] = []
            if ui_first:  # the UI's TOTAL starts, then the operator's CLI runs collide with it

                def hold(ev: ProgressEvent, cli: list[subprocess.Popen[str]] = cli) -> None:
                    # on a loaded machine the CLI may take seconds to start: the UI's
                    # TOTAL keeps its lease (before its first page of articles) until the
                    # CLI's sync has been answered, so the two always collide
                    if ev.entity == "articles" and ev.done == 0 and cli:
                        deadline = time.monotonic() + 60
                        while cli[0].poll() is None and time.monotonic() < deadline:
                            time.sleep(0.05)

                handle = engine.start_run("total", on_event=hold)
            cli_sync = subprocess.Popen(
                [sys.executable, "-m", "passweb_tui", "sync", "changed" if ui_first else "total",
                 "--json"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            cli.append(cli_sync)
            cli_partial = subprocess.Popen(
                [sys.executable, "-m", "passweb_tui", "sync", "partial",
                 "--entity", "articles", "--entity", "customers", "--json"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            if not ui_first:
                # the UI launches once the CLI's run holds the lease (or has ended)
                deadline = time.monotonic() + 60
                while engine.lease() is None and cli_sync.poll() is None:
                    assert time.monotonic() < deadline, "the CLI sync never took the lease"
                    time.sleep(0.05)
                try:
                    handle = engine.start_run("changed")
                except LaunchRefused as exc:
                    ui_refused = str(exc)
            # no deadlock: everything ends within the timeouts
            _, err_sync = cli_sync.communicate(timeout=120)
            _, err_part = cli_partial.communicate(timeout=120)
            if handle is not None:
                result = handle.wait(120)
                assert result is not None, "the UI's run did not end"
                assert result.status == "ok", result.error
            assert cli_partial.returncode == 0, err_part  # a PARTIAL is never refused
            assert cli_sync.returncode in (0, 3), err_sync
            if cli_sync.returncode == 3:
                assert "refused" in err_sync and EXPLAINED.search(err_sync), err_sync
            if ui_refused is not None:
                assert EXPLAINED.search(ui_refused), ui_refused
            # at most one of the two TOTAL/CHANGED could have been refused
            assert not (ui_refused and cli_sync.returncode == 3)
            refusals += bool(ui_refused) or cli_sync.returncode == 3
            assert unfinished_runs(engine) == []
            # no lost update: the ERP did not change during the round, so whatever ran
            # last, the store now equals it
            assert in_step(engine) == {}
            assert store_vs_erp(engine, sim) == []
        assert refusals >= max(rounds // 2, 1), "the runs hardly overlapped: the test proved little"
    finally:
        sim.admin("DELETE", "faults")
        engine.close()


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)], indirect=True
)
def test_ui_cli_and_partial_at_once(db_url: str, busy_sim: SimProcess, tmp_path: Path) -> None:
    """One round: the UI first on SQLite (in CI), the CLI first on PostgreSQL (in the
    slow sweep, with the many-round test above)."""
    rounds_at_once(busy_sim, db_url, 1, tmp_path, first=0 if db_url.startswith("sqlite") else 1)


@pytest.mark.slow
def test_ui_cli_and_partial_at_once_sweep(
    db_url: str, busy_sim: SimProcess, tmp_path: Path
) -> None:
    rounds_at_once(busy_sim, db_url, 10, tmp_path)


def test_a_refusal_in_the_instant_the_lease_expires_still_names_the_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        holder = Lease(store, 5)
        holder.acquire(run_id=7)
        real = lease_mod.utcnow
        start = real()
        # the refused UPDATE sees the lease alive; the read just after finds it expired
        moments = iter([start, start + timedelta(seconds=10)])
        monkeypatch.setattr(
            lease_mod, "utcnow", lambda: next(moments, start + timedelta(seconds=10))
        )
        with pytest.raises(LeaseRefused) as refused:
            Lease(store, 5).acquire()
        assert f"(held by {token_label(holder.holder)})" in str(refused.value)
    finally:
        store.close()


def test_a_partial_and_a_total_at_once_log_each_record_once(db_url: str) -> None:
    """A PARTIAL of the articles takes no lease, so it may run while a TOTAL writes the
    same records: each record's insertion is logged once, by whichever run stored it,
    and the two runs' counts add up to the records stored. (On PostgreSQL both used to
    compare a page with the store as it was before the other's commit, and both logged
    it: the pages of one entity are now written one at a time.)"""
    import threading

    from sqlalchemy import text

    from passweb_tui.engine.facade import Scope

    sim = start_sim("--articles", "3000", "--customers", "40", "--orders", "0", "--seed", "9")
    partial_engine = open_engine(db_url, sim, page_size=100)
    total_engine = open_engine(db_url, sim, page_size=100)
    try:
        partial_engine.run("partial", scope=Scope(("categories",)))
        results: dict[str, Any] = {}
        runs = [
            threading.Thread(
                target=lambda: results.setdefault(
                    "partial", partial_engine.run("partial", scope=Scope(("articles",)))
                )
            ),
            threading.Thread(target=lambda: results.setdefault("total", total_engine.run("total"))),
        ]
        for t in runs:
            t.start()
        for t in runs:
            t.join(timeout=300)
        assert {r.status for r in results.values()} == {"ok"}, results
        with total_engine.store.read() as conn:
            logged, distinct = conn.execute(
                text(
                    "SELECT count(*), count(DISTINCT key) FROM change_log"
                    " WHERE entity = 'articles' AND change = 'inserted'"
                )
            ).one()
            stored = conn.execute(text("SELECT count(*) FROM articles")).scalar_one()
        assert logged == distinct == stored
        inserted = sum(r.entities["articles"]["inserted"] for r in results.values())
        assert inserted == stored
    finally:
        partial_engine.close()
        total_engine.close()
        sim.stop()
