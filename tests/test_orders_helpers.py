"""Shared helpers for the web-order tests: order lines, stores, clients (no tests here)."""

from __future__ import annotations

import json
from typing import Any


def order_line(
    order_id: str,
    *,
    customer: dict[str, Any] | None = None,
    payment: str = "confirmed",
    rows: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A plausible order for the import format of CONTRACTS.md."""
    return {
        "id": order_id,
        "created": "2026-11-27T10:15:00",
        "payment": payment,
        "customer": customer if customer is not None else {"code": "501.00001"},
        "currency": "EUR",
        "payment_code": "BB30",
        "rows": rows
        if rows is not None
        else [
            {"article": "ART0000001", "qty": 2, "price": 12.5, "discount": "10", "vat_code": "22"},
            {"article": "ART0000002", "qty": 1, "price": 3.35, "vat_code": "22"},
        ],
        **extra,
    }


def new_customer(n: int, **over: Any) -> dict[str, Any]:
    values = {
        "email": f"shop{n}@example.it",
        "name": f"Cliente Web {n} Srl",
        "vat_number": f"{n:011d}",
        "address": "Via Roma 1",
        "zip": "20100",
        "city": "Milano",
        "province": "MI",
        "country": "IT",
    }
    values.update(over)
    return values


def jsonl(*orders: dict[str, Any] | str) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in orders)


def erp_config(sim: Any, **over: Any) -> Any:
    """Client settings for a test simulator, with quick retries."""
    from passweb_tui.engine.erp.settings import ErpConfig

    values: dict[str, Any] = {
        "base_url": sim.url,
        "user": sim.user,
        "password": sim.password,
        "azienda": sim.azienda,
        "anno": sim.anno,
        "max_retries": 8,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "read_timeout_s": 30.0,
    }
    values.update(over)
    return ErpConfig(**values)


def article_rows(n: int, *, first: int = 1) -> list[dict[str, Any]]:
    """Rows for articles the test simulator has (ART0000001...)."""
    return [
        {
            "article": f"ART{first + i:07d}",
            "qty": 1 + i,
            "price": f"{10 + i}.25",
            "vat_code": "22",
        }
        for i in range(n)
    ]


def erp_marker_counts(sim: Any, order_ids: list[str]) -> dict[str, int]:
    """How many ERP documents carry each order's marker (the simulator's own count)."""
    import httpx

    with httpx.Client(base_url=f"{sim.root}/sim/", timeout=60) as http:
        counts = {}
        for oid in order_ids:
            response = http.get("orders", params={"marker": oid})
            response.raise_for_status()
            counts[oid] = len(response.json()["keys"])
    return counts
