"""Keys as a user meets them: escape in a text field, and hints that name the key
actually bound when the config file remaps it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual import events
from textual.widgets import Button, Input
from ui_screen import FRAME, on_screen, screen_lines, workers_done

from passweb_tui.app import PasswebApp, create_app
from passweb_tui.engine.facade import Engine
from passweb_tui.screens.base import ConfirmScreen, KeyTable
from passweb_tui.screens.dashboard import DashboardScreen
from passweb_tui.screens.setup import SetupScreen
from passweb_tui.screens.sync import SyncScreen

pytestmark = pytest.mark.anyio
pytest_plugins = ["ui_fixtures"]


async def settle(app: PasswebApp, pilot: Any) -> None:
    await workers_done(app)
    await pilot.pause()


#: (key to the screen, the text field, what it holds typed, where escape puts the focus)
FIELDS = [
    ("c", "#f-key", "ART", "#changes-table"),
    ("c", "#f-run", "1", "#changes-table"),
    ("c", "#f-entity", "articles", "#changes-table"),
    ("a", "#catalogue-search", "ART", "#catalogue-table"),
    ("o", "#orders-filter", "WEB", "#orders-table"),
    ("s", "#sync-codes", "ART1", "#sync-entity"),
]


@pytest.mark.slow  # every screen's text fields, one by one
async def test_escape_in_a_text_field_leaves_the_field_not_the_screen(
    synced_readonly: Engine,
) -> None:
    # the setup form is all fields: escape there keeps the form and what was typed
    app = create_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press(*"http://erp", "escape")
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen)
        assert app.screen.query_one("#setup-url", Input).value == "http://erp"

    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        for key, field, typed, home in FIELDS:
            await pilot.press("d", key)
            await settle(app, pilot)
            screen = app.screen
            box = screen.query_one(field, Input)
            box.value = ""
            box.focus()
            await pilot.press(*typed)
            await settle(app, pilot)
            await pilot.press("escape")
            await settle(app, pilot)
            assert app.screen is screen, (field, app.screen)
            assert box.value == typed  # nothing typed is lost
            assert screen.focused is screen.query_one(home), (field, screen.focused)
            await pilot.press("escape")  # the second one leaves the screen
            await settle(app, pilot)
            assert isinstance(app.screen, DashboardScreen), field
            box.value = ""  # the screen is kept: leave it as it was found


#: keys that arrive in one burst, and what they make of "123456" with its text selected
#: (digits: the run filter takes nothing else)
BURST = (("end", None), ("backspace", None), ("left", None), ("9", "9"))


async def post_burst(app: PasswebApp, pilot: Any, box: Input) -> None:
    box.value = "123456"
    box.focus()
    box.select_all()
    await pilot.pause()
    for key, character in BURST:  # queued at once, as a terminal's read brings them
        app.post_message(events.Key(key, character))
    await settle(app, pilot)


@pytest.mark.slow  # every screen's text fields (the customer form's: test_ui_orders)
async def test_keys_typed_in_one_burst_take_effect_in_their_order(
    synced_readonly: Engine,
) -> None:
    """Over SSH a quick typist's keys often come in one read. Each text field takes them
    in the order typed: before, a typed letter went in ahead of the backspace and the
    cursor keys before it, so End, Backspace, Q over a selected text left an empty field
    (and the customer form saved it so)."""
    app = create_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        box = app.screen.query_one("#setup-url", Input)
        await post_burst(app, pilot, box)
        assert box.value == "123495"

    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        for key, field, _typed, _home in FIELDS:
            await pilot.press("d", key)
            await settle(app, pilot)
            box = app.screen.query_one(field, Input)
            await post_burst(app, pilot, box)
            assert box.value == "123495", field
            box.value = ""  # the screen is kept: leave it as it was found
            await pilot.press("escape", "escape")
            await settle(app, pilot)


async def test_a_save_key_in_the_same_burst_as_the_typing_reads_what_was_typed() -> None:
    """The setup form's ctrl+t and ctrl+s are priority bindings (a text field must not
    take them): they ran as soon as the app read them, before the field had read the keys
    typed just ahead, and so checked the field as it was before the burst."""
    app = create_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        box = screen.query_one("#setup-url", Input)
        box.value = ""
        box.focus()
        await pilot.pause()
        for save in ("ctrl+t", "ctrl+s"):
            burst = [("end", None)] + [("backspace", None)] * len(box.value)
            burst += [(c, c) for c in f"ftp://{save}"] + [(save, None)]
            for key, character in burst:  # queued at once, as a terminal's read brings them
                app.post_message(events.Key(key, character))
            await settle(app, pilot)
            said = str(screen.query_one("#setup-result").render())
            assert f"got ftp://{save}" in said, (save, said)


async def test_keys_after_a_tab_in_the_same_burst_go_to_the_next_field() -> None:
    """ "Via Roma 1", Tab, "00100" in one burst put everything in the first field: the
    field read the Tab and moved the focus on only after the keys behind it had gone
    to it too (and a save key in the burst then saved that)."""
    app = create_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        url, user = screen.query_one("#setup-url", Input), screen.query_one("#setup-user", Input)
        for box in (url, user):
            box.value = ""
        url.focus()
        await pilot.pause()
        burst = [(c, c) for c in "http://erp.example/webapi"] + [("tab", None)]
        burst += [(c, c) for c in "bob"] + [("ctrl+s", None)]
        for key, character in burst:  # queued at once, as a terminal's read brings them
            app.post_message(events.Key(key, character))
        await settle(app, pilot)
        assert (url.value, user.value) == ("http://erp.example/webapi", "bob")
        said = str(screen.query_one("#setup-result").render())
        assert said.startswith("Password"), said  # the save read both fields as typed


async def test_keys_after_a_tab_read_by_a_button_go_to_the_field_it_moved_to() -> None:
    """Shift+Tab from the Test button, then "ftps" in one burst: the button had read the
    letters before the field had the focus, and they were lost."""
    app = create_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        button = screen.query_one("#setup-test", Button)
        button.focus()
        await pilot.pause()
        before = {box.id: box.value for box in screen.query(Input)}
        burst = [("shift+tab", None)] + [(c, c) for c in "ftps"]
        for key, character in burst:  # queued at once, as a terminal's read brings them
            app.post_message(events.Key(key, character))
        await settle(app, pilot)
        field = app.focused
        assert isinstance(field, Input), field
        assert field.value == before[field.id] + "ftps", (field.id, field.value)


async def test_keys_after_a_key_that_focuses_a_field_in_the_same_burst_go_into_it(
    synced_readonly: Engine,
) -> None:
    """ "/" then "art" in one burst on the catalogue: the keys went to the table before the
    search field had the focus, and "r" opened the runs (on the orders screen, "/" then
    "Smith" ran Send now on the order under the cursor)."""
    from passweb_tui.screens.catalogue import CatalogueScreen

    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        await settle(app, pilot)
        assert isinstance(app.screen, CatalogueScreen)
        table = app.screen.query_one("#catalogue-table")
        assert app.focused is table
        for key, character in [("slash", "/"), ("a", "a"), ("r", "r"), ("t", "t")]:
            app.post_message(events.Key(key, character))
        await settle(app, pilot)
        assert isinstance(app.screen, CatalogueScreen), app.screen
        assert app.screen.query_one("#catalogue-search", Input).value == "art"
        # and back: escape to the table, then j moves its cursor, in one burst too
        before = table.cursor_row
        for key, character in [("escape", None), ("j", "j"), ("j", "j")]:
            app.post_message(events.Key(key, character))
        await settle(app, pilot)
        value = app.screen.query_one("#catalogue-search", Input).value
        assert app.focused is table and table.cursor_row == before + 2, (value, table.row_count)
        assert app.screen.query_one("#catalogue-search", Input).value == "art"


async def test_keys_after_enter_in_a_search_in_the_same_burst_go_to_the_table(
    synced_readonly: Engine,
) -> None:
    """ "/", "d", enter, "j", "j" in one burst: the screen gives the table the focus when
    the field's Submitted message comes up to it, after the field had read the "j"s,
    which filtered by "djj" ("W90", enter, "j" on the orders filtered by "W90j")."""
    from passweb_tui.screens.fields import FieldsScreen

    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f")
        await settle(app, pilot)
        assert isinstance(app.screen, FieldsScreen)
        table = app.screen.query_one("#fields-table", KeyTable)
        assert app.focused is table and table.cursor_row == 0
        burst = [("slash", "/"), ("d", "d"), ("enter", None), ("j", "j"), ("j", "j")]
        for key, character in burst:  # queued at once, as a terminal's read brings them
            app.post_message(events.Key(key, character))
        await settle(app, pilot)
        assert app.screen.query_one("#fields-filter", Input).value == "d"
        assert table.row_count > 2
        assert app.focused is table and table.cursor_row == 2
        # the same in the change log, whose table is filled by a read in the background
        await pilot.press("c")
        await settle(app, pilot)
        log = app.screen.query_one("#changes-table", KeyTable)
        code = str(log.get_row_at(0)[2])
        burst = [("slash", "/"), *((c, c) for c in code), ("enter", None), ("j", "j")]
        for key, character in burst:
            app.post_message(events.Key(key, character))
        await settle(app, pilot)
        assert app.screen.query_one("#f-key", Input).value == code
        assert app.focused is log


def slow_reads(monkeypatch: pytest.MonkeyPatch, engine: Engine, name: str) -> Any:
    """The engine's `name` read (articles, customers) answers 0.4 s late, as on a large
    store; the real read is returned."""
    import time

    real = getattr(engine, name)

    def slow(**kwargs: Any) -> Any:
        time.sleep(0.4)
        return real(**kwargs)

    monkeypatch.setattr(engine, name, slow)
    return real


async def test_keys_typed_while_the_catalogue_reads_another_page_move_on_its_rows(
    synced: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "t" (the customers) then "j", "j": the "j"s moved the cursor of the table being
    emptied, and the customers came with the cursor on their first row. They wait for
    the rows now, escape included, and take effect in their order."""

    from passweb_tui.screens.catalogue import CatalogueScreen

    real_customers = slow_reads(monkeypatch, synced, "customers")
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        await settle(app, pilot)
        assert isinstance(app.screen, CatalogueScreen)
        table = app.screen.query_one("#catalogue-table", KeyTable)
        assert app.focused is table and table.cursor_row == 0
        for key in ("t", "j", "j"):
            app.post_message(events.Key(key, key))
        for _ in range(60):
            await pilot.pause(0.05)
            if app.screen.entity == "customers":
                break
        assert app.screen.entity == "customers"
        first = real_customers(limit=3)
        codes = {c["code"] for c in real_customers(limit=50)}
        for _ in range(60):
            await pilot.pause(0.05)
            if table.selected_key() in codes:
                break
        await settle(app, pilot)
        assert table.selected_key() == first[2]["code"] and table.cursor_row == 2
        # escape waits its turn too: let through, it left the catalogue and the keys
        # typed before it ran on the next screen ("/stone" then escape launched a
        # Totale there: s for the sync screen, t for Totale)
        slow_reads(monkeypatch, synced, "articles")
        burst = [("t", "t"), ("slash", "/"), *((c, c) for c in "stone"), ("escape", None)]
        for key, character in burst:
            app.post_message(events.Key(key, character))
        await pilot.pause(0.15)
        assert isinstance(app.screen, CatalogueScreen), app.screen
        for _ in range(60):
            await pilot.pause(0.05)
            if app.screen.query_one("#catalogue-search", Input).value == "stone":
                break
        await settle(app, pilot)
        assert isinstance(app.screen, CatalogueScreen), app.screen
        assert app.screen.entity == "articles"
        assert app.screen.query_one("#catalogue-search", Input).value == "stone"
        assert app.focused is table and app.sync.handle is None


async def test_keys_held_for_the_table_are_dropped_once_another_widget_has_the_focus(
    synced: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "t", "j", "j", then a click in the search field and "x" while the customers are
    read: the "j"s, typed for the table, were typed into the search after the "x"."""

    slow_reads(monkeypatch, synced, "customers")
    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        await settle(app, pilot)
        for key in ("t", "j", "j"):
            app.post_message(events.Key(key, key))
        await pilot.pause(0.05)
        await pilot.click("#catalogue-search")
        await pilot.press("x")
        await settle(app, pilot)
        assert app.screen.query_one("#catalogue-search", Input).value == "x"


async def test_enter_then_escape_in_one_burst_opens_the_record_and_closes_it(
    synced: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Enter on the catalogue opens the row's record once the screen hears of it; the
    escape read behind it in the same burst took the catalogue away from under the
    record, and a key after it ran on the wrong screen (or nowhere). The keys after an
    enter wait for the record, here while the catalogue waits for its rows too."""

    from passweb_tui.screens.catalogue import CatalogueScreen
    from passweb_tui.screens.record import RecordScreen

    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("a")
        await settle(app, pilot)
        assert isinstance(app.screen, CatalogueScreen)
        catalogue = app.screen
        for key in ("j", "enter", "escape"):  # nothing held
            app.post_message(events.Key(key, None))
        await settle(app, pilot)
        assert app.screen is catalogue and app.screen_stack[-1] is catalogue
        # the same while the customers are read: held, then in their order
        real_customers = slow_reads(monkeypatch, synced, "customers")
        opened: list[Any] = []
        real_push = app.push_screen

        def push(screen: Any, *args: Any, **kwargs: Any) -> Any:
            opened.append(screen)
            return real_push(screen, *args, **kwargs)

        monkeypatch.setattr(app, "push_screen", push)
        for key in ("t", "j", "enter", "escape", "u"):
            app.post_message(events.Key(key, key if len(key) == 1 else None))
        for _ in range(80):
            await pilot.pause(0.05)
            if opened and app.screen is catalogue:
                break
        await settle(app, pilot)
        records = [s for s in opened if isinstance(s, RecordScreen)]
        assert [r.code for r in records] == [real_customers(limit=2)[1]["code"]]
        assert app.screen is catalogue and catalogue.entity == "customers"


async def test_enter_enter_after_the_codes_in_one_burst_launches_nothing(
    synced: Engine,
) -> None:
    """Enter after a Parziale's codes goes to Launch, and a second enter launches, so
    that one keystroke too many starts nothing. In one burst (a double tap, a bouncing
    key) the second enter, typed before Launch had the focus, launched the Parziale."""
    from textual.widgets import SelectionList

    app = create_app(synced, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, SyncScreen)
        screen.query_one("#sync-entity", SelectionList).focus()
        await pilot.press("space")  # articles
        screen.query_one("#sync-codes", Input).focus()
        await pilot.pause()
        code = synced.articles(limit=1)[0]["code"]
        burst = [*((c, c) for c in code), ("enter", None), ("enter", None)]
        for key, character in burst:  # queued at once, as a terminal's read brings them
            app.post_message(events.Key(key, character))
        await settle(app, pilot)
        assert app.focused is not None and app.focused.id == "sync-launch"
        assert app.sync.handle is None and synced.runs(limit=1)[0].kind == "total"
        await pilot.press("enter")  # a deliberate one launches
        for _ in range(100):
            await pilot.pause(0.05)
            if app.sync.handle is not None and not app.sync.running:
                break
        assert synced.runs(limit=1)[0].kind == "partial"


#: a [ui] keymap moving every key a hint on screen names
KEYMAP = {
    "goto.sync": "f2",
    "sync.total": "f5",
    "sync.changed": "f6",
    "sync.partial": "f7",
    "sync.cancel": "X",
    "sync.run_changes": "f8",
    "sync.run_detail": "f9",
    "confirm.yes": "o",
    "changes.search": "ctrl+f",
    "catalogue.search": "ctrl+f",
    "catalogue.mark": "m",
    "catalogue.partial": "P",
    "fields.toggle": "x",
    "fields.update": "U",
    "orders.search": "ctrl+f",
    "orders.updates": "u",
    "orders.next_page": "N",
    "orders.prev_page": "B",
}


def notified(app: PasswebApp, text: str) -> bool:
    return any(text in str(n.message) for n in app._notifications)


async def test_hints_name_the_keys_the_keymap_binds(synced: Engine, erp_sim: Any) -> None:
    app = create_app(synced, poll_s=0, keymap=KEYMAP)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f2")
        assert isinstance(app.screen, SyncScreen)
        assert on_screen(app, "f5 Totale, f6 Variati, f7 Parziale"), screen_lines(app)

        erp_sim.admin("PUT", "/faults", json={"latency_ms": 300})  # a run that lasts
        await pilot.press("f6")
        while app.sync.handle is None:
            await pilot.pause(0.05)
        await pilot.press("f5")
        assert notified(app, "cancel it with X on the sync screen (f2)")
        await pilot.press("X")
        assert isinstance(app.screen, ConfirmScreen)
        assert str(app.screen.query_one("#yes", Button).label) == "Yes (o)"
        await pilot.press("n")
        erp_sim.admin("DELETE", "/faults")
        await asyncio.wait_for(app.sync_ended.wait(), 60)
        await settle(app, pilot)
        assert on_screen(app, "f8: changes of this run · f9: run detail"), screen_lines(app)

        await pilot.press("c")
        await settle(app, pilot)
        assert on_screen(app, "key (^f)")

        await pilot.press("a")
        await settle(app, pilot)
        assert on_screen(app, "search code or description (^f)")
        assert on_screen(app, "m marks, P Parziale of the marked")
        await pilot.press("P")
        assert notified(app, "mark records with m first")

        await pilot.press("f")
        await settle(app, pilot)
        assert on_screen(app, "x toggles, U attribute update")

        await pilot.press("o")
        await settle(app, pilot)
        assert on_screen(app, "u To review (")
        assert on_screen(app, "search order id or customer (^f)")
        assert on_screen(app, "N/B page")
        await pilot.press("u")
        await settle(app, pilot)
        assert on_screen(app, "[u To review (")


@pytest.mark.parametrize("language", ["en", "it"], indirect=True)
async def test_acknowledging_is_offered_only_on_the_updates_to_review(
    synced_readonly: Engine, language: str
) -> None:
    """a and A acknowledge the ERP's updates of orders: the orders screen offers them,
    in its footer and in F1, on its updates to review and on no other view. There a is
    not the orders screen's key, so it is the catalogue's, as on every other screen (and
    F1 says so); S and C, which mean nothing for an update, are offered on the others."""
    from passweb_tui.i18n import t
    from passweb_tui.screens.catalogue import CatalogueScreen
    from passweb_tui.screens.keys import KeysScreen
    from passweb_tui.screens.orders import OrdersScreen

    def listed(app: Any) -> dict[str, str]:
        assert isinstance(app.screen, KeysScreen)
        return {" ".join(row.keys): row.description for s in app.screen.sections for row in s.rows}

    ack, ack_all = f"a {t('key.ack')}", f"A {t('key.ack_all')}"
    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("o")
        await settle(app, pilot)
        for view in ("2", "4", "1", "3"):
            await pilot.press(view)
            await settle(app, pilot)
            assert isinstance(app.screen, OrdersScreen)
            updates = app.screen.view_name == "updates"
            footer = screen_lines(app)[-1]
            assert (ack in footer, ack_all in footer) == (updates, updates), (view, footer)
            assert (f"S {t('key.send_now')}" in footer) != updates, (view, footer)
            await pilot.press("f1")
            await pilot.pause()
            keys = listed(app)
            if updates:
                assert keys["a"] == t("key.ack") and keys["A"] == t("key.ack_all"), keys
                assert "S" not in keys and "C" not in keys, keys
            else:
                assert keys["a"] == t("nav.catalogue") and "A" not in keys, (view, keys)
                assert keys["S"] == t("key.send_now"), (view, keys)
            await pilot.press("escape")
            await pilot.pause()
        # on the updates (none here) a and A stay on the screen; on an order view A does
        # nothing and a goes to the catalogue
        await pilot.press("a", "A")
        await settle(app, pilot)
        assert isinstance(app.screen, OrdersScreen)
        await pilot.press("1", "A", "a")
        await settle(app, pilot)
        assert isinstance(app.screen, CatalogueScreen)


async def test_home_and_end_go_to_the_first_and_last_row(synced_readonly: Engine) -> None:
    from passweb_tui.screens.base import KeyTable
    from passweb_tui.screens.keys import KeysScreen

    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        await settle(app, pilot)
        table = app.screen.query_one("#changes-table", KeyTable)
        assert table.has_focus and table.row_count > 20
        await pilot.press("j", "j", "end")
        await pilot.pause()
        assert table.cursor_row == table.row_count - 1
        assert table.scroll_x == 0  # not sideways
        assert table.scroll_y > 0  # the last row is in view
        await pilot.press("home")
        await pilot.pause()
        assert (table.cursor_row, table.scroll_y, table.scroll_x) == (0, 0, 0)
        # F1 names them so
        await pilot.press("f1")
        await pilot.pause()
        keys = app.screen
        assert isinstance(keys, KeysScreen)
        assert "home First row" in keys.text() and "end Last row" in keys.text()


@pytest.mark.parametrize("language", ["en", "it"], indirect=True)
async def test_f1_lists_the_screen_keys_first_and_scrolls_at_80x24(
    synced_readonly: Engine, language: str
) -> None:
    from textual.containers import VerticalScroll

    from passweb_tui.i18n import t
    from passweb_tui.screens.keys import KeysScreen

    assert (t("keys.section.app") == "Ovunque") == (language == "it")  # the fixture's
    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("c")
        await settle(app, pilot)
        await pilot.press("f1")
        await pilot.pause()
        keys = app.screen
        assert isinstance(keys, KeysScreen)
        titles = [section.title for section in keys.sections]
        assert titles == [
            t("keys.section.screen"),
            t("keys.section.table"),  # the change log's table has the cursor
            t("keys.section.app"),
        ]
        screen_keys = {" ".join(row.keys) for row in keys.sections[0].rows}
        assert {"/", "h"} <= screen_keys  # the change log's own search and history
        everywhere = {row.description for row in keys.sections[2].rows}
        assert {t("nav.dashboard"), t("key.quit"), t("key.palette")} <= everywhere
        # the widget's keys are the table's, not the app's copies
        assert "home" in {" ".join(r.keys) for r in keys.sections[1].rows}
        lines = screen_lines(app)
        assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
        assert on_screen(app, t("keys.title"))
        assert on_screen(app, t("keys.section.screen"))
        assert not on_screen(app, f"{t('keys.section.app')} ")  # below the fold
        listing = keys.query_one("#keys-list", VerticalScroll)
        assert listing.has_focus and listing.max_scroll_y > 0
        await pilot.press("end")
        await pilot.pause()
        assert listing.scroll_y == listing.max_scroll_y
        assert on_screen(app, t("key.palette"))
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, KeysScreen)
        assert app.screen.query_one("#changes-table").has_focus  # back where it was


async def test_f1_works_over_a_question_and_follows_the_keymap(synced_readonly: Engine) -> None:
    """A modal box keeps the keys below it from working: F1 (or where the keymap moved
    it) still lists the box's own keys, and closing the list leaves the box as it was."""
    from passweb_tui.screens.keys import KeysScreen

    app = create_app(synced_readonly, poll_s=0, keymap={"app.help": "f2"})
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.push_screen(ConfirmScreen("Delete everything?"))
        await pilot.pause()
        question = app.screen
        await pilot.press("f1")  # moved away: not help any more, and not an answer
        await pilot.pause()
        assert app.screen is question
        await pilot.press("f2")
        await pilot.pause()
        keys = app.screen
        assert isinstance(keys, KeysScreen)
        listed = {" ".join(row.keys): row.description for s in keys.sections for row in s.rows}
        assert {"y", "n esc"} <= set(listed), listed  # the question's own answers
        await pilot.press("f2")
        await pilot.pause()
        assert app.screen is question
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)


async def test_f1_on_the_first_screen_does_not_offer_escape(synced_readonly: Engine) -> None:
    """Escape goes back; on the dashboard, with nowhere to go back to, F1 does not list
    it. On another screen it does."""
    from passweb_tui.screens.keys import KeysScreen

    def listed(app: Any) -> set[str]:
        assert isinstance(app.screen, KeysScreen)
        return {" ".join(row.keys) for s in app.screen.sections for row in s.rows}

    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert "esc" not in listed(app) and "s" in listed(app)
        await pilot.press("f1")
        await pilot.press("r")  # the runs
        await settle(app, pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert "esc" in listed(app)


async def test_an_unknown_keymap_id_is_named_in_a_message_that_fits_80x24(
    synced_readonly: Engine,
) -> None:
    app = create_app(synced_readonly, poll_s=0, keymap={"orders.sendd": "f3", "app.help": "f2"})
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(app, pilot)
        (message,) = [str(n.message) for n in app._notifications]
        assert "orders.sendd" in message and "did you mean orders.send?" in message
        assert "README" in message and "F1" in message
        assert "goto.dashboard" not in message  # not the whole list
        # all of it on the terminal, from the line naming the bad id: the toast's own
        # lines, right of its left edge, over whatever the screen shows under it
        await pilot.pause(0.3)
        lines = screen_lines(app)
        toast = [line.split("▌", 1)[1].strip(FRAME) for line in lines if "▌" in line]
        text = " ".join(" ".join(toast).split())
        assert text.startswith("[ui] keymap: unknown binding id orders.sendd"), lines
        assert text.endswith("F1 shows each screen's keys."), lines


def test_the_readme_lists_every_binding_id() -> None:
    """The keymap message sends the operator to the README for the ids."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    missing = sorted(i for i in create_app(None).binding_ids() if f"`{i}`" not in readme)
    assert not missing


#: (keys in one burst from the dashboard, the screen they open, what they did there)
FROM_THE_DASHBOARD = [
    (("o", "3"), "orders", lambda screen: screen.view_name == "updates"),
    pytest.param(
        ("o", "slash", "W"),
        "orders",
        lambda screen: screen.query_one("#orders-filter").value == "W",
        marks=pytest.mark.slow,
    ),
    (
        ("a", "j", "j"),
        "catalogue",
        lambda screen: screen.query_one("#catalogue-table").cursor_row == 2,
    ),
    pytest.param(
        ("a", "slash", "W"),
        "catalogue",
        lambda screen: screen.query_one("#catalogue-search").value == "W",
        marks=pytest.mark.slow,
    ),
    (("c", "j"), "changes", lambda screen: screen.query_one("#changes-table").cursor_row == 1),
    # (the tree opens on its first category, the line below its root)
    (("g", "j"), "categories", lambda screen: screen.query_one("#cat-tree").cursor_line == 2),
]


@pytest.mark.parametrize(("keys", "mode", "done"), FROM_THE_DASHBOARD)
async def test_keys_typed_behind_a_screen_key_take_effect_on_that_screen(
    synced_readonly: Engine, keys: tuple[str, ...], mode: str, done: Any
) -> None:
    """ "o" then "3" in one read, from the dashboard: the "3" went to the dashboard (its
    body had the focus, and the screen's key ran only once that body had passed it on),
    or to the orders' search field (focused first, before the table), and the orders
    opened on their first view with "3" in the search. Such keys now reach the screen
    the first key opens, and its table, once its rows are there."""
    app = create_app(synced_readonly, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert isinstance(app.screen, DashboardScreen)
        for key in keys:  # queued at once, as a terminal's read brings them
            app.post_message(events.Key(key, "/" if key == "slash" else key))
        for _ in range(20):
            await pilot.pause(0.05)
        await settle(app, pilot)
        assert app.current_mode == mode
        assert done(app.screen), keys
