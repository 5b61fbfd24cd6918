"""The README's console examples are what the program prints: each block's commands are
run as a new user would run them (the demo, in a data folder of its own) and their
output compared line by line, with only a run's duration left free."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_DURATION = re.compile(r"\bin \d+\.\d\ds\b")

pytestmark = pytest.mark.e2e


def console_blocks() -> list[list[tuple[str, list[str]]]]:
    """Each ```console block as (command, its output lines); a heredoc's lines go with
    its command."""
    blocks: list[list[tuple[str, list[str]]]] = []
    text = README.read_text()
    for body in re.findall(r"```console\n(.*?)```", text, re.S):
        steps: list[tuple[str, list[str]]] = []
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.startswith("$ "):
                steps[-1][1].append(line)
                continue
            command = line[2:].split("  #")[0].strip()
            if "<<'EOF'" in command:
                end = lines.index("EOF", i)
                command += "\n" + "\n".join(lines[i:end]) + "\nEOF"
                i = end + 1
            steps.append((command, []))
        blocks.append(steps)
    return blocks


def _run(command: str, cwd: Path, env: dict[str, str]) -> list[str]:
    if command.startswith("cat > "):
        name, _, rest = command[len("cat > ") :].partition(" <<'EOF'\n")
        (cwd / name).write_text(rest.rsplit("\nEOF", 1)[0] + "\n")
        return []
    argv = shlex.split(command)
    assert argv[0] == "passweb-tui", command
    done = subprocess.run(
        [sys.executable, "-m", "passweb_tui", *argv[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout.splitlines()


def test_the_readme_examples_print_what_they_show(tmp_path: Path) -> None:
    env = dict(os.environ)
    for var in [v for v in env if v.startswith("PASSWEB_TUI_")]:
        del env[var]
    env.update(
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        COLUMNS="80",
        LANG="C.UTF-8",
    )
    blocks = console_blocks()
    assert len(blocks) >= 2  # the first sync, and the web orders
    checked = 0
    for steps in blocks:  # in the README's order: the orders follow the syncs above
        for command, shown in steps:
            printed = _run(command, tmp_path, env)
            if not shown:
                continue  # a step the README shows without its output
            assert [_DURATION.sub("in Xs", s) for s in printed] == [
                _DURATION.sub("in Xs", s) for s in shown
            ], command
            checked += 1
    assert checked >= 4
