"""Reading a large change log: `changes --json` exported whole, at two sizes of log.

    .venv/bin/python bench/bench_changes.py                 # 100,000 and 1,000,000 entries
    .venv/bin/python bench/bench_changes.py --sizes 200000,2000000

A SQLite store gets that many change-log entries of one run (an UPDATE of a description
each, written straight into the table: what months of syncs leave), then `passweb-tui
changes --json --limit N` runs as a process of its own, its output to a file. Prints
the wall time (the command's start included), the entries a second, the size of the
output and the process's peak RSS, and the peak at the larger size over the smaller
(flat memory: the export reads and writes the log a batch at a time).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

COMMAND = [sys.executable, "-m", "passweb_tui"]


def fill(db: Path, entries: int) -> None:
    """A store whose change log holds `entries` entries."""
    subprocess.run([*COMMAND, "--db", f"sqlite:///{db}", "runs"], check=True, capture_output=True)
    with sqlite3.connect(db) as conn:
        rows = (
            (1, "2026-01-01 00:00:00", "articles", f"ART{i:07d}", "updated", "descrizione",
             f"Sedia rossa modello {i}", f"Sedia blu modello {i}")
            for i in range(entries)
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO change_log (run_id, at, entity, key, change, field, old, new)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def export(db: Path, entries: int, out: Path) -> dict[str, float]:
    """`changes --json` of the whole log into `out`: time, peak RSS (MiB), output size."""
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "with open(sys.argv[1], 'wb') as out:\n"
        "    subprocess.run(sys.argv[2:], stdout=out, check=True)\n"
        "took = time.perf_counter() - t\n"
        "print(took, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    args = [*COMMAND, "--db", f"sqlite:///{db}", "changes", "--json", "--limit", str(entries)]
    # a process of its own per measure: RUSAGE_CHILDREN then holds this export alone
    done = subprocess.run(
        [sys.executable, "-c", code, str(out), *args], check=True, capture_output=True, text=True
    )
    took, peak_kib = done.stdout.split()
    return {"seconds": float(took), "peak_mib": int(peak_kib) / 1024, "bytes": out.stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated log sizes")
    args = ap.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            db = Path(tmp) / f"log{n}.db"
            fill(db, n)
            result = export(db, n, Path(tmp) / f"log{n}.json")
            peaks.append(result["peak_mib"])
            print(
                f"changes --json of {n:>9,} entries: {result['seconds']:6.2f} s"
                f" ({n / result['seconds']:>9,.0f} entries/s), {result['bytes'] / 2**20:7.1f} MiB"
                f" written, peak RSS {result['peak_mib']:6.1f} MiB"
            )
            os.remove(db)
    if len(peaks) > 1:
        print(f"peak RSS at {sizes[-1]:,} / at {sizes[0]:,}: {peaks[-1] / peaks[0]:.2f}")


if __name__ == "__main__":
    main()
