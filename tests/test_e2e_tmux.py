"""End to end: the real `passweb-tui --demo` in a tmux terminal of 80x24, a Variati
launched with keys, its outcome read from the captured screen, then ctrl+q."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

STARTUP_S = 90.0
SYNC_S = 120.0


class Terminal:
    """A tmux terminal on a private server socket, so no user's tmux is touched."""

    def __init__(self, command: str, width: int = 80, height: int = 24) -> None:
        self.socket = f"pwt-e2e-{uuid.uuid4().hex[:8]}"
        self.target = "ui"
        env = {k: v for k, v in os.environ.items() if k != "TMUX"}
        env.pop("NO_COLOR", None)  # the real thing, in colour; snapshots cover NO_COLOR
        env["TERM"] = "xterm-256color"
        self._tmux(
            "new-session", "-d", "-s", self.target, "-x", str(width), "-y", str(height),
            command, env=env,
        )  # fmt: skip

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=30,
        )
        return result.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.target)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self._tmux("send-keys", "-t", self.target, key)

    def wait_for(self, text: str, timeout: float) -> str:
        """Until `text` shows on the screen. A terminal has no event to wait on, so the
        screen is read again every 0.2 s until the deadline."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never showed; the screen was:\n{screen}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    command = (
        f"{shlex.quote(sys.executable)} -m passweb_tui --demo; echo passweb-tui-exit=$?; sleep 600"
    )
    term = Terminal(f"sh -c {shlex.quote(command)}")
    try:
        yield term
    finally:
        term.close()


def test_demo_runs_a_variati_launched_with_keys(terminal: Terminal) -> None:
    screen = terminal.wait_for("Last successful sync", STARTUP_S)
    assert "passweb-tui · Dashboard" in screen
    assert "never" in screen  # a fresh demo store, which says what to do first
    terminal.wait_for("Press s, then t, for a first Totale.", 30)
    terminal.keys("s")
    terminal.wait_for("Kind of sync", 30)
    terminal.keys("v")
    screen = terminal.wait_for("Records read", SYNC_S)
    # the first Variati of a store runs as a Totale and says so; the badge shows the outcome
    assert "Variati ran as Totale" in screen
    assert "Totale: ok" in screen.splitlines()[0]
    assert "rejected 0" in screen

    terminal.keys("d")
    screen = terminal.wait_for("Last runs", 30)
    assert "Totale" in screen and "ok" in screen
    terminal.keys("C-q")
    screen = terminal.wait_for("passweb-tui-exit=", 60)
    assert "passweb-tui-exit=0" in screen


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def launch_a_slow_totale(term: Terminal, screen: str) -> None:
    """From the dashboard: slow the demo ERP it names down, so that a Totale keeps
    going meanwhile, and launch one from the sync screen."""
    url = re.search(r"(http://127\.0\.0\.1:\d+)/webapi", screen)
    assert url, screen
    httpx.put(f"{url[1]}/sim/faults", json={"latency_ms": 300}, timeout=30).raise_for_status()
    term.keys("s")
    term.wait_for("Kind of sync", 30)
    term.keys("t")
    term.wait_for("⟳ Totale", 30)


def last_demo_run() -> dict[str, Any]:
    runs = subprocess.run(
        [sys.executable, "-m", "passweb_tui", "--demo", "runs", "--json", "--limit", "1"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(runs.stdout)[0]  # type: ignore[no-any-return]


@pytest.mark.slow  # in CI: test_ui_flows's hangup, the same path without a terminal
def test_hangup_during_a_sync_records_it_cancelled(tmp_path: Path) -> None:
    """Closing the terminal (tmux goes away: SIGHUP) while a Totale runs: the app
    cancels the run, which is recorded as cancelled, and the process ends."""
    pid_file = tmp_path / "pid"
    command = f"echo $$ > {shlex.quote(str(pid_file))}; exec {shlex.quote(sys.executable)} -m passweb_tui --demo"
    term = Terminal(f"sh -c {shlex.quote(command)}")
    try:
        screen = term.wait_for("Last successful sync", STARTUP_S)
        pid = int(pid_file.read_text())
        launch_a_slow_totale(term, screen)
    finally:
        term.close()
    deadline = time.monotonic() + 90
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)  # a process we did not start has no handle to wait on
    assert not pid_alive(pid), "passweb-tui kept running after its terminal went away"
    last = last_demo_run()
    assert (last["kind"], last["status"]) == ("total", "cancelled")
    assert last["error"] == "cancelled by SIGHUP (the terminal hung up)"


def test_sigterm_during_a_sync_records_it_cancelled_and_gives_the_terminal_back(
    tmp_path: Path,
) -> None:
    """`kill` (SIGTERM) of the UI while a Totale runs, its terminal still open: the run
    is recorded cancelled, and the UI leaves as by its own quit, the terminal back to
    the shell that started it."""
    pid_file = tmp_path / "pid"
    command = (
        f"echo $$ > {shlex.quote(str(pid_file))}; {shlex.quote(sys.executable)} -m passweb_tui"
        " --demo; echo UI-EXITED-$?; sleep 120"
    )
    term = Terminal(f"sh -c {shlex.quote(command)}")
    try:
        screen = term.wait_for("Last successful sync", STARTUP_S)
        shell = int(pid_file.read_text())
        children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
        (ui,) = [int(c) for c in children]
        launch_a_slow_totale(term, screen)
        os.kill(ui, signal.SIGTERM)
        after = term.wait_for("UI-EXITED-1", 90)
        # the shell's own screen again: nothing of the UI's left on it
        assert "Totale" not in after and "Last successful sync" not in after, after
    finally:
        term.close()
    last = last_demo_run()
    assert (last["kind"], last["status"]) == ("total", "cancelled")
    assert last["error"] == "cancelled by SIGTERM", last  # not "by the operator"
