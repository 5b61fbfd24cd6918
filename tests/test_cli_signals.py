"""`passweb-tui sync` stopped by a signal, as real processes against the simulator.

SIGTERM (`kill`, `timeout`, systemd), SIGHUP (an SSH session or terminal that goes
away) and ctrl+c cancel the run cleanly: it is recorded `cancelled`, the TOTAL/CHANGED
lease is given back, stderr says which signal cancelled it and the exit status is 1 (a
cancelled run, CONTRACTS.md), so the operator's next `sync total` is not refused. A
second SIGTERM or ctrl+c ends the process at once; a second SIGHUP does not (a terminal
may hang up twice). A SIGHUP ignored from the start (`nohup`) stays ignored.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SimProcess, start_sim, wait_for
from hard_support import cli, cli_env, cli_here

from passweb_tui.engine.facade import Engine, EngineSettings, RunResult

pytestmark = pytest.mark.e2e

#: the command on a terminal of its own, as a login session has: the pty it is given
#: becomes the controlling terminal of its new session, then the program runs
ON_ITS_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, '-m', 'passweb_tui', *sys.argv[1:]])"
)


@pytest.fixture(scope="module")
def small_sim() -> Iterator[SimProcess]:
    """A small simulator shared by this module's tests; each sets its own faults."""
    p = start_sim("--articles", "200", "--customers", "40", "--orders", "5", "--seed", "11")
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def slow_sim(small_sim: SimProcess) -> Iterator[Callable[[int], SimProcess]]:
    def slow(latency_ms: int) -> SimProcess:
        small_sim.admin("PUT", "faults", json={"latency_ms": latency_ms})
        return small_sim

    yield slow
    small_sim.admin("DELETE", "faults")


@pytest.fixture
def reader(db_url: str) -> Iterator[Engine]:
    """The store as another process sees it, to follow the run without a command start."""
    engine = Engine.open(EngineSettings(db_url))
    try:
        yield engine
    finally:
        engine.close()


def signal_id(value: object) -> str:
    return value.name if isinstance(value, signal.Signals) else str(value)


def start_sync(env: dict[str, str], *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "passweb_tui", "sync", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def start_pushing(
    env: dict[str, str], sim: SimProcess, folder: Path, latency_ms: int
) -> subprocess.Popen[str]:
    """A `sync partial` sending a web order to an ERP that answers each request after
    `latency_ms`: a cancel waits for the push's answers (a read is not cut short there:
    what the push sends next hangs on it), so it takes a while."""
    from test_orders_helpers import jsonl, order_line

    assert cli("sync", "total", env=env).returncode == 0
    orders = folder / "orders.jsonl"
    orders.write_text(jsonl(order_line("W7001")), encoding="utf-8")
    imported = cli("orders", "import", str(orders), env=env)
    assert imported.returncode == 0, imported.stderr
    sim.admin("PUT", "faults", json={"latency_ms": latency_ms})
    return start_sync(env, "partial")


def running_run(store: Engine, proc: subprocess.Popen[str]) -> RunResult:
    def running() -> RunResult | None:
        assert proc.poll() is None, proc.communicate()
        return next((r for r in store.runs(5) if r.status == "running"), None)

    run: RunResult = wait_for("the run to be recorded running", running, timeout=30)
    return run


def assert_cancelled_and_free(
    store: Engine, run_id: int | None, sim: SimProcess, env: dict[str, str]
) -> None:
    """The run is recorded cancelled, nobody holds the lease, a TOTAL goes through."""
    listed = cli("runs", "--json", "--limit", "1", env=env)
    assert listed.returncode == 0, listed.stderr
    last = json.loads(listed.stdout)[0]
    assert (last["run_id"], last["status"]) == (run_id, "cancelled"), last
    assert last["finished"] is not None
    assert last["error"].startswith("cancelled by SIG"), last  # the signal, not an operator
    assert store.lease() is None
    sim.admin("DELETE", "faults")
    again = cli("sync", "total", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "ok"


@pytest.mark.parametrize(
    ("sig", "db_url"),
    [
        (signal.SIGTERM, "sqlite"),
        (signal.SIGHUP, "postgres"),
        # the rest of the pairs in the slow sweep: the handling does not depend on the store
        pytest.param(signal.SIGTERM, "postgres", marks=pytest.mark.slow),
        pytest.param(signal.SIGHUP, "sqlite", marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, "sqlite", marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, "postgres", marks=pytest.mark.slow),
    ],
    ids=signal_id,
    indirect=["db_url"],
)
def test_a_signal_cancels_the_run_and_frees_the_lease(
    sig: signal.Signals,
    db_url: str,
    reader: Engine,
    slow_sim: Callable[[int], SimProcess],
) -> None:
    sim = slow_sim(300)
    env = cli_env(sim, db_url)
    proc = start_sync(env, "total", "--json")
    try:
        run = running_run(reader, proc)
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, (proc.returncode, err)
    assert took < 5, took
    assert f"passweb-tui: run {run.run_id} cancelled by {sig.name}\n" in err, err
    assert "Traceback" not in err
    result = json.loads(out)
    assert (result["run_id"], result["status"]) == (run.run_id, "cancelled")
    assert_cancelled_and_free(reader, run.run_id, sim, env)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_cancel_does_not_wait_for_a_read_the_erp_is_slow_over(
    db_url: str, reader: Engine, slow_sim: Callable[[int], SimProcess]
) -> None:
    """Each request answers after a minute (the ERP may take five): the cancel cuts
    short the read on the wire, and the run ends cancelled within moments, exit 1,
    with no word of waiting for the ERP."""
    sim = slow_sim(60_000)
    env = cli_env(sim, db_url)
    proc = start_sync(env, "total")
    try:
        run = running_run(reader, proc)
        time.sleep(0.5)  # requests of the run are on the wire
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        took = time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, (proc.returncode, err)
    assert took < 5, (took, err)
    assert "waits for the ERP" not in err, err
    assert f"passweb-tui: run {run.run_id} cancelled by SIGTERM\n" in err, err
    assert_cancelled_and_free(reader, run.run_id, sim, env)


@pytest.mark.slow  # waits out 8-second answers
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_cancel_that_waits_on_the_erp_says_why(
    db_url: str, reader: Engine, small_sim: SimProcess, tmp_path: Path
) -> None:
    """A web order on its way to an ERP that answers each request after 8 s: the cancel
    waits for the answers of the push (what is sent next hangs on them, and whether
    the order reached the ERP must be known), and after a few seconds the command says
    so, and how to stop at once; then the run ends cancelled, exit 1."""
    env = cli_env(small_sim, db_url)
    proc = start_pushing(env, small_sim, tmp_path, 8000)
    try:
        run = running_run(reader, proc)
        time.sleep(0.5)  # the push's requests are on the wire
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=90)
    finally:
        small_sim.admin("DELETE", "faults")
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, (proc.returncode, err)
    assert f"passweb-tui: run {run.run_id} waits for the ERP to answer a request" in err, err
    assert "SIGTERM or ctrl+c again stops at once" in err, err
    assert f"passweb-tui: run {run.run_id} cancelled by SIGTERM\n" in err, err
    assert reader.run_detail(run.run_id or 0).run.status == "cancelled"


@pytest.mark.parametrize(
    ("second", "status"),
    [(signal.SIGTERM, -signal.SIGTERM), pytest.param(signal.SIGHUP, 1, marks=pytest.mark.slow)],
    ids=signal_id,
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_second_signal_while_cancelling(
    second: signal.Signals,
    status: int,
    db_url: str,
    reader: Engine,
    slow_sim: Callable[[int], SimProcess],
    tmp_path: Path,
) -> None:
    """A push whose requests the ERP answers after 3 s each, so the cancel takes a
    while: a second SIGTERM (over a second after the first) ends the process at once
    (the run is left to its lease, as after a kill); a SIGHUP after the SIGTERM
    (systemd's SendSIGHUP=, a terminal hanging up again) lets the cancel finish."""
    sim = slow_sim(0)
    env = cli_env(sim, db_url)
    proc = start_pushing(env, sim, tmp_path, 3000)
    try:
        run = running_run(reader, proc)
        time.sleep(0.5)  # requests of the run are on the wire
        proc.send_signal(signal.SIGTERM)
        first = time.monotonic()
        time.sleep(0.5)  # the cancel has begun and waits for the ERP's answers
        assert proc.poll() is None
        time.sleep(max(0.0, first + 1.2 - time.monotonic()))  # not the same request
        assert proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(second)
        _out, err = proc.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, (proc.returncode, err)
    assert "Traceback" not in err
    assert f"passweb-tui: SIGTERM: cancelling run {run.run_id}..." in err, err
    if second == signal.SIGTERM:
        assert took < 1.5, took
        assert "SIGTERM again: stopping at once" in err
    else:
        assert f"run {run.run_id} cancelled by SIGTERM" in err, err
        assert reader.run_detail(run.run_id or 0).run.status == "cancelled"
        assert reader.lease() is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_timeout_signalling_the_command_and_its_group_cancels_cleanly(
    db_url: str, reader: Engine, slow_sim: Callable[[int], SimProcess]
) -> None:
    """GNU `timeout` sends its SIGTERM to the command and at once to the command's
    process group, the command included: one request to stop, so the run is cancelled
    cleanly (exit 1, recorded cancelled, the lease freed), not ended at once."""
    sim = slow_sim(300)
    env = cli_env(sim, db_url)
    proc = start_sync(env, "total", start_new_session=True)
    try:
        run = running_run(reader, proc)
        proc.send_signal(signal.SIGTERM)
        os.killpg(proc.pid, signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, (proc.returncode, err)
    assert "again" not in err and "Traceback" not in err, err
    assert f"passweb-tui: run {run.run_id} cancelled by SIGTERM\n" in err, err
    assert_cancelled_and_free(reader, run.run_id, sim, env)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_sync_started_under_nohup_ignores_a_hangup(
    db_url: str, reader: Engine, slow_sim: Callable[[int], SimProcess]
) -> None:
    sim = slow_sim(100)
    env = cli_env(sim, db_url)
    proc = start_sync(
        env, "total", "--json", preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)
    )
    try:
        run = running_run(reader, proc)
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert json.loads(out)["status"] == "ok"
    assert reader.run_detail(run.run_id or 0).run.status == "ok"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_terminal_that_goes_away_cancels_the_run(
    db_url: str, reader: Engine, slow_sim: Callable[[int], SimProcess]
) -> None:
    """The sync runs on a terminal of its own (progress bar and report on it) that then
    goes away, as when an SSH session drops: the kernel hangs it up, writing to it fails,
    and still the run is recorded cancelled and the process ends with status 1."""
    sim = slow_sim(300)
    env = cli_env(sim, db_url)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", ON_ITS_TERMINAL, "sync", "total"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    try:

        def drain() -> None:
            while select.select([master], [], [], 0)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    return

        def started() -> RunResult | None:
            drain()
            assert proc.poll() is None
            return next((r for r in reader.runs(5) if r.status == "running"), None)

        run = wait_for("the run to be recorded running", started, timeout=30)
        time.sleep(0.3)
        drain()
    finally:
        os.close(master)  # the terminal goes away
    try:
        assert proc.wait(timeout=20) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_cancelled_and_free(reader, run.run_id, sim, env)


def _forkservers_below(pid: int) -> list[int]:
    """Processes below `pid` that are multiprocessing fork servers (the row builder's)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = []
        for task in Path(f"/proc/{parent}/task").glob("*"):  # a thread's children each
            try:
                children += (task / "children").read_text().split()
            except OSError:
                continue
        for child in map(int, children):
            try:
                if b"multiprocessing.forkserver" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(child)
            except OSError:
                continue
            todo.append(child)
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_ctrl_c_while_the_row_builder_starts_prints_no_traceback(tmp_path: Path) -> None:
    """Ctrl+C at a terminal goes to the whole foreground process group: the row
    builder's processes too, which a first TOTAL starts and which spend a while loading
    modules. The sync cancels its run and says so in its lines; the helpers print
    nothing (they printed a KeyboardInterrupt traceback on the operator's terminal)."""
    sim = start_sim("--articles", "20000", "--customers", "50", "--orders", "5")
    try:
        # a TOTAL that runs for a while after the helpers start (20 pages, 0.3 s each)
        sim.admin("PUT", "faults", json={"latency_ms": 300})
        env = cli_env(sim, f"sqlite:///{tmp_path / 'store.db'}")
        proc = start_sync(env, "total", start_new_session=True)  # its own process group
        try:
            wait_for(
                "the row builder's server to start",
                lambda: _forkservers_below(proc.pid) or None,
                timeout=60,
            )
            # into the helpers' loading of their modules (over a second here), past
            # the start of the interpreter (see the note in helper_start.py)
            time.sleep(0.6)
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on ctrl+c
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert proc.returncode == 1, (proc.returncode, err)
        assert "cancelled by SIGINT" in err, err
    finally:
        sim.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=signal_id)
def test_a_signal_while_the_store_opens_still_prints_one_object(
    small_sim: SimProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals
) -> None:
    """A signal in the first moments, while the store opens and before the run is
    recorded, gives the launch up: `--json` prints its one object (status `cancelled`,
    no run id, the signal as the reason), stderr says so, the exit status is 1 and no
    run is left behind."""
    opened = Engine.open

    def open_then_signal(settings: EngineSettings) -> Engine:
        engine = opened(settings)
        os.kill(os.getpid(), sig)  # as if it came while the store was opening
        return engine

    monkeypatch.setattr(Engine, "open", open_then_signal)
    db = f"sqlite:///{tmp_path / 'store.db'}"
    done = cli_here("sync", "total", "--json", env=cli_env(small_sim, db))
    assert done.returncode == 1, done.stderr
    (line,) = done.stdout.splitlines()
    shown = json.loads(line)
    assert (shown["run_id"], shown["status"], shown["kind"]) == (None, "cancelled", "total")
    assert shown["error"] == f"cancelled by {sig.name} before the run started"
    assert f"cancelled by {sig.name} before the run started" in done.stderr
    store = opened(EngineSettings(db))
    try:
        assert store.runs(5) == []
        assert store.lease() is None
    finally:
        store.close()


LATE_SIGNAL = """
import os, signal, sys
from passweb_tui.commands import Context
from passweb_tui import cli
real = Context.close
def close(self):
    os.kill(os.getpid(), signal.SIGTERM)  # a `kill` a moment after the work was done
    real(self)
Context.close = close
sys.argv = ["passweb-tui", "--db", sys.argv[1], "runs", "--json"]
raise SystemExit(cli.main())
"""


def test_a_stop_signal_after_the_work_is_done_leaves_its_exit_status(tmp_path: Path) -> None:
    """A SIGTERM that arrives as the command ends, its work done and printed: the exit
    status is the work's (0), not a kill by the signal (-15)."""
    done = subprocess.run(
        [sys.executable, "-c", LATE_SIGNAL, f"sqlite:///{tmp_path / 'store.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert json.loads(done.stdout) == []


def test_a_signal_as_the_finished_runs_report_appears_leaves_its_exit_status(
    small_sim: SimProcess, db_url: str, tmp_path: Path
) -> None:
    """`kill` sent as soon as the report shows (a timer that gives up a moment too late):
    Python puts back every signal's default action as it shuts down, and the process was
    killed on its way out, 143 for a run recorded ok."""
    env = cli_env(small_sim, db_url)
    out = tmp_path / "out.txt"
    for _ in range(3):
        with out.open("w") as stdout:
            proc = subprocess.Popen(
                [sys.executable, "-m", "passweb_tui", "sync", "changed"],
                env=env,
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + 60
            while "run " not in out.read_text() and time.monotonic() < deadline:
                time.sleep(0.005)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (proc.returncode, err)


def test_a_guarded_block_of_the_command_hands_over_to_the_finishing_handlers() -> None:
    """In the process that is the command, the end of its StopSignals block (its work
    done) goes straight to the finishing handlers: putting back the default actions in
    between let a `kill` a moment too late end the process by the signal (-15), seen
    now and then as the report of a run recorded ok appeared. Another process (the
    tests' own) gets its handlers back."""
    code = (
        "import signal\n"
        "from passweb_tui import cli, commands\n"
        "commands.AFTER_WORK = cli._finishing\n"
        "with commands.StopSignals():\n"
        "    pass\n"
        "handler = signal.getsignal(signal.SIGTERM)\n"
        "print(handler is not signal.SIG_DFL and callable(handler))\n"
        "signal.raise_signal(signal.SIGTERM)\n"  # noted, not the end of the process
        "print('still here')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "True\nstill here\n"), done
    import signal as sig

    from passweb_tui.commands import StopSignals

    before = sig.getsignal(sig.SIGTERM)
    with StopSignals():
        pass
    assert sig.getsignal(sig.SIGTERM) is before
