"""Save the README's screenshots (docs/screens/*.svg) from the current UI and the demo's data.

    .venv/bin/python bench/screenshots.py docs/screens

Starts the demo ERP (the built-in simulator with the data `--demo` uses: 5,000
articles, 1,000 customers, seed 1) and a site store, both in a temporary folder, and
does what an operator would: a first Variati (it runs as a Totale), a few ERP-side
changes and another Variati, two web orders sent to the ERP, part of one shipped
there and a Variati that brings the update back. Then, headless at 100x32 in English:
the dashboard, the launcher during a Totale (the simulator slowed down so that it is caught midway), and the
ERP-side update of an order under review. Nothing outside the temporary folder and
the given one is touched.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from passweb_tui.app import create_app
from passweb_tui.demo import DEMO_AZIENDA, DEMO_PASSWORD, DEMO_USER, start_demo_erp
from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.engine.facade import Engine, EngineSettings
from passweb_tui.engine.orders.api import WebOrders
from passweb_tui.i18n import set_language
from passweb_tui.screens.orders import UpdateDetailScreen

SIZE = (100, 32)


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


def sim_admin(root: str, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(method, f"{root}/sim/{path}", timeout=120, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


async def settle(app: Any, pilot: Any) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


async def dashboard_and_launcher(engine: Engine, root: str, folder: Path) -> list[Path]:
    app = create_app(engine, poll_s=0)
    saved: list[Path] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        saved.append(Path(app.save_screenshot("dashboard.svg", str(folder))))
        sim_admin(root, "PUT", "faults", json={"latency_ms": 300})
        try:
            await pilot.press("s", "t")
            while True:
                await pilot.pause(0.05)
                snap = app.sync.snapshot()
                articles = [p for p in (snap.entities if snap else ()) if p.entity == "articles"]
                if (articles and articles[0].done >= 2000) or (snap and not snap.running):
                    break
            saved.append(Path(app.save_screenshot("launcher.svg", str(folder))))
            app.sync.request_cancel()
            await app.sync_ended.wait()
        finally:
            sim_admin(root, "DELETE", "faults")
    return saved


async def order_review(engine: Engine, folder: Path) -> Path:
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=SIZE) as pilot:
        app.action_goto("orders")
        await settle(app, pilot)
        app.screen.query_one("#orders-table").focus()
        await pilot.press("3")  # updates to review
        await settle(app, pilot)
        await pilot.press("home", "enter")
        await settle(app, pilot)
        if not isinstance(app.screen, UpdateDetailScreen):
            raise SystemExit(f"the update detail did not open: {app.screen!r}")
        return Path(app.save_screenshot("order-review.svg", str(folder)))


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screens")
    folder.mkdir(parents=True, exist_ok=True)
    set_language("en")
    with tempfile.TemporaryDirectory() as tmp:
        demo = start_demo_erp(Path(tmp) / "demo")
        root = demo.url[: -len("/webapi")]
        try:
            erp = ErpConfig(demo.url, DEMO_USER, DEMO_PASSWORD, DEMO_AZIENDA, demo.anno)
            engine = Engine.open(EngineSettings(f"sqlite:///{tmp}/store.db", erp))
            try:
                engine.run("changed")  # the first one runs as a Totale
                sim_admin(root, "POST", "mutate", json={"resource": "articoli", "count": 40})
                sim_admin(root, "POST", "mutate", json={"resource": "clienti", "count": 8})
                engine.run("changed")
                orders = WebOrders(engine.store)
                orders.import_lines(
                    [order("W1001", "501.00002", 1, 3), order("W1002", "501.00003", 20, 2)]
                )
                engine.run("partial")  # sends them
                key = orders.show("W1001")["erp_key"]
                sim_admin(
                    root,
                    "POST",
                    f"orders/{key}/fulfil",
                    json={"rows": {"1": 2, "2": 1}, "delivery_note": True},
                )
                engine.run("changed")  # brings the ERP-side update back
                paths = asyncio.run(dashboard_and_launcher(engine, root, folder))
                paths.append(asyncio.run(order_review(engine, folder)))
                for path in paths:
                    print(path)
            finally:
                engine.close()
        finally:
            demo.stop()


if __name__ == "__main__":
    main()
