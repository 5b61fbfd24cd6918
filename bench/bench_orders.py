"""Benchmark: pushing web orders and re-reading open ones, against the simulator.

Starts `passweb-tui erp-sim` as a subprocess, then
1. creates N documents with bare `MexalClient.create` calls (the ERP's own cost, the
   floor), and pushes N web orders with the exactly-once push (claim + commit before
   each request, bind after); prints both and their ratio;
2. re-reads M open orders at several batch sizes, printing the requests each needed
   (M / batch size) and the time, first with nothing changed, then with 1% fulfilled.

    .venv/bin/python bench/bench_orders.py [--push 1000] [--open 10000] [--db URL]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.engine.orders.api import WebOrders
from passweb_tui.engine.orders.documents import DocumentSeries, build_document
from passweb_tui.engine.orders.intake import parse_line
from passweb_tui.engine.orders.refresh import refresh_open_orders
from passweb_tui.engine.store import open_store

READY = re.compile(r"serving (http\S+/webapi) user=(\S+) azienda=(\S+) anno=(\d+)")
TIMING = re.compile(r"app;dur=([0-9.]+)")
PASSWORD = "bench-pw"


def start_sim() -> tuple[subprocess.Popen[str], ErpConfig]:
    args = [
        sys.executable,
        "-m",
        "passweb_tui",
        "erp-sim",
        "--port",
        "0",
        "--password",
        PASSWORD,
        "--articles",
        "2000",
        "--customers",
        "500",
        "--orders",
        "10",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = READY.search(line)
        if m:
            config = ErpConfig(
                base_url=m.group(1),
                user=m.group(2),
                password=PASSWORD,
                azienda=m.group(3),
                anno=int(m.group(4)),
            )
            return proc, config
    raise SystemExit("the simulator did not start")


class Timing:
    """Server-side work per reply, from the simulator's Server-Timing header."""

    def __init__(self) -> None:
        self.server_ms: list[float] = []
        self.requests = 0

    def note(self, response: httpx.Response, seconds: float) -> None:
        self.requests += 1
        m = TIMING.search(response.headers.get("Server-Timing", ""))
        if m:
            self.server_ms.append(float(m.group(1)))

    def reset(self) -> None:
        self.server_ms.clear()
        self.requests = 0


def order_json(order_id: str, i: int) -> str:
    return (
        f'{{"id": "{order_id}", "created": "2026-11-27T10:15:00", "payment": "confirmed", '
        f'"customer": {{"code": "501.{i % 400 + 1:05d}"}}, "rows": ['
        f'{{"article": "ART{i % 1900 + 1:07d}", "qty": 2, "price": 12.5, "vat_code": "22"}}, '
        f'{{"article": "ART{(i + 7) % 1900 + 1:07d}", "qty": 1, "price": 3.35, "vat_code": "22"}}]}}'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--push", type=int, default=1000, help="orders to push")
    parser.add_argument("--open", type=int, default=10000, help="open orders to re-read")
    parser.add_argument("--db", help="site store URL (default: SQLite in a temp folder)")
    args = parser.parse_args()
    proc, config = start_sim()
    folder = Path(tempfile.mkdtemp(prefix="bench-orders-"))
    store = open_store(args.db or f"sqlite:///{folder / 'store.db'}")
    timing = Timing()
    try:
        with MexalClient(config, on_response=timing.note) as client:
            orders = WebOrders(store)
            # 1. the floor: bare creates of the same documents
            docs = []
            for i in range(args.push):
                o = parse_line(order_json(f"RAW{i}", i))
                docs.append(
                    build_document(
                        order_id=o.id,
                        created=o.created,
                        customer_code=o.customer_code or "",
                        payment_code=None,
                        currency_id=None,
                        note=None,
                        rows=o.rows,
                        series=DocumentSeries(),
                    )
                )
            timing.reset()
            t0 = time.perf_counter()
            for doc in docs:
                client.create("documenti/ordini-clienti", doc)
            raw_s = time.perf_counter() - t0
            raw_server = sum(timing.server_ms) / 1000
            # 2. the exactly-once push of as many web orders
            report = orders.import_lines(order_json(f"P{i}", i) for i in range(args.push))
            assert report.complete, report.skipped[:3]
            timing.reset()
            t0 = time.perf_counter()
            result = orders.push(client)
            push_s = time.perf_counter() - t0
            assert result.orders_sent == args.push, result.errors[:3]
            print(f"push {args.push} orders ({store.engine.dialect.name} store)")
            print(
                f"  bare creates            {raw_s:7.2f} s  {args.push / raw_s:8.0f}/s  "
                f"(server work {raw_server:.2f} s)"
            )
            print(
                f"  exactly-once push       {push_s:7.2f} s  {args.push / push_s:8.0f}/s  "
                f"({timing.requests} requests)"
            )
            print(f"  ratio push / bare       {push_s / raw_s:7.2f}")

            # 3. open orders to re-read: push the rest up to --open
            extra = max(args.open - args.push, 0)
            if extra:
                orders.import_lines(order_json(f"Q{i}", i) for i in range(extra))
                t0 = time.perf_counter()
                orders.push(client)
                print(
                    f"  (pushed {extra} more for the refresh in {time.perf_counter() - t0:.1f} s)"
                )
            n_open = args.push + extra
            print(f"re-read {n_open} open orders")
            for batch in (50, 100, 200, 500):
                timing.reset()
                t0 = time.perf_counter()
                r = refresh_open_orders(store, client, batch_size=batch)
                secs = time.perf_counter() - t0
                med = statistics.median(timing.server_ms) if timing.server_ms else 0.0
                print(
                    f"  batch {batch:>4}: {r.requests:>4} requests  {secs:6.2f} s  "
                    f"{n_open / secs:8.0f} orders/s  server median {med:.1f} ms/request  "
                    f"updated {r.updated}"
                )
            # 1% of them fulfilled in the ERP, then one refresh at the default batch size
            keys = [o["erp_key"] for o in orders.list(limit=max(n_open // 100, 1))]
            root = config.base_url[: -len("/webapi")]
            for key in keys:
                httpx.post(
                    f"{root}/sim/orders/{key}/fulfil",
                    json={"rows": {"1": 2}, "delivery_note": True},
                ).raise_for_status()
            timing.reset()
            t0 = time.perf_counter()
            r = refresh_open_orders(store, client)
            secs = time.perf_counter() - t0
            print(
                f"  1% changed, default batch: {r.requests} requests  {secs:6.2f} s  "
                f"updated {r.updated} (queued for review)"
            )
    finally:
        store.close()
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
