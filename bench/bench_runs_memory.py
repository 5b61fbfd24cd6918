"""Memory of a process that runs sync after sync, as `serve` and the terminal UI do.

    .venv/bin/python bench/bench_runs_memory.py               # 1 TOTAL, then 1,000 CHANGED
    .venv/bin/python bench/bench_runs_memory.py --runs 3000 --db postgresql+psycopg://...

The simulator runs as a process of its own on loopback (300 articles, 50 customers);
this process opens one engine on a new store and runs a TOTAL, then CHANGED after
CHANGED (one in ten with a few records changed in the ERP first, and a dashboard read
as the UI makes them). Prints the resident memory (RSS) every 100 runs, and how much it
grew over the second half of the runs: a process that leaks a little every run grows
all along; one whose caches fill up (SQLite's page cache, SQLAlchemy's statement cache,
the connection pool) levels off.
"""

from __future__ import annotations

import argparse
import gc
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.engine.facade import Engine, EngineSettings
from passweb_tui.engine.sync import SyncOptions


def rss_kib() -> int:
    text = Path("/proc/self/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+)", text)
    return int(found.group(1)) if found else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="CHANGED runs after the TOTAL")
    parser.add_argument("--db", help="store URL (default: a new SQLite file)")
    parser.add_argument(
        "--no-changes", action="store_true", help="change nothing in the ERP between runs"
    )
    args = parser.parse_args()
    sim = subprocess.Popen(
        [sys.executable, "-m", "passweb_tui", "erp-sim", "--port", "0",
         "--articles", "300", "--customers", "50", "--orders", "10"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert sim.stdout is not None
        line = sim.stdout.readline()
        url = line.split()[1]
        root = url.removesuffix("/webapi")
        with tempfile.TemporaryDirectory() as folder:
            db = args.db or f"sqlite:///{Path(folder) / 'store.db'}"
            config = ErpConfig(
                base_url=url, user="demo", password="demo", azienda="DEM",
                anno=time.localtime().tm_year,
            )  # fmt: skip
            engine = Engine.open(EngineSettings(db, config, SyncOptions()))
            try:
                engine.run("total")
                start = time.perf_counter()
                marks: list[tuple[int, int]] = []
                for i in range(args.runs + 1):
                    if i % 10 == 0 and not args.no_changes:
                        httpx.post(
                            f"{root}/sim/mutate",
                            json={"resource": "articoli", "count": 3, "seed": i},
                            timeout=30,
                        ).raise_for_status()
                    if i % 10 == 0:
                        engine.dashboard()
                    if i % 100 == 0:
                        gc.collect()
                        marks.append((i, rss_kib()))
                        print(
                            f"after {i:5d} CHANGED: RSS {marks[-1][1] / 1024:6.1f} MiB", flush=True
                        )
                    if i < args.runs:
                        result = engine.run("changed")
                        assert result.status == "ok", result.error
                took = time.perf_counter() - start
            finally:
                engine.close()
        half = [m for m in marks if m[0] >= args.runs // 2]
        grew = (half[-1][1] - half[0][1]) / max(half[-1][0] - half[0][0], 1)
        print(f"{args.runs} CHANGED in {took:.0f} s ({took / args.runs * 1000:.0f} ms each)")
        print(
            f"RSS {marks[0][1] / 1024:.1f} MiB after the TOTAL, {marks[-1][1] / 1024:.1f} MiB"
            f" at the end; over the second half {grew:+.2f} KiB a run"
        )
    finally:
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    main()
