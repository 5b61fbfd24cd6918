"""How a FitTable shares out a width too small for all its columns."""

from __future__ import annotations

from passweb_tui.screens.fit_table import MIN_SHRUNK, Col, fit_columns

COLUMNS = [
    Col("run", "#"),
    Col("key", "Key", shrink=True),
    Col("count", "Count"),
    Col("old", "Old", shrink=True),
    Col("new", "New", shrink=True),
    Col("note", "Note", drop=1),
]


def row(key: str = "ART0000001", old: str = "o" * 40, new: str = "n" * 40) -> list[str]:
    return ["12", key, "1234567", old, new, "a note"]


def test_everything_fits_untouched() -> None:
    keys, caps = fit_columns(COLUMNS, [row()], 200)
    assert keys == [c.key for c in COLUMNS] and caps == {}


def test_the_widest_texts_give_way_alike_and_numbers_never() -> None:
    # 2 + 10 + 7 + 40 + 40 + 6 cells and 2 of padding each: 117, 109 without the note
    keys, caps = fit_columns(COLUMNS, [row()], 87)
    assert keys == ["run", "key", "count", "old", "new"]  # the droppable column went first
    assert caps == {"old": 29, "new": 29}  # 22 too many: 11 each, not one cut to nothing
    assert "count" not in caps and "run" not in caps
    # the key gives way only once the values are no wider than it
    keys, caps = fit_columns(COLUMNS, [row()], 40)
    assert abs(caps["old"] - caps["new"]) <= 1 and caps["key"] < 10
    assert min(caps.values()) >= MIN_SHRUNK


def test_a_text_that_gives_way_is_shortened_before_a_column_is_left_out() -> None:
    """An error or a scope, long, does not push out a short column that says more: it
    is shortened to its `give_way` first; only when that is not enough does the column
    go, and then the text gets back the room it held."""
    columns = [Col(c.key, c.label, c.drop, c.shrink, give_way=20 if c.shrink else 0)
               for c in COLUMNS]  # fmt: skip
    keys, caps = fit_columns(columns, [row()], 87)
    assert keys == [c.key for c in COLUMNS]
    assert caps == {"old": 25, "new": 25}  # 30 too many: 15 each
    keys, caps = fit_columns(columns, [row()], 60)
    assert keys == ["run", "key", "count", "old", "new"]
    assert 15 <= caps["old"] < 20 and abs(caps["old"] - caps["new"]) <= 1


def test_too_narrow_for_the_columns_always_shown_leaves_more_out_and_cuts_no_number() -> None:
    """At 60 columns an order's total ran off the right edge ("1,234,567." for
    "1,234,567.80"): the texts at their shortest were still too wide, and nothing more
    was left out."""
    # each text at its floor: 2 + 6 + 7 + 6 + 6 cells and 2 of padding each, 37
    keys, caps = fit_columns(COLUMNS, [row()], 37)
    assert keys == ["run", "key", "count", "old", "new"]
    assert set(caps.values()) == {MIN_SHRUNK}
    # one cell less: the rightmost text goes, and the other texts get its room back
    keys, caps = fit_columns(COLUMNS, [row()], 36)
    assert keys == ["run", "key", "count", "old"] and caps["old"] > MIN_SHRUNK
    # then the others, from the right (they come in the order they matter), never the
    # first column; a number that stays is whole
    keys, caps = fit_columns(COLUMNS, [row()], 21)
    assert keys == ["run", "key", "count"] and "count" not in caps
    keys, caps = fit_columns(COLUMNS, [row()], 13)
    assert keys == ["run", "key"] and caps == {"key": 7}
    keys, caps = fit_columns(COLUMNS, [row()], 3)
    assert keys == ["run"]


def test_long_texts_alike_at_their_start_are_shown_from_where_they_differ() -> None:
    from passweb_tui.engine.records import from_difference

    old, new = "Guanti premium acciaio 10 mm", "Guanti premium acciaio 10 mm #705"
    assert from_difference(old, new) == ("…0 mm", "…0 mm #705")
    assert from_difference("Colla 10 mm", "Colla 12 mm") == ("Colla 10 mm", "Colla 12 mm")
    assert from_difference("Viti in acciaio", "Bulloni in acciaio") == (
        "Viti in acciaio",
        "Bulloni in acciaio",
    )  # they differ at once: nothing to skip
    assert from_difference("Via Roma 12, 20100 Milano", "Via Roma 14, 20100 Milano") == (
        "…ma 12, 20100 Milano",
        "…ma 14, 20100 Milano",
    )
    assert from_difference(12, 13) == (12, 13)


def test_a_column_with_nothing_in_it_is_left_out_first() -> None:
    """An orders page with no error: its error column goes before the columns that have
    something to say, and its state is not cut for it; with an error on the page the
    column is treated as any other."""
    columns = [
        Col("id", "Order"),
        Col("state", "State", shrink=True),
        Col("erp_key", "ERP key", drop=1),
        Col("error", "Last error", shrink=True, give_way=14, empty_first=True),
    ]
    rows = [["W1", "Partially fulfilled", "OC+1+201", "-"], ["W2", "Stored", "OC+1+202", ""]]
    # 2 + 19 + 8 + 10 cells, 2 of padding each: 47; 35 without the error column
    keys, caps = fit_columns(columns, rows, 40)
    assert keys == ["id", "state", "erp_key"] and caps == {}
    keys, caps = fit_columns(columns, rows, 60)
    assert keys == ["id", "state", "erp_key", "error"]  # room for it: it stays
    failed = [*rows, ["W3", "New", "-", "C Fix customer - the ERP did not create it"]]
    keys, _ = fit_columns(columns, failed, 40)
    assert "error" in keys and "erp_key" not in keys


def test_a_column_left_out_comes_back_when_a_wider_one_went_after_it() -> None:
    """The least needed column goes first; should a wider one have to go too, the first
    comes back if it fits then (a run's duration, once its long scope has gone)."""
    columns = [
        Col("id", "#"),
        Col("duration", "Time", drop=2),
        Col("scope", "Scope", drop=1, shrink=True, give_way=12),
        Col("note", "Note", drop=3),
    ]
    rows = [["1", "12m04s", "articles: ART0000001, ART0000002", "-"]]
    # 1 + 6 + 12 (scope given way) + 4 cells, 2 of padding each: 31
    keys, _ = fit_columns(columns, rows, 31)
    assert keys == ["id", "duration", "scope", "note"]
    # the note goes, then the duration: the note, narrower than the duration, fits again
    keys, _ = fit_columns(columns, rows, 24)
    assert keys == ["id", "scope", "note"]
    # the scope must go as well: the duration is back, the note stays out
    keys, _ = fit_columns(columns, rows, 12)
    assert keys == ["id", "duration"]


def test_a_text_is_not_shortened_to_keep_a_column_of_counts_of_none() -> None:
    """A run's counts per entity: a column of zeros (nothing deleted) goes before an
    entity name is shortened for it, and before a count of something is left out."""
    columns = [
        Col("entity", "Entity", shrink=True, give_way=8),
        Col("fetched", "Fetched", empty_first=True),
        Col("deleted", "Deleted", empty_first=True),
        Col("off_site", "Off site", drop=1, empty_first=True),
    ]
    rows = [["statistic categories", "7", "0", "-"], ["articles", "500", "0", "36"]]
    # 20 + 7 + 7 + 8 cells, 2 of padding each: 50; 41 without the deleted
    keys, caps = fit_columns(columns, rows, 45)
    assert keys == ["entity", "fetched", "off_site"] and caps == {}
    keys, caps = fit_columns(columns, rows, 50)
    assert keys == ["entity", "fetched", "deleted", "off_site"] and caps == {}


def test_short_labels_are_taken_when_their_own_would_leave_out_a_count() -> None:
    """Every column with a short label takes it, when the labels are too wide for the
    columns that have something in them; where their own fit, or where none with
    something would be left out for them, the columns keep their own labels."""
    from passweb_tui.screens.fit_table import labelled

    columns = [
        Col("entity", "Entity", shrink=True, give_way=8),
        Col("inserted", "Inserted", empty_first=True, short="Ins."),
        Col("updated", "Updated", empty_first=True, short="Upd."),
        Col("unchanged", "Unchanged", drop=1, empty_first=True, short="Unch."),
    ]
    rows = [["articles", "12", "3", "480"], ["customers", "0", "1", "99"]]
    # own labels: 9 + 8 + 7 + 9 cells, 2 of padding each: 41; short ones: 30
    assert [c.label for c in labelled(columns, rows, 41)] == [c.label for c in columns]
    short = labelled(columns, rows, 32)
    assert [c.label for c in short] == ["Entity", "Ins.", "Upd.", "Unch."]
    keys, caps = fit_columns(short, rows, 32)
    assert keys == ["entity", "inserted", "updated", "unchanged"] and caps == {}
    # nothing unchanged: the column of zeros goes, the others keep their own labels
    quiet = [[*row[:3], "0"] for row in rows]
    assert [c.label for c in labelled(columns, quiet, 32)] == [c.label for c in columns]
    assert fit_columns(columns, quiet, 32)[0] == ["entity", "inserted", "updated"]


def test_change_log_values_are_cut_where_they_differ_only_when_they_do_not_fit() -> None:
    """A description changed near its end, in a column wide enough for it: it was shown
    from where it differs ("…2328" against "…2328 #844") on a wide terminal too. It is
    whole where it fits, and cut from where it differs where it does not."""
    import asyncio

    from textual.app import App, ComposeResult

    from passweb_tui.i18n import set_language
    from passweb_tui.screens.changes import change_columns, change_row
    from passweb_tui.screens.fit_table import FitTable

    set_language("en")
    entry = {"id": 1, "run_id": 12, "entity": "customers", "key": "501.00922",
             "change": "updated", "field": "ragione_sociale",
             "old": "Ferramenta Lombarda di Rossi Giuseppe s.n.c.",
             "new": "Ferramenta Lombarda di Rossi Giuseppe s.n.c. #781"}  # fmt: skip

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield FitTable(change_columns(with_run=True), id="t")

    async def shown(width: int) -> list[str]:
        app = One()
        async with app.run_test(size=(width, 10)) as pilot:
            table = app.query_one("#t", FitTable)
            table.show_rows([change_row(entry)])
            await pilot.pause()
            await pilot.pause()
            return [str(getattr(c, "plain", c)) for c in table.get_row("1")]

    wide = asyncio.run(shown(200))
    assert wide[-2:] == [entry["old"], entry["new"]], wide
    narrow = asyncio.run(shown(80))
    old, new = narrow[-2:]
    assert old.startswith("…") and new.startswith("…") and "#781" in new, narrow
    assert old != new


def test_the_progress_percentage_reads_100_only_when_a_pass_is_done() -> None:
    """999 of 1,000 read "100" (rounded) on a pass still going, which may still stall or
    be cancelled; the table's percentage is rounded down, and 100 is for done."""
    from passweb_tui.screens.sync_state import EntityProgress

    def percent(done: int, total: int | None) -> str:
        return EntityProgress("customers", done, total, None, None).percent

    assert percent(1000, 1001) == "99"
    assert percent(999, 1000) == "99"
    assert percent(1000, 1000) == "100"
    assert percent(1200, 1000) == "100"  # more read than the estimate
    assert percent(29, 100) == "29" and percent(1, 3) == "33" and percent(0, 5) == "0"
    assert percent(5, None) == "-" and percent(0, 0) == "-"
