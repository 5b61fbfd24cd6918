"""Orders through the sync commands, as an operator runs them: `sync partial` pushes what
waits, a scoped PARTIAL pushes or re-reads named orders, CHANGED re-reads open ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_orders_helpers import article_rows, erp_marker_counts, jsonl, new_customer, order_line

from passweb_tui.cli import main


@pytest.fixture
def cli(
    sim: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, Any]]:
    """`passweb-tui ARGS` in this process against the simulator; (exit status, JSON out)."""
    for var, value in (
        ("PASSWEB_TUI_ERP_URL", sim.url),
        ("PASSWEB_TUI_ERP_USER", sim.user),
        ("PASSWEB_TUI_ERP_PASSWORD", sim.password),
        ("PASSWEB_TUI_AZIENDA", sim.azienda),
        ("PASSWEB_TUI_ANNO", str(sim.anno)),
        ("PASSWEB_TUI_DB", f"sqlite:///{tmp_path / 'store.db'}"),
    ):
        monkeypatch.setenv(var, value)

    def run(*args: str) -> tuple[int, Any]:
        capsys.readouterr()
        code = main(list(args))
        said = capsys.readouterr()
        run.err = said.err  # type: ignore[attr-defined]
        return code, json.loads(said.out) if "--json" in args else said.out

    return run


def test_partial_pushes_what_waits_and_scoped_partial_rereads(
    cli: Callable[..., tuple[int, Any]], sim: Any, tmp_path: Path
) -> None:
    orders = tmp_path / "orders.jsonl"
    orders.write_text(
        jsonl(
            order_line("W1", customer=new_customer(1), rows=article_rows(2)),
            order_line("W2", rows=article_rows(1)),
            order_line("W3", payment="unconfirmed", rows=article_rows(1)),
            order_line("W4", rows=[{"article": "NOPE", "qty": 1, "price": 1, "vat_code": "22"}]),
        ),
        encoding="utf-8",
    )
    assert cli("orders", "import", str(orders))[0] == 0

    code, run = cli("sync", "partial", "--json")
    assert code == 4  # W4 could not be sent
    assert run["kind"] == "partial" and run["status"] == "ok_with_rejects"
    assert run["orders"]["sent"] == 2 and run["orders"]["failed"] == 1
    # told once, in the run's object and its rejects: not again as log lines on stderr
    assert "WARNING" not in cli.err, cli.err  # type: ignore[attr-defined]
    assert run["customers"] == {"sent": 1, "failed": 0}
    assert erp_marker_counts(sim, ["W1", "W2", "W3", "W4"]) == {"W1": 1, "W2": 1, "W3": 0, "W4": 0}
    listed = {o["id"]: o for o in cli("orders", "list", "--json")[1]}
    assert listed["W4"]["state"] == "new" and "NOPE" in listed["W4"]["last_error"]

    # the ERP ships part of W1; a PARTIAL scoped to W1 brings it back
    sim.admin(
        "POST",
        f"orders/{listed['W1']['erp_key']}/fulfil",
        json={"rows": {"1": 1}, "delivery_note": True},
    )
    code, run = cli("sync", "partial", "--entity", "orders", "--code", "W1", "--json")
    assert code == 0, run
    assert run["orders"]["updated"] == 1
    assert cli("orders", "show", "W1", "--json")[1]["state"] == "partially_fulfilled"
    (update,) = cli("orders", "updates", "--unreviewed", "--json")[1]
    assert update["order_id"] == "W1" and update["after"]["rows"][0]["qta_evasa"] == "1"
    assert cli("orders", "ack", str(update["update_id"])) == (0, "acknowledged 1 update\n")
    assert cli("orders", "updates", "--unreviewed", "--json")[1] == []
    # a second time: nothing new is acknowledged, and it says so
    assert cli("orders", "ack", str(update["update_id"])) == (
        0,
        f"acknowledged 0 updates; already acknowledged before: {update['update_id']}\n",
    )

    # a row of W2 suspended in the ERP: the next CHANGED (a first one runs as TOTAL) sees it
    sim.admin("POST", f"orders/{listed['W2']['erp_key']}/rows/1/state", json={"state": "S"})
    code, run = cli("sync", "changed", "--json")
    assert run["kind"] == "total" and run["orders"]["updated"] == 1, run
    assert cli("orders", "show", "W2", "--json")[1]["state"] == "suspended"
    # nothing was sent twice along the way
    assert erp_marker_counts(sim, ["W1", "W2"]) == {"W1": 1, "W2": 1}

    # a PARTIAL of the whole orders entity re-reads open orders and sends nothing
    (tmp_path / "more.jsonl").write_text(jsonl(order_line("W5", rows=article_rows(1))), "utf-8")
    assert cli("orders", "import", str(tmp_path / "more.jsonl"))[0] == 0
    code, run = cli("sync", "partial", "--entity", "orders", "--json")
    assert code == 0 and run["orders"]["sent"] == 0, run
    assert erp_marker_counts(sim, ["W5"]) == {"W5": 0}
    code, run = cli("sync", "partial", "--entity", "orders", "--code", "W5", "--json")
    assert code == 0 and run["orders"]["sent"] == 1, run
    assert erp_marker_counts(sim, ["W5"]) == {"W5": 1}

    # an order id the store does not have (a typing slip) is counted as a reject
    code, run = cli("sync", "partial", "--entity", "orders", "--code", "W404", "--json")
    assert code == 4 and run["status"] == "ok_with_rejects", run
    assert run["entities"]["orders"]["rejected"] == 1, run
    code, text = cli("sync", "partial", "--entity", "orders", "--code", "W404")
    assert "W404" in text and "not in the store" in text, text


def test_two_partial_syncs_at_once_send_each_order_once(
    cli: Callable[..., tuple[int, Any]], sim: Any, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    ids = [f"P{i}" for i in range(40)]
    lines = [
        order_line(
            oid,
            customer=new_customer(i) if i % 8 == 0 else {"code": "501.00002"},
            rows=article_rows(1, first=1 + i),
        )
        for i, oid in enumerate(ids)
    ]
    (tmp_path / "orders.jsonl").write_text(jsonl(*lines), encoding="utf-8")
    assert cli("orders", "import", str(tmp_path / "orders.jsonl"))[0] == 0
    sim.admin("PUT", "faults", json={"latency_ms": 30})  # so that the two overlap
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "passweb_tui", "sync", "partial", "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(os.environ),
            )
            for _ in range(2)
        ]
        runs = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            runs.append(json.loads(out))
    finally:
        sim.admin("DELETE", "faults")
    assert sum(r["orders"]["sent"] for r in runs) == 40
    assert sum(r["customers"]["sent"] for r in runs) == 5
    assert erp_marker_counts(sim, ids) == {i: 1 for i in ids}


def test_show_reads_the_erp_side_as_the_site_side(
    cli: Callable[..., tuple[int, Any]], tmp_path: Path
) -> None:
    """`orders show` after a push: the ERP document's prices with their cents, like the
    site's rows, and each push attempt at the operator's local time, to the second."""
    import re

    rows = [{"article": "ART0000001", "qty": 2, "price": "12.5", "vat_code": "22"}]
    orders = tmp_path / "orders.jsonl"
    orders.write_text(jsonl(order_line("W1", rows=rows)), encoding="utf-8")
    assert cli("orders", "import", str(orders))[0] == 0
    assert cli("sync", "partial", "--json")[0] == 0
    code, text = cli("orders", "show", "W1")
    assert code == 0
    site, erp = text.split("in the ERP:\n")
    assert "x      12.50  VAT 22  = 25.00" in site
    erp_row = next(line for line in erp.splitlines() if "ART0000001" in line)
    # (one space apart, so that the row fits 80 columns)
    assert "x      12.50 fulfilled        0 state -" in erp_row, erp_row
    assert len(erp_row) <= 80
    attempts = text.split("push attempts:\n")[1].splitlines()
    assert re.fullmatch(r"  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d created    OC\+\S+", attempts[0]), (
        attempts
    )
