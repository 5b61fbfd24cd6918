"""`passweb-tui serve`: the sync service in the foreground until SIGTERM, SIGHUP or ctrl+c.

Scheduled syncs, the web-order fast path, the ERP trigger endpoint and outcome
e-mails, as set in the [service] section of the config file (or [sites.NAME.service]).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from passweb_tui.commands import CliError, Context, ExitCode, StopSignals

if TYPE_CHECKING:  # the engine is imported when the command runs, not to build --help
    from passweb_tui.engine.facade import Engine
    from passweb_tui.engine.service.service import Service, ServiceConfig

log = logging.getLogger("passweb_tui.service")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the sync service: schedule, order push, ERP trigger, e-mail",
        description="Run the sync service in the foreground; SIGTERM, SIGHUP or ctrl+c "
        "cancels the run in progress, waits until it is recorded and ends with status 0 (a "
        "second SIGTERM or ctrl+c ends it at once). Settings come from the [service] "
        "section of the config file.",
    )
    p.add_argument(
        "--trigger", action="store_true", default=None, help="turn the ERP trigger endpoint on"
    )
    p.add_argument("--trigger-host", metavar="H", help="address of the trigger endpoint")
    p.add_argument(
        "--trigger-port", metavar="P", type=int, help="port of the trigger endpoint (0 = any free)"
    )
    p.set_defaults(handler=run)


def _log_info_to_stderr(verbose: int) -> None:
    """The service narrates what it does: INFO on stderr unless -v asked for more."""
    for handler in logging.getLogger("passweb_tui").handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in (
            sys.stderr,
            sys.__stderr__,
        ):
            handler.setLevel(min(handler.level, logging.INFO) if verbose else logging.INFO)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from passweb_tui.commands.sync import open_engine
    from passweb_tui.engine.service.service import Service, ServiceConfig

    _log_info_to_stderr(getattr(args, "verbose", 0))
    settings = ctx.settings
    config = ServiceConfig.from_settings(settings)
    overrides = {
        k: v
        for k, v in (
            ("trigger", args.trigger),
            ("trigger_host", args.trigger_host),
            ("trigger_port", args.trigger_port),
        )
        if v is not None
    }
    config = replace(config, **overrides)
    if config.trigger and not config.trigger_token:
        raise CliError(
            "the trigger endpoint needs a token: set trigger_token in [service] (owner-only "
            "file) or PASSWEB_TUI_TRIGGER_TOKEN",
            ExitCode.USAGE,
        )
    if config.trigger_port is not None and not 0 <= config.trigger_port <= 65535:
        raise CliError(f"--trigger-port must be 0-65535, got {config.trigger_port}", ExitCode.USAGE)
    ctx.erp_config()  # missing ERP settings end here with status 2, not in a loop later
    engine = open_engine(ctx)
    service = Service(engine, config)
    with StopSignals() as signals:
        _serve(service, config, signals, engine)
    return int(ExitCode.OK)


def _serve(service: Service, config: ServiceConfig, signals: StopSignals, engine: Engine) -> None:
    try:
        try:
            service.start()
        except OSError as exc:
            raise CliError(
                f"trigger endpoint cannot listen on {config.trigger_host}:{config.trigger_port}: "
                f"{exc.strerror or exc}",
                ExitCode.USAGE,
            ) from None
        trigger = service.trigger.url if service.trigger else "off"
        print(
            f"serving site={config.site} schedule={config.schedule.describe()!r} trigger={trigger}",
            flush=True,
        )
        while signals.received is None:
            time.sleep(0.2)
        log.info("received %s: stopping", signals.name)
    finally:
        stopped_by = signals.name if signals.received is not None else None
        service.stop(reason=stopped_by and f"cancelled: the service stopped on {stopped_by}")
        engine.close()
        log.info("service stopped")
