"""Save the README's screenshot of an ERP-side order update under review.

    .venv/bin/python bench/screens_orders.py docs/screens

Starts the built-in simulator in the background, syncs a temporary store, sends two
web orders, lets the ERP ship part of them, runs a Variati and opens the update.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

import httpx

from passweb_tui.app import create_app
from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.engine.facade import Engine, EngineSettings
from passweb_tui.engine.orders.api import WebOrders
from passweb_tui.mexal_sim.server import SimOptions, start_background
from passweb_tui.screens.orders import UpdateDetailScreen


def order(order_id: str, customer: str, first: int, rows: int) -> str:
    lines = [
        {"article": f"ART{first + i:07d}", "qty": 2 + i, "price": f"{12 + i}.50", "vat_code": "22"}
        for i in range(rows)
    ]
    return json.dumps(
        {
            "id": order_id,
            "created": "2026-11-27T10:15:00",
            "payment": "confirmed",
            "customer": {"code": customer},
            "currency": "EUR",
            "payment_code": "BB30",
            "rows": lines,
        }
    )


async def shoot(engine: Engine, folder: Path) -> Path:
    app = create_app(engine, poll_s=0, stable=True)
    async with app.run_test(size=(120, 40)) as pilot:
        app.action_goto("orders")
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.screen.query_one("#orders-table").focus()
        await pilot.press("3")  # updates to review
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("home", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not isinstance(app.screen, UpdateDetailScreen):
            raise SystemExit(f"the update detail did not open: {app.screen!r}")
        return Path(app.save_screenshot("order-review.svg", str(folder)))


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screens")
    folder.mkdir(parents=True, exist_ok=True)
    sim = start_background(SimOptions(port=0, articles=500, customers=100, orders=10, seed=7))
    try:
        erp = ErpConfig(sim.url, "demo", "demo", "DEM", SimOptions().anno)
        with tempfile.TemporaryDirectory() as tmp:
            engine = Engine.open(EngineSettings(f"sqlite:///{tmp}/store.db", erp))
            try:
                engine.run("total")
                orders = WebOrders(engine.store)
                orders.import_lines([order("W1001", "501.00002", 1, 3)])
                engine.run("partial")
                key = orders.show("W1001")["erp_key"]
                httpx.post(
                    f"{sim.root}/sim/orders/{key}/fulfil",
                    json={"rows": {"1": 2, "2": 1}, "delivery_note": True},
                ).raise_for_status()
                engine.run("changed")
                print(asyncio.run(shoot(engine, folder)))
            finally:
                engine.close()
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
