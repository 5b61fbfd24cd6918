"""The demo: the built-in ERP simulator, started in the background for `--demo`.

Its data lives in a state file inside the demo data folder, so what one command
pushed to the demo ERP is still there for the next command.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passweb_tui.config import Settings, make_private_folder, with_demo_erp
from passweb_tui.engine.erp.settings import ErpConfig

DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
DEMO_AZIENDA = "DEM"


@dataclass
class DemoErp:
    """A running embedded simulator."""

    url: str
    anno: int
    handle: Any  # None: the demo ERP of another process, used as it is
    info: Path | None = None  # the file that tells other processes about this one

    def settings(self, settings: Settings) -> Settings:
        return with_demo_erp(settings, self.url, DEMO_USER, DEMO_PASSWORD, DEMO_AZIENDA, self.anno)

    def erp_config(self, settings: Settings) -> ErpConfig:
        return self.settings(settings).erp_config()

    def stop(self) -> None:
        if self.handle is None:  # another process's demo ERP: it stops with that process
            return
        self.handle.stop()
        withdraw(self.info)


#: the demo ERP a running process serves, for the other demo processes on the same
#: folder: one demo ERP for all of them, so they agree on what was pushed to it
RUNNING = "erp-running.json"


def _running_erp(folder: Path) -> DemoErp | None:
    """The demo ERP another process serves from this folder, when it answers."""
    import httpx

    info = folder / RUNNING
    try:
        data = json.loads(info.read_text())
        pid, url, anno = int(data["pid"]), str(data["url"]), int(data["anno"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    root = url.rsplit("/webapi", 1)[0]
    try:
        if httpx.get(f"{root}/sim/stats", timeout=2.0).status_code != 200:
            return None
    except httpx.HTTPError:
        return None
    return DemoErp(url=url, anno=anno, handle=None)


class DemoStateError(Exception):
    """The demo ERP's state file cannot be used; the message says how to start afresh."""


def start_demo_erp(folder: Path, *, articles: int = 5000, customers: int = 1000) -> DemoErp:
    """Start the simulator on a free loopback port, keeping its state in `folder`."""
    from passweb_tui.mexal_sim.server import StateFileError, start_background

    make_private_folder(folder)  # the demo's store and ERP state name its customers
    running = _running_erp(folder)
    if running is not None:
        return running
    options = demo_erp_options(
        folder, host="127.0.0.1", port=0, articles=articles, customers=customers
    )
    try:
        handle = start_background(options)
    except StateFileError as exc:
        raise DemoStateError(
            f"the demo ERP cannot start: {exc}; remove {str(options.state)!r} to start it"
            " afresh (the demo store then catches up with its next Totale)"
        ) from None
    info = announce(folder, handle.url, options.anno)
    return DemoErp(url=handle.url, anno=options.anno, handle=handle, info=info)


def demo_erp_options(folder: Path, **given: Any) -> Any:
    """The simulator options of the demo ERP kept in `folder` (`given`: host, port...)."""
    from passweb_tui.mexal_sim.server import SimOptions

    return SimOptions(
        state=folder / "erp-state.json",
        user=DEMO_USER,
        password=DEMO_PASSWORD,
        azienda=DEMO_AZIENDA,
        **given,
    )


def running_demo_erp(folder: Path) -> tuple[str, int] | None:
    """(URL, pid) of the demo ERP another process serves from `folder`, if one answers."""
    running = _running_erp(folder)
    if running is None:
        return None
    try:
        return running.url, int(json.loads((folder / RUNNING).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def announce(folder: Path, url: str, anno: int) -> Path | None:
    """Tell the other demo processes on `folder` that this one serves its demo ERP at
    `url`; the file to take back at the end (None when it could not be written: then
    the others start their own, as before)."""
    info = folder / RUNNING
    tmp = info.with_name(f".{RUNNING}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps({"pid": os.getpid(), "url": url, "anno": anno}))
        os.replace(tmp, info)
    except OSError:
        return None
    return info


def withdraw(info: Path | None) -> None:
    """Take back what `announce` wrote, if it is still this process's."""
    if info is None:
        return
    try:
        if json.loads(info.read_text()).get("pid") == os.getpid():
            info.unlink()
    except (OSError, ValueError):
        pass
