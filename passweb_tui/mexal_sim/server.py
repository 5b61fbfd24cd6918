"""Serving the simulator: options, the ASGI app, and running it (foreground or background).

`serve()` backs `passweb-tui erp-sim`; `start_background()` backs `--demo` and tests.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import Message, Receive, Scope, Send

from passweb_tui.mexal_sim.admin import build_admin
from passweb_tui.mexal_sim.erp import (
    DEFAULT_LOCK_AFTER,
    MOST_GENERATED,
    Erp,
    StateFileError,
    open_erp,
)
from passweb_tui.mexal_sim.webapi import WebApi

__all__ = [
    "SimApp",
    "SimHandle",
    "SimOptions",
    "SimOptionsError",
    "StateFileError",
    "create_app",
    "serve",
    "start_background",
]


@dataclass
class SimOptions:
    host: str = "127.0.0.1"
    port: int = 9004  # 0 = pick a free port
    articles: int = 5000
    customers: int = 1000
    orders: int = 200
    seed: int = 1
    state: Path | None = None  # keeps the ERP's data across restarts
    user: str = "demo"
    # None: the password the state file keeps for `user`, else "demo"
    password: str | None = None
    azienda: str = "DEM"
    anno: int = field(default_factory=lambda: dt.date.today().year)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    lock_after: int = DEFAULT_LOCK_AFTER  # failed logins in a row that lock a user; 0 never


class SimOptionsError(ValueError):
    """Options the simulator cannot run with."""


class SimApp:
    """The ASGI app: /webapi (the WebAPI) and /sim (admin), timing every reply."""

    def __init__(self, erp: Erp) -> None:
        self.erp = erp
        self.webapi = WebApi(erp)
        self.admin = build_admin(erp)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                headers = [
                    *message.get("headers", []),
                    (b"server-timing", f"app;dur={took:.3f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        path: str = scope["path"]
        if path == "/webapi" or path.startswith("/webapi/"):
            await self.webapi(scope, receive, timed_send)
        elif path.startswith("/sim/"):
            await self.admin(scope, receive, timed_send)
        else:
            await timed_send({"type": "http.response.start", "status": 404, "headers": []})
            await timed_send({"type": "http.response.body", "body": b""})


def create_app(options: SimOptions) -> SimApp:
    """Generate (or load from the state file) the ERP and wrap it in the ASGI app.

    Raises StateFileError when the state file exists but cannot be used, and
    SimOptionsError for impossible options."""
    for name in ("articles", "customers", "orders"):
        if getattr(options, name) < 0:
            raise SimOptionsError(f"--{name} must be 0 or more, not {getattr(options, name)}")
        if getattr(options, name) > MOST_GENERATED[name]:
            raise SimOptionsError(
                f"--{name} must be at most {MOST_GENERATED[name]:,}, not {getattr(options, name):,}"
            )
    if options.orders and not options.customers:
        raise SimOptionsError("--orders needs at least one customer (--customers)")
    if options.password is not None and not options.password:
        raise SimOptionsError("--password must not be empty (leave it out to keep the default)")
    if not options.user:
        raise SimOptionsError("--user must not be empty")
    if ":" in options.user:
        # Authorization carries user:password, and the user ends at its first ':'
        raise SimOptionsError(f"--user must not contain ':', got {options.user!r}")
    if not options.azienda.strip():
        raise SimOptionsError("--azienda must not be empty")
    if not all("!" <= ch <= "~" for ch in options.azienda):
        # Coordinate-Gestionale is split at spaces: a code with one cannot be given
        raise SimOptionsError(
            "--azienda must be one word of ASCII letters, digits or signs (no spaces),"
            f" got {options.azienda!r}"
        )
    if not 1900 <= options.anno <= 2999:  # what a client accepts (a year like 2026)
        raise SimOptionsError(f"--anno must be a year like 2026, got {options.anno}")
    if options.lock_after < 0:
        raise SimOptionsError(f"--lock-after must be 0 (never) or more, not {options.lock_after}")
    if bool(options.tls_cert) != bool(options.tls_key):
        raise SimOptionsError("--tls-cert and --tls-key go together")
    try:
        erp = open_erp(
            articles=options.articles,
            customers=options.customers,
            orders=options.orders,
            seed=options.seed,
            user=options.user,
            password=options.password,
            azienda=options.azienda,
            anno=options.anno,
            state=options.state,
        )
    except OSError as exc:  # StateSaveError: the state file cannot be made or written
        where = exc.filename or options.state
        raise SimOptionsError(
            f"--state {options.state}: cannot write {where}: {exc.strerror or exc}"
        ) from None
    erp.lock_after = options.lock_after
    return SimApp(erp)


class _QuietDrops(logging.Filter):
    """Dropped connections are injected faults, not server errors worth a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


class _Server(uvicorn.Server):
    """Stops on SIGTERM/SIGINT and returns normally, so the command exits with status 0
    (uvicorn would otherwise re-raise the signal once shut down)."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


# How long a stop waits for requests still being worked on before it drops them (a request
# held by injected latency is answered 503 at once): a client never holds up a stop longer.
STOP_GRACE_S = 3


def _config(app: SimApp, options: SimOptions) -> uvicorn.Config:
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    kwargs: dict[str, Any] = {}
    if options.tls_cert:
        kwargs["ssl_certfile"] = str(options.tls_cert)
        kwargs["ssl_keyfile"] = str(options.tls_key) if options.tls_key else None
    return uvicorn.Config(
        app,
        access_log=False,
        log_level="warning",
        lifespan="off",
        log_config=None,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=STOP_GRACE_S,
        **kwargs,
    )


def _server(app: SimApp, options: SimOptions) -> _Server:
    """The server for `app`, which tells the app when it begins to stop."""
    server = _Server(_config(app, options))
    app.webapi.stopping = lambda: server.should_exit
    return server


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets created as TCP,
    # and without it every small reply waits for the peer's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(options: SimOptions, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    scheme = "https" if options.tls_cert else "http"
    host = f"[{options.host}]" if ":" in options.host else options.host
    return f"{scheme}://{host}:{port}/webapi"


def serve(options: SimOptions, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; prints one ready line once the socket listens (and
    gives `on_ready` the WebAPI's URL first)."""
    if not 0 <= options.port <= 65535:
        raise SimOptionsError(f"--port must be 0-65535, got {options.port}")
    app = create_app(options)  # StateFileError, SimOptionsError: the caller says them
    if options.tls_cert:
        # loaded now, so that a certificate that does not work never follows a ready line
        import ssl

        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                options.tls_cert, options.tls_key
            )
        except (OSError, ssl.SSLError) as exc:
            why = getattr(exc, "strerror", None) or exc.__class__.__name__
            raise SimOptionsError(
                f"--tls-cert {options.tls_cert} / --tls-key {options.tls_key}: {why}"
            ) from None
    try:
        sock = _bind(options.host, options.port)
    except OSError as exc:
        raise SimOptionsError(
            f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}"
        ) from None
    server = _server(app, options)

    def stop_early(sig: int, frame: Any) -> None:
        # a signal between the ready line and uvicorn's own handlers still stops cleanly
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop_early)
    if on_ready is not None:
        on_ready(_url(options, sock))
    print(
        f"serving {_url(options, sock)} user={options.user} "
        f"azienda={options.azienda} anno={options.anno}",
        flush=True,
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    sys.stdout.flush()


@dataclass
class SimHandle:
    """A simulator running in a background thread of this process."""

    url: str
    app: SimApp
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket

    @property
    def root(self) -> str:
        return self.url[: -len("/webapi")]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def start_background(options: SimOptions, *, timeout: float = 60.0) -> SimHandle:
    """Start the simulator in a daemon thread and return once it accepts connections."""
    app = create_app(options)
    sock = _bind(options.host, options.port)
    server = _server(app, options)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="mexal-sim", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("the ERP simulator stopped while starting")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the ERP simulator did not start in time")
        time.sleep(0.01)
    return SimHandle(_url(options, sock), app, server, thread, sock)
