"""`passweb-tui sync total|changed|partial`: run a sync and report it (text or --json)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from passweb_tui.commands import (
    CliError,
    Context,
    ExitCode,
    StopSignals,
    print_json,
    store_failure,
)
from passweb_tui.commands.table import LiveLine, is_terminal

if TYPE_CHECKING:  # the engine is imported when a command runs, not to build --help
    from passweb_tui.engine.facade import Engine, ProgressEvent, RunResult, Scope


def open_engine(ctx: Context) -> Engine:
    """The engine on this command's store; the ERP (or the demo simulator) starts lazily."""
    from passweb_tui.engine.facade import Engine, EngineSettings, StoreError

    settings = EngineSettings.from_settings(ctx.settings, erp=ctx.erp_config)
    try:
        return Engine.open(settings)
    except StoreError as exc:
        raise store_failure(exc, ctx) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sync",
        help="pull from the ERP: total, changed (the usual one) or partial",
        description="Synchronize the site store with the ERP. Exit status: 0 ok, 1 failed or "
        "cancelled, 2 usage/configuration/credentials, 3 refused (another TOTAL/CHANGED "
        "runs, or the monthly quota is used up), 4 done with rejected records or orders "
        "that could not be sent. ctrl+c, SIGTERM or SIGHUP cancel the run: it is recorded "
        "as cancelled and the lock is given back (a second ctrl+c or SIGTERM ends at once).",
    )
    p.add_argument("kind", choices=["total", "changed", "partial"], help="kind of sync")
    p.add_argument("--dry-run", action="store_true", help="compare and report; write nothing")
    p.add_argument("--json", action="store_true", help="print the run as one JSON object")
    p.add_argument(
        "--entity",
        action="append",
        default=[],
        metavar="E",
        help="partial only: re-pull this entity (repeatable)",
    )
    p.add_argument(
        "--code",
        action="append",
        default=[],
        metavar="K",
        help="partial only, with one --entity: re-pull just this record (repeatable)",
    )
    p.set_defaults(handler=run)


class ProgressBar:
    """A one-line progress display on a terminal's stderr (see table.LiveLine)."""

    def __init__(self, line: LiveLine) -> None:
        self.line = line
        self.last = 0.0
        self.lock = threading.Lock()
        self.stopped = False

    def stop(self) -> None:
        """Clear the line and draw no more (the run is being cancelled)."""
        with self.lock:
            self.stopped = True
            self.line.clear()

    def __call__(self, ev: ProgressEvent) -> None:
        now = time.monotonic()
        if not ev.finished and now - self.last < 0.1:
            return
        self.last = now
        with self.lock:
            if self.stopped:
                return
            if ev.finished:
                self.line.clear()
                return
            if not ev.entity and not ev.phase:
                if ev.message:  # a word from the run (the ERP tried again): said in place
                    self.line.show(f"{ev.kind.upper()} {ev.message}")
                return
            what = ev.entity or ev.phase
            if ev.total:
                width = 24
                filled = min(width, int(width * ev.done / max(ev.total, 1)))
                bar = "[" + "#" * filled + "." * (width - filled) + f"] {ev.done:,}/{ev.total:,}"
            else:
                bar = f"{ev.done:,}"
            rate = f" {ev.rate:,.0f}/s" if ev.rate else ""
            eta = f" ETA {ev.eta_s:.0f}s" if ev.eta_s is not None else ""
            self.line.show(f"{ev.kind.upper()} {what}: {bar}{rate}{eta}")


def exit_code(result: RunResult) -> int:
    if result.status == "ok":
        return int(ExitCode.OK)
    if result.status == "ok_with_rejects":
        return int(ExitCode.PARTIAL)
    from passweb_tui.engine.erp.errors import refused_credentials

    if result.status == "failed" and refused_credentials(result.error):
        return int(ExitCode.USAGE)
    return int(ExitCode.FAILED)


def print_summary(result: RunResult, out: TextIO) -> None:
    kind = result.kind.upper()
    if result.requested_kind != result.kind:
        kind += f" (requested {result.requested_kind.upper()})"
    dry = " dry run" if result.dry_run else ""
    took = f" in {result.duration_s:.2f}s" if result.duration_s is not None else ""
    print(f"run {result.run_id}: {kind}{dry} {result.status}{took}", file=out)
    if result.message:
        print(result.message, file=out)
    if result.entities:
        from passweb_tui.commands.table import print_table

        head = ("entity", "fetched", "inserted", "updated", "unchanged", "deleted", "rejected")
        rows = [
            [name, *(str(c.get(h, 0)) for h in head[1:])] for name, c in result.entities.items()
        ]
        print_table(head, rows, out, right=range(1, len(head)))
    if result.off_site:
        # the records read that the site does not keep, so that each line adds up (a
        # line of its own: one more column would not fit 80 columns)
        said = ", ".join(f"{name} {n}" for name, n in result.off_site.items())
        print(f"not for the site (transfer flag off): {said}", file=out)
    customers, orders = result.customers, result.orders
    if any(customers.values()):
        print(
            f"new web customers: sent {customers['sent']}, failed {customers['failed']}", file=out
        )
    if any(orders.values()):
        updated = "would be updated" if result.dry_run else "updated"
        print(
            f"web orders: sent {orders['sent']}, failed {orders['failed']},"
            f" {updated} from the ERP {orders['updated']}",
            file=out,
        )
    if result.error:
        print(f"error: {result.error}", file=out)


REJECTS_SHOWN = 10


def one_line(text: str) -> str:
    return " ".join(text.split())


def print_rejects(engine: Engine, result: RunResult, out: TextIO) -> None:
    """The first records the run rejected, each with its reason, and how many more."""
    if result.run_id is None:
        return
    rejects, total = engine.run_rejects(result.run_id, REJECTS_SHOWN)
    if not total:
        return
    print(f"rejected: {total}", file=out)
    for r in rejects:
        what = f"{r.entity} {r.key}" if r.key is not None else r.entity
        print(f"  {what}: {one_line(r.reason)}", file=out)
    if total > len(rejects):
        print(f"  and {total - len(rejects)} more", file=out)


WOULD_SHOWN = 20


def print_would_change(result: RunResult, out: TextIO) -> None:
    """A dry run's first changes, as the change log would have had them."""
    if not result.dry_run or not result.would_change:
        return
    total = sum(c.get("inserted", 0) + c.get("updated", 0) + c.get("deleted", 0)
                for c in result.entities.values())  # fmt: skip
    print(f"would change ({total} record{'s' if total != 1 else ''}):", file=out)
    for entity, key, change, field_name, old, new in result.would_change[:WOULD_SHOWN]:
        if field_name is None:
            print(f"  {entity} {key}: {change}", file=out)
        else:
            print(f"  {entity} {key} {field_name}: {change_text(old, new, out)}", file=out)
    if len(result.would_change) > WOULD_SHOWN:
        print(f"  ... (the first {WOULD_SHOWN} changes shown)", file=out)


def change_text(old: str | None, new: str | None, out: TextIO, width: int = 30) -> str:
    """A field's change as `old -> new`: of a per-list field, the lists that changed. On a
    terminal each value is cut to `width`, two values that begin alike shown from where
    they differ when one of them is too long for it; piped or redirected, both are
    whole."""
    from passweb_tui.engine.records import changed_parts, from_difference

    old, new = changed_parts(old, new)
    if not is_terminal(out):
        return f"{'-' if old is None else one_line(old)} -> {'-' if new is None else one_line(new)}"
    if max(len(one_line(v)) for v in (old or "", new or "")) > width:  # a value is cut
        old, new = from_difference(old, new)
    return f"{short_value(old, width)} -> {short_value(new, width)}"


def short_value(value: str | None, width: int = 40) -> str:
    """A stored value on one line, cut to `width` with an ellipsis; "-" for none."""
    from passweb_tui.commands.table import cut

    return "-" if value is None else cut(one_line(value), width)


def mute(fd: int) -> None:
    """The terminal has gone away (a hangup): what is still to be written there goes
    nowhere, so that neither the rest of the report nor the last flush fails on it."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


#: how long a cancelled run may take to stop before the command says why it waits
WAIT_SAID_S = 5.0


def say(text: str) -> None:
    """One line on stderr, unless the terminal has gone away."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        mute(2)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from passweb_tui.config import ConfigError
    from passweb_tui.engine.store import database_words

    # from the first moment: a signal while the store opens or the run starts cancels it
    # (before the run is recorded, the launch is given up, and `--json` still prints its
    # one object)
    with StopSignals() as signals:
        try:
            return _launch(args, ctx, signals)
        except Exception as exc:
            # `--json` prints one object whatever happens: a run that could not even
            # start (a setting, the store) as "failed" with no run id, its reason as the
            # error
            if (
                args.json
                and not isinstance(exc, OSError)
                and not getattr(exc, "json_printed", False)
            ):
                words = database_words(exc)  # not the statement and its values
                if isinstance(exc, ConfigError):
                    why = f"configuration error: {exc}"
                elif words is not None:
                    why = f"the site store refused the work: {words}"
                else:
                    why = str(exc)
                with contextlib.suppress(OSError):
                    print_json(_refusal(args, " ".join(why.split()), "failed"), flush=True)
            raise


def _launch(args: argparse.Namespace, ctx: Context, signals: StopSignals) -> int:
    from passweb_tui.engine.facade import LaunchRefused, Scope, SyncError

    if any(not code.strip() for code in args.code):
        raise CliError("--code needs a record's code; an empty one was given", ExitCode.USAGE)
    # a repeated --entity or --code is pulled once
    scope = Scope(tuple(dict.fromkeys(args.entity)), tuple(dict.fromkeys(args.code)))
    if (scope.entities or scope.codes) and args.kind != "partial":
        raise CliError("--entity and --code go with `sync partial` only", ExitCode.USAGE)
    engine = open_engine(ctx)
    try:
        if signals.received is not None:  # asked to stop before the run was recorded
            why = f"cancelled by {signals.name} before the run started"
            if args.json:
                print_json(_refusal(args, why, "cancelled"), flush=True)
            say(f"passweb-tui: {why}")
            return int(ExitCode.FAILED)
        return _run(args, engine, scope, signals)
    except LaunchRefused as exc:
        refused = CliError(f"refused: {exc}", ExitCode.REFUSED)
        if args.json:  # a script reading stdout gets its one object, saying why
            print_json(_refusal(args, f"refused: {exc}"), flush=True)
            refused.json_printed = True  # type: ignore[attr-defined]
        raise refused from None
    except SyncError as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    finally:
        engine.close()


def _refusal(args: argparse.Namespace, why: str, status: str = "refused") -> dict[str, Any]:
    """A launch that did not become a run, as `--json` prints it: the run object's keys,
    with no run id, status "refused" (another run, the quota) or "failed" (it could not
    start), nothing counted and the reason as its error."""
    from passweb_tui.engine.sync import RunResult, Scope, utcnow

    scope = Scope(tuple(dict.fromkeys(args.entity)), tuple(dict.fromkeys(args.code))).to_json()
    now = utcnow()
    refused = RunResult(
        None, args.kind, args.kind, "site", scope, status, args.dry_run, now, now, error=why,
    )  # fmt: skip
    return refused.to_json()


def _run(args: argparse.Namespace, engine: Engine, scope: Scope, signals: StopSignals) -> int:
    line = LiveLine(sys.stderr)
    on_event = ProgressBar(line) if line.live else None
    handle = engine.start_run(
        args.kind,
        scope=scope,
        dry_run=args.dry_run,
        origin="site",
        on_event=on_event,
        quota=True,  # refused (exit 3) once the month's TOTAL/CHANGED are used up
    )
    cancelling: float | None = None  # when the cancel was asked for
    told = False
    while not handle.done:
        if signals.received is not None and cancelling is None:
            # ctrl+c, SIGTERM or SIGHUP: the run stops at its next step, is recorded as
            # cancelled and gives the lease back, as a cancel from the UI does
            cancelling = time.monotonic()
            if on_event is not None:
                on_event.stop()
            say(f"passweb-tui: {signals.name}: cancelling run {handle.run_id}...")
            handle.cancel(f"cancelled by {signals.name}")
        elif cancelling is not None and not told and time.monotonic() - cancelling > WAIT_SAID_S:
            # a request on the wire: a write's answer is awaited, to know its outcome
            told = True
            say(
                f"passweb-tui: run {handle.run_id} waits for the ERP to answer a request"
                " already sent (it may take up to 5 minutes over one); SIGTERM or ctrl+c"
                " again stops at once, and an order sent meanwhile is then looked up in the"
                " ERP by the next push"
            )
        handle.wait(0.2)
    result = handle.wait()
    if result is None:
        raise CliError(f"the run stopped unexpectedly: {handle.error}", ExitCode.FAILED)
    try:
        if args.json:
            print_json(result.to_json(), flush=True)
        else:
            print_summary(result, sys.stdout)
            print_would_change(result, sys.stdout)
            print_rejects(engine, result, sys.stdout)
            sys.stdout.flush()
    except OSError:
        if signals.received is None:
            raise  # a closed pipe, reported as before
        mute(1)
    if result.status == "cancelled" and signals.received is not None:
        say(f"passweb-tui: run {result.run_id} cancelled by {signals.name}")
    elif result.status in ("failed", "cancelled"):  # with --json too: errors go to stderr
        why = f": {one_line(result.error)}" if result.error else ""
        if why.startswith(": database error"):
            # the run's record says what the database said; which store, the command
            # says (a shell script runs against more than one)
            why += f" (site store {engine.store.url})"
        say(f"passweb-tui: run {result.run_id} {result.status}{why}")
    return exit_code(result)
