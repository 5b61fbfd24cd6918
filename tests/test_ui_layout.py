"""What a user sees on small terminals: the launcher below 80 columns, each screen's
footer at 80x24, and the setup screen's message at 60x20."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.widgets import Button, Input
from ui_screen import on_screen, screen_lines

from passweb_tui.app import PasswebApp, create_app
from passweb_tui.engine.facade import Engine
from passweb_tui.i18n import set_language, t

pytestmark = pytest.mark.anyio
pytest_plugins = ["ui_fixtures"]

SYNC_TIMEOUT_S = 60


async def settle(app: PasswebApp, pilot: Any) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", [(60, 20), (70, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
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
    ("orders", "o", ["/ Search", "S Send now", "a Acknowledge", "A Acknowledge all"]),
    ("runs", "r", ["l Run's changes", "f1 Keys"]),
    ("run detail", "r enter", ["l Run's changes", "f1 Keys"]),
    ("fields", "f", ["space Use/unuse", "t Next table", "u Attribute update", "f1 Keys"]),
]


@pytest.mark.parametrize("language", ["en", "it"])
async def test_every_footer_fits_80_columns(synced_readonly: Engine, language: str) -> None:
    set_language(language)
    try:
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
    finally:
        set_language("en")


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
