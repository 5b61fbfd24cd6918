"""Keys as a user meets them: escape in a text field, and hints that name the key
actually bound when the config file remaps it."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Input

from passweb_tui.app import PasswebApp, create_app
from passweb_tui.engine.facade import Engine
from passweb_tui.screens.dashboard import DashboardScreen
from passweb_tui.screens.setup import SetupScreen

pytestmark = pytest.mark.anyio
pytest_plugins = ["ui_fixtures"]


async def settle(app: PasswebApp, pilot: Any) -> None:
    await app.workers.wait_for_complete()
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
