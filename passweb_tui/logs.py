"""Logging: a rotating file in the platformdirs log folder, and stderr for the operator.

The file gets one line per ERP request (method, path, status, duration) and the
engine's notices; never headers or bodies. stderr shows warnings, or more with -v.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from passweb_tui.config import log_dir

LOG_FILE_NAME = "passweb-tui.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_file() -> Path:
    return log_dir() / LOG_FILE_NAME


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
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=5_000_000, backupCount=5, encoding="utf-8", delay=True
        )
    except OSError:
        return None
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(file_handler)
    return path
