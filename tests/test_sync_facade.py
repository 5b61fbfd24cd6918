"""The facade the UI uses: runs in a worker thread with progress events, and the reads
behind the dashboard, change log, categories, catalogue and fields screens."""

from __future__ import annotations

import re
import sys
import threading
from typing import Any

import pytest

from passweb_tui.engine.facade import Engine, ProgressEvent


def test_a_run_in_a_worker_reports_progress_and_the_reads_agree(
    shared_sim: Any, db_url: str
) -> None:
    from test_sync_rules import open_engine

    engine: Engine = open_engine(db_url, shared_sim)
    try:
        events: list[ProgressEvent] = []
        finished = threading.Event()

        def listen(ev: ProgressEvent) -> None:
            events.append(ev)
            if ev.finished:
                finished.set()

        handle = engine.start_run("changed", on_event=listen)
        assert handle.run_id is not None
        result = handle.wait(120)
        assert handle.done and result is not None and result.status == "ok"
        assert finished.wait(5)
        phases = [e.phase for e in events]
        assert phases[0] == "attributes" and phases[-1] == "done"
        assert {"lookups", "articles", "customers", "conditions", "deletions"} <= set(phases)
        articles = [e for e in events if e.phase == "articles" and e.done]
        assert articles and articles[-1].done == result.entities["articles"]["fetched"]
        assert all(e.rate and e.rate > 0 for e in articles)
        # a first sync cannot know its totals in advance; each pass's last event gives it
        assert articles[0].total is None or articles[0].total == 0
        for name, counts in result.entities.items():
            last = [e for e in events if e.entity == name and e.phase != "deletions"][-1]
            assert last.total == last.done == counts["fetched"], name
        assert events[-1].finished and events[-1].status == "ok"

        board = engine.dashboard()
        assert board.articles == result.entities["articles"]["inserted"]
        assert board.customers == result.entities["customers"]["inserted"]
        assert board.last_success is not None and board.watermark is not None
        assert board.erp_state == "ok" and board.lease is None
        assert board.last_runs[0].run_id == result.run_id
        assert ("articles", "(inserted)", board.articles) in board.field_changes
        # a finished run's counts are kept: the dashboard's refreshes do not count its
        # changes again (seconds, for a run that changed millions of fields)
        real_counts = engine.change_counts
        engine.change_counts = lambda **kw: pytest.fail("counted again")  # type: ignore[method-assign]
        try:
            assert engine.dashboard().field_changes == board.field_changes
        finally:
            engine.change_counts = real_counts  # type: ignore[method-assign]

        categories = engine.categories()
        assert sum(c.article_count for c in categories) == board.articles
        busiest = max(categories, key=lambda c: c.article_count)
        in_it = engine.articles(category=busiest.code, limit=10_000)
        assert len(in_it) == busiest.article_count
        assert all(a["category"] == busiest.code for a in in_it)
        assert any(c.parent for c in categories)

        first = engine.articles(limit=1)[0]
        word = (first["description"] or first["code"]).split()[0].lower()
        found = engine.articles(search=word, limit=500)
        assert first["code"] in {a["code"] for a in found}
        assert all(
            word in (a["description"] or "").lower() or word in a["code"].lower() for a in found
        )
        assert first["prices"] and all(isinstance(v, str) for v in first["prices"].values())
        customer = engine.customers(limit=1)[0]
        assert engine.customers(search=customer["code"])[0]["code"] == customer["code"]
        # "%" and "_" typed in a search are themselves, not wildcards
        assert engine.articles(search="%") == [] and engine.customers(search="_") == []
        # a TOTAL expects as many records as the last one read, those off the site too
        # (the table holds fewer): its progress does not run ahead of what is read
        stored = engine.dashboard().articles
        read = result.entities["articles"]["fetched"]
        assert stored < read, "the data should hold articles off the site"
        again: list[ProgressEvent] = []
        assert engine.start_run("total", on_event=again.append).wait(120).status == "ok"
        totals = {e.total for e in again if e.phase == "articles"}
        assert totals == {read}, totals

        from test_sync_orders import _order

        from passweb_tui.engine.orders.api import WebOrders

        orders = WebOrders(engine.store)
        orders.import_lines([_order("W77001", engine)])
        assert [o["id"] for o in orders.list(search="w7700")] == ["W77001"]
        assert orders.list(search="%") == [] == orders.list(search="W7700_")

        # one record in full, on either database
        full = engine.record("articles", first["code"])
        assert full is not None and full.code == first["code"]
        assert full.data == first["data"] and full.columns["category"] == first["category"]
        assert {p[0]: p[2] for p in full.prices} == first["prices"]
        assert all(name for _, name, _ in full.prices)  # each list's description
        assert full.names["category"] == next(
            c.description for c in categories if c.code == first["category"]
        )
        assert full.last_change is not None and full.last_change[0] == result.run_id
        assert engine.record("customers", customer["code"]) is not None
        assert engine.record("articles", "NO-SUCH-CODE") is None
        assert engine.uncategorised_count() == 0  # the demo links every article
        branch = [c.code for c in categories if c.article_count][:2]
        in_branch = engine.articles(categories=branch, limit=100_000)
        assert len(in_branch) == sum(c.article_count for c in categories if c.code in branch)

        history = engine.record_history("articles", first["code"])
        assert [(h.change, h.run_id) for h in history] == [("inserted", result.run_id)]
        page = engine.changes(entity="articles", limit=5, offset=5)
        assert len(page) == 5 and all(c.entity == "articles" for c in page)
        detail = engine.run_detail(result.run_id)
        assert detail.run.run_id == result.run_id and detail.rejects == []
        assert detail.erp_clock is not None

        rows = engine.fields("articles")
        assert any(r.key and r.name == "codice" for r in rows)
        assert {r.name for r in rows if r.used} >= {"descrizione", "prz_listino"}
        assert engine.set_used("articles", ["peso"], False) == ["peso"]
        assert not next(r for r in engine.fields("articles") if r.name == "peso").used
    finally:
        engine.close()


def test_the_engine_never_imports_the_ui() -> None:
    import subprocess

    probe = (
        "import sys, passweb_tui.engine.facade, passweb_tui.commands.sync;"
        "print(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_run_marked_running_without_its_lease_reads_as_interrupted(
    shared_sim: Any, db_url: str
) -> None:
    """The run record of a TOTAL/CHANGED whose process died says `running` until the next
    TOTAL/CHANGED closes it; the reads tell it from a live run by the lease, and by its
    holder's process where that ran on this machine."""
    import sqlalchemy as sa
    from test_sync_rules import open_engine

    from passweb_tui.engine.lease import Lease
    from passweb_tui.engine.sync import INTERRUPTED

    engine: Engine = open_engine(db_url, shared_sim)
    try:
        run_id = engine.run("total").run_id
        assert run_id is not None
        with engine.store.write() as conn:
            conn.execute(
                sa.text("UPDATE sync_runs SET status = 'running', finished = NULL WHERE id = :i"),
                {"i": run_id},
            )

        def seen() -> tuple[str, str | None]:
            (listed,) = [r for r in engine.runs() if r.run_id == run_id]
            detail = engine.run_detail(run_id).run
            assert (listed.status, listed.error) == (detail.status, detail.error)
            return listed.status, listed.error

        assert seen() == ("failed", INTERRUPTED)  # nobody holds the lease
        lease = Lease(engine.store, 60)
        lease.acquire()  # a run being set up, its id not yet given: may be this one
        assert seen() == ("running", None)
        lease.set_run(run_id)  # its own live lease: under way
        assert seen() == ("running", None)
        lease.set_run(run_id + 1)  # another run holds it: this one's process is gone
        assert seen() == ("failed", INTERRUPTED)
        assert engine.dashboard().erp_detail == INTERRUPTED
        lease.release()
        # its own lease expired, its process held up past the expiry but alive on this
        # machine: still under way, until another run takes the lease over (which fences
        # it off the store)
        held_up = Lease(engine.store, -1)
        held_up.acquire(run_id=run_id)
        assert engine.lease() is None  # free to be taken over
        assert seen() == ("running", None)
        taker = Lease(engine.store, 60)
        taker.acquire(run_id=run_id + 1)
        assert seen() == ("failed", INTERRUPTED)
        taker.release()
        held_up.release()
        # the next TOTAL/CHANGED records what the reads said
        assert engine.run("changed").status == "ok"
        assert seen() == ("failed", INTERRUPTED)
        with engine.store.read() as conn:
            stored = conn.execute(
                sa.text("SELECT status, error FROM sync_runs WHERE id = :i"), {"i": run_id}
            ).one()
        assert tuple(stored) == ("failed", INTERRUPTED)
    finally:
        engine.close()


def test_a_killed_run_is_recorded_as_ended_at_its_last_heartbeat(
    shared_sim: Any, db_url: str
) -> None:
    """A run whose process died is closed by the next TOTAL/CHANGED: it ended about its
    last heartbeat (of the lease taken from it, or of its mark), so its time is how long
    it ran, not how long until somebody noticed."""
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa
    from test_sync_rules import open_engine

    from passweb_tui.engine.lease import Lease, RunMark
    from passweb_tui.engine.sync import INTERRUPTED

    engine: Engine = open_engine(db_url, shared_sim)
    try:
        total = engine.run("total").run_id
        dry = engine.run("changed", dry_run=True).run_id
        began = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        with engine.store.write() as conn:
            conn.execute(
                sa.text("UPDATE sync_runs SET status = 'running', finished = NULL, "
                        "started = :s WHERE id IN (:a, :b)"),
                {"a": total, "b": dry, "s": began.replace(tzinfo=None)},
            )  # fmt: skip
        elsewhere = "elsewhere:4242.1234.abcdef:0123456789"  # a holder nobody can see
        gone = Lease(engine.store, -1)
        gone.holder = elsewhere
        gone.acquire(run_id=total)
        mark = RunMark(engine.store, -1, dry)
        mark.holder = elsewhere
        with engine.store.write() as conn:
            mark.insert(conn)
            for name, seconds in ((gone.name, 3), (mark.name, 2)):
                conn.execute(
                    sa.text("UPDATE sync_lease SET heartbeat_at = :h WHERE name = :n"),
                    {"h": began + timedelta(seconds=seconds), "n": name},
                )
        assert engine.run("changed").status == "ok"
        for run_id, seconds in ((total, 3), (dry, 2)):
            run = engine.run_detail(run_id or 0).run
            assert (run.status, run.error) == ("failed", INTERRUPTED)
            assert run.duration_s == seconds, (run_id, run.duration_s)
        # one that died before its first heartbeat: the lease's last beat is its taking,
        # a moment before the run's start; it ended about then, not when it was noticed
        died = engine.run("total").run_id
        with engine.store.write() as conn:
            conn.execute(
                sa.text("UPDATE sync_runs SET status = 'running', finished = NULL, "
                        "started = :s WHERE id = :a"),
                {"a": died, "s": began.replace(tzinfo=None)},
            )  # fmt: skip
        early = Lease(engine.store, -1)
        early.holder = elsewhere
        early.acquire(run_id=died)
        with engine.store.write() as conn:
            conn.execute(
                sa.text("UPDATE sync_lease SET heartbeat_at = :h WHERE name = :n"),
                {"h": began - timedelta(seconds=1), "n": early.name},
            )
        assert engine.run("changed").status == "ok"
        run = engine.run_detail(died or 0).run
        assert (run.status, run.error, run.duration_s) == ("failed", INTERRUPTED, 0)
    finally:
        engine.close()


def test_a_run_without_the_lease_is_under_way_while_its_mark_lives(
    shared_sim: Any, db_url: str
) -> None:
    """A PARTIAL or a dry run takes no lease: its mark, written with its run record and
    kept fresh by its heartbeat, tells a reader it is alive; gone or expired, the run is
    one whose process died, and the next TOTAL/CHANGED records it so."""
    import sqlalchemy as sa
    from test_sync_rules import open_engine

    from passweb_tui.engine.lease import RUN_MARK, RunMark
    from passweb_tui.engine.sync import INTERRUPTED

    engine: Engine = open_engine(db_url, shared_sim)
    marks = sa.text(f"SELECT count(*) FROM sync_lease WHERE name LIKE '{RUN_MARK}%'")
    try:
        engine.run("total")
        # a finished run leaves no mark behind
        partial = engine.run("partial").run_id
        dry = engine.run("changed", dry_run=True).run_id
        assert partial is not None and dry is not None
        with engine.store.read() as conn:
            assert conn.execute(marks).scalar_one() == 0

        def status_of(run_id: int) -> tuple[str, str | None]:
            (r,) = [r for r in engine.runs() if r.run_id == run_id]
            return r.status, r.error

        with engine.store.write() as conn:
            conn.execute(
                sa.text("UPDATE sync_runs SET status = 'running', finished = NULL "
                        "WHERE id IN (:a, :b)"),
                {"a": partial, "b": dry},
            )  # fmt: skip
        assert status_of(partial) == status_of(dry) == ("failed", INTERRUPTED)
        alive = RunMark(engine.store, 60, partial)
        with engine.store.write() as conn:
            alive.insert(conn)
        assert status_of(partial) == ("running", None)
        assert status_of(dry) == ("failed", INTERRUPTED)
        # written already expired, by a process of another machine (where this one
        # cannot see whether it runs, so its expiry decides)
        expired = RunMark(engine.store, -1, dry)
        expired.holder = "elsewhere:4242.1234.abcdef:0123456789"
        with engine.store.write() as conn:
            expired.insert(conn)
        assert status_of(dry) == ("failed", INTERRUPTED)

        # the next TOTAL/CHANGED records the dead one, leaves the live one, drops the mark
        assert engine.run("changed").status == "ok"
        with engine.store.read() as conn:
            rows = dict(
                conn.execute(
                    sa.text("SELECT id, status FROM sync_runs WHERE id IN (:a, :b)"),
                    {"a": partial, "b": dry},
                ).all()
            )
            assert conn.execute(marks).scalar_one() == 1  # the live one's
        assert rows == {partial: "running", dry: "failed"}
        alive.release()
        assert status_of(partial) == ("failed", INTERRUPTED)

        # a mark of this machine's process that its heartbeat did not renew in time (the
        # process held up): seen running, since its process is; gone once released
        late = RunMark(engine.store, -1, partial)
        with engine.store.write() as conn:
            late.insert(conn)
        assert status_of(partial) == ("running", None)
        late.release()
        assert status_of(partial) == ("failed", INTERRUPTED)
    finally:
        engine.close()


def test_a_request_tried_again_is_said_while_the_run_goes_on(sim: Any, tmp_path: Any) -> None:
    """An ERP that answers busy now and then: each retry is a line of the run's log as it
    happens (what went wrong, when the next try is), so a busy ERP does not look like a
    run standing still; the run still ends ok."""
    from dataclasses import replace

    from test_sync_rules import erp_config

    from passweb_tui.engine.facade import EngineSettings
    from passweb_tui.engine.sync import SyncOptions

    erp = replace(erp_config(sim), max_retries=8)
    settings = EngineSettings(f"sqlite:///{tmp_path / 'store.db'}", erp, SyncOptions(page_size=100))
    engine = Engine.open(settings)
    try:
        sim.admin("PUT", "/faults", json={"status": {"503": 0.2}, "seed": 5})
        said: list[str] = []
        result = engine.run(
            "total", on_event=lambda ev: said.append(ev.message) if ev.message else None
        )
        assert result.status == "ok", result.error
        retries = [m for m in said if m.startswith("the ERP is busy: trying again in ")]
        assert retries, said
        assert all(re.search(r"\(\d of 8\)$", m) for m in retries), retries
    finally:
        sim.admin("DELETE", "/faults")
        engine.close()


def cancelled_at_once(handle: Any) -> None:
    """Cancel the run: it is recorded cancelled by the operator within 5 s."""
    import time

    from passweb_tui.engine.sync import CANCELLED_BY_OPERATOR

    asked = time.monotonic()
    handle.cancel()
    result = handle.wait(30)
    took = time.monotonic() - asked
    assert result is not None and result.status == "cancelled", result
    assert result.error == CANCELLED_BY_OPERATOR
    assert took < 5, took


def test_a_cancel_does_not_wait_out_the_backoff_of_a_busy_erp(sim: Any, tmp_path: Any) -> None:
    """An ERP that answers only busy, with long waits between tries: the operator's
    cancel ends the run at once (not after the retries), and the run is recorded as
    cancelled, not failed."""
    from dataclasses import replace

    from test_sync_rules import erp_config

    from passweb_tui.engine.facade import EngineSettings
    from passweb_tui.engine.sync import SyncOptions

    erp = replace(erp_config(sim), max_retries=5, backoff_base_s=20.0, backoff_max_s=20.0)
    settings = EngineSettings(f"sqlite:///{tmp_path / 'store.db'}", erp, SyncOptions(page_size=100))
    engine = Engine.open(settings)
    waiting = threading.Event()
    try:
        sim.admin("PUT", "/faults", json={"status": {"503": 1.0}})

        def on_event(ev: ProgressEvent) -> None:
            if (ev.message or "").startswith("the ERP is busy: trying again in "):
                waiting.set()

        handle = engine.start_run("total", on_event=on_event)
        assert waiting.wait(30), "no retry was said"
        cancelled_at_once(handle)  # the first wait alone is 10-20 s
    finally:
        sim.admin("DELETE", "/faults")
        engine.close()


def test_a_cancel_cuts_short_a_request_the_erp_takes_minutes_over(sim: Any, tmp_path: Any) -> None:
    """The ERP takes a minute over every request (it may take five): the operator's
    cancel does not wait for the answer on the wire, the run is recorded cancelled,
    and the engine's client serves the next run as before."""
    import time

    from test_sync_rules import erp_config

    from passweb_tui.engine.erp import client as client_module
    from passweb_tui.engine.facade import EngineSettings
    from passweb_tui.engine.sync import SyncOptions

    settings = EngineSettings(
        f"sqlite:///{tmp_path / 'store.db'}", erp_config(sim), SyncOptions(page_size=500)
    )
    engine = Engine.open(settings)
    try:
        sim.admin("PUT", "/faults", json={"latency_ms": 60_000})
        handle = engine.start_run("total")
        deadline = time.monotonic() + 30
        while not client_module._READING:  # until its first request awaits the answer
            assert time.monotonic() < deadline, "no request was sent"
            time.sleep(0.01)
        cancelled_at_once(handle)
        sim.admin("DELETE", "/faults")
        again = engine.run("total")
        assert again.status == "ok", again.error
    finally:
        sim.admin("DELETE", "/faults")
        engine.close()


def test_a_run_records_its_counts_with_each_page_it_commits(shared_sim: Any, db_url: str) -> None:
    """After every page a run commits (where a kill could stop it), its run record
    counts exactly the records its committed change log holds: `runs` never shows a
    killed run as having done less than `changes --run` lists."""
    from hard_support import counts_and_change_log
    from test_sync_rules import open_engine

    engine: Engine = open_engine(db_url, shared_sim)
    seen: list[tuple[str, int]] = []
    differ: list[Any] = []

    def check(event: ProgressEvent) -> None:
        if event.finished or event.entity is None or event.run_id is None:
            return
        recorded, committed = counts_and_change_log(engine, event.run_id)
        seen.append((event.entity, event.done))
        if recorded != committed:
            differ.append((event.entity, event.done, recorded, committed))

    try:
        assert engine.run("total", on_event=check).status in ("ok", "ok_with_rejects")
        pages = len(seen)
        shared_sim.admin("POST", "mutate", json={"resource": "articoli", "count": 300, "seed": 5})
        shared_sim.admin("POST", "mutate", json={"resource": "clienti", "count": 40, "seed": 6})
        assert engine.run("changed", on_event=check).status in ("ok", "ok_with_rejects")
    finally:
        engine.close()
    assert pages > 10 and len(seen) > pages, seen  # pages of both runs were looked at
    assert differ == []


def test_a_run_whose_end_cannot_be_recorded_is_still_told_as_it_ended(
    sim: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    """The store's server stops as the run ends: the run's outcome is still returned
    (failed, saying its end could not be recorded, in one line), not an exception with
    the driver's lines; the next run finds it unfinished and marks it interrupted."""
    import sqlite3

    from sqlalchemy.exc import OperationalError
    from test_sync_rules import erp_config

    from passweb_tui.engine.facade import EngineSettings
    from passweb_tui.engine.sync import INTERRUPTED, SyncOptions, SyncRunner

    settings = EngineSettings(
        f"sqlite:///{tmp_path / 'store.db'}", erp_config(sim), SyncOptions(page_size=100)
    )
    engine = Engine.open(settings)
    try:
        assert engine.run("total").status == "ok"
        gone = OperationalError("UPDATE sync_runs", {}, sqlite3.OperationalError("disk I/O error"))

        def fail(*args: Any, **kwargs: Any) -> Any:
            raise gone

        from passweb_tui.engine.lease import Lease

        real_release = Lease.release

        def release_on_a_dead_store(self: Lease) -> None:
            self.store.write = fail  # type: ignore[method-assign]
            try:
                real_release(self)
            finally:
                del self.store.write

        def finish_on_a_dead_store(self: SyncRunner, *args: Any) -> Any:
            self.store.write = fail  # type: ignore[method-assign]
            raise gone

        with monkeypatch.context() as patch:
            patch.setattr(SyncRunner, "_finish", finish_on_a_dead_store)
            patch.setattr(Lease, "release", release_on_a_dead_store)
            result = engine.run("changed")
        engine.store.__dict__.pop("write", None)
        assert result.status == "failed" and result.run_id is not None
        said = "its end could not be recorded: database error (OperationalError): disk I/O error"
        assert result.error == said
        # the lease it could not give back expires, or is seen gone with this process
        assert engine.run("changed").status == "ok"
        assert engine.run_detail(result.run_id).run.error == INTERRUPTED

        # the whole end refused (a full disk), the least of it not: the run's failure is
        # recorded with its error, not found later as interrupted with the cause lost
        with monkeypatch.context() as patch:
            patch.setattr(SyncRunner, "_finish", fail)
            result = engine.run("changed")
        assert result.status == "failed" and result.error == said
        recorded = engine.run_detail(result.run_id).run
        assert (recorded.status, recorded.error) == ("failed", said)
        assert recorded.finished is not None
        assert engine.run("changed").status == "ok"
        assert engine.run_detail(result.run_id).run.error == said
    finally:
        engine.close()
