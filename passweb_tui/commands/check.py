"""`passweb-tui check`: can we reach the ERP, log in, and use the company?"""

from __future__ import annotations

import argparse
import dataclasses

from passweb_tui.commands import CliError, Context, ExitCode
from passweb_tui.engine.erp.errors import AuthError, ContextMissingError, ErpError
from passweb_tui.engine.erp.settings import ErpConfig

#: A check answers quickly: one retry for a busy ERP, not the sync's patience.
CHECK_RETRIES = 1
#: and waits this long for an answer to its small requests, not the 5 minutes the ERP
#: may take over a big one (so that an ERP that never answers is said within a minute)
CHECK_READ_TIMEOUT_S = 20.0


def check_config(config: ErpConfig) -> ErpConfig:
    """`config` with a check's patience (see CHECK_RETRIES)."""
    return dataclasses.replace(
        config,
        max_retries=min(config.max_retries, CHECK_RETRIES),
        read_timeout_s=min(config.read_timeout_s, CHECK_READ_TIMEOUT_S),
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check ERP reachability, credentials, company and version")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from passweb_tui.engine.erp.client import MexalClient

    config = check_config(ctx.erp_config())
    try:
        with MexalClient(config) as client:
            result = client.check()
    except (AuthError, ContextMissingError) as exc:
        raise CliError(_where(config.base_url, exc), ExitCode.USAGE) from None
    except ErpError as exc:
        raise CliError(_where(config.base_url, exc), ExitCode.FAILED) from None
    print(f"ERP {config.base_url}: reachable")
    print(f"credentials: accepted for user {config.user}")
    print(f"company: {result['azienda']} year {result['anno']}: usable")
    print(f"ERP version: {result['version']}")
    return int(ExitCode.OK)


def _where(url: str, exc: ErpError) -> str:
    text = str(exc)
    return text if url in text else f"ERP at {url}: {text}"
