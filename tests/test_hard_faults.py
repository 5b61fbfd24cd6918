"""Fault matrix: every fault the simulator can inject x each sync kind x each store.

For every cell the faulted run completes or fails with a recorded error, no record
is half-written, the watermark never passes data not applied, and after the fault
is cleared one clean CHANGED leaves the store in step with the ERP (a dry-run TOTAL
changes nothing and every used field of every record equals the simulator's).

The CI sample (not slow) covers each fault, each sync kind and each store at least
once. The full sweep: `PASSWEB_TUI_TEST_PG=... pytest -m slow tests/test_hard_faults.py -s`.
"""

from __future__ import annotations

import json
import random
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import SimProcess, start_sim
from hard_support import (
    erp_records,
    in_step,
    open_engine,
    store_diffs,
    store_vs_erp,
    unfinished_runs,
    watermark,
)

from passweb_tui.engine.facade import Engine, ProgressEvent, Scope
from passweb_tui.engine.orders.intake import import_orders

# fault name -> what PUT /sim/faults receives (None: a fault of its own, see apply_fault)
FAULTS: dict[str, dict[str, Any] | None] = {
    "503 storm": {"status": {"503": 0.35}},
    "500": {"status": {"500": 0.15}},
    "408": {"status": {"408": 0.15}},
    "latency spike": {"latency_ms": 40},
    "drop before commit": {"drop_before_commit": 0.12},
    "drop after commit": {"drop_after_commit": 0.6},
    "malformed JSON": {"malformed": 0.15},
    "next rejected": {"reject_next": 0.5},
    "pool size 1": {"pool_size": 1},
    "password changed": None,
    "clock moved": None,
}
KINDS = ("total", "changed", "partial")
STORES = ("sqlite", "postgres")
NEW_PASSWORD = "changed-mid-run-7"

MATRIX: list[tuple[str, str, str, str, str]] = []  # fault, kind, store, outcome, after


def pytest_terminal_summary_lines() -> list[str]:
    """The matrix as table lines (printed at the end of each test module run)."""
    if not MATRIX:
        return []
    head = ("fault", "kind", "store", "faulted run", "after clean CHANGED")
    rows = [head, *MATRIX]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return [line(head), "  ".join("-" * w for w in widths), *(line(r) for r in MATRIX)]


@pytest.fixture(scope="module")
def fault_sim() -> Iterator[SimProcess]:
    """A small ERP shared by the cells of this module; each cell starts from a fresh store."""
    p = start_sim("--articles", "300", "--customers", "60", "--orders", "5", "--seed", "11")
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module", autouse=True)
def print_matrix(request: pytest.FixtureRequest) -> Iterator[None]:
    """The table at the end of the module: on the terminal report when there is one
    (plain pytest), else on stdout (shown by `pytest -s`)."""
    yield
    lines = pytest_terminal_summary_lines()
    if not lines:
        return
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "fault matrix")
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n\nFault matrix\n" + "\n".join(lines))


@dataclass
class Cell:
    fault: str
    kind: str
    store: str


def sample_cells() -> list[Cell]:
    """Each fault once, kinds and stores dealt round-robin so each appears repeatedly."""
    return [
        Cell(fault, KINDS[i % len(KINDS)], STORES[(i // 2) % len(STORES)])
        for i, fault in enumerate(FAULTS)
    ]


def sweep_cells() -> list[Cell]:
    return [Cell(f, k, s) for f in FAULTS for k in KINDS for s in STORES]


def erp_side_changes(sim: SimProcess, rng: random.Random) -> None:
    """Work for the run: changed articles and customers, one article added, site flags flipped."""
    seed = rng.randrange(1_000_000)
    sim.admin("POST", "mutate", json={"resource": "articoli", "count": 25, "seed": seed})
    sim.admin("POST", "mutate", json={"resource": "clienti", "count": 5, "seed": seed + 1})
    articles = erp_records(sim, "articoli")
    template = dict(articles[sorted(articles)[rng.randrange(len(articles))]])
    template = {k: v for k, v in template.items() if k not in ("dt_mod_sistema", "ora_mod_sistema")}
    template["codice"] = f"HF{seed:07d}"
    template["descrizione"] = f"added by the fault matrix {seed}"
    body = json.loads(json.dumps(template, default=float))
    reply = httpx.post(f"{sim.root}/sim/records/articoli", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    # a site flag switched (the way CHANGED learns of removals; a record deleted
    # outright is found only by a TOTAL, DOMAIN.md)
    sim.admin(
        "POST",
        "mutate",
        json={"resource": "articoli", "count": 3, "seed": seed + 2, "fields": ["trasf_sito"]},
    )


def web_order(sim: SimProcess, order_id: str) -> str:
    customers = sorted(erp_records(sim, "clienti"))
    articles = [k for k in sorted(erp_records(sim, "articoli")) if k.startswith("ART")]
    return json.dumps(
        {
            "id": order_id,
            "created": "2026-11-27T10:15:00",
            "payment": "confirmed",
            "customer": {"code": customers[0]},
            "currency": "EUR",
            "payment_code": "BB30",
            "rows": [
                {"article": articles[0], "qty": 2, "price": 12.5, "vat_code": "22"},
                {"article": articles[1], "qty": 1, "price": 3.35, "vat_code": "22"},
            ],
        }
    )


def snapshot(engine: Engine) -> dict[str, dict[str, str]]:
    """The stored data of the main entities, by code, as text."""
    from sqlalchemy import select

    from passweb_tui.engine.records import ENTITIES, MAIN_ENTITIES

    out = {}
    with engine.store.read() as conn:
        for name in MAIN_ENTITIES:
            t = ENTITIES[name].table
            out[name] = {c: d for c, d in conn.execute(select(t.c.code, t.c.data))}
    return out


def apply_fault(sim: SimProcess, fault: str) -> Callable[[], None]:
    """Inject the fault now; returns how to undo it."""
    body = FAULTS[fault]
    if body is not None:
        sim.admin("PUT", "faults", json={**body, "seed": 5})
        return lambda: sim.admin("DELETE", "faults") and None
    if fault == "password changed":
        sim.admin("PUT", f"users/{sim.user}", json={"password": NEW_PASSWORD})
        return lambda: (
            sim.admin("PUT", f"users/{sim.user}", json={"password": sim.password}) and None
        )
    # the ERP clock jumps 30 minutes ahead mid-run and is set right afterwards (inside
    # the overlap window the design promises to absorb)
    sim.admin("PUT", "clock", json={"offset_s": 1800})
    return lambda: sim.admin("DELETE", "clock") and None


def run_cell(cell: Cell, sim: SimProcess, db_url: str, seed: int) -> None:
    rng = random.Random(seed)
    engine = open_engine(db_url, sim)
    undo: list[Callable[[], None]] = []
    try:
        base = engine.run("total")
        assert base.status == "ok", base.error
        order_id = f"WF{seed:06d}"
        report = import_orders(engine.store, [web_order(sim, order_id)])
        assert report.complete, [str(p) for p in report.skipped]
        erp_side_changes(sim, rng)
        before_mark = watermark(engine)
        before = snapshot(engine)

        # the fault strikes in the middle: at the first progress of the main pull (or
        # of the push, for a PARTIAL that only pushes)
        fired = threading.Event()

        def strike(ev: ProgressEvent) -> None:
            if not fired.is_set() and ev.phase in ("articles", "customers", "push"):
                fired.set()
                undo.append(apply_fault(sim, cell.fault))

        # a PARTIAL re-pulls two entities, or (for the write faults) only pushes orders
        scope = (
            Scope(("articles", "customers"))
            if cell.kind == "partial" and "commit" not in cell.fault
            else None
        )
        result = engine.run(cell.kind, scope=scope, on_event=strike)
        for u in reversed(undo):
            u()
        undo.clear()

        # 1. completed, or failed with a recorded, readable error
        assert result.status in ("ok", "ok_with_rejects", "failed"), result.status
        if result.status == "failed":
            assert result.error and len(result.error) > 5, result
            recorded = engine.run_detail(result.run_id).run  # type: ignore[arg-type]
            assert recorded.status == "failed" and recorded.error == result.error
        assert unfinished_runs(engine) == []
        # 2. the watermark moves only with an ok TOTAL/CHANGED
        after_mark = watermark(engine)
        if result.status == "failed" or cell.kind == "partial":
            assert after_mark == before_mark
        # 3. no record half-written: each is as before the run or as the ERP has it
        mid = snapshot(engine)
        half = [
            d
            for d in store_diffs(engine, sim)
            if d[2].startswith("price rows")
            or d[0] not in before
            or before[d[0]].get(d[1]) != mid[d[0]].get(d[1])
        ]
        assert not half, half[:5]

        # 4. faults cleared: one clean CHANGED puts the store in step
        clean = engine.run("changed")
        assert clean.status == "ok", clean.error
        assert in_step(engine) == {}
        assert store_vs_erp(engine, sim) == []
        keys = sim.admin("GET", "orders", params={"marker": order_id}).json()["keys"]
        assert len(keys) == 1, f"web order {order_id} in the ERP {len(keys)} times"
        outcome = result.status + (f" ({result.error[:40]})" if result.error else "")
        MATRIX.append((cell.fault, cell.kind, cell.store, outcome, "in step, order once"))
    except BaseException as exc:
        MATRIX.append((cell.fault, cell.kind, cell.store, "-", f"FAILED: {exc!s:.60}"))
        raise
    finally:
        for u in reversed(undo):
            u()
        engine.close()


#: the faults CI samples (one kind and store each); the slow sweep samples every fault
#: and runs the whole matrix (test_fault_sweep)
CI_FAULTS = ("503 storm", "drop after commit", "malformed JSON", "password changed")


@pytest.mark.parametrize(
    ("cell", "db_url"),
    [
        pytest.param(
            c,
            c.store,
            id=f"{c.fault}-{c.kind}-{c.store}",
            marks=() if c.fault in CI_FAULTS else pytest.mark.slow,
        )
        for c in sample_cells()
    ],
    indirect=["db_url"],
)
def test_fault_sample(cell: Cell, db_url: str, fault_sim: SimProcess) -> None:
    run_cell(
        cell, fault_sim, db_url, seed=zlib.crc32(f"{cell.fault}/{cell.kind}".encode()) % 100_000
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cell", "db_url"),
    [pytest.param(c, c.store, id=f"{c.fault}-{c.kind}-{c.store}") for c in sweep_cells()],
    indirect=["db_url"],
)
def test_fault_sweep(cell: Cell, db_url: str, fault_sim: SimProcess) -> None:
    run_cell(cell, fault_sim, db_url, seed=1000 + sweep_cells().index(cell))
