"""Reads cut short by a cancel (client.READS_CUT_BY, client.cut_reads), against an ERP
that takes the request on a real socket and answers only when the test says so: a
blocked read ends at once, a write in flight is never cut, and the client goes on
serving everything else."""

from __future__ import annotations

import contextvars
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from passweb_tui.engine.erp import client as client_module
from passweb_tui.engine.erp.client import READS_CUT_BY, MexalClient, cut_reads
from passweb_tui.engine.erp.errors import ReadsCutShortError
from passweb_tui.engine.erp.settings import ErpConfig


class SilentErp:
    """An HTTP server on loopback that reads each request and answers it only once
    `answer` is set (each connection in its own thread)."""

    def __init__(self) -> None:
        self.answer = threading.Event()
        self.requests: list[str] = []
        self.got = threading.Condition()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf[length:]
                with self.got:
                    self.requests.append(head.split(b"\r\n")[0].decode())
                    self.got.notify_all()
                self.answer.wait()
                if head.startswith(b"POST"):
                    reply = (
                        b"HTTP/1.1 201 Created\r\nLocation: /webapi/risorse/articoli/NEW1\r\n"
                        b"Content-Length: 0\r\n\r\n"
                    )
                else:
                    body = b'{"versione": "test"}'
                    reply = (
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                try:
                    conn.sendall(reply)
                except OSError:
                    return

    def wait_requests(self, n: int, timeout: float = 10) -> None:
        with self.got:
            assert self.got.wait_for(lambda: len(self.requests) >= n, timeout), self.requests

    def close(self) -> None:
        self.answer.set()
        self._sock.close()


@pytest.fixture
def erp() -> Iterator[SilentErp]:
    server = SilentErp()
    yield server
    server.close()


@pytest.fixture
def client(erp: SilentErp) -> Iterator[MexalClient]:
    config = ErpConfig(
        f"http://127.0.0.1:{erp.port}/webapi",
        "mario",
        "pw",
        azienda="DEM",
        anno=2026,
        read_timeout_s=120.0,
        max_retries=0,
    )
    with MexalClient(config) as c:
        yield c


def in_thread(
    fn: Callable[[], Any], cut_by: threading.Event | None
) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `fn` in a thread whose context cuts its reads by `cut_by`; its outcome
    lands in the returned dict (under "value" or "error")."""
    out: dict[str, Any] = {}

    def run() -> None:
        READS_CUT_BY.set(cut_by)
        try:
            out["value"] = fn()
        except Exception as exc:
            out["error"] = exc

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    thread.start()
    return thread, out


def wait_reading(n: int, timeout: float = 10) -> None:
    """Until `n` reads are blocked on their sockets (the request written, its answer
    awaited)."""
    deadline = time.monotonic() + timeout
    while len(client_module._READING) < n:
        assert time.monotonic() < deadline, f"{len(client_module._READING)} reads blocked"
        time.sleep(0.01)


def test_the_clients_reads_can_be_cut(client: MexalClient) -> None:
    # built on httpx's own pools, as the client always is outside tests: were a new httpx
    # to build them otherwise, this says so (and a cancel would wait for the ERP again)
    assert client.cuttable


def test_a_cancel_cuts_short_a_read_the_erp_does_not_answer(
    erp: SilentErp, client: MexalClient
) -> None:
    cancel = threading.Event()
    thread, out = in_thread(client.installation, cancel)
    erp.wait_requests(1)
    wait_reading(1)  # blocked in the read of the answer
    cancel.set()
    started = time.monotonic()
    assert cut_reads(cancel) == 1
    thread.join(5)
    assert not thread.is_alive(), "the read was not cut short"
    assert time.monotonic() - started < 2
    error = out.get("error")
    assert isinstance(error, ReadsCutShortError), out
    assert "cut short: the run was cancelled" in str(error)
    assert not error.retryable

    # a read asked for afterwards in that context is refused before anything is sent
    thread, out = in_thread(client.installation, cancel)
    thread.join(5)
    assert isinstance(out.get("error"), ReadsCutShortError), out
    assert len(erp.requests) == 1

    # the client itself goes on: another context's read is answered on a new connection
    erp.answer.set()
    thread, out = in_thread(client.installation, None)
    thread.join(10)
    assert out.get("value") == {"versione": "test"}, out


def test_only_the_reads_of_the_cancelled_context_are_cut(
    erp: SilentErp, client: MexalClient
) -> None:
    cancel, other = threading.Event(), threading.Event()
    mine, out_mine = in_thread(client.installation, cancel)
    theirs, out_theirs = in_thread(client.installation, other)
    erp.wait_requests(2)
    wait_reading(2)
    cancel.set()
    assert cut_reads(cancel) == 1
    mine.join(5)
    assert isinstance(out_mine.get("error"), ReadsCutShortError), out_mine
    assert theirs.is_alive()  # still waiting for its answer
    erp.answer.set()
    theirs.join(10)
    assert out_theirs.get("value") == {"versione": "test"}, out_theirs


def test_a_write_waiting_for_its_answer_is_never_cut(erp: SilentErp, client: MexalClient) -> None:
    """Whether an order reached the ERP must be known: a cancel leaves its write alone,
    and the write returns the ERP's answer when it comes."""
    cancel = threading.Event()
    thread, out = in_thread(lambda: client.create("articoli", {"codice": "NEW1"}), cancel)
    erp.wait_requests(1)
    time.sleep(0.2)
    cancel.set()
    assert cut_reads(cancel) == 0
    thread.join(1)
    assert thread.is_alive(), out
    erp.answer.set()
    thread.join(10)
    assert out.get("value") == "NEW1", out
