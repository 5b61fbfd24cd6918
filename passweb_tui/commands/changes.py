"""`passweb-tui changes`: the change log (what each sync changed, field by field)."""

from __future__ import annotations

import argparse
import sys

from passweb_tui.commands import CliError, Context, ExitCode, print_json_array
from passweb_tui.commands.runs import MOST
from passweb_tui.commands.sync import change_text, open_engine


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("changes", help="show the change log, newest first")
    p.add_argument("--run", type=int, metavar="ID", help="only changes of this run")
    p.add_argument("--entity", metavar="E", help="only this entity (articles, customers, ...)")
    p.add_argument("--key", metavar="K", help="only this record (its ERP code: ART0000001)")
    p.add_argument(
        "--field",
        metavar="F",
        help="only changes of this field (prz_listino); (inserted) or (deleted) for whole records",
    )
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N entries (100)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from passweb_tui.engine.facade import SyncError
    from passweb_tui.engine.records import ENTITIES

    if args.limit < 0:
        raise CliError(f"--limit must be 0 or more, got {args.limit}", ExitCode.USAGE)
    logged = (*ENTITIES, "resources")  # the article attachments, which a run logs too
    if args.entity is not None and args.entity not in logged:
        raise CliError(
            f"unknown entity {args.entity!r}; choose one of: {', '.join(logged)}",
            ExitCode.USAGE,
        )
    if args.run is not None and not 1 <= args.run < 2**63:
        raise CliError(f"--run must be a run id (1 or more), got {args.run}", ExitCode.USAGE)
    engine = open_engine(ctx)
    try:
        if args.run is not None:
            try:
                engine.run_result(args.run)  # a run that does not exist is said so
            except SyncError as exc:
                raise CliError(str(exc), ExitCode.USAGE) from None
        limit = min(args.limit, MOST)
        if args.json:
            # streamed: an export of the whole log holds one batch of it at a time
            print_json_array(
                e.to_json()
                for e in engine.iter_changes(
                    run_id=args.run, entity=args.entity, key=args.key, field=args.field,
                    limit=limit,
                )
            )  # fmt: skip
            return int(ExitCode.OK)
        # one more than shown: whether the listing was cut, said under the table
        entries = engine.changes(
            run_id=args.run,
            entity=args.entity,
            key=args.key,
            field=args.field,
            limit=limit + 1,
        )
    finally:
        engine.close()
    cut = len(entries) > limit
    entries = entries[:limit]
    if not entries and args.limit == 0:
        print("no changes shown (--limit 0)")
        return int(ExitCode.OK)
    if not entries:
        narrowed = [
            f"{name} {value}"
            for name, value in (
                ("run", args.run),
                ("entity", args.entity),
                ("key", args.key),
                ("field", args.field),
            )
            if value is not None
        ]
        print("no changes recorded" + (f" for {', '.join(narrowed)}" if narrowed else ""))
        return int(ExitCode.OK)
    from passweb_tui.commands.table import format_table

    rows = []
    for e in entries:
        what = e.change
        if e.field is not None:
            what = f"{e.field}: {change_text(e.old, e.new, sys.stdout)}"
        rows.append([str(e.run_id), e.entity, e.key, what])
    # the columns as wide as this listing needs; the last, the change, is never cut
    print("\n".join(format_table(("run", "entity", "key", "change"), rows, right=(0,))))
    if cut:
        print(f"(the newest {len(entries)} shown; --limit N for more)")
    return int(ExitCode.OK)
