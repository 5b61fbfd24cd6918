"""A proxy in front of the simulator that passes every request through except what a
test tells it to lie about: an attachment's body (bigger than listed, cut short, with
or without Content-Length), an article's attachment listing, or any reply sent without
Content-Length. A real socket and a real HTTP server: the client under test is not
touched (no test helpers here)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

#: the block a lie's body repeats (a PDF by its first bytes)
_BLOCK = (b"%PDF-1.4 lie " + bytes(range(256)) * 256)[: 64 * 1024]
_HOP_HEADERS = {"connection", "content-length", "transfer-encoding", "content-encoding"}


def lie_chunks(size: int) -> Iterator[bytes]:
    """The body of a lie of `size` bytes, in 64 KiB pieces."""
    for start in range(0, size, len(_BLOCK)):
        yield _BLOCK[: min(len(_BLOCK), size - start)]


def lie_digest(size: int) -> str:
    digest = hashlib.sha256()
    for chunk in lie_chunks(size):
        digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass
class Lie:
    """How to answer for one attachment."""

    size: int  # the body's bytes
    announce: bool = True  # send Content-Length (else the body ends with the connection)
    drop_after: int | None = None  # close the connection after this many bytes
    drops: int = 1_000_000  # how many times to drop it; then the whole body
    sent: list[int] = dataclasses.field(default_factory=list)  # bytes sent, per request


class LyingProxy:
    """Serves on loopback; `url`, `user`, `password`, `azienda`, `anno` as a SimProcess
    has them, so a test hands it where it would hand the simulator."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.user, self.password = sim.user, sim.password
        self.azienda, self.anno = sim.azienda, sim.anno
        self.lies: dict[tuple[str, str], Lie] = {}  # (article, attachment name) -> lie
        #: article -> what its listing's records become
        self.listings: dict[str, Callable[[list[dict[str, Any]]], list[dict[str, Any]]]] = {}
        self.no_length = False  # pass every reply on without Content-Length
        self.hits: Counter[str] = Counter()  # request paths
        self._http = httpx.Client(timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: every reply ends its connection, so a body without Content-Length
            # ends there
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_PUT = do_DELETE = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/webapi"

    def lie(self, article: str, nome: str, lie: Lie) -> Lie:
        self.lies[(article, nome)] = lie
        return lie

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def __enter__(self) -> LyingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path
        self.hits[path] += 1
        parts = path.split("/")
        if len(parts) >= 4 and parts[-2] == "allegati" and parts[-4] == "articoli":
            lie = self.lies.get((parts[-3], parts[-1]))
            if lie is not None:
                self._tell(h, lie)
                return
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        headers = {
            k: v
            for k, v in h.headers.items()
            if k.lower() not in ("host", "connection", "content-length", "accept-encoding")
        }
        reply = self._http.request(h.command, self.sim.root + h.path, headers=headers, content=body)
        content = reply.content
        if len(parts) >= 3 and parts[-1] == "allegati" and parts[-3] == "articoli":
            rewrite = self.listings.get(parts[-2])
            if rewrite is not None and reply.status_code == 200:
                data = json.loads(content)
                data["dati"] = rewrite(data.get("dati", []))
                content = json.dumps(data).encode()
        h.send_response(reply.status_code)
        for k, v in reply.headers.items():
            if k.lower() not in _HOP_HEADERS:
                h.send_header(k, v)
        if not self.no_length:
            h.send_header("Content-Length", str(len(content)))
        h.end_headers()
        h.wfile.write(content)

    @staticmethod
    def _tell(h: BaseHTTPRequestHandler, lie: Lie) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        if lie.announce:
            h.send_header("Content-Length", str(lie.size))
        h.end_headers()
        cut = lie.drop_after if lie.drops > 0 else None
        if cut is not None:
            lie.drops -= 1
        sent = 0
        try:
            for chunk in lie_chunks(lie.size):
                if cut is not None and sent + len(chunk) > cut:
                    h.wfile.write(chunk[: cut - sent])
                    sent = cut
                    break
                h.wfile.write(chunk)
                sent += len(chunk)
            h.wfile.flush()
        except OSError:  # the client stopped reading and closed: as it should
            pass
        finally:
            lie.sent.append(sent)
        h.close_connection = True
