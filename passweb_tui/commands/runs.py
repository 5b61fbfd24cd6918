"""`passweb-tui runs`: the recorded sync runs, newest first."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from passweb_tui.commands import CliError, Context, ExitCode, print_json
from passweb_tui.commands.sync import open_engine

if TYPE_CHECKING:  # the engine is imported when a command runs, not to build --help
    from passweb_tui.engine.facade import RunResult

#: more than any store holds: a larger --limit means "all" (the database takes no more)
MOST = 2**62


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list recorded sync runs, newest first")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs (20)")
    p.set_defaults(handler=run)


def local_time(moment: datetime, *, seconds: bool = True) -> str:
    """A stored moment as the operator's clock reads it (the JSON keeps it in UTC)."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def local_iso(moment: str | None, *, seconds: bool = True) -> str:
    """A moment as the JSON gives it (ISO-8601) at the operator's local time; "-" for none."""
    return local_time(datetime.fromisoformat(moment), seconds=seconds) if moment else "-"


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.limit < 0:  # 0 as `changes` and `orders list` take it: none
        raise CliError(f"--limit must be 0 or more, got {args.limit}", ExitCode.USAGE)
    engine = open_engine(ctx)
    try:
        runs = engine.runs(limit=min(args.limit, MOST))
    finally:
        engine.close()
    if args.json:
        print_json([r.to_json() for r in runs])
        return int(ExitCode.OK)
    if not runs:
        print("no runs shown (--limit 0)" if args.limit == 0 else "no runs yet")
        return int(ExitCode.OK)
    from passweb_tui.commands.table import print_table

    rows = []
    for r in runs:
        t = r.totals()
        rows.append(
            [
                str(r.run_id),
                r.kind + ("*" if r.requested_kind != r.kind else ""),
                r.status,
                local_time(r.started),
                f"{r.duration_s:.2f}" if r.duration_s is not None else "-",
                f"+{t['inserted']} ~{t['updated']} -{t['deleted']} !{rejected(r)}"
                + (" (dry run)" if r.dry_run else ""),
                orders_done(r.orders),
            ]
        )
    print_table(("run", "kind", "status", "started", "secs", "changes", "web orders"), rows,
                sys.stdout, right=(0, 4), give_way=(6,), floor=6)  # fmt: skip
    return int(ExitCode.OK)


def rejected(run: RunResult) -> int:
    """What a run rejected, as its rejects list it (and the UI's runs count them): the
    records it could not take, and the web customers and orders it could not send."""
    records = run.totals()["rejected"]
    return records + run.customers.get("failed", 0) + run.orders.get("failed", 0)


def orders_done(counts: dict[str, int]) -> str:
    """What a run did with web orders: sent to the ERP, failed to send, updated from the
    ERP; "-" for nothing."""
    done = [f"{counts[k]} {k}" for k in ("sent", "failed", "updated") if counts.get(k)]
    return ", ".join(done) or "-"
