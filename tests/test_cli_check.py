"""`passweb-tui check` as a user runs it: a subprocess against a simulator on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from conftest import SimProcess


def run_check(
    url: str, user: str, azienda: str, anno: int | None, password: str
) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "passweb_tui", "--erp-url", url, "--erp-user", user]
    args += ["--azienda", azienda]
    if anno is not None:
        args += ["--anno", str(anno)]
    env = dict(os.environ, PASSWEB_TUI_ERP_PASSWORD=password)
    return subprocess.run(
        [*args, "check"], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], password: str) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("passweb-tui: ")
    assert password not in result.stdout + result.stderr
    return lines[0]


def test_check_reports_reachability_auth_company_and_version(shared_sim: SimProcess) -> None:
    s = shared_sim
    result = run_check(s.url, s.user, s.azienda, s.anno, s.password)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"ERP {s.url}: reachable" in out
    assert f"credentials: accepted for user {s.user}" in out
    assert f"company: {s.azienda} year {s.anno}: usable" in out
    version = [line for line in out.splitlines() if line.startswith("ERP version: ")]
    assert version and version[0] != "ERP version: unknown"
    assert s.password not in out


def test_wrong_password_exits_2_with_one_line(shared_sim: SimProcess) -> None:
    s = shared_sim
    result = run_check(s.url, s.user, s.azienda, s.anno, "not-the-password")
    assert result.returncode == 2
    line = assert_one_line_error(result, "not-the-password")
    assert "credentials" in line
    assert result.stdout == ""


def test_wrong_company_exits_2(shared_sim: SimProcess) -> None:
    s = shared_sim
    result = run_check(s.url, s.user, "NOPE", s.anno, s.password)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, s.password)


def test_unreachable_host_exits_1_with_one_line() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/webapi"
    result = run_check(url, "demo", "DEM", 2025, "pw-123456")
    assert result.returncode == 1
    line = assert_one_line_error(result, "pw-123456")
    assert "cannot reach the ERP" in line and url in line


def test_missing_settings_exit_2_naming_them() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "passweb_tui", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    line = assert_one_line_error(result, "\0")
    assert "ERP URL" in line
