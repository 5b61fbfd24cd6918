"""`passweb-tui store copy TARGET`: the whole site store copied into a new one (a backup
to a SQLite file, a move to PostgreSQL, a restore from a backup)."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

from passweb_tui.commands import CliError, Context, ExitCode, StopSignals, print_json
from passweb_tui.commands.table import LiveLine


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "store",
        help="copy the site store: a backup, a move to PostgreSQL, a restore",
        description="Work on the site store as a whole.",
    )
    actions = p.add_subparsers(dest="store_action", metavar="ACTION", required=True)
    c = actions.add_parser(
        "copy",
        help="copy the whole store into a new SQLite file or an empty PostgreSQL database",
        description="Copy every row of the site store (the one --db, --site, --demo or the "
        "config name) into a new store at TARGET: a file name or sqlite:///FILE for a "
        "SQLite file (a backup), or a postgresql+psycopg:// URL of an empty database (a "
        "move as an installation grows). To restore a backup, copy it back: "
        "`passweb-tui --db sqlite:///BACKUP store copy NEW_TARGET`. The store is read as it "
        "was at one moment, so the copy is safe while a sync or the service runs. A target "
        "that exists or holds a store is refused, never written over; a copy that fails or "
        "is cancelled leaves nothing at TARGET. The lock starts free in the copy, and a run "
        "under way at that moment is interrupted there. Web orders and new customers "
        "waiting to go to the ERP are looked up there before a push from the copy sends "
        "them. Files under resources/ are not in "
        "the store: a missing one is fetched again by the next sync that looks at it. Exit "
        "status: 0 copied, 1 failed or cancelled, 2 a source or target that cannot be used.",
    )
    c.add_argument("target", metavar="TARGET", help="a new SQLite file, or a database URL")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from passweb_tui.engine.store import StoreError, shown_url
    from passweb_tui.engine.store_copy import StoreCopyCancelled, copy_store, target_url

    # the driver's own warnings about a connection that broke (a pipeline it could not
    # close) would come on top of the one line that says what happened
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    cancel = threading.Event()
    shown_at = [0.0]
    line = LiveLine(sys.stderr)
    live = line.live and not args.json

    with StopSignals() as signals:

        def progress(table: str, done: int, rows: int) -> None:
            if signals.received is not None:
                cancel.set()
            now = time.monotonic()
            if live and (now - shown_at[0] > 0.2 or done == rows):
                shown_at[0] = now
                line.show(f"copying {table}: {done:,}/{rows:,}")

        try:
            result = copy_store(
                ctx.settings.resolved_db_url, args.target, progress=progress, cancel=cancel
            )
        except StoreCopyCancelled:
            why = f" by {signals.name}" if signals.received is not None else ""
            raise CliError(
                f"store copy: cancelled{why}; nothing was written at"
                f" {shown_url(target_url(args.target))}"
            ) from None
        except StoreError as exc:
            code = ExitCode.USAGE if exc.to_correct else ExitCode.FAILED
            raise CliError(f"store copy: {exc}", code) from None
        finally:
            if live:
                line.clear()
    if args.json:
        print_json(result.to_json())
        return int(ExitCode.OK)
    tables = len(result.tables)
    print(
        f"copied {result.source} to {result.target}: {result.rows:,} rows of {tables}"
        f" tables in {result.seconds:.1f}s"
    )
    width = max(len(name) for name in result.tables) if result.tables else 0
    for name, rows in result.tables.items():
        if rows:
            print(f"  {name:<{width}}  {rows:>12,}")
    waiting = result.to_look_up
    if waiting.get("orders") or waiting.get("customers"):
        print(
            f"waiting to go to the ERP when copied: {waiting.get('orders', 0)} web orders,"
            f" {waiting.get('customers', 0)} new customers; the copy looks each up in the"
            " ERP before it sends it"
        )
    if result.under_way:
        runs = ", ".join(str(r) for r in result.under_way)
        print(f"run{'s' if len(result.under_way) > 1 else ''} {runs} under way when copied:"
              " interrupted in the copy")  # fmt: skip
    return int(ExitCode.OK)
