"""`passweb-tui show articles|customers CODE`: one record as the site store holds it."""

from __future__ import annotations

import argparse
import shlex

from passweb_tui.commands import CliError, Context, ExitCode, print_json
from passweb_tui.commands.runs import local_iso
from passweb_tui.commands.sync import open_engine
from passweb_tui.textsafe import one_line

ENTITIES = ("articles", "customers")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "show",
        help="one article or customer as the site store holds it",
        description="One article or customer as the site store holds it: the ERP fields "
        "the site uses, an article's prices per price list, its category or a customer's "
        "price list and payment, particolarita, and the run that last changed it. Exit "
        "status 2 when the store does not hold it.",
    )
    p.add_argument("entity", choices=ENTITIES, help="articles or customers")
    p.add_argument("code", help="the ERP code (ART0000001, 501.00002)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from passweb_tui.engine.records import money_text, value_text

    engine = open_engine(ctx)
    try:
        detail = engine.record(args.entity, args.code)
    finally:
        engine.close()
    if detail is None:
        raise CliError(
            f"the site store holds no {args.entity[:-1]} {args.code!r} (codes are exact);"
            f" `passweb-tui sync partial --entity {args.entity} --code {shlex.quote(args.code)}`"
            " reads it from the ERP, if the ERP has it for this site",
            ExitCode.USAGE,
        )
    if args.json:
        print_json(detail.to_json(), ensure_ascii=False)
        return int(ExitCode.OK)
    out = detail.to_json()
    print(f"{args.entity[:-1]} {detail.code}")
    for name, value in out["columns"].items():
        if name == "code":
            continue
        linked = detail.names.get(name)
        shown = one_line(value_text(value)) + (
            f"  {one_line(linked)}" if linked and value is not None else ""
        )
        print(f"  {name:<14} {shown}")
    last = out["last_change"]
    print(f"  {'stored':<14} {local_iso(out['synced_at'])}")
    if last is not None:
        print(f"  {'last change':<14} run {last['run_id']} at {local_iso(last['at'])}")
    print("fields (as stored)")
    for name in sorted(detail.data):
        print(f"  {name:<16} {one_line(value_text(detail.data[name]))}")
    if args.entity == "articles":
        print("prices")
        for code, name, price in detail.prices:
            print(f"  {code:>3}  {money_text(price):>12}  {name or '-'}")
    if detail.order_count:
        more = (
            f" (the newest {len(detail.orders)})" if detail.order_count > len(detail.orders) else ""
        )
        print(f"web orders: {detail.order_count}{more}")
        for o in detail.orders:
            created = local_iso(o["created"], seconds=False)
            print(f"  {o['id']:<14} {o['state']:<20} {created}  {o['erp_key'] or '-'}")
    if detail.conditions:
        print("particolarita")
        for c in detail.conditions:
            target = c["article"] or f"group {c['article_group'] or '-'}"
            print(
                f"  {c['customer'] or '-':<12} {target:<16} price {money_text(c['price']) if c['price'] is not None else '-':>10}"
                f"  discount {value_text(c['discount'])}"
            )
    return int(ExitCode.OK)
