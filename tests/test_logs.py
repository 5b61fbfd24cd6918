"""The log file shared by every process of the tool: rotated by one at a time, private."""

from __future__ import annotations

import logging
import os
import re
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


def test_a_log_that_cannot_be_written_is_said_once_not_with_a_traceback_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder where the log file should be (or a full disk, or a file of another
    user's): one line on stderr, whatever the number of lines lost; said again only
    after lines went in meanwhile."""
    path = tmp_path / "tool.log"
    path.mkdir()
    handler = SharedRotatingFileHandler(path, maxBytes=10_000, backupCount=2, delay=True)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("passweb_tui.test_unwritable")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        for i in range(20):
            log.info("line %d", i)
        err = capsys.readouterr().err
        assert "Traceback" not in err and "Logging error" not in err, err
        lines = err.splitlines()
        assert len(lines) == 1, lines
        assert f"the log file {path} cannot be written (Is a directory)" in lines[0]

        path.rmdir()  # mended: lines go in again
        log.info("back")
        assert path.read_text().splitlines() == ["back"]
        assert capsys.readouterr().err == ""
        handler.close()
        path.unlink()
        path.mkdir()  # and broken again: said again
        log.info("lost again")
        assert "cannot be written" in capsys.readouterr().err
    finally:
        log.removeHandler(handler)
        handler.close()


def test_doctor_fails_the_log_file_on_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log file that opens on a full disk takes no line: doctor says so, not that the
    file is writable."""
    from types import SimpleNamespace

    from passweb_tui.commands.doctor import check_log_file

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    status, what, detail = check_log_file(lambda _p: SimpleNamespace(free=4096))
    assert (status, what) == ("FAIL", "log file") and "disk is full (4 KiB free)" in detail
    status, _what, detail = check_log_file(lambda _p: SimpleNamespace(free=10 * 1024**3))
    assert status == "OK" and detail.endswith("writable")


#: what a terminal would obey: C0 controls but tab and line feed, DEL, C1 (in UTF-8)
_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


def test_the_log_file_shows_control_characters_and_keeps_one_record_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Words from outside (an ERP's error, a mail server's reply) with escape sequences,
    a C1 CSI and line breaks (a carriage return among them): the file holds none of them raw, as
    stderr does not; the message stays on its line, and a traceback below it keeps its
    lines, its exception's escapes made visible too."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = setup_logging(to_stderr=False)
    log = logging.getLogger("passweb_tui.test")
    try:
        assert path is not None
        log.warning("refused: %s", "535 \x1b]0;PWN\x07\x1b[2J \x9b31m\rfake\nINFO forged line")
        try:
            raise ValueError("bad \x1b[31mvalue\x1b[0m")
        except ValueError:
            log.exception("it failed")
        log.info("after")
    finally:
        root = logging.getLogger("passweb_tui")
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
    data = path.read_bytes()
    assert _RAW_CONTROL.search(data) is None, data
    lines = data.decode("utf-8").splitlines()
    assert lines[0].endswith("refused: 535 ␛]0;PWN␇␛[2J \ufffd31m ↵ fake ↵ INFO forged line")
    assert lines[1].endswith("ERROR passweb_tui.test: it failed")
    assert lines[2] == "Traceback (most recent call last):"
    assert "ValueError: bad ␛[31mvalue␛[0m" in lines
    assert lines[-1].endswith("INFO passweb_tui.test: after")


def test_a_file_handler_with_any_formatter_writes_no_control_character_raw(
    tmp_path: Path,
) -> None:
    """The file handler itself makes each record safe: a formatter set on it later (or
    in another process of the tool) cannot let a control character through."""
    path = tmp_path / "any.log"
    handler = SharedRotatingFileHandler(str(path), maxBytes=10_000, backupCount=1, delay=True)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    log = logging.getLogger("passweb_tui.test_any_formatter\x1b[2J")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("\x1b]0;title\x07\x9b2J\x7f")
    finally:
        log.removeHandler(handler)
        handler.close()
    data = path.read_bytes()
    assert _RAW_CONTROL.search(data) is None, data
    assert data.decode("utf-8") == "passweb_tui.test_any_formatter␛[2J ␛]0;title␇\ufffd2J␡\n"


def test_the_log_files_times_say_their_offset_from_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands run with their own TZ beside the service wrote 22:17 among its 21:17
    lines in one file, and the autumn hour repeats: each time carries its offset."""
    import logging
    import time

    from passweb_tui.logs import _FORMAT, LineFormatter

    record = logging.LogRecord("passweb_tui.x", logging.INFO, "f", 1, "hello", None, None)
    record.created, record.msecs = 1_792_888_200.25, 250.0  # 2026-10-25 00:30:00.250 UTC
    for zone, shown in (("UTC", "2026-10-25 00:30:00,250 +0000"),
                        ("Europe/Rome", "2026-10-25 02:30:00,250 +0200")):  # fmt: skip
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        assert LineFormatter(_FORMAT).format(record) == f"{shown} INFO passweb_tui.x: hello"
    monkeypatch.delenv("TZ")
    time.tzset()
