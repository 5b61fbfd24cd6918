"""What a user sees on small terminals: the launcher below 80 columns, each screen's
footer at 80x24, and the setup screen's message at 60x20."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ui_screen import on_screen, screen_lines

from passweb_tui.app import PasswebApp, create_app
from passweb_tui.engine.facade import Engine

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
