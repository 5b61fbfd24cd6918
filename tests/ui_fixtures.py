"""Fixtures of the UI tests: one small simulator per module, engines on temp SQLite
stores (fresh, or copied from a store that already had its first Totale)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import start_sim

from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.engine.facade import Engine, EngineSettings
from passweb_tui.i18n import set_language


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def language(request: pytest.FixtureRequest) -> Iterator[str]:
    """The UI's language for one test, English again afterwards: parametrize it with
    `indirect=True`, e.g. `@pytest.mark.parametrize("language", ["en", "it"], indirect=True)`."""
    chosen = str(getattr(request, "param", "en"))
    set_language(chosen)
    try:
        yield chosen
    finally:
        set_language("en")


def erp_of(sim: Any) -> ErpConfig:
    return ErpConfig(sim.url, sim.user, sim.password, sim.azienda, sim.anno)


@pytest.fixture(scope="module")
def ui_sim() -> Iterator[Any]:
    """One small simulator for the module; these tests never change its data."""
    p = start_sim("--articles", "500", "--customers", "100", "--orders", "20", "--seed", "7")
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def erp_sim(ui_sim: Any) -> Iterator[Any]:
    """The module's simulator, its faults cleared after each test."""
    try:
        yield ui_sim
    finally:
        ui_sim.admin("DELETE", "/faults")


@pytest.fixture
def engine(erp_sim: Any, tmp_path: Path) -> Iterator[Engine]:
    eng = Engine.open(EngineSettings(f"sqlite:///{tmp_path / 'store.db'}", erp_of(erp_sim)))
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(scope="module")
def synced_store(ui_sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store after one Totale against the module's simulator, copied by each test."""
    path = tmp_path_factory.mktemp("synced") / "store.db"
    eng = Engine.open(EngineSettings(f"sqlite:///{path}", erp_of(ui_sim)))
    try:
        assert eng.run("total").status == "ok"
    finally:
        eng.close()
    return path


@pytest.fixture
def synced(erp_sim: Any, synced_store: Path, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a store that already had its first Totale."""
    copy = tmp_path / "synced.db"
    shutil.copyfile(synced_store, copy)
    eng = Engine.open(EngineSettings(f"sqlite:///{copy}", erp_of(erp_sim)))
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture(scope="module")
def synced_readonly(ui_sim: Any, synced_store: Path) -> Iterator[Engine]:
    """One engine for the module on the synced store; tests using it must not write."""
    eng = Engine.open(EngineSettings(f"sqlite:///{synced_store}", erp_of(ui_sim)))
    try:
        yield eng
    finally:
        eng.close()


@pytest.fixture
def own_engine(sim: Any, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a new store and a simulator of the test's own (`sim`), for tests
    that change the ERP's data."""
    eng = Engine.open(EngineSettings(f"sqlite:///{tmp_path / 'own.db'}", erp_of(sim)))
    try:
        yield eng
    finally:
        eng.close()
