"""The ERP-side trigger: a small HTTP endpoint (stdlib, in a thread) through which the ERP
asks for a TOTAL or CHANGED. Token required, checked before what the body asks; answers
202, 400, 401, 403, 404, 405, 409, 413, 503."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("passweb_tui.service.trigger")

PATH = "/trigger"
MAX_BODY = 4096

#: a request line's control characters (C0, DEL, C1) as the log shows them: escaped as
#: the standard library's `log_message`, replaced below, escapes them, and a backslash
#: doubled, so that an escape a client sent cannot pass for one made here
_ESCAPED = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPED[ord("\\")] = "\\\\"


class TriggerRefused(Exception):
    """The launch was refused; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


#: launch(kind) -> run id; raises TriggerRefused
Launch = Callable[[str], int | None]


def token_matches(given: str | None, expected: str) -> bool:
    if not given:
        return False
    # digests first, so that neither the content nor the length of the token leaks in timing
    # surrogatepass: a token with a lone surrogate ("\ud800" in the JSON) is a mismatch
    a = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(expected.encode("utf-8")).digest()
    return hmac.compare_digest(a, b)


#: a refused token is logged at most once in this many seconds per client address; the
#: refusals in between are counted in the next line (a flood cannot push the log's
#: useful lines out through its rotation)
REFUSAL_LOG_EVERY_S = 60.0


class RefusalLog:
    """Says refused tokens in the log, at most one line per client per period."""

    def __init__(
        self, every_s: float = REFUSAL_LOG_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every_s = every_s
        self.clock = clock
        self._lock = threading.Lock()
        self._by_client: dict[str, tuple[float, int]] = {}  # last line's time, unsaid since

    def refused(self, client: str) -> bool:
        """Note a refusal from `client`; True when it was logged, False when counted."""
        now = self.clock()
        with self._lock:
            said_at, unsaid = self._by_client.get(client, (float("-inf"), 0))
            if now - said_at < self.every_s:
                self._by_client[client] = (said_at, unsaid + 1)
                return False
            self._by_client[client] = (now, 0)
            if len(self._by_client) > 1024:  # many clients: forget the quiet ones
                cutoff = now - self.every_s
                self._by_client = {c: v for c, v in self._by_client.items() if v[0] >= cutoff}
        more = f" (and {unsaid} more time(s) since the last line)" if unsaid else ""
        log.warning("trigger from %s refused: bad or missing token%s", client, more)
        return True


def _family(host: str, port: int) -> socket.AddressFamily:
    """The address family of the host to listen on: an IPv6 address or name ("::1",
    "::") listens on IPv6, anything else as it resolves (IPv4 first when both)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(exc.errno, f"no such address ({exc.strerror})") from None
    families = [info[0] for info in infos]
    return socket.AF_INET if socket.AF_INET in families else families[0]


class TriggerServer:
    """Serves POST /trigger {"kind": "total"|"changed", "token": "..."} (or a Bearer token)."""

    def __init__(self, host: str, port: int, token: str, launch: Launch) -> None:
        if not token:
            raise ValueError("the trigger endpoint needs a token (trigger_token)")
        self.token = token
        self.launch = launch
        self.refusals = RefusalLog()
        handler = self._handler_class()
        server = type("_Server", (ThreadingHTTPServer,), {"address_family": _family(host, port)})
        self.httpd = server((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        host_text = f"[{name}]" if ":" in name else name
        return f"http://{host_text}:{port}{PATH}"

    @property
    def loopback(self) -> bool:
        host = self.httpd.server_address[0]
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return name == "localhost"

    def start(self) -> None:
        if not self.loopback:
            log.warning(
                "the trigger endpoint listens beyond this machine on %s: keep it behind a TLS "
                "proxy or a firewall, the token travels in clear HTTP",
                self.url,
            )
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="trigger-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "passweb-tui-trigger"
            sys_version = ""
            # a client that stops sending (or never sends) frees its thread after this
            timeout = 30

            quiet = False  # a refusal counted, not logged: its request line is not either

            def log_message(self, format: str, *args: Any) -> None:
                # the request line is whatever a client sent, before any token is checked
                if not self.quiet:
                    message = (format % args).translate(_ESCAPED)
                    log.info("%s %s", self.address_string(), message)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _not_post(self, body: bool = True) -> None:
                """Any method but POST: 405 on the endpoint (saying which is allowed), 404
                elsewhere, a JSON body as every answer (none to a HEAD)."""
                if self.path.split("?")[0] == PATH:
                    status, error = 405, f"use POST {PATH}"
                else:
                    status, error = 404, f"no such endpoint; POST to {PATH}"
                data = json.dumps({"error": error}).encode("utf-8")
                self.send_response(status)
                if status == 405:
                    self.send_header("Allow", "POST")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._not_post()

            do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

            def do_HEAD(self) -> None:
                self._not_post(body=False)

            def __getattr__(self, name: str) -> Any:
                # any other method (TRACE, CONNECT, PROPFIND...): a 405 in JSON as well,
                # not the standard library's 501 page
                if name.startswith("do_"):
                    return self.do_GET
                raise AttributeError(name)

            def do_POST(self) -> None:
                if self.path.split("?")[0] != PATH:
                    self._answer(404, {"error": f"no such endpoint; POST to {PATH}"})
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length < 0 or length > MAX_BODY:
                    self._answer(413, {"error": f"body must be JSON of at most {MAX_BODY} bytes"})
                    return
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except (ValueError, RecursionError):  # not JSON, or nested past reason
                    body = None
                auth = self.headers.get("Authorization", "")
                bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
                # the token first: a client without it is told only that it is missing or
                # wrong (and that no token could be read from a body that is not JSON)
                given = [] if bearer is None else [bearer]
                if isinstance(body, dict):
                    token = body.get("token")
                    if isinstance(token, str):
                        given.append(token)
                    elif "token" in body:
                        given.append("")  # a token that is no text is a wrong one
                # either way of giving it; when both are given, both must be right
                if not given or not all(token_matches(t, server.token) for t in given):
                    self.quiet = not server.refusals.refused(str(self.client_address[0]))
                    error = "missing or wrong token"
                    if not isinstance(body, dict) and bearer is None:
                        error += " (the body is no JSON object to read a token from)"
                    self._answer(401, {"error": error})
                    return
                if not isinstance(body, dict):
                    self._answer(
                        400, {"error": 'body must be a JSON object {"kind": "total"|"changed"}'}
                    )
                    return
                kind = body.get("kind")
                if kind not in ("total", "changed"):
                    self._answer(400, {"error": 'kind must be "total" or "changed"'})
                    return
                try:
                    run_id = server.launch(kind)
                except TriggerRefused as exc:
                    self._answer(exc.status, {"error": str(exc)})
                    return
                except Exception as exc:  # answer, and keep the service going
                    log.exception("trigger launch failed")
                    self._answer(500, {"error": f"{exc.__class__.__name__}: {exc}"})
                    return
                self._answer(202, {"run_id": run_id, "kind": kind, "origin": "erp"})

        return Handler
