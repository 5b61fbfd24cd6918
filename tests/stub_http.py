"""A real HTTP server on a loopback socket, for the tests that meet a server that is
not the ERP (another program's JSON, a redirect, a proxy, no HTTP at all)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def answering(answer: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    """A server whose every GET and POST `answer` answers (it writes the reply on the
    handler), running while the block runs; its `/webapi` URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer(self)

        do_POST = do_GET

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webapi"
    finally:
        server.shutdown()
        server.server_close()


def answer_json(body: bytes, status: int = 200) -> Callable[[BaseHTTPRequestHandler], None]:
    """An answer of `body` as JSON, with its length."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer
