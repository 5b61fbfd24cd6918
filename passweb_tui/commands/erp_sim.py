"""`passweb-tui erp-sim`: serve the Mexal WebAPI simulator on a real socket."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from passweb_tui.commands import Context, ExitCode
from passweb_tui.config import make_private_folder


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("erp-sim", help="serve the Mexal WebAPI simulator (for demos and tests)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9004, help="port; 0 picks a free one (default 9004)")
    p.add_argument("--articles", type=int, default=5000, help="demo articles (default 5000)")
    p.add_argument("--customers", type=int, default=1000, help="demo customers (default 1000)")
    p.add_argument("--orders", type=int, default=200, help="existing customer orders (default 200)")
    p.add_argument("--seed", type=int, default=1, help="seed of the demo data (default 1)")
    p.add_argument("--state", type=Path, help="file that keeps the ERP's data across restarts")
    p.add_argument("--user", default="demo", help="WebAPI user (default demo)")
    p.add_argument(
        "--password",
        help="WebAPI password (default: the one the --state file keeps, else demo)",
    )
    p.add_argument(
        "--azienda", dest="sim_azienda", default="DEM", help="company code (default DEM)"
    )
    p.add_argument(
        "--anno",
        dest="sim_anno",
        type=int,
        default=dt.date.today().year,
        help="accounting year (default the current year)",
    )
    p.add_argument(
        "--lock-after",
        type=int,
        help="failed logins in a row that lock a user until its password is set again"
        " through /sim/users; 0 never locks (default 10)",
    )
    p.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="private key of --tls-cert (PEM)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from passweb_tui.commands import CliError

    given = [f for f, name in (("--erp-url", "erp_url"), ("--erp-user", "erp_user"),
                               ("--azienda", "azienda"), ("--anno", "anno"))
             if getattr(args, name, None) is not None]  # fmt: skip
    if given:
        # the global ERP flags name an ERP to talk to; the simulator's own come after it
        names = f"{', '.join(given)} {'names' if len(given) == 1 else 'name'}"
        raise CliError(
            f"erp-sim: {names} the ERP the other commands use; the simulator takes its own"
            " after the command: erp-sim --user U --azienda A --anno Y",
            ExitCode.USAGE,
        )
    if getattr(args, "demo", False):
        return _serve_demo(args, ctx)
    from passweb_tui.mexal_sim.server import SimOptions

    options = SimOptions(
        **_served(args),
        state=args.state,
        user=args.user,
        password=args.password,
        azienda=args.sim_azienda,
        anno=args.sim_anno,
        **({} if args.lock_after is None else {"lock_after": args.lock_after}),
    )
    return _serve(options)


def _served(args: argparse.Namespace) -> dict[str, Any]:
    """The options of how and what the simulator serves, as the demo ERP takes them too."""
    names = ("host", "port", "articles", "customers", "orders", "seed", "tls_cert", "tls_key")
    return {name: getattr(args, name) for name in names}


def _serve(options: Any, on_ready: Any = None) -> int:
    from passweb_tui.commands import CliError
    from passweb_tui.mexal_sim.erp import StateFileError
    from passweb_tui.mexal_sim.server import SimOptionsError, serve

    try:
        serve(options, on_ready)
    except (StateFileError, SimOptionsError) as exc:
        raise CliError(f"erp-sim: {exc}", ExitCode.USAGE) from None
    return int(ExitCode.OK)


def _serve_demo(args: argparse.Namespace, ctx: Context) -> int:
    """`--demo erp-sim`: the demo ERP itself (its state file in the demo folder, its
    user and company), in the foreground, used by every other `--demo` command on the
    folder while it runs; refused while another process serves it."""
    from passweb_tui import demo
    from passweb_tui.commands import CliError

    own = [f for f, given in (("--state", args.state is not None),
                              ("--user", args.user != demo.DEMO_USER),
                              ("--password", args.password is not None),
                              ("--azienda", args.sim_azienda != demo.DEMO_AZIENDA),
                              ("--anno", args.sim_anno != dt.date.today().year)) if given]  # fmt: skip
    if own:
        raise CliError(
            f"erp-sim: --demo serves the demo ERP as the demo keeps it; {', '.join(own)}"
            " cannot go with it",
            ExitCode.USAGE,
        )
    folder = ctx.settings.site_data_dir
    make_private_folder(folder)
    running = demo.running_demo_erp(folder)
    if running is not None:
        url, pid = running
        raise CliError(
            f"erp-sim: the demo ERP is served already, at {url} (pid {pid}); use that one",
            ExitCode.REFUSED,
        )
    options = demo.demo_erp_options(folder, **_served(args))
    announced: list[Any] = []
    try:
        return _serve(
            options, lambda url: announced.append(demo.announce(folder, url, options.anno))
        )
    finally:
        for info in announced:
            demo.withdraw(info)
