"""The log file shared by every process of the tool: rotated by one at a time, private."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from passweb_tui.logs import SharedRotatingFileHandler, setup_logging

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes and locks are POSIX's")

_WRITER = textwrap.dedent(
    """
    import logging, sys, time
    from passweb_tui.logs import SharedRotatingFileHandler
    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    handler = SharedRotatingFileHandler(path, maxBytes=4000, backupCount=200, delay=True)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("w")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    for i in range(n):
        log.info("%s %05d %s", tag, i, "x" * 60)
        time.sleep(0.001)  # the three writers take turns, as busy processes do
    """
)


def _generations(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + "*"), key=lambda p: p.name)


def test_processes_writing_one_log_rotate_it_once_per_generation(tmp_path: Path) -> None:
    """Three processes write one log at once: no line is lost or written twice, and no
    generation grows past its size or is left near empty by a rotation done twice (the
    standard handler has every process rotate on its own count, and write on into the
    generation another one has renamed)."""
    path = tmp_path / "shared.log"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), tag, "600"])
        for tag in ("a", "b", "c")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    files = [p for p in _generations(path) if not p.name.endswith(".lock")]
    lines = [line for p in files for line in p.read_text().splitlines()]
    assert len(lines) == 1800
    assert len(set(lines)) == 1800
    line_size = len(lines[0]) + 1
    rotated = [p for p in files if p != path]
    assert len(rotated) >= 10
    for p in rotated:
        size = p.stat().st_size
        assert 4000 // 2 <= size < 4000 + line_size, (p.name, size)


def test_the_log_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "private.log"
    path.write_text("an older line\n")
    path.chmod(0o644)  # as an older version left it
    handler = SharedRotatingFileHandler(str(path), maxBytes=200, backupCount=2, delay=True)
    log = logging.getLogger("private-log-test")
    log.addHandler(handler)
    try:
        for i in range(20):
            log.warning("line %d of a customer's order", i)
    finally:
        log.removeHandler(handler)
        handler.close()
    files = [p for p in _generations(path) if not p.name.endswith(".lock")]
    assert len(files) == 3  # the log and its two backups
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name


def test_setup_logging_makes_a_private_log_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = setup_logging(to_stderr=False)
    try:
        assert path is not None
        logging.getLogger("passweb_tui.test").info("hello")
        assert "hello" in path.read_text()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        root = logging.getLogger("passweb_tui")
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
