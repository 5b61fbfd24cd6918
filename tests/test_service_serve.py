"""`passweb-tui serve` as real processes: a clean stop on SIGTERM or SIGHUP mid-run, and
several services sharing one PostgreSQL store that run each scheduled slot once, never two
TOTAL/CHANGED together, while they are killed one by one in the middle of a run.

The longer kill sweep is marked slow: `pytest -m slow tests/test_service_serve.py`."""

from __future__ import annotations

import itertools
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SimProcess, wait_for
from test_service_mail import AuthSink

from passweb_tui.engine import owners
from passweb_tui.engine.facade import Engine, EngineSettings
from passweb_tui.engine.lease import read_lease
from passweb_tui.engine.service import slots
from passweb_tui.logs import log_file


class Serve:
    """One `passweb-tui serve` process with its stderr in a file."""

    def __init__(
        self,
        sim: SimProcess,
        db_url: str,
        config: Path,
        log: Path,
        *extra: str,
        env_extra: dict[str, str] | None = None,
    ) -> None:
        env = dict(os.environ, **(env_extra or {}))
        env.update(
            PASSWEB_TUI_CONFIG=str(config),
            PASSWEB_TUI_ERP_PASSWORD=sim.password,
            PYTHONUNBUFFERED="1",
        )
        self.log = log
        self.stderr = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "passweb_tui",
                "--db",
                db_url,
                "--erp-url",
                sim.url,
                "--erp-user",
                sim.user,
                "--azienda",
                sim.azienda,
                "--anno",
                str(sim.anno),
                "serve",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def ready(self, timeout: float = 60) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"serve did not start:\n{self.log.read_text()}") from None
        assert line.startswith("serving site="), line
        return line

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.stderr.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.stderr.close()


def write_config(path: Path, every: str, lease_seconds: int = 120) -> Path:
    path.write_text(
        f'[sync]\nlease_seconds = {lease_seconds}\n[service]\nevery = "{every}"\n'
        'timezone = "UTC"\n',
        encoding="utf-8",
    )
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def reader() -> Iterator[Callable[[str], Engine]]:
    engines: list[Engine] = []

    def open_reader(db_url: str) -> Engine:
        engine = Engine.open(EngineSettings(db_url))
        engines.append(engine)
        return engine

    yield open_reader
    for e in engines:
        e.close()


@pytest.mark.e2e
@pytest.mark.parametrize(
    "sig",
    # SIGHUP takes the same path (test_cli_signals has it in CI): in the slow sweep here
    [signal.SIGTERM, pytest.param(signal.SIGHUP, marks=pytest.mark.slow)],
    ids=lambda s: s.name,
)
def test_sigterm_or_sighup_cancels_the_run_and_waits_for_it(
    sim: SimProcess,
    db_url: str,
    tmp_path: Path,
    reader: Callable[[str], Engine],
    sig: signal.Signals,
) -> None:
    """SIGTERM (systemd stopping it) or SIGHUP (its terminal gone) ends the service
    cleanly."""
    # a day schedule with no window is due at once: the first tick starts a run
    config = write_config(tmp_path / "config.toml", "1d")
    sim.admin("PUT", "faults", json={"latency_ms": 150})
    serve = Serve(sim, db_url, config, tmp_path / "serve.log")
    try:
        line = serve.ready()
        assert "CHANGED every 1 day(s)" in line and "trigger=off" in line
        store = reader(db_url)
        running = wait_for(
            "a scheduled run", lambda: [r for r in store.runs() if r.status == "running"]
        )
        assert running[0].origin == "scheduler"
        assert serve.stop(sig) == 0
    finally:
        serve.kill()
    run = store.run_detail(running[0].run_id).run
    assert run.status == "cancelled" and run.finished is not None
    assert run.error == f"cancelled: the service stopped on {sig.name}"  # no operator did
    assert store.lease() is None  # released on the way out
    log = serve.log.read_text()
    assert f"received {sig.name}" in log and f"cancelling run {run.run_id}" in log
    assert "service stopped" in log and "Traceback" not in log


def serve_with_trigger(sim: SimProcess, tmp_path: Path) -> Serve:
    """`serve` on the store and config file in tmp_path, with its trigger on a free port
    and its token from the environment."""
    return Serve(
        sim,
        f"sqlite:///{tmp_path / 'store.db'}",
        write_config(tmp_path / "config.toml", ""),
        tmp_path / "serve.log",
        "--trigger",
        "--trigger-port",
        "0",
        env_extra={"PASSWEB_TUI_TRIGGER_TOKEN": "t0ken-from-the-environment"},
    )


@pytest.mark.e2e
def test_the_erp_triggers_a_serve_process(
    sim: SimProcess, tmp_path: Path, reader: Callable[[str], Engine]
) -> None:
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    serve = serve_with_trigger(sim, tmp_path)
    try:
        line = serve.ready()
        url = line.rsplit("trigger=", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/trigger")
        answer = sim.admin(
            "POST",
            "trigger",
            json={"url": url, "token": "t0ken-from-the-environment", "kind": "total"},
        ).json()
        assert answer["status"] == 202, answer
        store = reader(db_url)
        run_id = answer["body"]["run_id"]
        run = wait_for(
            "the triggered run to end",
            lambda: (r := store.run_detail(run_id).run).status != "running" and r,
            timeout=120,
        )
        assert (run.status, run.origin, run.kind) == ("ok", "erp", "total")
        assert serve.stop() == 0
    finally:
        serve.kill()
    assert "trigger endpoint listening on" in serve.log.read_text()


#: what a terminal would obey: C0 controls but tab and line feed, DEL, C1 (in UTF-8)
_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


@pytest.mark.e2e
def test_a_request_line_with_terminal_escapes_reaches_the_log_visible(
    sim: SimProcess, tmp_path: Path
) -> None:
    """A client without a token sends a request line that would set the window's title,
    ring the bell and clear the screen of whoever reads the log (`tail -f`): the log file
    holds the request, every control character escaped as the standard library escapes
    them, and not one control byte; stderr (the journal) neither."""
    serve = serve_with_trigger(sim, tmp_path)
    try:
        url = serve.ready().rsplit("trigger=", 1)[1].strip()
        host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            conn.sendall(
                b"POST /trigger?\x1b]0;TRIGPWN\x07\x1b[2J\x9b31m\\x1b HTTP/1.1\r\n"
                b"Host: x\r\nContent-Length: 0\r\n\r\n"
            )
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        assert answer.split(b"\r\n", 1)[0].endswith(b" 401 Unauthorized"), answer
        assert serve.stop() == 0
    finally:
        serve.kill()
    data = log_file().read_bytes()
    assert _RAW_CONTROL.search(data) is None, data
    # the client's own backslash doubled: its "\x1b" cannot pass for an escape made here
    seen = rb'"POST /trigger?\x1b]0;TRIGPWN\x07\x1b[2J\x9b31m\\x1b HTTP/1.1" 401'
    assert seen in data, data
    assert b"trigger from 127.0.0.1 refused: bad or missing token" in data
    assert _RAW_CONTROL.search(serve.log.read_bytes()) is None


@pytest.mark.e2e
def test_a_mail_servers_refusal_with_terminal_escapes_reaches_the_log_visible(
    sim: SimProcess, tmp_path: Path
) -> None:
    """A mail server refuses the login with a reply carrying escape sequences and a C1
    CSI: the service's "could not e-mail the outcome" line says the reply, its control
    characters shown as pictures in the log file and on stderr (the journal)."""
    sink = AuthSink()
    sink.refusal = "535 5.7.8 \x1b]0;MAILPWN\x07\x1b[2J\x9b31m go away".encode()
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    config = tmp_path / "config.toml"
    config.write_text(
        '[service]\nevery = "1d"\ntimezone = "UTC"\nnotify = "ops@shop.it"\n'
        f'smtp_host = "127.0.0.1"\nsmtp_port = {sink.port}\nsmtp_user = "sync@shop.it"\n',
        encoding="utf-8",
    )
    os.chmod(config, 0o600)
    serve = Serve(
        sim,
        f"sqlite:///{tmp_path / 'store.db'}",
        config,
        tmp_path / "serve.log",
        env_extra={"PASSWEB_TUI_SMTP_PASSWORD": "not-the-password"},
    )
    path = log_file()
    try:
        serve.ready()
        wait_for(
            "the outcome e-mail to fail",
            lambda: path.exists() and b"could not e-mail the outcome" in path.read_bytes(),
            timeout=120,
        )
        assert serve.stop() == 0
    finally:
        serve.kill()
        sink.shutdown()
        sink.server_close()
    assert sink.logins and sink.mails == 0
    said = "(535 5.7.8 ␛]0;MAILPWN␇␛[2J\ufffd31m go away): check smtp_user and smtp_password"
    for data in (path.read_bytes(), serve.log.read_bytes()):
        assert _RAW_CONTROL.search(data) is None, data
        assert said in data.decode("utf-8"), data


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    ("processes", "kills"),
    [
        (3, 1),
        # the longer sweep: run it with `pytest -m slow tests/test_service_serve.py`
        pytest.param(4, 3, marks=pytest.mark.slow),
    ],
)
def test_services_share_postgres_and_survive_kills(
    sim: SimProcess,
    db_url: str,
    tmp_path: Path,
    reader: Callable[[str], Engine],
    processes: int,
    kills: int,
) -> None:
    config = write_config(tmp_path / "config.toml", "2s", lease_seconds=3)
    sim.admin("PUT", "faults", json={"latency_ms": 40})
    services = [Serve(sim, db_url, config, tmp_path / f"serve{i}.log") for i in range(processes)]
    store = reader(db_url)
    killed_runs: list[int] = []
    try:
        for s in services:
            s.ready()

        def done_runs() -> list[Any]:
            return [r for r in store.runs(limit=500) if r.status in ("ok", "ok_with_rejects")]

        wait_for("two scheduled runs", lambda: len(done_runs()) >= 2, timeout=90)
        for _ in range(kills):
            # kill the process that holds the lease in the middle of its run
            lease = wait_for(
                "a run in progress",
                lambda: (info := store.lease()) is not None and info.run_id is not None and info,
                timeout=60,
            )
            pid = owners.token_parts(lease.holder)[1]  # type: ignore[index]
            victim = next(s for s in services if s.process.pid == pid)
            victim.kill()
            # the run may have ended between reading the lease and the kill; only a run
            # still open at the kill is one that was killed mid-run
            ended = {r.run_id for r in done_runs()}
            if lease.run_id not in ended:
                killed_runs.append(lease.run_id)
            before = len(done_runs())
            wait_for("two more runs after a kill", lambda n=before: len(done_runs()) >= n + 2, 90)
        survivors = [s for s in services if s.process.poll() is None]
        assert len(survivors) == processes - kills
        assert [s.stop() for s in survivors] == [0] * len(survivors)
    finally:
        for s in services:
            s.kill()

    runs = sorted(store.runs(limit=1000), key=lambda r: r.run_id or 0)
    pulls = [r for r in runs if r.kind in ("total", "changed") and not r.dry_run]
    assert all(r.origin == "scheduler" for r in pulls)
    for run_id in killed_runs:
        killed = next(r for r in runs if r.run_id == run_id)
        assert killed.status == "failed" and "interrupted" in (killed.error or "")
    # never two TOTAL/CHANGED at once: each ends before the next one starts
    for a, b in itertools.pairwise(pulls):
        assert a.finished is not None and a.finished <= b.started, (a, b)
    # each scheduled run belongs to exactly one claimed slot, and each slot ran at most once
    claims = slots.claims(store.store)
    claimed_runs = [c.run_id for c in claims if c.run_id is not None]
    assert len(set(claimed_runs)) == len(claimed_runs)
    assert set(claimed_runs) <= {r.run_id for r in pulls}
    # a process killed between starting a run and noting it on its claim leaves a claim
    # without run id: only the killed runs may be missing from the claims
    assert {r.run_id for r in pulls} - set(claimed_runs) <= set(killed_runs)
    unnoted = [
        c for c in claims if c.run_id is None and not (c.outcome or "").startswith("refused")
    ]
    assert len(unnoted) <= kills
    assert len({c.holder for c in claims}) >= 2  # the work was shared
    assert read_lease(store.store) is None
