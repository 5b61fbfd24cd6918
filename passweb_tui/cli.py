"""The one entry point: `passweb-tui` and its subcommands.

Global options come before the subcommand. Each subcommand lives in
`passweb_tui.commands.<name>` with `add_parser(subparsers)` and `run(args, ctx)`.
Errors end as one readable line on stderr and an exit status from CONTRACTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO, cast

from passweb_tui import __version__, commands
from passweb_tui.commands import COMMANDS, CliError, Context, ExitCode, store_failure
from passweb_tui.config import ConfigError
from passweb_tui.logs import setup_logging
from passweb_tui.textsafe import visible

log = logging.getLogger("passweb_tui")


class _Parser(argparse.ArgumentParser):
    """Errors in one line on stderr, as every other error (exit status 2), pointing to
    the help instead of printing the usage block above it."""

    def error(self, message: str) -> NoReturn:
        # a command's own parser is named "passweb-tui sync": its errors start
        # "passweb-tui: sync: ...", as every error of the program starts "passweb-tui: "
        program, _, command = self.prog.partition(" ")
        where = f"{program}: {command}: " if command else f"{program}: "
        self.exit(2, f"{where}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="passweb-tui",
        description="Keep a Passweb e-commerce site in step with a Mexal ERP.",
    )
    parser.add_argument("--version", action="version", version=f"passweb-tui {__version__}")
    g = parser.add_argument_group("global options (before the command)")
    g.add_argument(
        "--demo", action="store_true", help="use the demo store and the built-in ERP simulator"
    )
    g.add_argument(
        "--db", metavar="URL", help="site store (SQLAlchemy URL); default SQLite in the data folder"
    )
    g.add_argument("--site", metavar="NAME", help="site profile from the config file")
    g.add_argument("--erp-url", metavar="URL", help="Mexal WebAPI base URL, ending in /webapi")
    g.add_argument("--erp-user", metavar="U", help="ERP user")
    g.add_argument("--azienda", metavar="A", help="ERP company code")
    g.add_argument("--anno", metavar="Y", type=int, help="ERP accounting year")
    g.add_argument(
        "--site-no", metavar="N", type=int, help="site number 1-9 for the per-site flags"
    )
    g.add_argument("--ca-file", metavar="F", help="CA bundle to verify the ERP's TLS certificate")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"passweb_tui.commands.{name}")
        module.add_parser(sub)
    return parser


def _store_failure(exc: Exception, ctx: Context) -> tuple[str, ExitCode] | None:
    """The one line for a failure of the site store that no command caught: the store
    that could not be opened, or the database's own refusal (a read-only file, a lock
    held too long, a full disk), without the statement and its values (a customer's
    details, say) that the database library's message carries below it."""
    if not type(exc).__module__.startswith(("sqlalchemy", "passweb_tui.engine.store")):
        return None
    from passweb_tui.engine.store import StoreError, database_words, shown_url

    if isinstance(exc, StoreError):
        failure = store_failure(exc, ctx)
        return str(failure), failure.code
    orig = getattr(exc, "orig", None)
    if orig is None:
        return None  # not the database's refusal: reported as unexpected
    try:
        where = shown_url(ctx.settings.resolved_db_url)
    except Exception:
        where = "(unknown)"
    # the database's own words, without the lines some drivers add below them (PostgreSQL's
    # DETAIL names the key and its value, or the whole row that was refused)
    reason = database_words(exc) or orig.__class__.__name__
    return f"site store {where}: the database refused the work: {reason}", ExitCode.FAILED


#: the name of the error handler below, for a stream's `errors`
PLAIN_SPELLING = "passweb-tui-plain"
#: marks the commands print, spelled in ASCII where the stream's encoding has no
#: character for them (an ellipsis that ends a cut value, a line break shown in a
#: cell): one character for one, so that what was cut to a width still fits it
_PLAIN_MARKS = {
    "\u2026": "~",  # …
    "\u00b7": "|",  # ·
    "\u21b5": "|",  # ↵
    "\u2192": ">",  # →
    "\u2014": "-",  # —
    "\u2013": "-",  # –
}


def _plain_spelling(exc: UnicodeError) -> tuple[str, int]:
    """What a character the stream's encoding lacks is written as: one of the commands'
    own marks in ASCII, anything else (an accented letter of an ERP description, a
    control picture) as `?`, so that the line is printed instead of the command failing
    halfway through it."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    piece = exc.object[exc.start : exc.end]
    return "".join(_PLAIN_MARKS.get(c, "?") for c in piece), exc.end


def _spell_plainly_where_needed(stream: TextIO) -> None:
    """A stream whose encoding is not Unicode's (`PYTHONIOENCODING=ascii`, a Latin-1
    terminal) writes what it cannot encode the plain way above instead of raising."""
    import codecs

    encoding = codecs.lookup(getattr(stream, "encoding", None) or "utf-8").name
    if encoding.startswith("utf"):
        return
    try:
        codecs.lookup_error(PLAIN_SPELLING)
    except LookupError:
        codecs.register_error(PLAIN_SPELLING, _plain_spelling)
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors=PLAIN_SPELLING)
        except (OSError, ValueError):
            pass


class _VisibleStderr:
    """Standard error, its text's control characters made visible (see textsafe): its
    lines carry the ERP's words. `raw` is the stream itself, for the progress bar's own
    escapes."""

    def __init__(self, stream: TextIO) -> None:
        self.raw = stream

    def write(self, text: str) -> int:
        return self.raw.write(visible(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class _ClosedPipeSafe:
    """Standard output that a reader may close early (`passweb-tui runs | head -1`):
    what is written after that goes nowhere, and the command ends with its own exit
    status (a sync that succeeded is no failure for its output being cut)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.closed_by_reader = False

    def _drop(self) -> None:
        self.closed_by_reader = True
        try:  # the descriptor too: Python's own last flush at exit goes nowhere as well
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def write(self, text: str) -> int:
        if self.closed_by_reader:
            return len(text)
        try:
            # a value from the ERP or the site never drives the terminal (see textsafe);
            # `--json` output holds no control character (print_json), so goes out as it is
            return self._stream.write(visible(text))
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        if self.closed_by_reader:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


#: whether _finishing has put its handlers in place (this process is the command)
_FINISHING = False


def _finishing() -> None:
    """The command's work is done and recorded: a stop signal now (a `kill` a moment too
    late) leaves the exit status as the work ended, instead of killing the process on
    its way out; a second SIGINT or SIGTERM still ends it at once, by that signal."""
    import signal

    from passweb_tui.commands import STOP_SIGNALS

    global _FINISHING
    if _FINISHING:  # once: a signal noted already stays noted
        return
    _FINISHING = True
    noted: list[int] = []

    def late(signum: int, _frame: Any) -> None:
        if signum in noted and signum != getattr(signal, "SIGHUP", None):
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        noted.append(signum)

    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, late)


def _last_moment() -> None:
    """All that is left is the interpreter's own shutdown, which puts back the default
    action of every signal Python handled (a `kill` as the output appeared then killed
    the process: 143 for a run recorded ok) but leaves an ignored one ignored: its
    output is flushed, and stop signals are ignored from here (SIGKILL still ends it)."""
    import signal

    from passweb_tui.commands import STOP_SIGNALS

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a reader gone: the status stays the work's
            stream.flush()
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    real_stdout, real_stderr = sys.stdout, sys.stderr
    if args.command is not None:  # (the UI owns the terminal, and guards what it draws)
        for stream in (real_stdout, real_stderr):
            _spell_plainly_where_needed(stream)
        sys.stderr = cast(TextIO, _VisibleStderr(real_stderr))
    # the UI owns the terminal: its log goes to the file only
    setup_logging(args.verbose, to_stderr=args.command is not None)
    ctx = Context(args)
    finishing = False
    try:
        if args.command is None:
            from passweb_tui.commands import ui

            return int(ui.run(args, ctx))
        sys.stdout = cast(TextIO, _ClosedPipeSafe(real_stdout))
        if argv is None:  # the command's own guarded work, done, hands over to _finishing
            commands.AFTER_WORK = _finishing
        code = int(args.handler(args, ctx))
        if argv is None:  # this process is the command: it ends now, as its work did
            finishing = True
            _finishing()
        return code
    except CliError as exc:
        print(f"passweb-tui: {exc}", file=sys.stderr)
        return int(exc.code)
    except ConfigError as exc:
        print(f"passweb-tui: configuration error: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        print("passweb-tui: interrupted", file=sys.stderr)
        return int(ExitCode.FAILED)
    except BrokenPipeError:
        return int(ExitCode.FAILED)
    except Exception as exc:  # the last line of defence: one line, never a traceback
        log.debug("unexpected error", exc_info=True)
        store_line = _store_failure(exc, ctx)
        if store_line is not None:
            print(f"passweb-tui: {store_line[0]}", file=sys.stderr)
            return int(store_line[1])
        print(f"passweb-tui: unexpected error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return int(ExitCode.FAILED)
    finally:
        ctx.close()
        if isinstance(sys.stdout, _ClosedPipeSafe):
            sys.stdout.flush()
            sys.stdout = real_stdout
        sys.stderr = real_stderr
        if finishing:
            _last_moment()


if __name__ == "__main__":
    raise SystemExit(main())
