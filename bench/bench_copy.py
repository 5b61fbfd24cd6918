"""`store copy` benchmark: how long a backup, a move to PostgreSQL and a restore take, and
the most memory the command holds, for two store sizes (memory should not grow with
the store: rows go a chunk at a time).

    .venv/bin/python bench/bench_copy.py                       # SQLite to SQLite only
    .venv/bin/python bench/bench_copy.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres

For each size (10,000 and 100,000 articles, a fifth as many customers) one TOTAL fills a
SQLite store from the simulator, then `passweb-tui store copy` runs as its own process:
SQLite to a new SQLite file, and with --pg to an empty PostgreSQL database and from there
back to a new SQLite file. Each line gives the rows copied, the wall time (the command's
start included), the rows a second and the command's own peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import bench_sync as bs

#: the command's own entry point, then its own peak RSS (KiB) as the last line of stderr
_MEASURED = (
    "import resource, sys\n"
    "from passweb_tui.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def copy(source: str, target: str) -> tuple[dict[str, Any], float, int]:
    """One `store copy` in a process of its own: its JSON, wall time and peak RSS (KiB)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, "--db", source, "store", "copy", target, "--json"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PASSWEB_TUI_")},
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"store copy failed: {done.stderr.strip()}")
    peak = int(done.stderr.strip().splitlines()[-1])
    return json.loads(done.stdout), took, peak


def line(what: str, result: dict[str, Any], took: float, peak_kib: int) -> str:
    rows = result["rows"]
    return (
        f"  {what:<26} {rows:>9,} rows  {took:6.2f} s  {rows / took:>9,.0f} rows/s"
        f"  peak RSS {peak_kib / 1024:6.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL server's URL (an admin db)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for articles in (10_000, 100_000):
            proc, sim = bs.start_sim(articles, articles // 5)
            try:
                source = f"sqlite:///{folder / f'source-{articles}.db'}"
                engine = bs.open_engine(source, sim)
                try:
                    bs.timed(engine, "total")
                finally:
                    engine.close()
            finally:
                proc.terminate()
                proc.wait()
            print(f"store of {articles:,} articles and {articles // 5:,} customers (one TOTAL):")
            result, took, peak = copy(source, str(folder / f"backup-{articles}.db"))
            print(line("SQLite to SQLite", result, took, peak))
            if args.pg:
                target = bs.fresh_db(args.pg, folder, f"copy_{articles}")
                try:
                    result, took, peak = copy(source, target)
                    print(line("SQLite to PostgreSQL", result, took, peak))
                    result, took, peak = copy(target, str(folder / f"back-{articles}.db"))
                    print(line("PostgreSQL to SQLite", result, took, peak))
                finally:
                    bs.drop_db(args.pg, f"copy_{articles}")


if __name__ == "__main__":
    main()
