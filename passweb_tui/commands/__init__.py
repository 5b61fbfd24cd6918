"""Subcommands of `passweb-tui`, one module each, and what they share.

Each module offers `add_parser(subparsers)` (which sets `handler`) and returns an
exit status from its handler. The Context resolves settings once and, under
`--demo`, starts the embedded ERP simulator only when a command needs the ERP.
StopSignals lets a command that does long work (`sync`, `serve`) stop it cleanly on
ctrl+c, SIGTERM or SIGHUP. Every `--json` output goes through `print_json`.
"""

from __future__ import annotations

import argparse
import enum
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType, TracebackType
from typing import Any

from passweb_tui.config import Settings, load_settings
from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.textsafe import json_text

# Order is the order of `passweb-tui --help`.
COMMANDS = [
    "erp_sim",
    "check",
    "orders",
    "sync",
    "runs",
    "status",
    "changes",
    "prune",
    "store",
    "show",
    "fields",
    "serve",
    "doctor",
]


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    REFUSED = 3
    PARTIAL = 4


class CliError(Exception):
    """A failure to report as one line with a given exit status."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.code = code


def store_failure(exc: Any, ctx: Context) -> CliError:
    """The one line for a site store that could not be opened (a StoreError): a URL to
    correct is named by where it was given (the option, the variable, or the config
    file's line), as any other setting is."""
    code = ExitCode.USAGE if exc.to_correct else ExitCode.FAILED
    where = None
    if exc.to_correct:
        try:
            if ctx.settings.db_url is not None:
                where = ctx.settings.where("db_url")
        except Exception:  # the settings themselves are said elsewhere
            where = None
    return CliError(f"site store, {where}: {exc}" if where else f"site store: {exc}", code)


def print_json(
    value: Any,
    *,
    ensure_ascii: bool = True,
    default: Callable[[Any], Any] | None = None,
    flush: bool = False,
) -> None:
    """`value` on stdout as one line of JSON: the values exactly as they are, and yet
    nothing in it a terminal would obey (control characters are `\\uXXXX` escapes, which
    the stdout of the commands, guarded against them, leaves as they are)."""
    print(json_text(value, ensure_ascii=ensure_ascii, default=default), flush=flush)


#: how much of a streamed JSON array is held in memory before it goes to a file
SPOOL_IN_MEMORY = 8 << 20


def print_json_array(
    items: Iterable[Any],
    batch: int = 2000,
    *,
    ensure_ascii: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> None:
    """A JSON array on stdout, as `print_json` prints a list, for listings that may be
    millions long (`changes --json`, `orders list --json`): spelled a batch of items at
    a time (each batch by one call, as fast as the whole list would be), to a temporary
    file first (kept in memory up to a few megabytes) and to stdout only once every item
    has been read. Memory stays flat, and a read that fails halfway leaves stdout empty,
    never half an array that a script might take for a whole one."""
    import itertools
    import tempfile

    rest = iter(items)
    with tempfile.SpooledTemporaryFile(
        max_size=SPOOL_IN_MEMORY, mode="w+", encoding="utf-8"
    ) as spool:
        spool.write("[")
        first = True
        while chunk := list(itertools.islice(rest, batch)):
            # the items, without the list's brackets
            text = json_text(chunk, ensure_ascii=ensure_ascii, default=default)[1:-1]
            spool.write(text if first else ", " + text)
            first = False
        spool.write("]\n")
        spool.seek(0)
        while piece := spool.read(1 << 20):
            sys.stdout.write(piece)


GLOBAL_FLAGS = {
    "db": "db_url",
    "site": "site",
    "erp_url": "erp_url",
    "erp_user": "erp_user",
    "azienda": "azienda",
    "anno": "anno",
    "site_no": "site_no",
    "ca_file": "ca_file",
}


class Context:
    """Per-invocation state: resolved settings and, under --demo, the embedded ERP."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._settings: Settings | None = None
        self._demo_erp: Any = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            flags = {attr: getattr(self.args, name, None) for name, attr in GLOBAL_FLAGS.items()}
            flags["demo"] = bool(getattr(self.args, "demo", False)) or None
            # the UI's setup screen writes a config file that does not exist yet
            ui = getattr(self.args, "command", None) is None
            self._settings = load_settings(flags, config_may_be_new=ui)
        return self._settings

    def erp_config(self) -> ErpConfig:
        """The ERP to talk to; under --demo the embedded simulator, started on first use."""
        settings = self.settings
        if settings.demo:
            from passweb_tui.demo import DemoStateError, start_demo_erp

            if self._demo_erp is None:
                try:
                    self._demo_erp = start_demo_erp(settings.site_data_dir)
                except DemoStateError as exc:
                    raise CliError(str(exc)) from None
            return self._demo_erp.erp_config(settings)
        return settings.erp_config()

    def close(self) -> None:
        if self._demo_erp is not None:
            self._demo_erp.stop()
            self._demo_erp = None


#: what asks a command to stop: ctrl+c, `kill`/`timeout`/systemd, a terminal or SSH
#: session that went away (SIGHUP, where the system has it)
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


#: set by the command line's entry point when this process is the command: called as
#: a StopSignals block ends without an error (the work it guarded is done), in place of
#: putting back the signals' default actions, under which a `kill` a moment too late
#: killed the process on its way out (143 for a run recorded ok)
AFTER_WORK: Callable[[], None] | None = None


class StopSignals:
    """While in use, the first of SIGINT, SIGTERM or SIGHUP is only noted (`received`)
    for the command to stop its work cleanly; a later SIGINT or SIGTERM (someone
    insisting) ends the process at once, by that signal. A later SIGHUP is not someone
    insisting: a terminal that goes away may hang up more than once, and systemd's
    SendSIGHUP= follows its SIGTERM with one. Nor is a SIGTERM that follows the first
    within SAME_REQUEST_S: GNU `timeout` sends its signal to the command and then to the
    command's whole process group, the command included. A signal ignored when the
    command started (`nohup`, a background job) stays ignored. Only the main thread can
    take signals; elsewhere this does nothing."""

    #: a second SIGTERM this soon after the first is the same request, not insistence
    SAME_REQUEST_S = 1.0

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._first_at = 0.0

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        after = AFTER_WORK if _type is None and self._previous else None
        if after is not None:
            after()  # straight from this block's handlers to the finishing ones
        else:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # a handler only takes note: the command acts on it from its own loop (it may be
        # holding a lock or writing to a stream that this handler would need)
        now = time.monotonic()
        if self.received is None:
            self.received = signum
            self._first_at = now
            return
        if signum == getattr(signal, "SIGHUP", None):
            return
        if signum == signal.SIGTERM and now - self._first_at < self.SAME_REQUEST_S:
            return
        name = signal.Signals(signum).name
        try:
            os.write(2, f"passweb-tui: {name} again: stopping at once\n".encode())
        except OSError:  # the terminal is gone
            pass
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
