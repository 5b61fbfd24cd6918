"""Pilot tests of the UI's flows with a real engine on a temp SQLite store and the
simulator in its own process: syncs launched from the keyboard, a Parziale of marked
records, cancelling, a refused launch, quitting and hanging up while a sync runs."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any

import pytest
from textual.coordinate import Coordinate
from textual.widgets import Checkbox, Input, Label, RadioButton, RichLog, SelectionList, Static
from textual.worker import WorkerCancelled
from ui_screen import on_screen, screen_lines, workers_done

from passweb_tui.app import PasswebApp, create_app
from passweb_tui.engine.facade import Engine
from passweb_tui.screens.base import ConfirmScreen, KeyTable, SyncBadge
from passweb_tui.screens.changes import ChangesScreen, RecordHistoryScreen
from passweb_tui.screens.record import RecordScreen
from passweb_tui.screens.runs import RunDetailScreen, RunsScreen
from passweb_tui.screens.sync import SyncScreen

pytestmark = pytest.mark.anyio
pytest_plugins = ["ui_fixtures"]

SYNC_TIMEOUT_S = 60


def slow_erp(erp_sim: Any, latency_ms: int = 1000) -> None:
    """Make every ERP reply slow enough that a run is still going when we act on it."""
    erp_sim.admin("PUT", "/faults", json={"latency_ms": latency_ms})


async def wait_sync(pilot: Any, app: PasswebApp) -> None:
    await asyncio.wait_for(app.sync_ended.wait(), SYNC_TIMEOUT_S)
    await pilot.pause()


async def wait_running(pilot: Any, app: PasswebApp) -> None:
    """Until the engine accepted the run and reported it (its handle is attached)."""
    for _ in range(400):
        if app.sync.handle is not None and app.sync.running:
            return
        await pilot.pause(0.05)
    raise AssertionError("the sync never started")


async def exited(app: PasswebApp) -> None:
    """Until the app's exit after a cancelled sync went through (its worker ended)."""
    for worker in [w for w in app.workers if w.group == "exit"]:
        # the app shuts its workers down as it exits, this one included
        with contextlib.suppress(WorkerCancelled):
            await worker.wait()


def table_keys(app: Any, selector: str) -> list[str]:
    """Row keys of a table in the order shown."""
    table = app.screen.query_one(selector, KeyTable)
    return [
        str(table.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value)
        for i in range(table.row_count)
    ]


async def test_changed_from_the_keyboard_then_its_detail_and_changes(engine: Engine) -> None:
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s")
        assert isinstance(app.screen, SyncScreen)
        await pilot.press("v")
        await wait_sync(pilot, app)
        snap = app.sync.snapshot()
        assert snap is not None and snap.status == "ok"
        # the first Variati runs as a Totale, and says so
        assert (snap.kind, snap.ran_kind) == ("changed", "total")
        summary = str(app.screen.query_one("#sync-summary", Static).render())
        assert "Variati ran as Totale" in summary
        assert "rejected 0" in summary
        assert "Totale: ok" in str(app.screen.query_one("#sync-badge", Static).render())
        run = engine.runs(limit=1)[0]
        assert run.run_id == snap.run_id and run.requested_kind == "changed"
        # the log tells the run step by step, with the time of day and how long each took
        lines = [s.text.rstrip() for s in app.screen.query_one("#sync-log", RichLog).lines]
        texts = [line.split("  ", 1)[1] for line in lines]
        assert texts[0] == "reading the ERP's field catalogue"
        fetched = {e: c["fetched"] for e, c in run.entities.items()}
        articles = f"articles: {fetched['articles']:,} records"
        assert any(text.startswith(articles + " (") for text in texts), lines
        assert texts[-1].startswith("finished: ok (")
        assert all(re.match(r"\d\d:\d\d:\d\d  ", line) for line in lines), lines
        # the summary adds up: what was read is new, changed, unchanged, rejected, or not
        # for the site
        summary = " ".join(str(app.screen.query_one("#sync-summary").render()).split())
        off_site = sum(run.off_site.values())
        assert off_site > 0 and f"not for the site {off_site:,}" in summary, summary

        await pilot.press("e")
        assert isinstance(app.screen, RunDetailScreen)
        await workers_done(app)
        await pilot.pause()
        counts = table_keys(app, "#run-counts")
        assert {"articles", "customers", "categories"} <= set(counts)
        # what the run said of itself, as `sync` prints it
        header = str(app.screen.query_one("#run-header", Static).render())
        assert "Notes: no correctly completed sync yet: this CHANGED runs as a TOTAL" in header
        await pilot.press("escape", "l")
        assert isinstance(app.screen, ChangesScreen)
        for _ in range(2):  # the entries, then their counts
            await workers_done(app)
            await pilot.pause()
        rows = app.screen.query_one("#changes-table", KeyTable)
        assert rows.row_count > 0
        assert app.screen.query_one("#f-run", Input).value == str(snap.run_id)
        # the title counts every change the filter picks, and says when it shows a page
        logged = sum(n for _, _, n in engine.change_counts(run_id=snap.run_id))
        title = str(app.screen.query_one("#changes-log-title", Label).render())
        shown = f" (newest {rows.row_count} shown)" if logged > rows.row_count else ""
        assert title == f"Change log: {logged:,}{shown}", title
        # narrowed to one record, the counts per field are that record's
        one = str(rows.coordinate_to_cell_key(Coordinate(0, 0)).row_key.value)
        key = app.screen._rows[one].key
        app.screen.query_one("#f-key", Input).value = key
        for _ in range(2):
            await workers_done(app)
            await pilot.pause()
        mine = sum(n for _, _, n in engine.change_counts(run_id=snap.run_id, key=key))
        title = str(app.screen.query_one("#changes-log-title", Label).render())
        assert title == f"Change log: {mine}", title
        per_field = app.screen.query_one("#changes-counts-table", KeyTable)
        assert sum(int(str(per_field.get_row_at(i)[-1]).replace(",", ""))
                   for i in range(per_field.row_count)) == mine  # fmt: skip


async def test_total_then_partial_of_typed_codes(engine: Engine, erp_sim: Any) -> None:
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s", "t")
        await wait_sync(pilot, app)
        assert app.sync.snapshot().status == "ok"
        total = engine.runs(limit=1)[0]
        assert total.kind == "total" and total.requested_kind == "total"
        codes = [row["code"] for row in engine.articles(limit=2)]

        screen = app.screen
        picker = screen.query_one("#sync-entity", SelectionList)
        picker.focus()
        await pilot.press("space")  # the first entity: articles
        screen.query_one("#sync-codes", Input).focus()
        await pilot.press(*", ".join(codes))
        await pilot.press("enter")  # to Launch (a second enter launches)
        assert app.focused is not None and app.focused.id == "sync-launch"
        assert not app.sync.running
        # the scope filled in chose the Parziale: Launch runs it, not the Variati the form
        # had selected
        assert screen.query_one("#kind-partial", RadioButton).value
        await pilot.press("enter")
        await wait_sync(pilot, app)
        partial = engine.runs(limit=1)[0]
        assert partial.kind == "partial" and partial.status == "ok"
        assert partial.scope == {"entities": ["articles"], "codes": codes}
        assert partial.entities["articles"]["fetched"] == 2

        # codes with two entities chosen: refused by the form, with the reason
        picker.focus()
        await pilot.press("down", "space")  # customers too
        screen.query_one("#sync-entities", KeyTable).focus()
        await pilot.press("p")
        assert any("exactly one entity" in str(n.message) for n in app._notifications)
        # whole entities: no codes
        screen.query_one("#sync-codes", Input).value = ""
        await pilot.press("p")
        await wait_sync(pilot, app)
        whole = engine.runs(limit=1)[0]
        assert whole.scope == {"entities": ["articles", "customers"], "codes": []}
        assert whole.entities["articles"]["fetched"] == total.entities["articles"]["fetched"]
        assert whole.entities["customers"]["fetched"] > 0
        # a Variati with the scope still on the form reads everything, and says so: the
        # entities left ticked must not look as if they applied
        app._notifications.clear()
        await pilot.press("y", "v")  # a dry run: nothing written
        await wait_sync(pilot, app)
        changed = engine.runs(limit=1)[0]
        assert changed.kind == "changed" and changed.scope is None
        said = [str(n.message) for n in app._notifications]
        assert any(
            m.startswith("Variati reads everything: the entities and codes chosen are for a")
            and m.endswith("Parziale (p).")
            for m in said
        ), said


async def test_partial_of_records_marked_in_the_catalogue(synced: Engine) -> None:
    engine = synced
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        await workers_done(app)
        await pilot.pause()
        shown = table_keys(app, "#catalogue-table")
        assert len(shown) == 200  # one page
        # mark the 1st and 3rd record, and a customer: only the articles go in this run
        await pilot.press("space", "j", "space")
        assert app.marked["articles"] == {shown[0], shown[2]}
        await pilot.press("p")
        await wait_sync(pilot, app)
        run = engine.runs(limit=1)[0]
        assert run.kind == "partial" and run.status == "ok"
        assert run.scope == {"entities": ["articles"], "codes": sorted([shown[0], shown[2]])}
        assert run.entities["articles"]["fetched"] == 2

        # search narrows the list; the marks stay
        await pilot.press("slash", *shown[5])
        await workers_done(app)
        await pilot.pause()
        assert table_keys(app, "#catalogue-table") == [shown[5]]
        await pilot.press("enter")  # a whole code: its record opens
        await workers_done(app)
        await pilot.pause()
        assert isinstance(app.screen, RecordScreen) and app.screen.code == shown[5]
        await pilot.press("h")  # the record's history: inserted by the Totale
        assert isinstance(app.screen, RecordHistoryScreen)
        await workers_done(app)
        await pilot.pause()
        history = app.screen.query_one("#history-table", KeyTable)
        assert history.row_count == len(engine.record_history("articles", shown[5])) >= 1
        await pilot.press("escape", "escape")  # the history, then the record
        await pilot.press("t")  # to the customers
        await workers_done(app)
        await pilot.pause()
        assert app.screen.entity == "customers"


async def test_cancel_asks_first_and_the_run_ends_cancelled(synced: Engine, erp_sim: Any) -> None:
    engine = synced
    slow_erp(erp_sim)
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s", "t")
        await wait_running(pilot, app)
        # another kind's key while it runs: refused, and the form keeps the running kind
        await pilot.press("v")
        assert app.screen.selected_kind() == "total"  # type: ignore[attr-defined]
        # the elapsed time moves on between the engine's events (a slow ERP)
        first = str(app.screen.query_one("#sync-phase").render())
        await pilot.pause(1.6)
        assert str(app.screen.query_one("#sync-phase").render()) != first
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # not yet
        assert app.sync.running and not app.sync.cancelling
        await pilot.press("x", "y")
        await wait_sync(pilot, app)
        assert app.sync.snapshot().status == "cancelled"
    run = engine.runs(limit=1)[0]
    assert run.status == "cancelled" and run.kind == "total"


async def test_a_refused_launch_says_why(synced: Engine, erp_sim: Any) -> None:
    engine = synced
    slow_erp(erp_sim)
    other = engine.start_run("changed")  # as if launched by the service or another terminal
    try:
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("s", "t")
            await wait_sync(pilot, app)
            snap = app.sync.snapshot()
            assert snap.status == "refused"
            assert f"run {other.run_id}" in (snap.error or "")
            summary = str(app.screen.query_one("#sync-summary", Static).render())
            assert "Sync refused" in summary and f"run {other.run_id}" in summary
            assert any(n.title == "Sync refused" for n in app._notifications)
            # the holder's times on this machine's clock, as the screens give times
            assert re.search(r"since \d\d:\d\d:\d\d, lease until \d\d:\d\d:\d\d", summary)
            assert "+00:00" not in summary and "heartbeat" not in summary
    finally:
        other.cancel()
        other.wait(SYNC_TIMEOUT_S)


async def test_the_monthly_quota_refuses_a_launch_from_the_ui(synced: Engine) -> None:
    """The quota binds the operator at the terminal as on the command line: with this
    month's TOTAL/CHANGED used up, the UI's launch is refused, saying so."""
    from dataclasses import replace

    engine = synced
    before = engine.settings
    engine.settings = replace(before, monthly_quota=1)  # the store's TOTAL used it up
    try:
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("s", "t")
            await wait_sync(pilot, app)
            snap = app.sync.snapshot()
            assert snap.status == "refused"
            assert "monthly sync quota used up" in (snap.error or "")
    finally:
        engine.settings = before


async def test_with_a_monthly_quota_the_launcher_asks_before_spending_one(
    synced: Engine,
) -> None:
    """A TOTAL or CHANGED from the launcher spends one of the month's: with a quota set,
    a stray key does not start one; a dry run, which spends nothing, does not ask."""
    from dataclasses import replace

    engine = synced
    before = engine.settings
    engine.settings = replace(before, monthly_quota=50)
    try:
        used = engine.quota_left()
        assert used is not None and used[1] == 50
        runs = len(engine.runs(limit=100))
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("s", "t")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            question = str(app.screen.query_one("#confirm-question", Label).render())
            assert f"Start a Totale? It counts against the monthly quota: {used[0]} of 50" in (
                question
            )
            await pilot.press("n")
            await pilot.pause()
            assert not app.sync.running and len(engine.runs(limit=100)) == runs
            await pilot.press("v")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await wait_sync(pilot, app)
            assert app.sync.snapshot().status == "ok"
            assert len(engine.runs(limit=100)) == runs + 1
    finally:
        engine.settings = before


async def test_quitting_while_a_sync_runs_asks_and_cancels_it(synced: Engine, erp_sim: Any) -> None:
    engine = synced
    slow_erp(erp_sim)
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s", "t")
        await wait_running(pilot, app)
        handle = app.sync.handle
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.is_running and app.sync.running
        await pilot.press("ctrl+q", "y")
        await exited(app)
    assert handle.done
    assert engine.runs(limit=1)[0].status == "cancelled"


async def test_quitting_from_the_keys_list_while_a_sync_runs_asks_too(
    synced: Engine, erp_sim: Any
) -> None:
    from passweb_tui.screens.keys import KeysScreen

    slow_erp(erp_sim)
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s", "t")
        await wait_running(pilot, app)
        await pilot.press("f1")
        assert isinstance(app.screen, KeysScreen)
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # back to the list, the sync still going
        assert isinstance(app.screen, KeysScreen)
        assert app.is_running and app.sync.running
        await pilot.press("escape", "ctrl+q", "y")
        await exited(app)
    assert synced.runs(limit=1)[0].status == "cancelled"


async def test_hangup_cancels_the_sync_cleanly_and_exits(synced: Engine, erp_sim: Any) -> None:
    engine = synced
    slow_erp(erp_sim)
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s", "v")
        await wait_running(pilot, app)
        handle = app.sync.handle
        app.hangup()
        await exited(app)
    assert app.return_code == 1
    assert handle.done
    run = engine.runs(limit=1)[0]
    assert run.status == "cancelled" and run.kind == "changed"
    assert run.error == "cancelled by SIGHUP (the terminal hung up)"  # not "by the operator"
    # nothing half-written: a dry-run Variati afterwards still runs and finds the store usable
    erp_sim.admin("DELETE", "/faults")
    assert engine.run("changed", dry_run=True).status in {"ok", "ok_with_rejects"}


async def test_a_dry_run_says_it_has_no_change_log_instead_of_opening_an_empty_one(
    synced: Engine,
) -> None:
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s", "y", "v")  # a Variati as a dry run
        await wait_sync(pilot, app)
        snap = app.sync.snapshot()
        assert snap is not None and snap.dry_run and snap.status == "ok"
        summary = str(app.screen.query_one("#sync-summary", Static).render())
        assert "l:" not in summary  # the change log is not offered
        assert "A dry run writes no change log" in summary and "e: run detail" in summary

        def told() -> int:
            said = f"Run #{snap.run_id} was a dry run: it wrote nothing, so it has no change log"
            return sum(said in str(n.message) for n in app._notifications)

        await pilot.press("l")
        assert isinstance(app.screen, SyncScreen) and told() == 1

        # the same run in the history and in its detail
        await pilot.press("r")
        await workers_done(app)
        await pilot.pause()
        assert table_keys(app, "#runs-table")[0] == str(snap.run_id)
        await pilot.press("l")
        assert isinstance(app.screen, RunsScreen) and told() == 2
        await pilot.press("enter")
        await workers_done(app)
        await pilot.pause()
        assert isinstance(app.screen, RunDetailScreen)
        await pilot.press("l")
        assert isinstance(app.screen, RunDetailScreen) and told() == 3
        # a run that wrote keeps its change log a key away
        await pilot.press("escape", "j", "l")
        assert isinstance(app.screen, ChangesScreen)


async def test_a_dry_run_that_would_change_things_lists_them(engine: Engine) -> None:
    """The launcher's last dry run keeps what it would change: l lists it (the first
    1,000), nothing of it in the store; from the history, the run is only counted."""
    from passweb_tui.screens.changes import WouldChangeScreen

    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s", "y", "v")  # on an empty store: a dry Totale
        await wait_sync(pilot, app)
        snap = app.sync.snapshot()
        assert snap is not None and snap.dry_run and snap.result is not None
        would = snap.result.would_change
        assert would and all(change == "inserted" for _, _, change, *_ in would)
        summary = str(app.screen.query_one("#sync-summary", Static).render())
        assert "l: what this dry run would change" in summary
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, WouldChangeScreen)
        shown = table_keys(app, "#would-table")
        assert len(shown) == len(would) == min(1000, snap.result.totals()["inserted"])
        assert on_screen(app, f"What dry run #{snap.run_id} would change"), screen_lines(app)
        assert engine.changes() == [] and engine.dashboard().articles == 0
        await pilot.press("enter")  # a record's history: nothing recorded yet
        await workers_done(app)
        await pilot.pause()
        assert isinstance(app.screen, RecordHistoryScreen)
        assert app.screen.query_one("#history-table", KeyTable).row_count == 0


async def test_the_log_wraps_to_a_narrower_terminal_and_shows_its_end(synced: Engine) -> None:
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s", "v")
        await wait_sync(pilot, app)
        log = app.screen.query_one("#sync-log", RichLog)
        wide = [strip.text.rstrip() for strip in log.lines]
        assert wide[-1].endswith(")") and "finished: ok (" in wide[-1]
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.pause()
        width = log.scrollable_content_region.width
        narrow = [strip.text.rstrip() for strip in log.lines]
        assert width < 60 and all(len(line) <= width for line in narrow), (width, narrow)
        # the same words, wrapped again, and the last of them in view
        assert " ".join(" ".join(narrow).split()) == " ".join(" ".join(wide).split())
        assert log.max_scroll_x == 0
        assert log.scroll_y == log.max_scroll_y > 0


async def test_palette_launches_a_sync(synced: Engine) -> None:
    engine = synced
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"Sync: changed")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_sync(pilot, app)
        assert isinstance(app.screen, SyncScreen)
        assert engine.runs(limit=1)[0].requested_kind == "changed"


async def test_rejected_records_show_in_the_summary_and_the_run_detail(
    sim: Any, tmp_path: Path
) -> None:
    """A record the site cannot take (its category does not exist) is rejected with a
    reason; the launcher's summary counts it and the run's detail lists it."""
    from passweb_tui.engine.erp.settings import ErpConfig
    from passweb_tui.engine.facade import EngineSettings

    erp = ErpConfig(sim.url, sim.user, sim.password, sim.azienda, sim.anno)
    engine = Engine.open(EngineSettings(f"sqlite:///{tmp_path / 'store.db'}", erp))
    try:
        engine.run("total")
        bad = sim.admin(
            "POST",
            "records/articoli",
            json={
                "codice": "BAD0001",
                "descrizione": "Category the ERP never defined",
                "alq_iva": "22",
                "um_principale": "PZ",
                "cod_grp_merc": "ZZZZ",
                "cat_web": "ZZZZ",
                "trasf_sito": [[1, "S"]],
            },
        ).json()["key"]
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("s", "v")
            await wait_sync(pilot, app)
            assert app.sync.snapshot().status == "ok_with_rejects"
            summary = str(app.screen.query_one("#sync-summary", Static).render())
            assert "rejected 1" in summary
            await pilot.press("e")
            await workers_done(app)
            await pilot.pause()
            rejects = app.screen.query_one("#run-rejects", KeyTable)
            assert rejects.row_count == 1
            entity, key, reason = (str(c) for c in rejects.get_row_at(0))
            assert (entity, key) == ("articles", bad) and "unknown category" in reason
            title = str(app.screen.query_one("#run-rejects-title", Label).render())
            assert title == "Rejected records: 1"
            # the reject under the cursor is said whole under the table
            note = str(app.screen.query_one("#run-reject-note", Static).render())
            assert note == f"articles {bad}: {reason}", note
    finally:
        engine.close()


async def test_a_change_is_shown_whole_under_the_change_log(sim: Any, tmp_path: Path) -> None:
    """Old and new values are cut in the table's cells (two long descriptions that differ
    at their end read alike there); the change under the cursor is shown whole under
    it, at 80 columns too."""
    from passweb_tui.engine.erp.settings import ErpConfig
    from passweb_tui.engine.facade import EngineSettings

    erp = ErpConfig(sim.url, sim.user, sim.password, sim.azienda, sim.anno)
    engine = Engine.open(EngineSettings(f"sqlite:///{tmp_path / 'store.db'}", erp))
    try:
        engine.run("total")
        code = engine.articles(limit=1)[0]["code"]
        client = engine.client()
        before = (client.get("articoli", code) or {})["descrizione"]
        after = (before + ", rotolo da 25 metri, diametro 32 mm")[-80:]
        client.update("articoli", code, {"descrizione": after})
        assert engine.run("changed").status == "ok"
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("c")
            await workers_done(app)
            await pilot.pause()
            assert isinstance(app.screen, ChangesScreen)
            await pilot.press("slash", *code, "enter")
            await workers_done(app)
            await pilot.pause()
            cells = [str(c) for c in app.screen.query_one("#changes-table", KeyTable).get_row_at(0)]
            assert after not in cells  # cut in the table
            note = str(app.screen.query_one("#changes-note", Static).render())
            assert f"{code} descrizione: {before} → {after}" in " ".join(note.split()), note
    finally:
        engine.close()


async def test_the_form_shows_the_kind_launched_from_the_palette(synced: Engine) -> None:
    """A Variati from the palette after the form was left on Parziale: the form shows
    Variati, so that Launch would not start a Parziale the operator did not see."""
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        app.screen.query_one("#kind-partial", RadioButton).value = True  # as left last time
        app.screen.query_one("#sync-dry", Checkbox).value = True  # with a dry run ticked
        await pilot.press("d", "ctrl+p")
        await pilot.press(*"Sync: changed")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_sync(pilot, app)
        assert isinstance(app.screen, SyncScreen)
        assert synced.runs(limit=1)[0].requested_kind == "changed"
        assert app.screen.selected_kind() == "changed"
        # the palette's run was no dry run: the box says so, so Launch repeats what ran
        assert synced.runs(limit=1)[0].dry_run is False
        assert app.screen.query_one("#sync-dry", Checkbox).value is False


async def test_the_cancel_question_goes_when_the_run_ends_by_itself(
    synced: Engine, erp_sim: Any
) -> None:
    slow_erp(erp_sim, 300)
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s", "t")
        await wait_running(pilot, app)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        erp_sim.admin("DELETE", "/faults")  # the run now ends before the operator answers
        await wait_sync(pilot, app)
        await pilot.pause(0.2)
        # the question turns into a notice, which the answer meant for it closes: the
        # `y` does not fall through to the launcher (where it switches the dry run)
        assert isinstance(app.screen, ConfirmScreen)
        assert on_screen(app, "ended by itself before it was cancelled"), screen_lines(app)
        assert app.sync.snapshot().status == "ok"
        await pilot.press("y")
        await pilot.pause(0.1)
        assert isinstance(app.screen, SyncScreen)
        assert not app.screen.query_one("#sync-dry", Checkbox).value
        assert app.sync.snapshot().status == "ok"
        # the top bar and the launcher show the end, not the last progress
        assert str(app.screen.query_one(SyncBadge).render()) == "Totale: ok"
        assert on_screen(app, "Records read"), screen_lines(app)
    assert synced.runs(limit=1)[0].status == "ok"


async def test_the_quit_question_goes_when_the_run_ends_by_itself(
    synced: Engine, erp_sim: Any
) -> None:
    """Asked whether to cancel the running sync and quit, the operator has not answered
    when the run ends by itself: the question (about a run that no longer runs) goes,
    nothing is cancelled, the app stays, and the quit key then quits at once."""
    slow_erp(erp_sim, 300)
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s", "t")
        await wait_running(pilot, app)
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmScreen)
        erp_sim.admin("DELETE", "/faults")
        await wait_sync(pilot, app)
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen)
        assert on_screen(app, "nothing to cancel. ^q quits"), screen_lines(app)
        assert app.sync.snapshot().status == "ok"
        await pilot.press("y")  # meant as "cancel and quit": it only closes the notice
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmScreen)
        assert app.is_running
        await pilot.press("ctrl+q")  # no run now: no question
        await exited(app)
    assert app.return_code == 0
    assert synced.runs(limit=1)[0].status == "ok"
