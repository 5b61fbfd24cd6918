"""The commands' tables: as wide as what they hold when piped, and fitted to the
terminal when they write to one (an 80-column SSH session, here a real pseudo-terminal)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

from passweb_tui.commands.table import format_table

LONG_NAME = "Ferramenta e Colorificio dei Fratelli Bianchi di Bianchi Giovanni & C. S.a.s."


def test_columns_are_as_wide_as_their_values_and_numbers_align_right() -> None:
    lines = format_table(
        ("entity", "fetched"), [["articles", "5000"], ["currencies", "4"]], right=(1,)
    )
    assert lines == [
        "entity      fetched",
        "articles       5000",
        "currencies        4",
    ]


def test_without_a_width_nothing_is_cut() -> None:
    lines = format_table(
        ("ID", "CUSTOMER", "ERROR"), [["W1", LONG_NAME, "x" * 200]], give_way=(2, 1)
    )
    assert LONG_NAME in lines[1] and "x" * 200 in lines[1]


def test_a_table_too_wide_closes_its_gaps_then_cuts_the_columns_that_give_way() -> None:
    rows = [["W1", LONG_NAME, "734.38 EUR", "the ERP refused the order: unknown article XYZ"]]
    heads = ("ID", "CUSTOMER", "TOTAL", "ERROR")
    lines = format_table(heads, rows, right=(2,), give_way=(3, 1), floor=12, width=80)
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[1].startswith("W1 Ferramenta")  # one space between columns now
    assert "734.38 EUR" in lines[1]  # columns that do not give way stay whole
    assert "…" in lines[1]
    # narrower still: each column that gives way keeps its floor; the line then wraps
    tight = format_table(heads, rows, give_way=(3, 1), floor=12, width=30)
    cells = tight[1].split(" ", 1)[1]
    assert cells.startswith("Ferramenta …")  # 12 characters of the name, the last an ellipsis
    assert len(tight[1]) > 30


def test_one_space_is_enough_when_it_fits() -> None:
    lines = format_table(("a", "b"), [["x" * 10, "y" * 10]], width=21)
    assert lines[1] == "x" * 10 + " " + "y" * 10


def test_columns_least_needed_are_left_out_when_even_the_cut_ones_do_not_fit() -> None:
    heads = ("id", "state", "created", "customer", "erp", "error")
    row = ["W1", "payment_unconfirmed", "2026-11-27 12:40", LONG_NAME, "OC+1+208", "x" * 60]
    kept = dict(give_way=(5, 3), floor=12, drop=(4, 2))
    whole = format_table(heads, [row], **kept, width=120)  # type: ignore[arg-type]
    assert whole[0].split() == list(heads)
    # at 80 the ERP key goes, then the time placed, and the cut ones get the room
    lines = format_table(heads, [row], **kept, width=60)  # type: ignore[arg-type]
    assert lines[0].split() == ["id", "state", "customer", "error"], lines
    assert all(len(line) <= 60 for line in lines), lines
    assert "OC+1+208" not in lines[1] and "2026" not in lines[1]
    # piped (no width), nothing is left out
    assert format_table(heads, [row], **kept)[1].endswith("x" * 60)  # type: ignore[arg-type]


def test_a_long_value_wraps_under_its_column_between_words_never_inside_a_moment() -> None:
    from passweb_tui.commands.table import wrapped

    text = "last run              26 partial ok_with_rejects in 0.09s, started 2026-12-07 19:02:26"
    assert wrapped(text, None) == [text]
    lines = wrapped(text, 80, indent=22)
    assert lines == [
        "last run              26 partial ok_with_rejects in 0.09s, started",
        " " * 22 + "2026-12-07 19:02:26",
    ]


def run_in_terminal(
    args: list[str], env: dict[str, str], columns: int = 80, ok: tuple[int, ...] = (0,)
) -> str:
    """What the command writes to a pseudo-terminal of `columns` columns."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "passweb_tui", *args],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.PIPE,
            env=env,
        )
        os.close(slave)
        out = bytearray()
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other end closed: the command is done
                break
            if not chunk:
                break
            out += chunk
        proc.wait(timeout=120)
        assert proc.returncode in ok, proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    finally:
        os.close(master)
    return out.decode().replace("\r\n", "\n")


def test_orders_and_runs_fit_an_80_column_terminal_and_keep_it_all_when_piped(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    order = {
        "id": "W-LONG-1",
        "created": "2026-11-27T10:15:00",
        "payment": "confirmed",
        "customer": {
            "email": "bianchi@example.it",
            "name": LONG_NAME,
            "vat_number": "01234567897",
            "address": "Via Roma 1",
            "zip": "20100",
            "city": "Milano",
            "province": "MI",
            "country": "IT",
        },
        "currency": "EUR",
        "rows": [{"article": "ART0000001", "qty": 3, "price": 10.1, "vat_code": "22"}],
    }
    orders = tmp_path / "orders.jsonl"
    orders.write_text(json.dumps(order) + "\n")

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "passweb_tui", "--demo", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("orders", "import", str(orders))
    cli("sync", "changed")
    piped = cli("orders", "list")
    assert LONG_NAME in piped
    assert "30.30 EUR" in piped  # a total with its cents
    shown = run_in_terminal(["--demo", "orders", "list"], env)
    lines = shown.strip("\n").split("\n")
    assert len(lines) == 2 and lines[1].startswith("W-LONG-1"), shown
    assert all(len(line) <= 80 for line in lines), shown
    assert LONG_NAME not in shown and "…" in lines[1] and "30.30 EUR" in lines[1]
    # an order waiting on its payment, for a large amount: the widest state and total
    # leave room for the customer and the error only once the ERP key and the time
    # placed are left out (the rows wrapped at 80 before)
    waiting = {**order, "id": "W-WAIT-2", "payment": "unconfirmed"}
    waiting["rows"] = [{"article": "ART0000003", "qty": 1000, "price": 1234.5678, "vat_code": "22"}]
    orders.write_text(json.dumps(waiting) + "\n")
    cli("orders", "import", str(orders))
    shown = run_in_terminal(["--demo", "orders", "list"], env)
    lines = shown.strip("\n").split("\n")
    assert all(len(line) <= 80 for line in lines), shown
    assert "payment_unconfirmed" in shown and "1234567.80 EUR" in shown, shown
    # on a terminal that cannot show the ellipsis, its plain spelling takes its width
    plain = run_in_terminal(["--demo", "orders", "list"], {**env, "PYTHONIOENCODING": "ascii"})
    assert all(len(line) <= 80 for line in plain.split("\n")), plain
    assert "~" in plain and "…" not in plain
    # one that does not tell its width (0 columns): values whole, as piped
    assert LONG_NAME in run_in_terminal(["--demo", "orders", "list"], env, columns=0)
    # the status, its values broken between words under their column
    shown = run_in_terminal(["--demo", "status"], env, columns=60, ok=(0, 4))
    assert all(len(line) <= 60 for line in shown.split("\n")), shown

    for args in (["runs"], ["sync", "changed"]):
        shown = run_in_terminal(["--demo", *args], env)
        assert all(len(line) <= 80 for line in shown.split("\n")), shown
    assert "article_statistic_categories" in shown  # names are never cut


def test_amounts_read_with_their_cents_and_keep_the_decimals_the_erp_gives() -> None:
    from passweb_tui.engine.records import money_text

    assert [money_text(v) for v in ("1022.3", "8", "171.610000", "0.1234", 12.5, None, "x")] == [
        "1022.30",
        "8.00",
        "171.61",
        "0.1234",
        "12.50",
        "None",
        "x",
    ]


def test_of_a_per_list_field_only_the_lists_that_changed_are_compared() -> None:
    from passweb_tui.engine.records import changed_parts

    old = '{"1": "241.47", "2": "229.16", "3": "220"}'
    new = '{"1": "290.02", "2": "229.16", "4": "10"}'
    assert changed_parts(old, new) == ("1: 241.47 · 3: 220 · 4: -", "1: 290.02 · 3: - · 4: 10")
    # anything else as it is: plain values, a field set or cleared, text that is not JSON
    for pair in (("55", "67"), (None, '{"1": "3"}'), ('{"1": "3"}', None), ("{x", "{y")):
        assert changed_parts(*pair) == pair


def test_runs_counts_as_rejected_what_the_run_rejected_as_the_ui_does(
    sim: Any, tmp_path: Path
) -> None:
    """`runs` counts a run's rejects (`!N`) as the run lists them and as the UI's runs
    count them: the records it could not take, and the web orders it could not send.
    The `--json` keeps its shape: those are in `entities` and `orders` apart."""
    import io
    from contextlib import redirect_stderr, redirect_stdout
    from unittest import mock

    from test_orders_helpers import order_line

    from passweb_tui.cli import main
    from passweb_tui.engine.erp.settings import ErpConfig
    from passweb_tui.engine.facade import Engine, EngineSettings
    from passweb_tui.screens.dashboard import run_rejects

    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = {
        "PASSWEB_TUI_DB": db,
        "PASSWEB_TUI_ERP_URL": sim.url,
        "PASSWEB_TUI_ERP_USER": sim.user,
        "PASSWEB_TUI_ERP_PASSWORD": sim.password,
        "PASSWEB_TUI_AZIENDA": sim.azienda,
        "PASSWEB_TUI_ANNO": str(sim.anno),
    }

    def cli(*args: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        with mock.patch.dict(os.environ, env), redirect_stdout(out), redirect_stderr(err):
            code = main(list(args))
        return code, out.getvalue()

    orders = tmp_path / "orders.jsonl"
    bad_row = {"article": "NOPE", "qty": 1, "price": 1, "vat_code": "22"}
    lines = [order_line("W1"), order_line("W2", rows=[bad_row])]
    orders.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli("orders", "import", str(orders))[0] == 0
    code, pushed = cli("sync", "partial")  # W1 goes in, the ERP refuses W2
    assert code == 4 and "rejected: 1" in pushed, pushed
    code, pulled = cli("sync", "partial", "--entity", "articles", "--code", "ART9999999")
    assert code == 4 and "rejected: 1" in pulled, pulled

    code, table = cli("runs")
    assert code == 0
    shown = {
        int(line.split()[0]): int(re.findall(r"!(\d+)", line)[0]) for line in table.splitlines()[1:]
    }
    assert shown == {1: 1, 2: 1}, table
    _code, listed = cli("runs", "--json")
    by_id = {run["run_id"]: run for run in json.loads(listed)}
    assert by_id[1]["orders"] == {"sent": 1, "failed": 1, "updated": 0}
    assert all(c["rejected"] == 0 for c in by_id[1]["entities"].values())
    assert by_id[2]["entities"]["articles"]["rejected"] == 1
    assert set(by_id[1]) == set(by_id[2]) == {
        "run_id", "kind", "requested_kind", "origin", "scope", "status", "dry_run", "started",
        "finished", "duration_s", "entities", "orders", "customers", "error",
    }  # fmt: skip

    erp = ErpConfig(sim.url, sim.user, sim.password, sim.azienda, sim.anno)
    engine = Engine.open(EngineSettings(db, erp))
    try:
        for run in engine.runs():
            listed_rejects = engine.run_detail(run.run_id or 0).rejects
            assert shown[run.run_id or 0] == run_rejects(run) == len(listed_rejects), run
    finally:
        engine.close()


def test_a_json_array_written_in_batches_reads_as_the_whole_list_would(
    capsys: Any,
) -> None:
    """`changes --json` streams the log (an export of millions of entries held them all
    at once: 1.5 GB for a million); what it prints is what printing the list printed."""
    from passweb_tui.commands import print_json
    from passweb_tui.commands import print_json_array as _print_json_array

    items = [{"id": i, "new": f"v\x1b{i}", "old": None} for i in range(7)]
    for case in (items, items[:1], []):
        print_json(case)
        whole = capsys.readouterr().out
        for batch in (1, 2, 3, 7, 100):
            _print_json_array(iter(case), batch=batch)
            assert capsys.readouterr().out == whole, (len(case), batch)


def test_a_json_export_that_fails_halfway_prints_nothing(capsys: Any) -> None:
    """A read that failed halfway through a streamed `changes --json` left half an array
    on stdout (exit 1, but a script reading the file saw a cut export)."""
    import pytest

    from passweb_tui.commands import print_json_array as _print_json_array

    def entries() -> Any:
        for i in range(10):
            yield {"id": i}
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        _print_json_array(entries(), batch=3)
    assert capsys.readouterr().out == ""
