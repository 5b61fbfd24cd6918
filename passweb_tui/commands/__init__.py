"""Subcommands of `passweb-tui`, one module each, and what they share.

Each module offers `add_parser(subparsers)` (which sets `handler`) and returns an
exit status from its handler. The Context resolves settings once and, under
`--demo`, starts the embedded ERP simulator only when a command needs the ERP.
"""

from __future__ import annotations

import argparse
import enum
from typing import Any

from passweb_tui.config import Settings, load_settings
from passweb_tui.engine.erp.settings import ErpConfig

# Order is the order of `passweb-tui --help`.
COMMANDS = ["erp_sim", "check", "orders", "sync", "runs", "changes", "fields", "serve", "doctor"]


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
            from passweb_tui.demo import start_demo_erp

            if self._demo_erp is None:
                self._demo_erp = start_demo_erp(settings.site_data_dir)
            return self._demo_erp.erp_config(settings)
        return settings.erp_config()

    def close(self) -> None:
        if self._demo_erp is not None:
            self._demo_erp.stop()
            self._demo_erp = None
