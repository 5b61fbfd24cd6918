"""The command line's promises: help, one-line errors and the exit codes of CONTRACTS.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passweb_tui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for word in ("erp-sim", "check", "--demo", "--db", "--erp-url", "--site-no"):
        assert word in result.stdout


def test_building_the_command_line_loads_neither_the_engine_nor_the_simulator() -> None:
    # every command (the simulator's own start included) parses its arguments first:
    # that must not pay for the store's and the ERP client's libraries
    probe = (
        "import sys; from passweb_tui.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('sqlalchemy', 'sqlmodel', 'httpx', 'textual', 'uvicorn')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_fields_help_names_every_entity_with_fields() -> None:
    from passweb_tui.commands.fields import ENTITY_NAMES
    from passweb_tui.engine.records import MAIN_ENTITIES

    assert ENTITY_NAMES == MAIN_ENTITIES
    assert ", ".join(MAIN_ENTITIES) in " ".join(run_cli("fields", "--help").stdout.split())


def test_missing_settings_exit_2_with_one_line() -> None:
    result = run_cli("check")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "missing setting" in lines[0] and "ERP URL" in lines[0]
    assert "(no config file at " in lines[0]  # where the file was looked for


def test_broken_config_file_exit_2_names_the_file(isolated_home: Path) -> None:
    cfg = isolated_home / "broken.toml"
    cfg.write_text("[erp]\nurl = \n", encoding="utf-8")
    result = run_cli("check", env={"PASSWEB_TUI_CONFIG": str(cfg)})
    assert result.returncode == 2
    assert "broken.toml" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_out_of_range_setting_exit_2_names_where_it_was_given(isolated_home: Path) -> None:
    cfg = isolated_home / "shop.toml"
    cfg.write_text('[sync]\ncategory_mode = "terziaria"\n', encoding="utf-8")
    result = run_cli("check", env={"PASSWEB_TUI_CONFIG": str(cfg)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{cfg}: [sync] category_mode: must be primaria or secondaria" in lines[0]
    result = run_cli("check", env={"PASSWEB_TUI_SITE_NO": "12"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "environment PASSWEB_TUI_SITE_NO: site number must be 1-9, got 12" in lines[0]


def test_bad_flag_is_a_usage_error() -> None:
    result = run_cli("--anno", "soon", "check")
    assert result.returncode == 2
    assert "--anno" in result.stderr


def test_the_demos_first_sync_prints_only_its_report(isolated_home: Path) -> None:
    """The demo's first sync is short: it ends while its row builder's worker is still
    starting, and nothing of that worker (which then finds its queues gone) may reach
    the terminal."""
    result = run_cli("--demo", "sync", "changed")
    assert result.returncode == 0, result.stderr
    assert "runs as a TOTAL" in result.stdout
    assert result.stderr == ""


def test_demo_processes_on_one_folder_share_one_demo_erp(tmp_path: Path) -> None:
    """A second --demo process (the CLI beside the UI, a second terminal) uses the demo
    ERP the first one serves: they agree on what was pushed to it. Once it is gone, the
    next one starts its own."""

    from passweb_tui.demo import RUNNING, start_demo_erp

    probe = (
        "import sys; from pathlib import Path; from passweb_tui.demo import start_demo_erp;"
        "e = start_demo_erp(Path(sys.argv[1]), articles=50, customers=10);"
        "print(e.url, e.handle is None); e.stop()"
    )
    first = start_demo_erp(tmp_path, articles=50, customers=10)
    try:
        out = subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.stdout.split() == [first.url, "True"], out.stderr
    finally:
        first.stop()
    assert not (tmp_path / RUNNING).exists()
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert out.stdout.split()[1:] == ["False"], out.stderr  # its own demo ERP now
