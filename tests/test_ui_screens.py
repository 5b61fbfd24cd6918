"""Pilot tests of each screen on a store after a real Totale: dashboard refresh by key,
change log filters and a record's history, the category tree, fields, runs, Italian."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.coordinate import Coordinate
from textual.widgets import Input, Label, Static, Tree
from ui_screen import workers_done

from passweb_tui.app import create_app
from passweb_tui.engine.facade import Engine
from passweb_tui.i18n import set_language
from passweb_tui.screens.base import KeyTable
from passweb_tui.screens.categories import CategoriesScreen
from passweb_tui.screens.changes import ChangesScreen, RecordHistoryScreen
from passweb_tui.screens.dashboard import DashboardScreen
from passweb_tui.screens.fields import FieldsScreen
from passweb_tui.screens.record import RecordScreen
from passweb_tui.screens.runs import RunDetailScreen, RunsScreen

pytestmark = pytest.mark.anyio
pytest_plugins = ["ui_fixtures"]


async def settle(app: Any, pilot: Any) -> None:
    """Let the screen's reads finish and their results be shown (and the reads those
    start: the change log's counts come after its entries)."""
    for _ in range(3):
        await workers_done(app)
        await pilot.pause()


def keys(app: Any, selector: str) -> list[str]:
    """Row keys of a table in the order shown."""
    table = app.screen.query_one(selector, KeyTable)
    return [
        str(table.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value)
        for i in range(table.row_count)
    ]


async def test_dashboard_shows_the_store_and_refreshes_by_key(synced: Engine) -> None:
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert isinstance(app.screen, DashboardScreen)
        erp = str(app.screen.query_one("#dash-erp", Static).render())
        assert "ERP: connected" in erp and "Last successful sync" in erp and "never" not in erp
        assert "first Totale" not in erp  # the hint is for a store that never synced
        board = synced.dashboard()
        store = str(app.screen.query_one("#dash-store", Static).render())
        assert f"articles {board.articles:,}".replace(",", ".") in store
        assert keys(app, "#dash-runs-table") == ["1"]
        assert len(keys(app, "#dash-fields-table")) == len(board.field_changes)

        # a run made elsewhere shows up on the next poll, added by key above the old one
        table = app.screen.query_one("#dash-runs-table", KeyTable)
        old_row = table.get_row("1")
        synced.run("changed")
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        assert keys(app, "#dash-runs-table") == ["2", "1"]
        assert table.get_row("1") == old_row
        assert app.screen.query_one("#dash-chart").display  # two real runs: a chart


async def test_the_change_log_shows_its_entries_before_it_has_counted_them(
    synced: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting a log of millions per field takes seconds (6 s for 3.8 million entries):
    the screen showed nothing until then. The newest entries come first, the counts
    after them."""
    import threading

    counted = threading.Event()
    real_counts = synced.change_counts

    def slow_counts(**kwargs: Any) -> Any:
        counted.wait(30)
        return real_counts(**kwargs)

    monkeypatch.setattr(synced, "change_counts", slow_counts)
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("c")
        for _ in range(100):  # the entries, while the count waits
            await pilot.pause(0.05)
            if app.screen.query("#changes-table") and keys(app, "#changes-table"):
                break
        assert isinstance(app.screen, ChangesScreen)
        assert len(keys(app, "#changes-table")) == 500
        title = str(app.screen.query_one("#changes-log-title", Label).render())
        assert title == "Change log (newest 500 shown)", title
        assert keys(app, "#changes-counts-table") == []
        counted.set()
        await settle(app, pilot)
        title = str(app.screen.query_one("#changes-log-title", Label).render())
        total = sum(n for _, _, n in real_counts())
        assert title == f"Change log: {total:,} (newest 500 shown)", title
        assert "articles/(inserted)" in keys(app, "#changes-counts-table")
        # another filter: until its own counts come, no counts of the one before
        counted.clear()
        app.screen.query_one("#f-entity", Input).value = "customers"
        for _ in range(100):
            await pilot.pause(0.05)
            shown = keys(app, "#changes-table")
            if shown and all(app.screen._rows[k].entity == "customers" for k in shown):
                break
        assert keys(app, "#changes-counts-table") == []
        counted.set()
        await settle(app, pilot)
        panel = keys(app, "#changes-counts-table")
        assert panel and all(k.startswith("customers/") for k in panel), panel


async def test_a_field_typed_in_the_change_log_is_matched_without_counting_again(
    synced: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The field filter looks a typed name up among the fields the log has, which it
    had from counting every entry per field, again at each letter: 4 s a letter on a
    log of millions. The counts of the run, entity and record shown are read once; a
    run that ends reads them again."""
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("c")
        await settle(app, pilot)
        assert isinstance(app.screen, ChangesScreen)
        assert "articles/(inserted)" in keys(app, "#changes-counts-table")
        calls: list[dict[str, Any]] = []
        real_counts = synced.change_counts

        def counting(**kwargs: Any) -> Any:
            calls.append(kwargs)
            return real_counts(**kwargs)

        monkeypatch.setattr(synced, "change_counts", counting)
        field = app.screen.query_one("#f-field", Input)
        field.focus()
        for letter in "(inse":
            await pilot.press(letter)
            await settle(app, pilot)
        assert calls == []
        shown = keys(app, "#changes-table")
        assert shown and {app.screen._rows[k].change for k in shown} == {"inserted"}
        title = str(app.screen.query_one("#changes-log-title", Label).render())
        inserted = sum(n for _, f, n in real_counts() if f == "(inserted)")
        assert title == f"Change log: {inserted:,} (newest 500 shown)", title
        # another entity is counted once, then its field filter is free too
        app.screen.query_one("#f-entity", Input).value = "customers"
        await settle(app, pilot)
        assert [c["entity"] for c in calls] == ["customers"]
        shown = keys(app, "#changes-table")
        assert shown and {app.screen._rows[k].entity for k in shown} == {"customers"}
        # a run that writes its changes (it has neither started nor ended since the
        # counts were read): what it wrote is found too
        from passweb_tui.engine import models

        app.screen.query_one("#f-entity", Input).value = "articles"
        await settle(app, pilot)  # the articles' counts, kept
        run_id = synced.runs(limit=1)[0].run_id
        with synced.store.write() as conn:
            conn.execute(
                models.ChangeEntry.__table__.insert(),  # type: ignore[attr-defined]
                [{"run_id": run_id, "at": synced.runs(limit=1)[0].started, "entity": "articles",
                  "key": "ART-W", "change": "updated", "field": "qa_weight", "old": "1",
                  "new": "2"}],
            )  # fmt: skip
        field.value = "qa_w"
        await settle(app, pilot)
        shown = keys(app, "#changes-table")
        assert [app.screen._rows[k].key for k in shown] == ["ART-W"]
        # a run that ends changes what there is to count
        synced.set_used("articles", ["pubblica"], True)
        assert synced.run("changed").status == "ok"
        app.screen.query_one("#f-entity", Input).value = "articles"
        field.value = "pubbl"
        await settle(app, pilot)
        shown = keys(app, "#changes-table")
        assert shown and {app.screen._rows[k].field for k in shown} == {"pubblica"}
        assert "articles/pubblica" in keys(app, "#changes-counts-table")


async def test_change_log_filters_and_record_history(synced: Engine) -> None:
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("c")
        await settle(app, pilot)
        assert isinstance(app.screen, ChangesScreen)
        assert app.screen.query_one("#changes-table", KeyTable).row_count == 500  # one page
        counts = keys(app, "#changes-counts-table")
        assert "articles/(inserted)" in counts

        code = synced.articles(limit=1)[0]["code"]
        await pilot.press("slash", *code)
        await settle(app, pilot)
        rows = app.screen.query_one("#changes-table", KeyTable)
        assert rows.row_count == len(synced.changes(key=code))
        assert rows.row_count >= 1
        rows.focus()
        await pilot.press("h")
        assert isinstance(app.screen, RecordHistoryScreen)
        await settle(app, pilot)
        history = app.screen.query_one("#history-table", KeyTable)
        assert history.row_count == len(synced.record_history("articles", code))
        await pilot.press("escape")
        assert isinstance(app.screen, ChangesScreen)

        # an entity filter the store does not know gives an empty log, not an error
        app.screen.query_one("#f-key", Input).value = ""
        app.screen.query_one("#f-entity", Input).value = "customers"
        await settle(app, pilot)
        entities = {
            str(app.screen.query_one("#changes-table", KeyTable).get_row_at(i)[1])
            for i in range(app.screen.query_one("#changes-table", KeyTable).row_count)
        }
        assert entities == {"customers"}
        # the names the screen shows work as filters too, in either language
        for typed, shown in (("particolarita", "particolarita"), ("Clienti", "customers")):
            app.screen.query_one("#f-entity", Input).value = typed
            await settle(app, pilot)
            table = app.screen.query_one("#changes-table", KeyTable)
            assert table.row_count and {
                str(table.get_row_at(i)[1]) for i in range(table.row_count)
            } == {shown}


def test_the_field_filter_finds_fields_by_part_of_their_name(synced: Engine) -> None:
    """The change log's field filter: the field spelled exactly, or every field holding
    what is typed, in any case ("PRZ" finds prz_listino); nothing matching, nothing."""
    from passweb_tui.screens.changes import ChangeFilter, fields_meant, matching, read_changes

    counts = [
        ("articles", "prz_listino", 30),
        ("articles", "descrizione", 5),
        ("articles", "(inserted)", 7),
        ("customers", "descrizione", 2),
    ]
    assert fields_meant(counts, None) is None
    assert fields_meant(counts, "descrizione") == ["descrizione"]
    assert fields_meant(counts, "PRZ") == ["prz_listino"]
    assert fields_meant(counts, "i") == ["prz_listino", "descrizione", "(inserted)"]
    assert fields_meant(counts, "nope") == []
    assert (matching(counts, "prz"), matching(counts, "descr"), matching(counts, "nope")) == (
        30,
        7,
        0,
    )
    # on a real store: "(ins" picks the inserted records, as "(inserted)" does
    inserted = synced.changes(field="(inserted)", limit=50)
    assert inserted and synced.changes(fields=["(inserted)"], limit=50) == inserted
    entries, _ = read_changes(synced, ChangeFilter(entity="articles", field="(ins"))
    assert entries and {e.change for e in entries} == {"inserted"}
    assert read_changes(synced, ChangeFilter(field="no such field"))[0] == []


async def test_a_change_too_long_for_its_note_says_where_it_is_shown_whole(
    sim: Any, tmp_path: Any
) -> None:
    from passweb_tui.engine.erp.client import MexalClient

    engine = impatient_engine(sim, tmp_path)
    try:
        assert engine.run("total").status == "ok"
        code = engine.articles(limit=1)[0]["code"]
        long_text = " ".join(f"parola{i}" for i in range(30))[:240]
        with MexalClient(engine.settings.erp) as client:  # type: ignore[arg-type]
            client.update("articoli", code, {"descr_agg": long_text})
        assert engine.run("changed").status == "ok"
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("c")
            await settle(app, pilot)
            app.screen.query_one("#f-key", Input).value = code
            await settle(app, pilot)
            app.screen.query_one("#changes-table", KeyTable).focus()
            await pilot.pause()
            app.screen.show_note()
            note = str(app.screen.query_one("#changes-note", Static).render())
            assert len(note.splitlines()) == 4, note
            assert note.endswith("… in full in the record's history (h)"), note
            await pilot.press("h")
            await settle(app, pilot)
            shown = str(app.screen.query_one("#history-note", Static).render())
            assert long_text[-30:] in " ".join(shown.split()), shown  # all of it there
    finally:
        engine.close()


async def open_categories(app: Any, pilot: Any) -> None:
    await settle(app, pilot)
    app.screen.query_one("#dash-runs-table", KeyTable).focus()  # single keys work from tables
    await pilot.press("g")
    await settle(app, pilot)


async def test_category_tree_and_the_articles_of_a_category(synced: Engine) -> None:
    nodes = synced.categories()
    with_articles = [n for n in nodes if n.article_count]
    assert with_articles, "the demo data should link articles to categories"
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_categories(app, pilot)
        assert isinstance(app.screen, CategoriesScreen)
        tree = app.screen.query_one("#cat-tree", Tree)
        shown: list[str] = []

        def walk(node: Any) -> None:
            for child in node.children:
                shown.append(child.data)
                walk(child)

        walk(tree.root)
        assert sorted(shown) == sorted(n.code for n in nodes)
        target = with_articles[0]
        line = next(
            i for i in range(tree.last_line + 1) if tree.get_node_at_line(i).data == target.code
        )
        tree.focus()
        tree.cursor_line = line
        await settle(app, pilot)
        assert len(keys(app, "#cat-articles")) == min(target.article_count, 200)
        table = app.screen.query_one("#cat-articles", KeyTable)
        first = keys(app, "#cat-articles")[0]
        (article,) = [a for a in synced.articles(category=target.code) if a["code"] == first]
        assert article["description"] and table.get_row(first)[1] == article["description"]
        title = str(app.screen.query_one("#cat-articles-title", Label).render())
        # the category's name whole (the tree may cut it)
        assert target.description and f"{target.code} {target.description}" in title, title
        await pilot.press("tab", "enter")  # to the articles; enter opens the first in full
        await settle(app, pilot)
        assert isinstance(app.screen, RecordScreen) and app.screen.code == first
        await pilot.press("escape")
        assert isinstance(app.screen, CategoriesScreen)
        tree.focus()

        # a category with others below it counts, and lists, the articles of its branch
        parents = [n for n in nodes if any(c.parent == n.code for c in nodes)]
        assert parents, "the demo data should have a tree, not a flat list"
        parent = parents[0]
        branch = {parent.code}
        while True:
            more = {n.code for n in nodes if n.parent in branch} - branch
            if not more:
                break
            branch |= more
        total = sum(n.article_count for n in nodes if n.code in branch)
        assert total > parent.article_count  # its articles are in the categories below it
        line = next(
            i for i in range(tree.last_line + 1) if tree.get_node_at_line(i).data == parent.code
        )
        assert f"({total:,})" in str(tree.get_node_at_line(line).label)
        tree.cursor_line = line
        await settle(app, pilot)
        listed = keys(app, "#cat-articles")
        assert len(listed) == min(total, 200)
        in_branch = {a["code"] for a in synced.articles(categories=sorted(branch), limit=10_000)}
        assert len(in_branch) == total and set(listed) <= in_branch
        title = str(app.screen.query_one("#cat-articles-title", Label).render())
        assert f"{parent.code} {parent.description} and below: {total:,}" in title
        assert ("(1-200 shown; n next, b back)" in title) == (total > 200)


async def test_a_category_with_many_articles_lists_them_a_page_at_a_time(synced: Engine) -> None:
    """Over 200 articles: the first 200 and how to see the rest; n shows the next page,
    b the one before, and neither goes past the ends."""
    import sqlalchemy as sa

    from passweb_tui.engine.models import Article
    from passweb_tui.screens.categories import UNCATEGORISED

    table = Article.__table__  # type: ignore[attr-defined]
    codes = [a["code"] for a in synced.articles(limit=450)]
    assert len(codes) == 450
    with synced.store.write() as conn:
        conn.execute(sa.update(table).where(table.c.code.in_(codes)).values(category=None))
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_categories(app, pilot)
        tree = app.screen.query_one("#cat-tree", Tree)
        tree.focus()
        tree.cursor_line = next(
            i for i in range(tree.last_line + 1) if tree.get_node_at_line(i).data == UNCATEGORISED
        )
        await settle(app, pilot)

        def title() -> str:
            return str(app.screen.query_one("#cat-articles-title", Label).render())

        assert keys(app, "#cat-articles") == codes[:200]
        assert "Articles in no category: 450 (1-200 shown; n next, b back)" in title()
        await pilot.press("n")
        await settle(app, pilot)
        assert keys(app, "#cat-articles") == codes[200:400] and "(201-400 shown" in title()
        await pilot.press("n", "n")
        await settle(app, pilot)
        assert keys(app, "#cat-articles") == codes[400:] and "(401-450 shown" in title()
        await pilot.press("b", "b", "b")
        await settle(app, pilot)
        assert keys(app, "#cat-articles") == codes[:200]


async def test_articles_in_no_category_have_a_node_of_their_own(synced: Engine) -> None:
    """Articles linked to no category the site has (none, or a code the store does not
    hold) are not lost from the tree: they are counted and listed under a node."""
    import sqlalchemy as sa

    from passweb_tui.engine.models import Article
    from passweb_tui.screens.categories import UNCATEGORISED

    table = Article.__table__  # type: ignore[attr-defined]
    first, second, third = (a["code"] for a in synced.articles(limit=3))
    with synced.store.write() as conn:
        conn.execute(sa.update(table).where(table.c.code == first).values(category=None))
        conn.execute(sa.update(table).where(table.c.code == second).values(category="GONE"))
    assert synced.uncategorised_count() == 2
    found = {a["code"] for a in synced.articles(uncategorised=True)}
    assert found == {first, second} and third not in found
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_categories(app, pilot)
        tree = app.screen.query_one("#cat-tree", Tree)
        line = next(
            i for i in range(tree.last_line + 1) if tree.get_node_at_line(i).data == UNCATEGORISED
        )
        assert "In no category (2)" in str(tree.get_node_at_line(line).label)
        tree.focus()
        tree.cursor_line = line
        await settle(app, pilot)
        assert sorted(keys(app, "#cat-articles")) == sorted([first, second])
        title = str(app.screen.query_one("#cat-articles-title", Label).render())
        assert "Articles in no category: 2" in title


async def test_categories_whose_parents_loop_are_shown_once_at_the_top(synced: Engine) -> None:
    """G1 under G2 under G1 (an ERP data error the sync stores as it is) reaches no top
    of the tree: the loop is shown at the top, marked, every category once."""
    nodes = [
        {"code": "G1", "parent": "G2", "description": "uno", "web": True, "article_count": 3},
        {"code": "G2", "parent": "G1", "description": "due", "web": True, "article_count": 0},
        {"code": "G3", "parent": None, "description": "tre", "web": True, "article_count": 1},
        {"code": "G4", "parent": "G3", "description": "quattro", "web": False, "article_count": 0},
        {"code": "G5", "parent": "G5", "description": "cinque", "web": True, "article_count": 0},
        # below the G1-G2 loop, not on it: shown under G1, not as a loop of its own
        {"code": "A3", "parent": "G1", "description": "sotto", "web": True, "article_count": 0},
    ]
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_categories(app, pilot)
        screen = app.screen
        assert isinstance(screen, CategoriesScreen)
        screen.show_tree(nodes)
        tree = screen.query_one("#cat-tree", Tree)
        placed: dict[str, tuple[str | None, str]] = {}

        def walk(node: Any) -> None:
            for child in node.children:
                assert child.data not in placed, child.data
                placed[child.data] = (node.data, str(child.label))
                walk(child)

        walk(tree.root)
        assert set(placed) == {"A3", "G1", "G2", "G3", "G4", "G5"}
        assert placed["A3"][0] == "G1" and "loop" not in placed["A3"][1]
        assert placed["G1"][0] is None and "loop" in placed["G1"][1]
        assert placed["G2"][0] == "G1" and "loop" not in placed["G2"][1]
        assert placed["G5"][0] is None and "loop" in placed["G5"][1]
        assert placed["G3"][0] is None and "loop" not in placed["G3"][1]
        assert placed["G4"][0] == "G3"


async def test_fields_toggle_and_attribute_update(synced: Engine) -> None:
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f")
        await settle(app, pilot)
        assert isinstance(app.screen, FieldsScreen)
        rows = {r.name: r for r in synced.fields("articles")}
        assert sorted(keys(app, "#fields-table")) == sorted(rows)
        table = app.screen.query_one("#fields-table", KeyTable)
        name = next(n for n, r in rows.items() if not r.key and not r.used)
        table.move_cursor(row=table.get_row_index(name))
        used = sum(r.used for r in rows.values())
        await pilot.press("space")
        await settle(app, pilot)
        assert {r.name: r.used for r in synced.fields("articles")}[name] is True
        status = str(app.screen.query_one("#fields-status", Label).render())
        assert f"{used + 1} of {len(rows)}" in status  # the count follows at once
        await pilot.press("space")
        await settle(app, pilot)
        assert {r.name: r.used for r in synced.fields("articles")}[name] is False

        key_field = next(n for n, r in rows.items() if r.key)
        table.move_cursor(row=table.get_row_index(key_field))
        await pilot.press("space")
        assert any("Key fields are always used" in str(n.message) for n in app._notifications)

        await pilot.press("t")  # the next entity
        await settle(app, pilot)
        assert app.screen.entity == "customers"
        await pilot.press("u")
        await settle(app, pilot)
        assert any("Attribute update done" in str(n.message) for n in app._notifications)


async def test_the_last_used_field_cannot_be_dropped_and_the_screen_says_why(
    sim: Any, tmp_path: Any
) -> None:
    engine = impatient_engine(sim, tmp_path)
    try:
        engine.attribute_update()
        used = [r.name for r in engine.fields("articles") if r.used]
        engine.set_used("articles", used[1:], False)
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("f")
            await settle(app, pilot)
            assert isinstance(app.screen, FieldsScreen) and app.screen.entity == "articles"
            table = app.screen.query_one("#fields-table", KeyTable)
            table.move_cursor(row=table.get_row_index(used[0]))
            await pilot.press("space")
            await settle(app, pilot)
            await settle(app, pilot)
            said = [str(n.message) for n in app._notifications if n.severity == "error"]
            assert any("no used field left" in m for m in said), said
            assert not any("FieldsError" in m for m in said), said
            assert [r.name for r in engine.fields("articles") if r.used] == used[:1]
            row = table.get_row(used[0])
            assert str(row[0]).strip(), row  # shown as used again
    finally:
        engine.close()


async def test_runs_history_and_detail(synced: Engine) -> None:
    synced.run("partial", dry_run=True)
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r")
        await settle(app, pilot)
        assert isinstance(app.screen, RunsScreen)
        assert keys(app, "#runs-table") == ["2", "1"]
        await pilot.press("j", "enter")
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == 1
        await settle(app, pilot)
        header = str(app.screen.query_one("#run-header", Static).render())
        assert "#1 Totale" in header and "ok" in header
        counts = app.screen.query_one("#run-counts", KeyTable)
        detail = synced.run_detail(1)
        assert counts.get_row("articles")[1] == str(detail.run.entities["articles"]["fetched"])
        # the records read that are not for the site have their column, so a row adds up
        assert str(counts.ordered_columns[-1].label) == "Off site"
        off_site = counts.get_row("articles")[-1]
        assert int(str(off_site).replace(",", "")) == detail.run.off_site["articles"] > 0
        assert "Rejected records: 0" in str(app.screen.query_one("#run-rejects-title").render())
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("l")  # the change log of the run under the cursor
        assert isinstance(app.screen, ChangesScreen)
        await settle(app, pilot)
        assert app.screen.query_one("#f-run", Input).value == "1"
        # a number no run has, however long (past what int() reads, or not ASCII):
        # nothing shown, no failure
        for typed in ("2147483648", "9" * 5000, "²", "x1"):
            app.screen.query_one("#f-run", Input).value = typed
            await settle(app, pilot)
            assert app.screen.query_one("#changes-table", KeyTable).row_count == 0, typed
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_runs_beyond_a_page_are_reached_by_paging_on(synced: Engine) -> None:
    """The runs screen showed the newest 200 runs and nothing said so: after months of
    syncs the first TOTAL and its rejects could not be opened from the UI."""
    from sqlalchemy import insert, select

    from passweb_tui.engine.facade import _RUNS
    from passweb_tui.screens.runs import HISTORY

    columns = [c for c in _RUNS.c if c.name != "id"]
    with synced.store.write() as conn:  # 249 more runs like the first: two pages and some
        for _ in range(249):
            conn.execute(
                insert(_RUNS).from_select(columns, select(*columns).where(_RUNS.c.id == 1))
            )
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        await settle(app, pilot)
        shown = keys(app, "#runs-table")
        assert len(shown) == HISTORY and shown[0] == "250", shown[:3]
        status = str(app.screen.query_one("#runs-status", Label).render())
        assert status.startswith("Runs 1-200, newest first") and "n/b page" in status, status
        await pilot.press("n")
        await settle(app, pilot)
        assert keys(app, "#runs-table")[-1] == "1"  # the first TOTAL, within reach
        assert "Runs 201-250" in str(app.screen.query_one("#runs-status", Label).render())
        await pilot.press("n")  # no older page: stays
        await settle(app, pilot)
        assert keys(app, "#runs-table")[0] == "50"
        await pilot.press("b")
        await settle(app, pilot)
        assert keys(app, "#runs-table")[0] == "250"
        # on the older page when a prune takes those runs away: back to the first page
        await pilot.press("n")
        await settle(app, pilot)
        from sqlalchemy import delete

        with synced.store.write() as conn:
            conn.execute(delete(_RUNS).where(_RUNS.c.id <= 100))
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        assert keys(app, "#runs-table")[0] == "250" and len(keys(app, "#runs-table")) == 150
        status = str(app.screen.query_one("#runs-status", Label).render())
        assert status == "Runs 1-150, newest first", status


async def test_a_missing_run_is_reported_not_crashed(synced: Engine) -> None:
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(RunDetailScreen(999))
        await pilot.pause()
        await workers_done(app)
        await pilot.pause()
        header = str(app.screen.query_one("#run-header", Static).render())
        assert "Run #999 cannot be read: no run 999 in the store" in header


async def test_italian_labels_and_the_same_domain_words(synced: Engine) -> None:
    set_language("it")
    try:
        app = create_app(synced, poll_s=0)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            assert "Cruscotto" in str(app.screen.query_one("#topbar-title", Label).render())
            assert "Gestionale: connesso" in str(app.screen.query_one("#dash-erp").render())
            table = app.screen.query_one("#dash-runs-table", KeyTable)
            assert str(table.get_row("1")[1]) == "Totale"
            await pilot.press("s")
            assert "Tipo di sincronizzazione" in str(app.screen.query_one(".panel-title").render())
    finally:
        set_language("en")


async def test_dashboard_asks_the_erp_and_says_when_it_does_not_answer(tmp_path: Any) -> None:
    from passweb_tui.engine.erp.settings import ErpConfig
    from passweb_tui.engine.facade import EngineSettings

    nobody = ErpConfig(
        "http://127.0.0.1:9/webapi", "demo", "pw", "DEM", max_retries=1, backoff_base_s=0.01
    )
    engine = Engine.open(EngineSettings(f"sqlite:///{tmp_path / 'store.db'}", nobody))
    try:
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            erp = str(app.screen.query_one("#dash-erp", Static).render())
            assert erp.startswith("ERP: unreachable\n")
            assert "127.0.0.1:9" in erp
            assert "Last successful sync: never" in erp
            # a store that never synced says what to do first
            assert erp.endswith("\nPress s, then t, for a first Totale.")
    finally:
        engine.close()


def impatient_engine(sim: Any, tmp_path: Any) -> Engine:
    """An engine on a new store whose client gives up on the ERP after one retry."""
    from passweb_tui.engine.erp.settings import ErpConfig
    from passweb_tui.engine.facade import EngineSettings

    erp = ErpConfig(sim.url, sim.user, sim.password, sim.azienda, sim.anno, max_retries=1,
                    backoff_base_s=0.01)  # fmt: skip
    return Engine.open(EngineSettings(f"sqlite:///{tmp_path / 'store.db'}", erp))


async def test_dashboard_says_a_busy_erp_and_its_error_once(sim: Any, tmp_path: Any) -> None:
    """An ERP that answers 503 is busy, not unreachable; the error that stopped the last
    run is said once (the check finds the same), in the ERP's words, without the name
    of the exception it was raised as."""
    engine = impatient_engine(sim, tmp_path)
    try:
        sim.admin("PUT", "/faults", json={"status": {"503": 1}})
        assert engine.run("total").status == "failed"
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            shown = str(app.screen.query_one("#dash-erp", Static).render())
            assert shown.startswith("ERP: busy\nERP is busy: too many requests"), shown
            assert shown.count("ERP is busy") == 1, shown
            assert "PoolExhaustedError" not in shown
    finally:
        sim.admin("DELETE", "/faults")
        engine.close()


async def test_a_run_that_fails_makes_the_dashboard_ask_the_erp_again(
    sim: Any, tmp_path: Any
) -> None:
    """The dashboard said "connected" before the run; the run then failed on a busy ERP:
    back on the dashboard, the ERP is asked again at once (and says it is being asked),
    so "connected" does not stand until the next periodic check."""
    engine = impatient_engine(sim, tmp_path)
    try:
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            shown = str(app.screen.query_one("#dash-erp", Static).render())
            assert shown.startswith("ERP: connected"), shown
            sim.admin("PUT", "/faults", json={"status": {"503": 1}})
            await pilot.press("s", "v")
            await asyncio.wait_for(app.sync_ended.wait(), 60)
            await pilot.press("d")
            await pilot.pause()
            dashboard = app.screen
            assert dashboard._erp_checking or "ERP: busy" in str(
                dashboard.query_one("#dash-erp", Static).render()
            )
            if dashboard._erp_checking:
                shown = str(dashboard.query_one("#dash-erp", Static).render())
                assert "· asking the ERP…" in shown, shown
            await settle(app, pilot)
            shown = str(app.screen.query_one("#dash-erp", Static).render())
            assert shown.startswith("ERP: busy"), shown
    finally:
        sim.admin("DELETE", "/faults")
        engine.close()


async def test_the_dashboard_says_the_erps_state_in_italian_and_asks_again_after_a_run(
    sim: Any, tmp_path: Any
) -> None:
    """The ERP's answer to the dashboard's own check reads in the UI's language; once a
    run ends (here, one started elsewhere), the dashboard asks the ERP again, so a busy
    state does not stand until the next periodic check."""
    engine = impatient_engine(sim, tmp_path)
    set_language("it")
    try:
        sim.admin("PUT", "/faults", json={"status": {"503": 1}})
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            shown = str(app.screen.query_one("#dash-erp", Static).render())
            assert shown.startswith("Gestionale: occupato\nil gestionale è occupato"), shown
            assert "ERP" not in shown and "busy" not in shown, shown
            sim.admin("DELETE", "/faults")
            assert engine.run("total").status == "ok"  # as another process would
            app.screen.poll()
            await settle(app, pilot)
            await settle(app, pilot)
            shown = str(app.screen.query_one("#dash-erp", Static).render())
            assert shown.startswith("Gestionale: connesso"), shown
            assert "ultima esecuzione #1: ok" in shown, shown
    finally:
        set_language("en")
        sim.admin("DELETE", "/faults")
        engine.close()


async def test_the_top_bars_outcome_gives_way_to_a_later_run_from_elsewhere(
    sim: Any, tmp_path: Any
) -> None:
    """The badge says how this app's own sync ended; once a later run (another terminal,
    the service) has ended, the old outcome is no longer shown as the latest."""
    from passweb_tui.screens.base import SyncBadge

    engine = impatient_engine(sim, tmp_path)
    try:
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            await pilot.press("s", "t")
            await asyncio.wait_for(app.sync_ended.wait(), 60)
            await pilot.press("d")
            await settle(app, pilot)
            badge = app.screen.query_one(SyncBadge)
            assert str(badge.render()) == "Totale: ok"
            assert engine.run("changed").status == "ok"  # as another process would
            app.screen.poll()
            await settle(app, pilot)
            assert str(app.screen.query_one(SyncBadge).render()) == ""
    finally:
        engine.close()


async def test_a_warning_stays_in_the_top_bar_of_every_screen(synced: Engine) -> None:
    from textual.widgets import Label

    app = create_app(synced, poll_s=0, warning="TLS verification OFF")
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ("d", "s", "c", "g", "a", "o", "r", "f"):
            await pilot.press(key)
            await pilot.pause()
            warning = app.screen.query_one("#topbar-warning", Label)
            assert "TLS verification OFF" in str(warning.render())


async def test_refused_credentials_are_not_tried_again_by_the_dashboard(
    erp_sim: Any, tmp_path: Any
) -> None:
    """The ERP locks a user after a few failed logins: a refused check is not repeated by
    the periodic timer nor by coming back to the dashboard, only by ctrl+r; and however
    often the dashboard is shown, one periodic check is pending at most."""
    from passweb_tui.engine.erp.settings import ErpConfig
    from passweb_tui.engine.facade import EngineSettings

    wrong = ErpConfig(erp_sim.url, erp_sim.user, "wrong", erp_sim.azienda, erp_sim.anno)
    engine = Engine.open(EngineSettings(f"sqlite:///{tmp_path / 'store.db'}", wrong))
    logins: list[int] = []
    real_client = engine.client

    def counting_client() -> Any:
        logins.append(1)
        return real_client()

    engine.client = counting_client  # type: ignore[method-assign]
    try:
        app = create_app(engine, poll_s=5)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            erp = str(app.screen.query_one("#dash-erp", Static).render())
            assert "credentials refused" in erp and len(logins) == 1
            for _ in range(5):
                await pilot.press("r")
                await settle(app, pilot)
                await pilot.press("d")
                await settle(app, pilot)
            assert len(logins) == 1
            dash = app.screen
            assert isinstance(dash, DashboardScreen) and dash._erp_timer is None
            await pilot.press("ctrl+r")
            await settle(app, pilot)
            assert len(logins) == 2
    finally:
        engine.close()


async def test_the_runs_screen_follows_a_run_going_on_elsewhere(synced: Engine) -> None:
    """A run another process is making shows as running, then with its outcome once it
    ends, without a key pressed."""
    import sqlalchemy as sa

    from passweb_tui.engine.lease import Lease

    # the other process's run: marked running, its lease held (without one, it would be a
    # run whose process died, shown as failed)
    lease = Lease(synced.store, 60)
    lease.acquire(run_id=1)
    with synced.store.write() as conn:
        conn.execute(sa.text("UPDATE sync_runs SET status = 'running' WHERE id = 1"))
    app = create_app(synced, poll_s=0.3)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r")
        await settle(app, pilot)
        table = app.screen.query_one("#runs-table", KeyTable)
        assert "running" in str(table.get_row("1")[3])
        with synced.store.write() as conn:
            conn.execute(sa.text("UPDATE sync_runs SET status = 'ok' WHERE id = 1"))
        lease.release()
        for _ in range(40):
            await pilot.pause(0.1)
            if "running" not in str(table.get_row("1")[3]):
                break
        assert str(table.get_row("1")[3]) == "ok"


async def test_a_screen_key_opens_the_screen_not_a_detail_left_open(synced: Engine) -> None:
    """r, a run's detail, elsewhere, r again: the runs list, not that run (the same for
    every screen key; the list keeps its cursor)."""
    synced.run("partial", dry_run=True)
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        await settle(app, pilot)
        await pilot.press("j", "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen)
        await pilot.press("d")
        await settle(app, pilot)
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("r")
        await settle(app, pilot)
        assert isinstance(app.screen, RunsScreen)
        assert app.screen.query_one("#runs-table", KeyTable).selected_key() == "1"
        # from the detail itself, r goes up to the list too
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen)
        await pilot.press("r")
        await settle(app, pilot)
        assert isinstance(app.screen, RunsScreen) and len(app.screen_stack) == 1

        # a record's history in the change log, then the runs, then c: the log
        await pilot.press("c")
        await settle(app, pilot)
        await pilot.press("h")
        await settle(app, pilot)
        assert isinstance(app.screen, RecordHistoryScreen)
        await pilot.press("r", "c")
        await settle(app, pilot)
        assert isinstance(app.screen, ChangesScreen)


async def test_a_screen_shown_again_reloads_what_a_run_changed_meanwhile(synced: Engine) -> None:
    """The change log, left and come back to, shows a run that ended meanwhile (here
    run by the engine directly, as another process would); and a "(inserted)" line of
    the counts opens the records inserted, not an empty log."""
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("c")
        await settle(app, pilot)
        assert "articles/pubblica" not in keys(app, "#changes-counts-table")
        await pilot.press("d")
        await settle(app, pilot)
        synced.set_used("articles", ["pubblica"], True)
        assert synced.run("changed").status == "ok"
        await pilot.press("c")
        await settle(app, pilot)
        assert isinstance(app.screen, ChangesScreen)
        assert "articles/pubblica" in keys(app, "#changes-counts-table")

        counts = app.screen.query_one("#changes-counts-table", KeyTable)
        counts.focus()
        counts.move_cursor(row=counts.get_row_index("customers/(inserted)"))
        await pilot.press("enter")
        await settle(app, pilot)
        log = app.screen.query_one("#changes-table", KeyTable)
        inserted = len(synced.changes(entity="customers", field="(inserted)"))
        assert inserted > 0 and log.row_count == inserted
        assert {str(log.get_row_at(i)[3]) for i in range(log.row_count)} == {"inserted"}


async def test_the_fields_screen_searches_by_name_or_description(synced_readonly: Engine) -> None:
    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f")
        await settle(app, pilot)
        assert isinstance(app.screen, FieldsScreen)
        table = app.screen.query_one("#fields-table", KeyTable)
        every = table.row_count
        await pilot.press("slash", *"prz")
        await settle(app, pilot)
        names = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert names and len(names) < every and all("prz" in n for n in names)
        status = str(app.screen.query_one("#fields-status", Label).render())
        assert f"of {every} fields" in status  # the counts stay those of every field
        await pilot.press("escape")  # out of the search field, the filter kept
        await pilot.press("o")  # a screen key works again
        await settle(app, pilot)
        assert not isinstance(app.screen, FieldsScreen)


async def test_run_lists_mark_dry_runs_and_a_changed_that_ran_as_a_total(engine: Engine) -> None:
    """As `passweb-tui runs` marks them: `Totale*` for a CHANGED that ran as a TOTAL, and
    a dry run named so, its changes (only counted) in parentheses and left out of the
    dashboard's charts of what runs did."""
    first = engine.run("changed")  # the first sync runs as a TOTAL
    dry = engine.run("changed", dry_run=True)
    assert first.kind == "total" and dry.dry_run
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert not app.screen.query_one("#dash-chart").display  # one real run only
        await pilot.press("r")
        await settle(app, pilot)
        assert isinstance(app.screen, RunsScreen)
        table = app.screen.query_one("#runs-table", KeyTable)
        rows = {str(table.get_row_at(i)[0]): table.get_row_at(i) for i in range(table.row_count)}
        assert str(rows[str(first.run_id)][1]) == "Totale*"
        assert str(rows[str(dry.run_id)][1]) == "Variati (dry run)"
        assert str(rows[str(dry.run_id)][6]).startswith("(")
        assert not str(rows[str(first.run_id)][6]).startswith("(")


async def test_enter_on_a_whole_code_in_the_catalogue_search_opens_its_record(
    synced: Engine,
) -> None:
    """`/`, a whole code, Enter: its record opens (once the search is read), whatever
    else the search finds; a search finding several records goes to the table."""
    code = synced.articles(limit=20)[11]["code"]
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        await settle(app, pilot)
        await pilot.press("slash", *code.lower(), "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RecordScreen) and app.screen.code == code
        await pilot.press("escape")
        await settle(app, pilot)
        search = app.screen.query_one("#catalogue-search", Input)
        search.value = ""
        await pilot.press("slash", *code[:-2], "enter")
        await settle(app, pilot)
        assert not isinstance(app.screen, RecordScreen)
        assert app.focused is not None and app.focused.id == "catalogue-table"
