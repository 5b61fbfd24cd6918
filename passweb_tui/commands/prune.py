"""`passweb-tui prune`: delete the old sync history (runs, their rejects and change-log
entries) that `[store] keep_history_days` no longer keeps; `serve` does it every hour."""

from __future__ import annotations

import argparse

from passweb_tui.commands import CliError, Context, ExitCode, StopSignals, print_json
from passweb_tui.commands.runs import local_time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="delete sync runs older than [store] keep_history_days, with their details",
        description="Delete the sync runs that finished longer ago than [store] "
        "keep_history_days (400 days unless set; 0 keeps everything), with their rejects "
        "and change-log entries. Always kept: runs not finished, the last TOTAL that ended "
        "well, the last TOTAL or CHANGED, the last correctly completed sync, the newest run "
        "of each status, runs whose rejected records wait to be fetched again, and runs that "
        "found an ERP-side order update not yet reviewed. Web orders are left alone. Safe "
        "while a sync runs.",
    )
    p.add_argument(
        "--keep-days",
        type=int,
        metavar="N",
        help="keep N days instead of the setting (0 keeps everything)",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would go; delete nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from passweb_tui.commands.sync import open_engine
    from passweb_tui.engine.history import prune_history
    from passweb_tui.engine.keep import keep_days_problem

    if args.keep_days is not None:
        problem = keep_days_problem(args.keep_days)
        if problem is not None:
            raise CliError(f"--keep-days {problem}", ExitCode.USAGE)
        keep_days = args.keep_days
    else:
        keep_days = ctx.settings.keep_history_days
    engine = open_engine(ctx)
    # a signal stops it between two of its short transactions: what went stays gone,
    # and is said, as a sync says what it did before it was cancelled
    with StopSignals() as signals:
        try:
            result = prune_history(
                engine.store,
                keep_days,
                dry_run=args.dry_run,
                stop=lambda: signals.received is not None,
            )
        finally:
            engine.close()
    stopped = f"prune: stopped by {signals.name or 'a signal'}"
    if result.dry_run and signals.received is not None:
        # the counting is not cut short (a few reads); what it found is not said either
        raise CliError(f"{stopped}; a dry run: nothing was removed")
    if args.json:
        print_json(result.to_json())
        if result.stopped:
            raise CliError(f"{stopped}; the rest goes at the next prune")
        return int(ExitCode.OK)
    given = "--keep-days" if args.keep_days is not None else "keep_history_days"
    if result.cut is None:
        print(f"{given} is 0: the whole sync history is kept; nothing removed")
        return int(ExitCode.OK)
    d = result.deleted
    what = (
        f"{d['sync_runs']} run{'' if d['sync_runs'] == 1 else 's'},"
        f" {d['sync_rejects']} reject{'' if d['sync_rejects'] == 1 else 's'},"
        f" {d['change_log']} change-log entr{'y' if d['change_log'] == 1 else 'ies'}"
    )
    if result.stopped:
        raise CliError(f"{stopped} after it removed {what}; the rest goes at the next prune")
    verb = "would remove" if result.dry_run else "removed"
    print(
        f"history older than {keep_days} days (finished before {local_time(result.cut)}):"
        f" {verb} {what}" + (" (dry run)" if result.dry_run else "")
    )
    return int(ExitCode.OK)
