"""`passweb-tui status`: the site's sync at a glance, from the store alone, for an
operator's first look and for monitoring (its exit status says whether anything
needs someone).

It asks nothing of the ERP (`doctor` does): the last successful sync and how long
ago, the last run, the runs under way, what the store holds, and the web
orders that wait, failed to go, need checking or have ERP updates to review.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from passweb_tui.commands import CliError, Context, ExitCode, print_json
from passweb_tui.commands.runs import local_time
from passweb_tui.commands.sync import one_line, open_engine


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="the last sync, a run under way, the store and the web orders, at a glance",
        description="Read the site store (the ERP is not asked: see doctor) and print the "
        "last successful sync and its age, the last run, the runs under way, the "
        "store's records and the web orders by what they wait on. Exit status 0, or 4 when "
        "something needs the operator: no successful sync yet, or none for longer than "
        "--max-age; a last run that failed; web orders whose sending failed or that are "
        "to check; a last run whose process ended before the run did.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--max-age",
        type=float,
        metavar="MINUTES",
        help="a last successful sync older than this needs attention",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.max_age is not None and not args.max_age > 0:
        raise CliError(f"--max-age must be more than 0 minutes, got {args.max_age}", ExitCode.USAGE)
    from passweb_tui.engine.orders.api import WebOrders
    from passweb_tui.engine.sync import INTERRUPTED

    engine = open_engine(ctx)
    try:
        board = engine.dashboard(field_counts=False)  # (not shown here)
        main = engine.last_main_run()
        summary = WebOrders(engine.store).summary()
        web = {
            "waiting": summary.waiting,
            "payment_unconfirmed": summary.unconfirmed,
            "failed": summary.failed,
            "open": summary.open,
            "to_check": summary.to_check,
            "unreviewed_updates": summary.unreviewed,
            "customers_failed": summary.customers_failed,
        }
    finally:
        engine.close()
    now = datetime.now(UTC)
    finished = [r for r in board.last_runs if r.status != "running"]
    last = finished[0] if finished else None
    age = (now - board.last_success).total_seconds() if board.last_success else None
    lease = board.lease  # a live lease: a TOTAL or CHANGED is under way
    # runs alive now (a run whose process died reads as failed): a lease's, PARTIALs, dry runs
    under_way = board.under_way
    attention: list[str] = []
    if board.last_success is None:
        attention.append("no sync has completed correctly yet")
    elif args.max_age is not None and age is not None and age > args.max_age * 60:
        attention.append(
            f"the last successful sync is {_ago(age)} old (more than {args.max_age:g}"
            f" minute{'' if args.max_age == 1 else 's'})"
        )
    # a dry run stopped by its process's end wrote nothing and left nothing to complete
    idle_dry = last is not None and last.dry_run and last.error == INTERRUPTED
    if last is not None and last.status == "failed" and not idle_dry:
        what = "dry run" if last.dry_run else "run"
        line = f"the last {what} ({last.run_id}) failed: {one_line(last.error or '')}"
        if last.error == INTERRUPTED and last.kind == "partial":  # killed or crashed mid-run
            line += "; run it again to complete its work"
        elif last.error == INTERRUPTED and not last.dry_run:
            line += "; the next TOTAL or CHANGED completes its work"
        attention.append(line)
    # the last TOTAL or CHANGED that failed stays a matter while no later one has run, a
    # PARTIAL or a dry run since notwithstanding: the watermark has not moved
    if (
        main is not None
        and main.status == "failed"
        and (last is None or main.run_id != last.run_id)
    ):
        attention.append(
            f"the last {main.kind.upper()} ({main.run_id}) failed:"
            f" {one_line(main.error or '')}; the next TOTAL or CHANGED completes its work"
        )
    if web["failed"]:
        attention.append(
            f"{web['failed']} web order(s) could not be sent (orders list --state new)"
        )
    if web["customers_failed"]:
        attention.append(
            f"{web['customers_failed']} new web customer(s) could not be created in the ERP,"
            " and their orders wait on them (orders customer ID shows why and mends one)"
        )
    if web["to_check"]:
        attention.append(f"{web['to_check']} web order(s) to check (orders list --state to_check)")

    if args.json:
        print_json(
            {
                "last_success": board.last_success.isoformat() if board.last_success else None,
                "last_success_age_s": None if age is None else round(age, 1),
                "last_success_run_id": board.last_success_run,
                "last_run": last.to_json() if last is not None else None,
                "running": None
                if lease is None
                else {
                    "run_id": lease.run_id,
                    "holder": lease.holder,
                    "started": lease.started_at.isoformat(),
                    "heartbeat": lease.heartbeat_at.isoformat(),
                    "expires": lease.expires_at.isoformat(),
                },
                "under_way": [
                    {
                        "run_id": r.run_id,
                        "kind": r.kind,
                        "dry_run": r.dry_run,
                        "started": r.started.isoformat(),
                    }
                    for r in under_way
                ],
                "store": {
                    "articles": board.articles,
                    "published_articles": board.published_articles,
                    "customers": board.customers,
                    "categories": board.categories,
                },
                "orders": web,
                "attention": attention,
            }
        )
        return int(ExitCode.PARTIAL if attention else ExitCode.OK)

    lines: list[tuple[str, str]] = []
    if board.last_success is None:
        lines.append(("last successful sync", "never"))
    else:
        kind = board.last_success_kind
        what = f"run {board.last_success_run}" + (f", {kind}" if kind else "")
        when = f"{local_time(board.last_success)} ({what}), {_ago(age or 0)} ago"
        lines.append(("last successful sync", when))
    if last is not None:
        took = f" in {last.duration_s:.2f}s" if last.duration_s is not None else ""
        lines.append(
            (
                "last run",
                f"{last.run_id} {last.kind}{' dry run' if last.dry_run else ''} {last.status}"
                f"{took}, started {local_time(last.started)}",
            )
        )
    going = []
    if lease is not None:
        going.append(lease.brief())
    for r in under_way:
        if lease is None or r.run_id != lease.run_id:
            dry = " dry run" if r.dry_run else ""
            going.append(f"run {r.run_id} ({r.kind}{dry}) since {local_time(r.started)}")
    for i, text in enumerate(going or ["none"]):
        lines.append(("sync under way" if i == 0 else "", text))
    unpublished = board.articles - board.published_articles
    lines.append(
        (
            "site store",
            f"articles {board.articles:,}"
            + (f" ({unpublished:,} unpublished)" if unpublished else "")
            + f", customers {board.customers:,}, categories {board.categories:,}",
        )
    )
    lines.append(
        (
            "web orders waiting",
            f"{web['waiting']} to send ({web['failed']} after a failed attempt),"
            f" {web['payment_unconfirmed']} with payment unconfirmed",
        )
    )
    lines.append(
        (
            "web orders open",
            f"{web['open']} in the ERP ({web['to_check']} to check),"
            f" {web['unreviewed_updates']} ERP updates to review",
        )
    )
    from passweb_tui.commands.table import print_pairs, terminal_width, wrapped

    print_pairs(lines, sys.stdout)
    if attention:
        print("needs attention:")
        for line in attention:
            print("\n".join(wrapped(f"  {line}", terminal_width(sys.stdout), indent=4)))
    return int(ExitCode.PARTIAL if attention else ExitCode.OK)


def _ago(seconds: float) -> str:
    """A duration as an operator says it: 40 s, 12 min, 3 h 5 min, 2 days 4 h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} day{'s' if d != 1 else ''} {h} h" if h else f"{d} day{'s' if d != 1 else ''}"
