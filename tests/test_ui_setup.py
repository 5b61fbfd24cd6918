"""First start against a real simulator: the setup screen tests the connection, saves it
owner-only and opens the store; the demo's ERP-side activity really changes the ERP."""

from __future__ import annotations

import argparse
import stat
import tomllib
from typing import Any

import httpx
import pytest
from textual.widgets import Input, Static

from passweb_tui.app import create_app
from passweb_tui.commands import Context
from passweb_tui.commands.ui import UiResources
from passweb_tui.config import config_path
from passweb_tui.demo_activity import DemoActivity
from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.engine.facade import Engine, EngineSettings
from passweb_tui.screens.dashboard import DashboardScreen

pytestmark = pytest.mark.anyio
pytest_plugins = ["ui_fixtures"]


def context() -> Context:
    return Context(argparse.Namespace(demo=False, command=None))


async def test_setup_tests_saves_owner_only_and_opens_the_store(erp_sim: Any) -> None:
    resources = UiResources(context())
    app = create_app(None, connect=resources.connect)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            form = {
                "url": erp_sim.url,
                "user": erp_sim.user,
                "password": erp_sim.password,
                "azienda": erp_sim.azienda,
                "anno": str(erp_sim.anno),
            }
            for name, value in form.items():
                app.screen.query_one(f"#setup-{name}", Input).value = value
            await pilot.press("ctrl+t")
            await app.workers.wait_for_complete()
            await pilot.pause()
            said = str(app.screen.query_one("#setup-result", Static).render())
            assert said.startswith("Connected: ERP version") and erp_sim.azienda in said

            await pilot.press("ctrl+s")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert isinstance(app.screen, DashboardScreen)
            assert app.engine is resources.engine
        path = config_path()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        saved = tomllib.loads(path.read_text("utf-8"))["erp"]
        assert saved == {
            "url": erp_sim.url,
            "user": erp_sim.user,
            "password": erp_sim.password,
            "azienda": erp_sim.azienda,
            "anno": erp_sim.anno,
        }
    finally:
        resources.close(app)


def test_demo_activity_changes_what_a_variati_then_reads(erp_sim: Any, tmp_path: Any) -> None:
    erp = ErpConfig(erp_sim.url, erp_sim.user, erp_sim.password, erp_sim.azienda, erp_sim.anno)
    engine = Engine.open(EngineSettings(f"sqlite:///{tmp_path / 'store.db'}", erp))
    try:
        engine.run("total")
        activity = DemoActivity(
            erp_sim.url,
            user=erp_sim.user,
            password=erp_sim.password,
            azienda=erp_sim.azienda,
            anno=erp_sim.anno,
        )
        with httpx.Client(base_url=erp_sim.root, timeout=30) as http:
            for _ in range(4):  # the fourth round also fulfils a web order row, if any
                activity.tick(http)
        run = engine.run("changed")
        assert run.status == "ok"
        assert run.entities["articles"]["updated"] + run.entities["customers"]["updated"] > 0
    finally:
        engine.close()


def fill_wrong_password(app: Any, erp_sim: Any) -> None:
    """The setup form with the simulator's address and user, and a password it refuses."""
    form = {"url": erp_sim.url, "user": erp_sim.user, "password": "wrong",
            "azienda": erp_sim.azienda}  # fmt: skip
    for name, value in form.items():
        app.screen.query_one(f"#setup-{name}", Input).value = value


# last in the module: a refused login must not disturb the tests sharing the simulator
async def test_setup_says_when_the_erp_refuses_the_password(erp_sim: Any) -> None:
    app = create_app(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        fill_wrong_password(app, erp_sim)
        await pilot.press("ctrl+t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        said = str(app.screen.query_one("#setup-result", Static).render())
        assert said.startswith("Failed:")
    assert not config_path().exists()  # nothing saved by a test of the connection


async def test_save_and_open_keeps_nothing_the_erp_refuses(erp_sim: Any) -> None:
    """Saving credentials the ERP refuses would open every later start on them, logging
    in again and again: they are not saved, and the screen says why."""
    resources = UiResources(context())
    app = create_app(None, connect=resources.connect)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            fill_wrong_password(app, erp_sim)
            await pilot.press("ctrl+s")
            await app.workers.wait_for_complete()
            await pilot.pause()
            said = str(app.screen.query_one("#setup-result", Static).render())
            assert said.startswith("Failed:") and "nothing was saved" in said
            assert not isinstance(app.screen, DashboardScreen)
        assert not config_path().exists()
    finally:
        resources.close(app)
