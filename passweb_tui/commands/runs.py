"""`passweb-tui runs`: the recorded sync runs, newest first."""

from __future__ import annotations

import argparse
import json

from passweb_tui.commands import CliError, Context, ExitCode
from passweb_tui.commands.sync import open_engine

#: more than any store holds: a larger --limit means "all" (the database takes no more)
MOST = 2**62


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list recorded sync runs, newest first")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs (20)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.limit < 0:  # 0 as `changes` and `orders list` take it: none
        raise CliError(f"--limit must be 0 or more, got {args.limit}", ExitCode.USAGE)
    engine = open_engine(ctx)
    try:
        runs = engine.runs(limit=min(args.limit, MOST))
    finally:
        engine.close()
    if args.json:
        print(json.dumps([r.to_json() for r in runs]))
        return int(ExitCode.OK)
    if not runs:
        print("no runs shown (--limit 0)" if args.limit == 0 else "no runs yet")
        return int(ExitCode.OK)
    print(f"{'run':>5}  {'kind':<8} {'status':<16} {'started':<25} {'secs':>8}  changes")
    for r in runs:
        kind = r.kind + ("*" if r.requested_kind != r.kind else "")
        t = r.totals()
        took = f"{r.duration_s:.2f}" if r.duration_s is not None else "-"
        dry = " (dry run)" if r.dry_run else ""
        print(
            f"{r.run_id:>5}  {kind:<8} {r.status:<16} {r.started.isoformat(timespec='seconds'):<25}"
            f" {took:>8}  +{t['inserted']} ~{t['updated']} -{t['deleted']} !{t['rejected']}{dry}"
        )
    return int(ExitCode.OK)
