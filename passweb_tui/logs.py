"""Logging: a rotating file in the platformdirs log folder, and stderr for the operator.

The file gets one line per ERP request (method, path, status, duration) and the
engine's notices; never headers or bodies. stderr shows warnings, or more with -v.

Every process of the tool (the service, the UI, each command) writes to the same file.
Rotation is done by one process at a time, under a lock file beside the log, and a
process that finds the file rotated by another reopens it, so that no process goes on
writing into a generation already renamed. The files are readable by their owner only:
they name customers and orders.

What goes into the file is made safe for a terminal, as stderr is (see textsafe): the
operator reads the log with `tail -f` or `less`, and its lines carry words of the ERP, of
the mail server and of whoever reached the trigger endpoint, which could hold escape
sequences. The file handler does it to each formatted record, whatever its formatter:
a control character shows as its picture (ESC as "␛"), and a line break inside a
message as " ↵ ", so one record is one line (a traceback below it keeps its lines).
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from passweb_tui.config import log_dir
from passweb_tui.textsafe import one_line, visible

try:  # POSIX; elsewhere each process rotates on its own, as the standard handler does
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOG_FILE_NAME = "passweb-tui.log"
LOG_MAX_BYTES = 5_000_000
LOG_BACKUPS = 5
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_PRIVATE = 0o600


def log_file() -> Path:
    return log_dir() / LOG_FILE_NAME


def open_private(path: str) -> int:
    """A descriptor appending to `path`, made (or made again) readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _PRIVATE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, _PRIVATE)  # a log written before by a looser version
    except OSError:
        pass  # not ours to change: written as it is
    return fd


class LineFormatter(logging.Formatter):
    """The file's format: a line break inside a message (an ERP's error, a mail
    server's reply) shows as " ↵ ", so that nothing logged can pass for a line of its
    own; the traceback and stack below a message keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The moment with its offset from UTC (2026-12-07 21:17:03,512 +0100): the
        processes writing one file may run in different time zones (a command with its
        own TZ beside the service), and the autumn hour repeats without it."""
        moment = self.converter(record.created)
        return f"{time.strftime('%Y-%m-%d %H:%M:%S', moment)},{int(record.msecs):03d} " + (
            time.strftime("%z", moment)
        )


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler for a file that several processes write at once.

    Each formatted record is written with its control characters made visible (but tab
    and line feed), whatever formatter is set: no record reaches the file raw.

    A line that cannot be written (a full disk, a log left by another user, a folder
    where the file should be) is said once on stderr, in one line, not with a traceback
    for every line lost; once lines go in again, a later failure is said again.
    """

    _failing: str | None = None  # why the last line could not be written
    _lost: bool = False  # whether the line being written was lost

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record))

    def emit(self, record: logging.LogRecord) -> None:
        self._lost = False
        super().emit(record)
        if not self._lost:
            self._failing = None  # it went in: the next failure is news again

    def handleError(self, record: logging.LogRecord) -> None:
        self._lost = True
        exc = sys.exc_info()[1]
        said = exc.strerror if isinstance(exc, OSError) else None
        why = said or str(exc) or type(exc).__name__
        if self._failing is None:
            with contextlib.suppress(Exception):
                sys.stderr.write(
                    f"passweb-tui: the log file {self.baseFilename} cannot be written ({why});"
                    " its lines are lost until it can\n"
                )
                sys.stderr.flush()
        self._failing = why
        if self.stream is not None:  # a stream whose writes fail is opened again next time
            with contextlib.suppress(Exception):
                self.stream.close()
            self.stream = None  # type: ignore[assignment]

    def _open(self) -> io.TextIOWrapper:
        fd = open_private(self.baseFilename)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def _rotated_elsewhere(self) -> bool:
        """True when the open stream is no longer the file at the log's path."""
        if self.stream is None:
            return False
        try:
            at_path = os.stat(self.baseFilename)
        except FileNotFoundError:
            return True
        mine = os.fstat(self.stream.fileno())
        return (at_path.st_dev, at_path.st_ino) != (mine.st_dev, mine.st_ino)

    def _reopen(self) -> io.TextIOWrapper:
        if self.stream is not None:
            with contextlib.suppress(OSError):
                self.stream.close()
        self.stream = stream = self._open()
        return stream

    def shouldRollover(self, record: logging.LogRecord) -> int:
        stream = self.stream
        if stream is None or self._rotated_elsewhere():
            stream = self._reopen()
        if self.maxBytes <= 0:
            return False
        size = os.fstat(stream.fileno()).st_size  # every process's lines, not ours only
        return size + len(self.format(record)) + 1 >= self.maxBytes

    def doRollover(self) -> None:
        with self._rotation_lock():
            # another process may have rotated while this one waited for the lock
            if self._rotated_elsewhere():
                self._reopen()
            if self.stream is None or os.fstat(self.stream.fileno()).st_size < self.maxBytes // 2:
                return
            super().doRollover()
            if self.stream is None:
                self.stream = self._open()

    @contextlib.contextmanager
    def _rotation_lock(self) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover - not POSIX
            yield
            return
        fd = open_private(self.baseFilename + ".lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor lets the lock go


def setup_logging(verbose: int = 0, *, to_stderr: bool = True) -> Path | None:
    """Install the handlers once per process; returns the log file, or None if unwritable."""
    root = logging.getLogger("passweb_tui")
    root.setLevel(logging.DEBUG)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    if to_stderr:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING - 10 * min(verbose, 2))
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(console)
    path = log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        file_handler = SharedRotatingFileHandler(
            path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8", delay=True
        )
    except OSError:
        return None
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(LineFormatter(_FORMAT))
    root.addHandler(file_handler)
    return path
