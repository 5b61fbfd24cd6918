"""The demo: the built-in ERP simulator, started in the background for `--demo`.

Its data lives in a state file inside the demo data folder, so what one command
pushed to the demo ERP is still there for the next command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passweb_tui.config import Settings, with_demo_erp
from passweb_tui.engine.erp.settings import ErpConfig

DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
DEMO_AZIENDA = "DEM"


@dataclass
class DemoErp:
    """A running embedded simulator."""

    url: str
    anno: int
    handle: Any

    def settings(self, settings: Settings) -> Settings:
        return with_demo_erp(settings, self.url, DEMO_USER, DEMO_PASSWORD, DEMO_AZIENDA, self.anno)

    def erp_config(self, settings: Settings) -> ErpConfig:
        return self.settings(settings).erp_config()

    def stop(self) -> None:
        self.handle.stop()


def start_demo_erp(folder: Path, *, articles: int = 5000, customers: int = 1000) -> DemoErp:
    """Start the simulator on a free loopback port, keeping its state in `folder`."""
    from passweb_tui.mexal_sim.server import SimOptions, start_background

    folder.mkdir(parents=True, exist_ok=True)
    options = SimOptions(
        host="127.0.0.1",
        port=0,
        articles=articles,
        customers=customers,
        state=folder / "erp-state.json",
        user=DEMO_USER,
        password=DEMO_PASSWORD,
        azienda=DEMO_AZIENDA,
    )
    handle = start_background(options)
    return DemoErp(url=handle.url, anno=options.anno, handle=handle)
