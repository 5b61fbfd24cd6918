"""What a user sees on small terminals: the launcher below 80 columns, each screen's
footer at 80x24, and the setup screen's message at 60x20."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from textual.widgets import Button, Input
from ui_screen import on_screen, screen_lines, workers_done

from passweb_tui.app import PasswebApp, create_app
from passweb_tui.engine.facade import Engine
from passweb_tui.i18n import t

pytestmark = pytest.mark.anyio
pytest_plugins = ["ui_fixtures"]

SYNC_TIMEOUT_S = 60


async def settle(app: PasswebApp, pilot: Any) -> None:
    await workers_done(app)
    await pilot.pause()


@pytest.mark.parametrize(
    "size",
    [(60, 20), pytest.param((70, 24), marks=pytest.mark.slow)],
    ids=lambda s: f"{s[0]}x{s[1]}",
)
async def test_the_launcher_is_usable_below_80_columns(
    synced: Engine, size: tuple[int, int]
) -> None:
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=size) as pilot:
        await pilot.press("s")
        await settle(app, pilot)
        # every part of the form comes into view when the focus moves to it
        for selector, label in (
            ("#sync-kind", "Totale"),
            ("#sync-dry", "Dry run (write nothing)"),
            ("#sync-entity", "particolarita"),
            ("#sync-codes", "codes, comma separated"),
            ("#sync-launch", "Launch"),
        ):
            app.screen.query_one(selector).focus()
            await pilot.pause()
            assert on_screen(app, label), (selector, screen_lines(app))
        # (nothing is marked, so that box cannot take the focus: it sits above Launch)
        assert on_screen(app, "marked in catalogue (0)"), screen_lines(app)

        await pilot.press("v")
        await asyncio.wait_for(app.sync_ended.wait(), SYNC_TIMEOUT_S)
        await settle(app, pilot)
        lines = screen_lines(app)
        # the run's table shows all its columns, and the whole summary is in view
        header = next(line for line in lines if "Entity" in line)
        assert all(name in header for name in ("Done", "%", "Rate", "ETA")), lines
        summary = str(app.screen.query_one("#sync-summary").render())
        assert "Records read" in summary
        for line in summary.splitlines():
            assert on_screen(app, line), (line, lines)


def footer_items(app: PasswebApp) -> list[str]:
    """What the footer should show: "key description" of each binding shown in it (the
    footer shows one key per action)."""
    items: dict[str, str] = {}
    for _node, binding, _enabled, _tip in app.screen.active_bindings.values():
        if binding.show and binding.action not in items:
            items[binding.action] = f"{app.get_key_display(binding)} {binding.description}"
    return list(items.values())


#: (screen, keys that lead there from the dashboard, what its footer must show in English)
FOOTERS = [
    ("dashboard", "", ["s Sync", "o Orders", "r Runs", "^q Quit", "f1 Keys"]),
    ("sync", "s", ["t Totale", "v Variati", "p Parziale", "y Dry run", "x Cancel", "f1 Keys"]),
    ("changes", "c", ["/ Search", "h Record history", "f1 Keys"]),
    ("record history", "c h", ["f1 Keys"]),
    ("categories", "g", ["tab Other pane", "f1 Keys"]),
    ("catalogue", "a", ["/ Search", "t Articles/customers", "space Mark", "p Parziale"]),
    ("orders", "o", ["/ Search", "S Send now", "f1 Keys"]),
    ("updates to review", "o 3", ["/ Search", "a Acknowledge", "A Acknowledge all", "f1 Keys"]),
    ("runs", "r", ["l Run's changes", "f1 Keys"]),
    ("run detail", "r enter", ["l Run's changes", "f1 Keys"]),
    ("fields", "f", ["space Use/unuse", "t Next table", "u Attribute update", "f1 Keys"]),
]


# Italian's labels are the longer ones; English's run in the slow sweep
@pytest.mark.parametrize(
    "language", [pytest.param("en", marks=pytest.mark.slow), "it"], indirect=True
)
async def test_every_footer_fits_80_columns(synced_readonly: Engine, language: str) -> None:
    app = create_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        footer = screen_lines(app)[-1]
        assert all(item in footer for item in footer_items(app)), footer
        if language == "en":
            for item in ("^t Test connection", "^s Save", "^d Demo", "^q Quit", "f1 Keys"):
                assert item in footer, footer

    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        for name, keys, wanted in FOOTERS:
            await pilot.press("d", *keys.split())
            await settle(app, pilot)
            footer = screen_lines(app)[-1]
            shown = footer_items(app)
            assert f"f1 {t('key.help')}" in footer, (name, footer)  # F1 lists them all
            assert [item for item in shown if item not in footer] == [], (name, footer)
            if language == "en":
                assert [item for item in wanted if item not in footer] == [], (name, footer)
            while len(app.screen_stack) > 1:
                await pilot.press("escape")


async def test_the_setup_message_is_in_view_on_a_short_terminal() -> None:
    """At 60x20 the form does not fit: what Test or Save answered must still show."""
    app = create_app(None)
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+s")  # from the first field, at the top of the form
        await pilot.pause()
        assert on_screen(app, "WebAPI URL: required."), screen_lines(app)

        app.screen.query_one("#setup-url", Input).value = "http://erp.example.com/webapi"
        app.screen.query_one("#setup-save", Button).focus()  # the button itself
        await pilot.press("enter")
        await pilot.pause()
        assert on_screen(app, "User: required."), screen_lines(app)


def table_lines(app: PasswebApp, table: Any) -> list[str]:
    """The lines of `table` as the terminal shows them (header first)."""
    region = table.region
    lines = screen_lines(app)[region.y : region.y + region.height]
    return [line[region.x : region.x + region.width] for line in lines]


def row_in_view(table: Any, key: str) -> bool:
    """Whether the table's row `key` is inside the part of the table on screen."""
    row = table.get_row_index(key)
    shown = table.scrollable_content_region.height - table.header_height
    return int(table.scroll_y) <= row < int(table.scroll_y) + shown


def whole_cells(app: PasswebApp, table: Any, columns: list[str]) -> None:
    """Each row of `table` on screen shows the whole value of each of `columns`."""
    assert table.virtual_size.width <= table.scrollable_content_region.width, "cut at the edge"
    lines = table_lines(app, table)
    keys = [str(c.value) for c in table.columns]
    for index in range(table.row_count):
        row_key = table.coordinate_to_cell_key((index, 0)).row_key.value
        if not row_in_view(table, str(row_key)):
            continue
        line = lines[table.header_height + index - int(table.scroll_y)]
        for column in columns:
            assert column in keys, (column, keys)
            value = str(table.get_cell(row_key, column))
            # the whole value, not the start of a longer one nor its end
            assert re.search(rf"(?<!\S){re.escape(value)}(?!\S)", line), (column, value, line)


# it samples a live run's frames, whose timing a loaded machine moves: in the slow sweep
@pytest.mark.slow
async def test_the_running_entity_stays_in_view_at_80x24(engine: Engine, erp_sim: Any) -> None:
    """During a first Totale (10 entities and more) the table of the launcher shows the
    entity being worked on; after it, every entity at once; numbers never cut."""
    # each request slow enough that a loaded machine, sampling every 50 ms and retrying
    # a frame for up to a second, still sees the last entities while they run
    erp_sim.admin("PUT", "/faults", json={"latency_ms": 250})
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("s", "t")
        table = app.screen.query_one("#sync-entities")
        seen: set[str] = set()
        while not app.sync_ended.is_set():
            await pilot.pause(0.05)
            snap = app.sync.snapshot()
            if snap is None or not snap.running or not snap.entities:
                continue
            entity = snap.entities[-1].entity
            if entity not in [str(k.value) for k in table.rows]:
                continue  # not in the table yet
            if not row_in_view(table, entity):
                await pilot.pause(0.2)  # the table follows on the next refresh
                now = app.sync.snapshot()
                if now is not None and now.running and now.entities[-1].entity == entity:
                    assert row_in_view(table, entity), (entity, table_lines(app, table))
            seen.add(entity)
            for tries_left in (3, 2, 1, 0):
                try:
                    whole_cells(app, table, ["entity", "done", "pct"])
                    break
                except AssertionError:
                    # a frame drawn while the table was being laid out for a new row:
                    # the next refreshes (within a second) must show every cell whole
                    if not tries_left:
                        raise
                    await pilot.pause(0.3)
        await settle(app, pilot)
        # rows from the 8th on (below the old fold) were seen in view while their entity ran
        assert seen & {"articles", "customers", "conditions"}, seen
        assert table.row_count >= 10
        for key in table.rows:
            assert row_in_view(table, str(key.value)), (key.value, screen_lines(app))
        whole_cells(app, table, ["entity", "done", "pct"])
        assert on_screen(app, "Records read"), screen_lines(app)


def a_run(run_id: int, kind: str, status: str, changes: int, rejected: int) -> dict[str, Any]:
    entities = {"articles": {"inserted": changes, "rejected": rejected}}
    return {
        "run_id": run_id,
        "kind": kind,
        "status": status,
        "dry_run": kind == "partial",
        "duration_s": 754.0,
        "entities": entities,
        "started": "2024-03-01T10:15:00",
    }


@pytest.mark.parametrize("language", ["en", "it"], indirect=True)
async def test_the_dashboard_shows_whole_numbers_at_80x24(
    synced_readonly: Engine, language: str
) -> None:
    from passweb_tui.screens.dashboard import DashboardScreen, DashboardView

    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        view = DashboardView(
            erp_state="ok",
            runs=[
                a_run(1042, "changed", "ok_with_rejects", 93, 1_234),
                a_run(1041, "partial", "cancelled", 123_456, 7),
                a_run(1040, "total", "ok", 98_765, 0),
            ],
            field_changes=[
                ("article_statistic_categories", "a_rather_long_field_name_of_the_erp", 93),
                ("articles", "descrizione", 12_345),
            ],
        )
        screen.show(view)
        await pilot.pause()
        for selector, columns in (
            ("#dash-runs-table", ["kind", "status", "duration", "changes", "rejected"]),
            ("#dash-fields-table", ["count"]),
        ):
            table = screen.query_one(selector)
            table.scroll_visible(animate=False, immediate=True)
            await pilot.pause()
            whole_cells(app, table, columns)
            header = table_lines(app, table)[0]
            shown = [str(c.value) for c in table.columns]
            if "started" in shown:  # the start time, if there is room, comes last
                assert shown[-1] == "started"
            assert t("col.count" if "count" in columns else "col.rejected") in header


#: (keys to the screen, its table, columns whose whole values must show)
TABLES_AT_80 = [
    ("r", "#runs-table", ["id", "kind", "status", "changes", "rejected"]),
    ("r enter", "#run-counts", ["fetched", "inserted", "updated", "deleted", "rejected"]),
    ("c", "#changes-table", ["run", "entity", "change"]),
    ("a", "#catalogue-table", ["code", "prices", "category", "vat"]),
    ("a t", "#catalogue-table", ["code", "vat_number", "price_list"]),
    ("o 4", "#orders-table", ["id"]),
]


@pytest.mark.parametrize("language", ["en", "it"], indirect=True)
async def test_the_list_screens_fit_their_tables_in_80_columns(
    synced: Engine, language: str
) -> None:
    """No table is wider than the screen at 80x24 (a column cut at the edge, a number
    read wrong): columns are left out, or long texts end in an ellipsis, instead."""
    from passweb_tui.engine.facade import Scope

    synced.run("changed")
    synced.run("total", dry_run=True)
    synced.run("partial", scope=Scope(entities=("articles",), codes=("ART0000001", "ART0000002")))
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        for keys, selector, columns in TABLES_AT_80:
            for key in keys.split():
                await pilot.press(key)
                await settle(app, pilot)
            table = app.screen.query_one(selector)
            assert table.row_count > 0 or selector == "#orders-table", selector
            whole_cells(app, table, columns)
            header = table_lines(app, table)[0]
            for column in table.columns.values():
                label = str(column.label).strip()
                assert not label or label in header, (selector, label, header)
            await pilot.press("escape")
            await settle(app, pilot)


@pytest.mark.parametrize("language", ["en", "it"], indirect=True)
@pytest.mark.parametrize("days_later", [0, 2], ids=["today", "another_day"])
async def test_the_runs_list_fits_80_columns_with_long_kinds_dates_and_scopes(
    synced: Engine, language: str, days_later: int
) -> None:
    """Dry runs' kinds, a day's date before the time and Parziali's scopes make the runs'
    table wider than 80 columns: the least needed columns are left out and the scope
    gives way with an ellipsis, instead of the last column running off the edge."""
    import datetime as dt

    from passweb_tui.engine.facade import Scope

    codes = tuple(a["code"] for a in synced.articles(limit=6))
    synced.run("changed")
    synced.run("partial", scope=Scope(entities=("articles",), codes=codes[:2]))
    synced.run("partial", dry_run=True, scope=Scope(entities=("articles",), codes=codes))

    def later() -> dt.datetime:
        return dt.datetime.now() + dt.timedelta(days=days_later)

    app = create_app(synced, poll_s=0, clock=later)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        await settle(app, pilot)
        table = app.screen.query_one("#runs-table")
        assert table.row_count == 4
        # whole_cells: nothing wider than the panel, and these read whole
        whole_cells(app, table, ["id", "kind", "status", "started", "changes", "rejected"])
        header = table_lines(app, table)[0]
        for column in table.columns.values():
            assert str(column.label) in header, (str(column.label), header)
        shown = [str(c.value) for c in table.columns]
        if days_later == 0:
            # room for the scope, shortened: the duration went for it
            assert "scope" in shown and "duration" not in shown, shown
            line = table_lines(app, table)[table.header_height]  # the dry Parziale
            assert t("entity.articles") in line and line.rstrip().endswith("…"), line
        else:
            # not even for a shortened scope: the duration, narrower, is shown instead
            assert "scope" not in shown and "duration" in shown, shown


def counts_with_something(run: dict[str, Any]) -> list[str]:
    """The run detail's count columns that have a count in some row of `run` (the web
    customers and orders it could not send are rejects)."""
    from passweb_tui.screens.runs import COUNT_NAMES

    def some(name: str) -> bool:
        if name == "off_site":
            return any(run["off_site"].values())
        failed = name == "rejected" and (run["orders"]["failed"] or run["customers"]["failed"])
        return bool(failed) or any(c.get(name) for c in run["entities"].values())

    return [name for name in COUNT_NAMES if some(name)]


@pytest.mark.parametrize("language", ["en", "it"], indirect=True)
async def test_the_run_detail_shows_every_count_of_something_at_80x24(
    synced_readonly: Engine, language: str
) -> None:
    """A Totale reads records not for the site (transfer flag off): at 80x24 its detail
    shows them beside what it inserted, so that each row adds up, and the entity names
    whole; the counts of none make the room. A run with something in every count, large
    numbers and web orders and customers it could not send shows every count too, under
    short labels; no number is cut."""
    from passweb_tui.screens.runs import COUNT_NAMES, RunDetailScreen

    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r", "enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, RunDetailScreen)
        table = screen.query_one("#run-counts")
        run = synced_readonly.runs(limit=1)[0]
        wanted = counts_with_something({**run.to_json(), "off_site": run.off_site})
        assert "off_site" in wanted and "inserted" in wanted, wanted
        shown = [str(c.value) for c in table.columns]
        assert [n for n in wanted if n not in shown] == [], shown
        whole_cells(app, table, ["entity", *wanted])
        header = table_lines(app, table)[0]
        assert t("col.off_site") in header and t("col.inserted") in header, header  # not short

        counts = {"fetched": 123_456, "inserted": 12_345, "updated": 1_234,
                  "unchanged": 99_999, "deleted": 7, "rejected": 3}  # fmt: skip
        entities = ("article_statistic_categories", "discount_categories", "articles")
        every = {
            "run": {
                **run.to_json(),
                "entities": {name: counts for name in entities},
                "off_site": {"articles": 36},
                "orders": {"sent": 3, "failed": 2, "updated": 0},
                "customers": {"sent": 1, "failed": 1},
            },
            "rejects": [],
        }
        assert counts_with_something(every["run"]) == list(COUNT_NAMES)
        screen.show(every)
        await settle(app, pilot)
        assert [str(c.value) for c in table.columns] == ["entity", *COUNT_NAMES]
        whole_cells(app, table, list(COUNT_NAMES))
        header = table_lines(app, table)[0]
        for name in COUNT_NAMES:
            assert t(f"col.{name}.short") in header, (name, header)


@pytest.mark.parametrize("language", ["it"], indirect=True)
async def test_a_long_reject_reason_is_read_whole_at_80x24(synced: Engine, language: str) -> None:
    """The reason of the reject under the cursor is shown whole under the rejects, and
    the keyboard scrolls the run's detail to its end, however long it is."""
    from sqlalchemy import insert

    from passweb_tui.engine.facade import _REJECTS

    reasons = [
        f"reason {n}: " + " ".join(f"word{n}.{i}" for i in range(120)) + f" end of reason {n}"
        for n in (1, 2)
    ]
    with synced.store.write() as conn:
        for n, reason in enumerate(reasons, 1):
            conn.execute(
                insert(_REJECTS).values(run_id=1, entity="articles", key=f"BAD{n}", reason=reason)
            )
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r", "enter")
        await settle(app, pilot)
        await pilot.press("tab", "j")  # to the rejects, the second one
        await pilot.pause()
        assert app.focused is app.screen.query_one("#run-rejects")
        assert not on_screen(app, "end of reason 2"), screen_lines(app)
        note = app.screen.query_one("#run-reject-note")
        assert note.size.height >= len(reasons[1]) // note.size.width  # wrapped, not cut
        await pilot.press("tab", "end")  # to the detail's scroll, and its end
        await pilot.pause()
        assert app.focused is app.screen.query_one("#run-detail")
        lines = screen_lines(app)
        assert on_screen(app, f"{t('entity.articles')} BAD2: {reasons[1]}"), lines


@pytest.mark.parametrize("language", ["it"], indirect=True)
async def test_a_record_history_shows_a_long_change_whole_at_80x24(
    synced: Engine, language: str
) -> None:
    """The history's cells cut long values; the change under the cursor is shown whole
    under them, as in the change log."""
    import datetime as dt

    from sqlalchemy import insert

    from passweb_tui.engine.facade import _CHANGES

    code = synced.articles(limit=1)[0]["code"]
    old = "Guanti da lavoro in nitrile, " + "taglia unica " * 8 + "confezione da 100 pezzi"
    new = "Guanti da lavoro in lattice, " + "taglia unica " * 8 + "confezione da 200 pezzi"
    with synced.store.write() as conn:
        conn.execute(
            insert(_CHANGES).values(
                run_id=1, at=dt.datetime.now(dt.UTC), entity="articles", key=code,
                change="updated", field="descrizione", old=old, new=new,
            )
        )  # fmt: skip
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await settle(app, pilot)
        await pilot.press("slash", *code, "enter", "h")
        await settle(app, pilot)
        table = app.screen.query_one("#history-table")
        assert table.row_count == len(synced.record_history("articles", code)) >= 2
        whole_cells(app, table, ["run", "change"])
        header = table_lines(app, table)[0]
        assert t("col.old") in header and t("col.new") in header, header
        row = table_lines(app, table)[table.header_height]
        assert old not in row and new not in row and "…" in row, row
        assert on_screen(app, f"descrizione: {old} → {new}"), screen_lines(app)
        await pilot.press("j")  # the record's insertion: the line follows the cursor
        await pilot.pause()
        assert not on_screen(app, f"descrizione: {old}"), screen_lines(app)
        assert on_screen(app, f"{code} {t('change.inserted')}"), screen_lines(app)


@pytest.mark.parametrize("language", ["it"], indirect=True)
async def test_a_category_name_cut_in_the_tree_ends_in_an_ellipsis(
    synced_readonly: Engine, language: str
) -> None:
    from passweb_tui.screens.categories import CategoryTree

    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g")
        await settle(app, pilot)
        tree = app.screen.query_one("#cat-tree", CategoryTree)
        assert tree.virtual_size.width <= tree.scrollable_content_region.width  # no sideways
        region = tree.scrollable_content_region
        lines = screen_lines(app)[region.y : region.y + region.height]
        cut = 0
        for y, line in enumerate(lines):
            node = tree.get_node_at_line(int(tree.scroll_y) + y)
            if node is None or node.data is None:
                continue
            shown = line[region.x : region.x + region.width].rstrip()
            label = node.label.plain
            start = shown.index(label[:4])  # its code, after the guides and the toggle
            if shown[start:] != label:
                cut += 1
                assert shown.endswith("…") and label.startswith(shown[start:-1]), (shown, label)
        assert cut, lines  # at 80 columns the longer names do not fit
