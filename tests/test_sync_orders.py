"""Web orders ride along with syncs: PARTIAL pushes what waits, TOTAL/CHANGED also re-read
the orders still open in the ERP (the work itself is engine/orders'; here, when it runs)."""

from __future__ import annotations

import json
from typing import Any

from passweb_tui.engine.facade import Engine, Scope
from passweb_tui.engine.orders.api import WebOrders


def _order(order_id: str, engine: Engine) -> str:
    customer = engine.customers(limit=1)[0]["code"]
    article = engine.articles(limit=1)[0]["code"]
    return json.dumps(
        {
            "id": order_id,
            "created": "2026-11-27T10:15:00",
            "payment": "confirmed",
            "customer": {"code": customer},
            "rows": [{"article": article, "qty": 2, "price": 12.5, "vat_code": "22"}],
        }
    )


def test_partial_pushes_waiting_orders_and_changed_reads_their_erp_updates(
    sim: Any, db_url: str
) -> None:
    from test_sync_rules import open_engine

    engine = open_engine(db_url, sim)
    try:
        engine.run("total")
        orders = WebOrders(engine.store)
        report = orders.import_lines([_order("W9001", engine), _order("W9002", engine)])
        assert not getattr(report, "errors", None)
        pushed = engine.run("partial", scope=Scope(("orders",), ("W9001",)))
        assert pushed.orders["sent"] == 1 and pushed.status == "ok"
        rest = engine.run("partial")
        assert rest.orders["sent"] == 1 and rest.customers == {"sent": 0, "failed": 0}
        idle = engine.run("partial")
        assert idle.orders["sent"] == 0 and "nothing to do" in (idle.message or "")
        stored = {o["id"]: o for o in orders.list()}
        key = stored["W9001"]["erp_key"]
        assert key
        sim.admin("POST", f"orders/{key}/fulfil", json={"rows": {"1": 1.0}})
        changed = engine.run("changed")
        assert changed.orders["updated"] == 1
        again = engine.runs(limit=1)[0]
        assert again.orders == changed.orders  # kept with the run record
    finally:
        engine.close()
