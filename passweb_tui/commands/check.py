"""`passweb-tui check`: can we reach the ERP, log in, and use the company?"""

from __future__ import annotations

import argparse
import dataclasses

from passweb_tui.commands import CliError, Context, ExitCode
from passweb_tui.engine.erp.errors import AuthError, ContextMissingError, ErpError

#: A check answers quickly: one retry for a busy ERP, not the sync's patience.
CHECK_RETRIES = 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check ERP reachability, credentials, company and version")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from passweb_tui.engine.erp.client import MexalClient

    config = ctx.erp_config()
    config = dataclasses.replace(config, max_retries=min(config.max_retries, CHECK_RETRIES))
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
