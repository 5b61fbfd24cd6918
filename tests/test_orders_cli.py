"""`passweb-tui orders ...` as a user runs it: output shapes and exit statuses of
CONTRACTS.md, one-line errors; and the orders tables match their migration."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_orders_helpers import jsonl, new_customer, order_line


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Run `passweb-tui --db DB orders ...` in this process (the entry point's own code)."""
    from passweb_tui.cli import main

    def run(db: str, *args: str, stdin: str | None = None) -> Result:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        capsys.readouterr()
        code = main(["--db", db, "orders", *args])
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def test_a_long_listing_is_streamed_whole_and_in_order(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    """`orders list --json` reads the orders a batch at a time (years of orders held all
    at once before): more orders than a batch come out once each, newest first, with the
    totals of their own rows, as the listing in one piece gives them."""
    from passweb_tui.engine.orders.api import LIST_BATCH, WebOrders
    from passweb_tui.engine.store import open_store

    db = f"sqlite:///{tmp_path / 'store.db'}"
    n = LIST_BATCH * 2 + 7
    lines = [
        order_line(f"W{i:05d}", created=f"2026-11-{1 + i % 28:02d}T10:{i % 60:02d}:00",
                   rows=[{"article": "ART1", "qty": 1 + i % 3, "price": "12.5", "vat_code": "22"}])
        for i in range(n)
    ]  # fmt: skip
    orders = tmp_path / "orders.jsonl"
    orders.write_text("".join(jsonl(line) for line in lines))
    assert cli(db, "import", str(orders)).returncode == 0
    listed = json.loads(cli(db, "list", "--json").stdout)
    store = open_store(db)
    try:
        whole = json.loads(json.dumps(WebOrders(store).list(), default=str))
    finally:
        store.close()
    assert len(listed) == n and listed == whole
    assert len({o["id"] for o in listed}) == n
    totals = {o["id"]: o["total"] for o in listed}
    assert (totals["W00001"], totals["W00002"]) == ("25", "37.5"), totals["W00001"]


def test_the_real_entry_point(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    orders = tmp_path / "orders.jsonl"
    orders.write_text(jsonl(order_line("W1"), "{broken"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "passweb_tui", "--db", db, "orders", "import", str(orders)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert result.returncode == 4
    assert result.stderr.strip().endswith(
        "line 2: not valid JSON (Expecting property name enclosed in double quotes at column 2)"
    )
    assert "imported 1 order; skipped 1 line" in result.stdout


def test_import_list_show_updates_ack(tmp_path: Path, cli: Callable[..., Any]) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    orders = tmp_path / "orders.jsonl"
    orders.write_text(
        jsonl(
            order_line("W1001", customer=new_customer(1)),
            "{broken",
            order_line("W1002", payment="unconfirmed"),
            order_line("W1003", rows=[]),
        ),
        encoding="utf-8",
    )
    result = cli(db, "import", str(orders))
    assert result.returncode == 4, result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2
    assert "line 2: not valid JSON" in errors[0]
    assert "line 4 (order W1003): rows: required" in errors[1]
    assert "imported 2 orders (1 new customer); skipped 2 lines" in result.stdout

    again = cli(db, "import", "-", stdin=jsonl(order_line("W1001")))
    assert again.returncode == 4
    assert "order W1001 already exists" in again.stderr

    listed = cli(db, "list", "--json")
    assert listed.returncode == 0
    data = json.loads(listed.stdout)
    assert [(o["id"], o["state"], o["erp_key"], o["last_error"]) for o in data] == [
        ("W1002", "payment_unconfirmed", None, None),
        ("W1001", "new", None, None),
    ]
    only_new = json.loads(cli(db, "list", "--state", "new", "--json").stdout)
    assert [o["id"] for o in only_new] == ["W1001"]
    table = cli(db, "list")
    assert table.returncode == 0 and "W1001" in table.stdout and "Cliente Web 1 Srl" in table.stdout

    shown = cli(db, "show", "W1001")
    assert shown.returncode == 0
    assert "state      new (Nuovo)" in shown.stdout and "ART0000001" in shown.stdout
    assert json.loads(cli(db, "show", "W1001", "--json").stdout)["customer"]["vat_number"]

    missing = cli(db, "show", "W404")
    assert missing.returncode == 2 and missing.stderr.strip() == "passweb-tui: no web order 'W404'"

    assert json.loads(cli(db, "updates", "--json").stdout) == []
    assert "no unreviewed order updates" in cli(db, "updates", "--unreviewed").stdout
    ack = cli(db, "ack", "7")
    assert ack.returncode == 2 and "no order update 7" in ack.stderr  # a mistyped id
    assert ack.stdout.strip() == "acknowledged 0 updates"


def test_updates_say_what_the_erp_changed(tmp_path: Path, cli: Callable[..., Any]) -> None:
    """Each update's line is followed by what changed: header fields and rows (by
    number), each with its value before and after."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from passweb_tui.engine.orders.models import WebOrderUpdate
    from passweb_tui.engine.store import open_store

    db = f"sqlite:///{tmp_path / 'store.db'}"
    orders = tmp_path / "orders.jsonl"
    orders.write_text(jsonl(order_line("W1")), encoding="utf-8")
    assert cli(db, "import", str(orders)).returncode == 0

    def row(rid: int, **over: str) -> dict[str, Any]:
        return {"id_riga": rid, "quantita": "2", "qta_evasa": "0", "stato_riga": ""} | over

    header = {"cod_conto": "501.00002", "nota": "$W1$"}
    before = {"header": header, "rows": [row(i) for i in range(1, 11)]}
    after = {
        "header": header | {"nota": "$W1$ call\nfirst"},
        "rows": [*(row(i) for i in range(1, 10)), row(10, qta_evasa="2", stato_riga="E")],
    }
    store = open_store(db)
    try:
        with store.write() as conn:
            conn.execute(
                sa.insert(WebOrderUpdate.__table__),  # type: ignore[attr-defined]
                [{"order_id": "W1", "state_before": "stored", "state_after": "fulfilled",
                  "before": before, "after": after, "reviewed": False,
                  "detected_at": datetime(2026, 12, 3, 18, 0, tzinfo=UTC)}],
            )  # fmt: skip
    finally:
        store.close()
    shown = cli(db, "updates", "--unreviewed")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1].split()[1:2] == ["W1"] and "stored -> fulfilled" in lines[1]
    assert lines[2].strip() == "nota: $W1$ -> $W1$ call first"
    assert lines[3].strip() == "row 10: qta_evasa 0 -> 2, stato_riga - -> E"
    assert len(lines) == 4


def test_times_read_at_the_operators_clock(
    tmp_path: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order's time without a zone is the site's local time: list and show give it back
    as written, on a machine whose clock is not UTC; one with a zone is shown at the
    operator's clock; the JSON keeps UTC."""
    import time

    monkeypatch.setenv("TZ", "CET-1")  # an hour east of UTC, all year (no zone files needed)
    time.tzset()
    try:
        db = f"sqlite:///{tmp_path / 'store.db'}"
        orders = tmp_path / "orders.jsonl"
        orders.write_text(
            jsonl(
                order_line("W1", created="2026-11-27T10:15:00"),
                order_line("W2", created="2026-11-27T10:15:00+00:00"),
            ),
            encoding="utf-8",
        )
        assert cli(db, "import", str(orders)).returncode == 0
        listed = {o["id"]: o for o in json.loads(cli(db, "list", "--json").stdout)}
        assert listed["W1"]["created"] == "2026-11-27T09:15:00+00:00"
        table = cli(db, "list").stdout.splitlines()
        assert "2026-11-27 10:15" in next(line for line in table if line.startswith("W1"))
        assert "2026-11-27 11:15" in next(line for line in table if line.startswith("W2"))
        assert "created    2026-11-27 10:15:00\n" in cli(db, "show", "W1").stdout
    finally:
        monkeypatch.undo()
        time.tzset()


def test_json_times_are_utc_whatever_the_servers_time_zone(
    cli: Callable[..., Any], db_url: str
) -> None:
    """A PostgreSQL server (or database) set to another time zone gives its times in
    that zone: the JSON outputs still say them in UTC, as on SQLite, so that scripts
    comparing or cutting them get the same text from either store."""
    placed = jsonl(order_line("W1", created="2026-11-27T10:15:00+00:00"))
    assert cli(db_url, "import", "-", stdin=placed).returncode == 0
    url = db_url
    if db_url.startswith("postgresql"):
        url += ("&" if "?" in db_url else "?") + "options=-ctimezone%3DPacific/Kiritimati"
    listed = json.loads(cli(url, "list", "--json").stdout)
    assert listed[0]["created"] == "2026-11-27T10:15:00+00:00"
    shown = json.loads(cli(url, "show", "W1", "--json").stdout)
    assert shown["created"] == "2026-11-27T10:15:00+00:00"


def test_a_payment_that_arrived_is_confirmed_and_the_order_then_waits_to_be_sent(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    """`orders confirm-payment`: an order waiting on its payment then waits to be sent
    (the next sync sends it); one not waiting on it is left as it is (exit 3), an unknown
    id is a mistyped argument (exit 2); the others named are confirmed all the same."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    placed = jsonl(
        order_line("W1", payment="unconfirmed"),
        order_line("W2", payment="unconfirmed"),
        order_line("W3"),
    )
    assert cli(db, "import", "-", stdin=placed).returncode == 0

    def state(order_id: str) -> str:
        return str(json.loads(cli(db, "show", order_id, "--json").stdout)["state"])

    assert state("W1") == state("W2") == "payment_unconfirmed"
    done = cli(db, "confirm-payment", "W1")
    assert done.returncode == 0 and "order W1: payment confirmed" in done.stdout
    assert state("W1") == "new" and state("W2") == "payment_unconfirmed"
    # the operator's decision is in the order's history
    (decision,) = json.loads(cli(db, "show", "W1", "--json").stdout)["push_attempts"]
    assert (decision["outcome"], decision["by_operator"]) == ("paid", True)
    left = cli(db, "confirm-payment", "W3", "W2")
    assert left.returncode == 3, left.stderr
    assert "order W3 is new, not waiting for its payment" in left.stderr
    assert state("W2") == "new" and state("W3") == "new"
    unknown = cli(db, "confirm-payment", "NOPE")
    assert unknown.returncode == 2 and "no web order 'NOPE'" in unknown.stderr


def test_usage_errors_exit_2(tmp_path: Path, cli: Callable[..., Any]) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    with pytest.raises(SystemExit) as exited:
        cli(db, "list", "--state", "shipped")
    assert exited.value.code == 2
    no_file = cli(db, "import", str(tmp_path / "nope.jsonl"))
    assert no_file.returncode == 2
    assert no_file.stderr.strip().startswith("passweb-tui: cannot read")
    with pytest.raises(SystemExit) as exited:
        cli(db, "ack", "x")
    assert exited.value.code == 2


def test_orders_tables_match_their_migration(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from passweb_tui.engine import models
    from passweb_tui.engine.orders.models import TABLES
    from passweb_tui.engine.store import open_store

    ours = {t.name for t in TABLES}
    store = open_store(db_url)
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), models.metadata)
    finally:
        store.close()

    def table_of(d: object) -> str | None:
        for part in d if isinstance(d, tuple) else ():
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if table is not None and getattr(table, "name", None) in ours:
                return str(table.name)
            if name in ours:
                return str(name)
            if isinstance(part, str) and part in ours:
                return part
        return None

    assert [d for d in diff if not isinstance(d, list) and table_of(d)] == []
    # type details (our exact-decimal text column) show up as modify_type lists; none
    # may be anything but the DecimalText-vs-String wrapper
    for d in diff:
        if isinstance(d, list):
            for change in d:
                if change[2] in ours:
                    assert change[0] == "modify_type", change


def test_show_says_when_a_new_customer_was_the_erps_already(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    from conftest import start_sim
    from test_orders_helpers import erp_config

    from passweb_tui.engine.erp.client import MexalClient
    from passweb_tui.engine.orders.api import WebOrders
    from passweb_tui.engine.store import open_store

    db = f"sqlite:///{tmp_path / 'store.db'}"
    sim = start_sim("--articles", "20", "--customers", "5", "--orders", "0")
    try:
        with MexalClient(erp_config(sim)) as client:
            office = client.create(
                "clienti",
                {
                    "codice": "501.AUTO",
                    "ragione_sociale": "Ufficio Spa",
                    "partita_iva": "07654321098",
                },
            )
            lines = [
                order_line("W1", customer=new_customer(1, vat_number="07654321098")),
                order_line("W2", customer=new_customer(2)),
            ]
            assert cli(db, "import", "-", stdin=jsonl(*lines)).returncode == 0
            store = open_store(db)
            try:
                assert WebOrders(store).push(client).customers_sent == 2
            finally:
                store.close()
    finally:
        sim.stop()
    matched = cli(db, "show", "W1").stdout
    assert f"(new on the site; ERP {office}, already the ERP's customer)" in matched
    assert "already the ERP's customer" not in cli(db, "show", "W2").stdout
    shown = json.loads(cli(db, "show", "W1", "--json").stdout)["customer"]
    assert (shown["erp_code"], shown["erp_bound_by"]) == (office, "matched")
    # the list names a new customer by the ERP's code too, once the ERP has one
    made = json.loads(cli(db, "show", "W2", "--json").stdout)["customer"]["erp_code"]
    rows = {line.split()[0]: line for line in cli(db, "list").stdout.splitlines()[1:]}
    assert f" {office} Cliente Web 1 Srl " in rows["W1"], rows["W1"]
    assert made and f" {made} " in rows["W2"], rows["W2"]


def test_customer_shows_and_mends_an_orders_new_customer(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    lines = [
        order_line("W1", customer=new_customer(1, tax_code="RSSMRA80A01F205XYZ")),
        order_line("W2", customer=new_customer(2)),
        order_line("W3"),  # an existing ERP customer's
    ]
    assert cli(db, "import", "-", stdin=jsonl(*lines)).returncode == 0
    shown = cli(db, "customer", "W1")
    assert shown.returncode == 0
    assert "tax_code      RSSMRA80A01F205XYZ\n" in shown.stdout
    assert "erp_code      -\n" in shown.stdout

    mended = cli(db, "customer", "W1", "--set", "tax_code=RSSMRA80A01F205X", "--set", "zip=")
    assert mended.returncode == 0, mended.stderr
    assert "tax_code      RSSMRA80A01F205X\n" in mended.stdout
    assert "zip           -\n" in mended.stdout
    assert "customer of order W1 changed; the next sync sends it to the ERP" in mended.stdout
    data = json.loads(cli(db, "customer", "W1", "--json").stdout)
    assert (data["tax_code"], data["zip"], data["erp_code"]) == ("RSSMRA80A01F205X", None, None)

    for args, code, said in (
        (["--set", "colour=red"], 2, "customer: no detail named colour"),
        (["--set", "tax_code"], 2, "--set: expected DETAIL=VALUE, got 'tax_code'"),
        (["--set", "email=x", "--erp-code", "501.00001"], 2, "give --set or --erp-code"),
        (["--set", "vat_number=00000000002"], 3, "is the site customer 'Cliente Web 2 Srl'"),
    ):
        refused = cli(db, "customer", "W1", *args)
        assert (refused.returncode, refused.stdout) == (code, ""), refused.stderr
        assert said in refused.stderr
    erp_customer = cli(db, "customer", "W3", "--set", "city=Roma")
    assert erp_customer.returncode == 3
    assert "is for the ERP customer 501.00001, not for a customer born on the site" in (
        erp_customer.stderr
    )
    assert cli(db, "customer", "W3").returncode == 2
    assert cli(db, "customer", "W404").returncode == 2
    assert json.loads(cli(db, "customer", "W1", "--json").stdout)["tax_code"] == "RSSMRA80A01F205X"
