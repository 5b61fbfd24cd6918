"""`passweb-tui orders ...`: import web orders, list and show them, review ERP-side updates."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

from passweb_tui.commands import (
    CliError,
    Context,
    ExitCode,
    print_json,
    print_json_array,
    store_failure,
)
from passweb_tui.commands.runs import local_iso


def add_parser(sub: argparse._SubParsersAction) -> None:
    from passweb_tui.engine.orders.states import ALL

    p = sub.add_parser("orders", help="web orders: import, list, show, review ERP updates")
    osub = p.add_subparsers(dest="orders_command", metavar="ACTION", required=True)

    imp = osub.add_parser("import", help="store the orders of a JSON Lines file (- for stdin)")
    imp.add_argument("file", metavar="FILE")
    imp.set_defaults(handler=run_import)

    lst = osub.add_parser("list", help="list web orders, newest first")
    lst.add_argument("--state", choices=ALL, metavar="S", help=f"only this state: {', '.join(ALL)}")
    lst.add_argument("--limit", type=int, metavar="N", help="at most N orders")
    lst.add_argument("--json", action="store_true", help="a JSON array on stdout")
    lst.set_defaults(handler=run_list)

    show = osub.add_parser("show", help="one order in full")
    show.add_argument("order_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="a JSON object on stdout")
    show.set_defaults(handler=run_show)

    upd = osub.add_parser("updates", help="ERP-side updates to web orders, newest first")
    upd.add_argument("--unreviewed", action="store_true", help="only those not yet acknowledged")
    upd.add_argument("--json", action="store_true", help="a JSON array on stdout")
    upd.set_defaults(handler=run_updates)

    ack = osub.add_parser("ack", help="acknowledge reviewed updates")
    ack.add_argument("update_ids", metavar="UPDATE_ID", type=int, nargs="+")
    ack.set_defaults(handler=run_ack)

    resend = osub.add_parser(
        "resend",
        help="send a to_check order again whose ERP document is gone (checked in the ERP first)",
    )
    resend.add_argument("order_id", metavar="ID")
    resend.set_defaults(handler=run_resend)

    drop = osub.add_parser(
        "cancel",
        help="set aside for good an order the site will not send (not in the ERP; checked"
        " there first when a push may have sent it)",
    )
    drop.add_argument("order_id", metavar="ID")
    drop.set_defaults(handler=run_cancel)

    paid = osub.add_parser(
        "confirm-payment",
        help="the payment of an order waiting on it arrived: the next sync sends the order",
    )
    paid.add_argument("order_ids", metavar="ID", nargs="+")
    paid.set_defaults(handler=run_confirm_payment)

    cust = osub.add_parser(
        "customer",
        help="the new customer of an order: show it, correct a detail the ERP refused, or"
        " bind it to a customer the ERP has",
        description="Without options, show the web customer of order ID. --set corrects its"
        " details before it is created in the ERP (an empty value clears one); --erp-code"
        " binds it to a customer the ERP has (checked there first). The next push sends"
        " it and its orders.",
    )
    cust.add_argument("order_id", metavar="ID")
    cust.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="DETAIL=VALUE",
        dest="changes",
        help="name, email, vat_number, tax_code, address, zip, city, province or country",
    )
    cust.add_argument("--erp-code", metavar="CODE", help="an ERP customer code, like 501.00042")
    cust.add_argument("--json", action="store_true", help="a JSON object on stdout")
    cust.set_defaults(handler=run_customer)


@contextlib.contextmanager
def _orders(ctx: Context) -> Iterator[Any]:
    """The web orders of the site store named by the settings, closed afterwards."""
    from passweb_tui.engine.orders.api import WebOrders
    from passweb_tui.engine.store import StoreError, open_store

    try:
        store = open_store(ctx.settings.resolved_db_url, make_folder=ctx.settings.default_store)
    except StoreError as exc:
        raise store_failure(exc, ctx) from None
    try:
        yield WebOrders(store)
    finally:
        store.close()


def _dump(value: Any) -> None:
    print_json(value, ensure_ascii=False, default=str)


def run_import(args: argparse.Namespace, ctx: Context) -> int:
    try:
        handle = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}", ExitCode.USAGE) from None
    with handle, _orders(ctx) as orders:
        try:
            report = orders.import_lines(handle)
        except OSError as exc:
            raise CliError(f"reading {args.file} failed: {exc.strerror}", ExitCode.FAILED) from None
    name = "stdin" if args.file == "-" else args.file
    for problem in report.skipped:
        print(f"passweb-tui: {name}: {problem}", file=sys.stderr)
    n, new, skipped = len(report.stored), report.new_customers, len(report.skipped)
    customers = f" ({new} new customer{'s' * (new != 1)})" if new else ""
    print(
        f"imported {n} order{'s' * (n != 1)}{customers};"
        f" skipped {skipped} line{'s' * (skipped != 1)}"
    )
    return int(ExitCode.OK if report.complete else ExitCode.PARTIAL)


def _cell(value: Any, width: int) -> str:
    text = "-" if value in (None, "") else str(value)
    return text if len(text) <= width else text[: width - 1] + "~"


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    with _orders(ctx) as api:
        if args.limit is not None and args.limit < 0:
            raise CliError(f"--limit must be 0 or more, got {args.limit}", ExitCode.USAGE)
        limit = None if args.limit is None else min(args.limit, 2**62)
        if args.json:
            # streamed: years of orders, listed whole, hold one batch of them at a time
            print_json_array(
                api.iter_list(state=args.state, limit=limit), ensure_ascii=False, default=str
            )
            return int(ExitCode.OK)
        orders = api.list(state=args.state, limit=limit)
    if not orders:
        print("no web orders" + (f" in state {args.state}" if args.state else ""))
        return int(ExitCode.OK)
    from passweb_tui.commands.sync import one_line
    from passweb_tui.commands.table import print_table
    from passweb_tui.engine.records import money_text

    rows = []
    for o in orders:
        # the ERP's code (of a new customer, once the ERP has made it) and the name
        customer = " ".join(filter(None, (o["customer_code"], o["customer_name"])))
        rows.append(
            [
                o["id"],
                o["state"],
                local_iso(o["created"], seconds=False),
                customer or "-",
                f"{money_text(o['total'])} {o['currency'] or ''}".rstrip(),
                o["erp_key"] or "-",
                one_line(_error_of(o) or "-"),
            ]
        )
    heads = ("ID", "STATE", "CREATED", "CUSTOMER", "TOTAL", "ERP", "ERROR")
    # on a terminal the last error and the customer's name give way first; where even
    # that is too wide, the ERP's key and then the time it was placed are left out
    print_table(heads, rows, sys.stdout, right=(4,), give_way=(6, 3), floor=12, drop=(5, 2))
    return int(ExitCode.OK)


def _error_of(order: dict[str, Any]) -> str | None:
    """An order's error as its line in the list says it: what holds it first (a new
    customer the ERP refused, mended by `orders customer`), without the order's id,
    which the line shows already."""
    from passweb_tui.engine.orders.push import error_reason, order_subject

    if order["customer_error"]:
        return f"new customer: {order['customer_error']}"
    error = order["last_error"]
    return error_reason(error, order_subject(str(order["id"]))) if error else None


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    from passweb_tui.engine.orders.api import OrderNotFound
    from passweb_tui.engine.orders.states import LABELS
    from passweb_tui.engine.records import money_text

    try:
        with _orders(ctx) as api:
            order = api.show(args.order_id)
    except OrderNotFound as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    if args.json:
        _dump(order)
        return int(ExitCode.OK)
    c = order["customer"]
    matched = ", already the ERP's customer" if c and c.get("erp_bound_by") == "matched" else ""
    customer = (
        f"{c['name']} <{c['email']}> VAT {c['vat_number'] or '-'} "
        f"(new on the site; ERP {c['erp_code'] or 'not yet'}{matched})"
        if c
        else f"{order['customer_code']} {order['customer_name'] or ''}".strip()
    )
    lines = [
        f"order      {order['id']}",
        f"state      {order['state']} ({LABELS[order['state']]})",
        f"created    {local_iso(order['created'])}",
        f"payment    {order['payment']}"
        + (f" ({order['payment_code']})" if order["payment_code"] else ""),
        f"customer   {customer}",
        f"ERP key    {order['erp_key'] or '-'}",
        f"total      {money_text(order['total'])} {order['currency']}",
    ]
    if order["note"]:
        lines.append(f"note       {order['note']}")
    if order["last_error"]:
        lines.append(f"last error {order['last_error']}")
    lines.append("rows:")
    for r in order["lines"]:
        lines.append(
            f"  {r['line']:>3} {r['article']:<20} qty {r['qty']:>8} x {money_text(r['price']):>10}"
            f"{'  -' + r['discount'] + '%' if r['discount'] else ''}  VAT {r['vat_code']}"
            f"  = {money_text(r['total'])}"
        )
    doc = order["erp_document"]
    if doc:
        lines.append("in the ERP:")
        links = ", ".join(doc["header"].get("doc_collegati") or []) or "none"
        lines.append(f"  linked documents: {links}")
        for r in doc["rows"]:
            lines.append(
                f"  {r['id_riga']:>3} {r['codice_articolo']:<20} qty {r['quantita']:>8} "
                f"x {money_text(r['prezzo']):>10} fulfilled {r['qta_evasa']:>8}"
                f" state {r['stato_riga'] or '-'}"
            )
    if order["push_attempts"]:
        lines.append("push attempts:")
        for a in order["push_attempts"]:
            lines.append(
                f"  {local_iso(a['started'])} {a['outcome']:<10} {a['erp_key'] or ''} {a['error'] or ''}".rstrip()
            )
    if order["updates"]:
        lines.append("ERP updates: " + ", ".join(str(u) for u in order["updates"]))
    print("\n".join(lines))
    return int(ExitCode.OK)


def run_updates(args: argparse.Namespace, ctx: Context) -> int:
    with _orders(ctx) as api:
        updates = api.updates(unreviewed=args.unreviewed)
    if args.json:
        _dump(updates)
        return int(ExitCode.OK)
    if not updates:
        print("no unreviewed order updates" if args.unreviewed else "no order updates")
        return int(ExitCode.OK)
    from passweb_tui.commands.table import format_table, terminal_width

    rows = [
        [
            str(u["update_id"]),
            u["order_id"],
            local_iso(u["detected"]),
            f"{u['state_before']} -> {u['state_after']}",
            "yes" if u["reviewed"] else "no",
        ]
        for u in updates
    ]
    heads = ("UPDATE", "ORDER", "DETECTED", "STATE", "REVIEWED")
    lines = format_table(heads, rows, right=(0,), width=terminal_width(sys.stdout))
    print(lines[0])
    indent = " " * (len(heads[0]) + 1)
    for u, line in zip(updates, lines[1:], strict=True):
        print(line)
        for part in _changed_lines(u):  # what changed, under its update
            print(f"{indent}{part}")
    return int(ExitCode.OK)


def _changed_lines(update: dict[str, Any]) -> list[str]:
    """What the update changed, a line a part: header field or row, before -> after."""
    from passweb_tui.engine.orders.api import update_changes

    changes = update_changes(update)
    if changes.whole:
        return ["the whole document (the site had none before)"]
    if changes.gone:
        return ["the whole document: the ERP no longer has it"]
    before, after = update.get("before") or {}, update.get("after") or {}
    bh, ah = before.get("header") or {}, after.get("header") or {}
    lines = [f"{n}: {_shown(bh.get(n))} -> {_shown(ah.get(n))}" for n in changes.header]
    brows = {r.get("id_riga"): r for r in before.get("rows") or []}
    arows = {r.get("id_riga"): r for r in after.get("rows") or []}
    for rid, fields in changes.rows:
        b, a = brows.get(rid), arows.get(rid)
        if b is None or a is None:
            lines.append(f"row {rid}: {'added' if b is None else 'removed'}")
            continue
        shown = ", ".join(f"{n} {_shown(b.get(n))} -> {_shown(a.get(n))}" for n in fields)
        lines.append(f"row {rid}: {shown}")
    return lines


def _shown(value: Any) -> str:
    """A value of an order document as one short cell ('-' for none)."""
    if value is None or value == "" or value == []:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value)
    return _cell(" ".join(text.split()), 40)  # a note's line breaks, on one line


def run_ack(args: argparse.Namespace, ctx: Context) -> int:
    # an id no store can hold (too large, or not positive) is no update either
    with _orders(ctx) as api:
        acked, before, unknown = api.acknowledge(args.update_ids)
    for i in unknown:
        print(f"passweb-tui: no order update {i}", file=sys.stderr)
    said = f"acknowledged {len(acked)} update{'' if len(acked) == 1 else 's'}"
    if before:
        said += f"; already acknowledged before: {', '.join(map(str, before))}"
    print(said)
    # an id the store does not know is a mistyped argument (as for `orders show`): the
    # others given are acknowledged all the same
    return int(ExitCode.USAGE if unknown else ExitCode.OK)


def run_confirm_payment(args: argparse.Namespace, ctx: Context) -> int:
    """Each order named whose payment was awaited now waits to be sent. An unknown id is
    a mistyped argument (exit 2); an order not waiting on its payment is left as it is
    (exit 3); the others named are confirmed all the same."""
    from passweb_tui.engine.orders.api import OrderNotFound

    unknown: list[str] = []
    refused: list[str] = []
    with _orders(ctx) as api:
        for order_id in dict.fromkeys(args.order_ids):
            try:
                done = api.confirm_payment(order_id)
            except OrderNotFound:
                unknown.append(order_id)
                continue
            if done:
                print(f"order {order_id}: payment confirmed; the next sync sends it")
            else:
                state = api.show(order_id)["state"]
                refused.append(order_id)
                print(
                    f"passweb-tui: order {order_id} is {state}, not waiting for its payment:"
                    " left as it is",
                    file=sys.stderr,
                )
    for order_id in unknown:
        print(f"passweb-tui: no web order {order_id!r}", file=sys.stderr)
    if unknown:
        return int(ExitCode.USAGE)
    return int(ExitCode.REFUSED if refused else ExitCode.OK)


def run_customer(args: argparse.Namespace, ctx: Context) -> int:
    from passweb_tui.engine.erp.client import MexalClient
    from passweb_tui.engine.erp.errors import AuthError, ContextMissingError, ErpError
    from passweb_tui.engine.orders.api import CustomerNotChanged, OrderNotFound
    from passweb_tui.engine.orders.intake import OrderInvalid

    if args.changes and args.erp_code:
        raise CliError("give --set or --erp-code, not both", ExitCode.USAGE)
    changes: dict[str, str] = {}
    for given in args.changes:
        detail, eq, value = given.partition("=")
        if not eq or not detail.strip():
            raise CliError(f"--set: expected DETAIL=VALUE, got {given!r}", ExitCode.USAGE)
        changes[detail.strip()] = value.strip()
    said = ""
    try:
        with _orders(ctx) as api:
            if args.erp_code:
                config = ctx.erp_config()
                try:
                    with MexalClient(config) as client:
                        customer = api.bind_customer(client, args.order_id, args.erp_code)
                except (AuthError, ContextMissingError) as exc:
                    raise CliError(f"ERP at {config.base_url}: {exc}", ExitCode.USAGE) from None
                except ErpError as exc:
                    raise CliError(f"ERP at {config.base_url}: {exc}", ExitCode.FAILED) from None
                said = f"bound to the ERP customer {customer['erp_code']}"
            elif changes:
                customer = api.mend_customer(args.order_id, changes)
                said = "changed"
            else:
                customer = api.show(args.order_id)["customer"]
                if customer is None:
                    order = api.show(args.order_id)
                    raise CliError(
                        f"order {args.order_id} is for the ERP customer"
                        f" {order['customer_code']}, not for a customer born on the site",
                        ExitCode.USAGE,
                    )
    except (OrderNotFound, OrderInvalid) as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    except CustomerNotChanged as exc:
        raise CliError(str(exc), ExitCode.REFUSED) from None
    if args.json:
        _dump(customer)
        return int(ExitCode.OK)
    width = max(map(len, customer))
    for key, value in customer.items():
        print(f"{key:<{width}}  {'-' if value in (None, '') else value}")
    if said:
        after = (
            "its orders go under that code at the next sync"
            if customer["erp_code"]
            else "the next sync sends it to the ERP, then its orders"
        )
        print(f"customer of order {args.order_id} {said}; {after}")
    return int(ExitCode.OK)


def run_cancel(args: argparse.Namespace, ctx: Context) -> int:
    _decide_with_erp(ctx, lambda api, client: api.cancel(client, args.order_id))
    print(f"order {args.order_id}: cancelled; it will not be sent")
    return int(ExitCode.OK)


def _decide_with_erp(ctx: Context, work: Callable[[Any, Any], Any]) -> Any:
    """An operator's decision on an order that looks in the ERP first (`resend`,
    `cancel`): work(orders, client)'s result; its refusal is exit 3, an order the store
    does not know or credentials the ERP refuses exit 2, an ERP that fails exit 1."""
    from passweb_tui.engine.erp.client import MexalClient
    from passweb_tui.engine.erp.errors import AuthError, ContextMissingError, ErpError
    from passweb_tui.engine.orders.api import OrderNotCancelled, OrderNotFound, OrderNotResent

    config = ctx.erp_config()
    try:
        with _orders(ctx) as api, MexalClient(config) as client:
            return work(api, client)
    except OrderNotFound as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    except (OrderNotResent, OrderNotCancelled) as exc:
        raise CliError(str(exc), ExitCode.REFUSED) from None
    except (AuthError, ContextMissingError) as exc:
        raise CliError(f"ERP at {config.base_url}: {exc}", ExitCode.USAGE) from None
    except ErpError as exc:
        raise CliError(f"ERP at {config.base_url}: {exc}", ExitCode.FAILED) from None


def run_resend(args: argparse.Namespace, ctx: Context) -> int:
    was = _decide_with_erp(ctx, lambda api, client: api.resend(client, args.order_id))
    gone = f" (document {was} is gone from the ERP)" if was else ""
    print(f"order {args.order_id}: waiting to be sent again{gone}; the next sync sends it")
    return int(ExitCode.OK)
