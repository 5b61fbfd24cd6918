"""Sync benchmark: TOTAL and CHANGED against the simulator on loopback, with peak memory.

    .venv/bin/python bench/bench_sync.py                 # 100,000 articles + 20,000 customers
    .venv/bin/python bench/bench_sync.py --million       # also peak memory at 1,000,000 articles
    .venv/bin/python bench/bench_sync.py --db postgresql+psycopg://postgres@127.0.0.1:5432/bench

Prints TOTAL / bare paging (target <= 1.3) for the first TOTAL and for TOTALs over the
filled store (--again N more of those, default 2), no-op CHANGED, CHANGED-1% / TOTAL
(target <= 0.1), (CHANGED-1% - no-op CHANGED) / TOTAL (target <= 0.05) and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

READY = re.compile(r"serving (http\S+/webapi) user=(\S+) azienda=(\S+) anno=(\d+)")
PASSWORD = "bench-pw"


def start_sim(articles: int, customers: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    args = [
        sys.executable, "-m", "passweb_tui", "erp-sim", "--port", "0", "--password", PASSWORD,
        "--articles", str(articles), "--customers", str(customers), "--orders", "10",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = READY.search(line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
            return proc, {"url": m[1], "user": m[2], "azienda": m[3], "anno": int(m[4])}
    raise SystemExit("the simulator did not start")


def erp_config(sim: dict[str, Any]) -> Any:
    from passweb_tui.engine.erp.settings import ErpConfig

    return ErpConfig(sim["url"], sim["user"], PASSWORD, azienda=sim["azienda"], anno=sim["anno"])


def open_engine(db_url: str, sim: dict[str, Any]) -> Any:
    from passweb_tui.engine.facade import Engine, EngineSettings

    return Engine.open(EngineSettings(db_url, erp_config(sim)))


def bare_paging(sim: dict[str, Any], fields_by_resource: dict[str, list[str]]) -> float:
    """Page through what a TOTAL of articles and customers downloads, storing nothing."""
    from passweb_tui.engine.erp.client import MexalClient
    from passweb_tui.engine.sync import quiet_gc

    # paged as a sync pages: the same decoding, and the same collector settings
    with quiet_gc():
        started = time.perf_counter()
        with MexalClient(erp_config(sim)) as client:
            for res, fields in fields_by_resource.items():
                for _page in client.iter_pages(res, fields=fields, page_size=1000, decimals=False):
                    pass
        return time.perf_counter() - started


def timed(engine: Any, kind: str) -> tuple[float, Any]:
    started = time.perf_counter()
    result = engine.run(kind)
    took = time.perf_counter() - started
    if result.status not in ("ok", "ok_with_rejects"):
        raise SystemExit(f"{kind} run failed: {result.error}")
    return took, result


def fresh_db(base: str | None, folder: Path, name: str) -> str:
    if base is None:
        return f"sqlite:///{folder / (name + '.db')}"
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    db = f"bench_{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{db}"'))
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    return make_url(base).set(database=db).render_as_string(hide_password=False)


def drop_db(base: str | None, name: str) -> None:
    """The database fresh_db made on a server, dropped once its run is over (a SQLite
    file goes with its temporary folder)."""
    if base is None:
        return
    from sqlalchemy import create_engine, text

    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "bench_{name}"'))
    admin.dispose()


def _descendants(root: int, skip: int) -> list[int]:
    """Processes below `root` (from /proc), leaving out `skip` and what is below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child, parent in parents.items():
            if parent == pid and child != skip:
                out.append(child)
                todo.append(child)
    return out


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _named(name: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


class CpuWatch:
    """CPU seconds spent while the block runs, by party: this process, the processes it
    starts (the row builder's worker and its server), the simulator and, on a local
    PostgreSQL, the server's processes. Short-lived processes are read every 0.1 s, so
    their last tenth of a second may be missed."""

    def __init__(self, sim_pid: int, server: bool) -> None:
        self.sim_pid, self.server = sim_pid, server
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.party: dict[int, str] = {}
        self._stop = threading.Event()
        self._started = False

    def _read(self) -> None:
        me = os.getpid()
        pids = {me: "sync", self.sim_pid: "simulator"}
        pids.update((p, "helpers") for p in _descendants(me, self.sim_pid))
        if self.server:
            pids.update((p, "PostgreSQL server") for p in _named("postgres"))
        for pid, party in pids.items():
            cpu = _cpu_s(pid)
            if cpu is not None:
                # a process that appears later started inside the block
                self.first.setdefault(pid, cpu if not self._started else 0.0)
                self.last[pid] = cpu
                self.party[pid] = party
        self._started = True

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            self._read()

    def __enter__(self) -> CpuWatch:
        self._read()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._read()
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        by: dict[str, float] = {}
        for pid, cpu in self.last.items():
            by[self.party[pid]] = by.get(self.party[pid], 0.0) + cpu - self.first[pid]
        parts = [f"{party} {by[party]:.2f} s" for party in
                 ("sync", "helpers", "simulator", "PostgreSQL server") if party in by]  # fmt: skip
        return ", ".join(parts) + f"; {sum(by.values()):.2f} s in all"


def _pss_kib(pid: int) -> int:
    """Proportional set size: memory shared between processes (a worker forked from its
    server) counted once in all."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_child(articles: int, customers: int, db_base: str | None) -> None:
    """Run one TOTAL in this process and print, as JSON, its own peak RSS (MiB) and the
    most memory it and the processes it starts for the sync (the row builder's worker,
    its server and the resource tracker) held at once, as PSS watched from /proc every
    50 ms while the run goes on; the simulator is left out."""
    proc, sim = start_sim(articles, customers)
    helpers: set[int] = set()
    peak_together = [0]  # KiB: the most that this process and its helpers held at once
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            pids = _descendants(os.getpid(), proc.pid)
            helpers.update(pids)
            held = sum(_pss_kib(pid) for pid in [os.getpid(), *pids])
            peak_together[0] = max(peak_together[0], held)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            engine = open_engine(fresh_db(db_base, Path(tmp), f"mem{articles}"), sim)
            try:
                took, result = timed(engine, "total")
            finally:
                engine.close()
                drop_db(db_base, f"mem{articles}")
        stop.set()
        watcher.join()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"articles": articles, "total_s": took, "peak_rss_mib": peak,
                          "peak_all_mib": peak_together[0] / 1024, "helpers": len(helpers),
                          "fetched": result.entities["articles"]["fetched"]}))  # fmt: skip
    finally:
        proc.terminate()
        proc.wait()


def peak_memory(articles: int, customers: int, db_base: str | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--memory-child", str(articles), "--customers",
           str(customers)] + (["--db", db_base] if db_base else [])  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument(
        "--db", help="PostgreSQL server URL to bench on (default: SQLite in a temp dir)"
    )
    ap.add_argument("--million", action="store_true", help="also measure 1,000,000 articles")
    ap.add_argument(
        "--again",
        type=int,
        default=2,
        help="TOTALs over the filled store run again after the first (default 2): the first"
        " comes right after the big first TOTAL, while the database may still be busy with it",
    )
    ap.add_argument(
        "--article-fields",
        help="comma-separated article fields the 1%% change touches (default: the"
        " simulator's, descrizione,prz_listino,qta_carico); e.g. descrizione for a change"
        " that leaves the prices alone",
    )
    ap.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.customers, args.db)
        return

    proc, sim = start_sim(args.articles, args.customers)
    root = sim["url"][: -len("/webapi")]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            engine = open_engine(fresh_db(args.db, Path(tmp), "main"), sim)
            try:
                engine.attribute_update()  # what the first sync does first; not timed
                fields = paged_fields(engine)
                # the simulator builds its records on first reading: warm it, then take
                # the best of two bare pagings as the floor
                bare_paging(sim, fields)
                paging_s = bare_paging(sim, fields)
                server = any(host in (args.db or "") for host in ("127.0.0.1", "localhost"))
                with CpuWatch(proc.pid, server) as paging_cpu:
                    paging_s = min(paging_s, bare_paging(sim, fields))
                with CpuWatch(proc.pid, server) as total_cpu:
                    total_s, total = timed(engine, "total")
                total2_s, _ = timed(engine, "total")  # a TOTAL over an existing store
                again = [timed(engine, "total")[0] for _ in range(args.again)]
                noop_s, _ = timed(engine, "changed")
                for res, n in (
                    ("articoli", args.articles // 100),
                    ("clienti", args.customers // 100),
                ):
                    body: dict[str, Any] = {"resource": res, "count": n, "seed": 9}
                    if res == "articoli" and args.article_fields:
                        body["fields"] = args.article_fields.split(",")
                    httpx.post(f"{root}/sim/mutate", json=body, timeout=600).raise_for_status()
                changed_s, changed = timed(engine, "changed")
            finally:
                engine.close()
                drop_db(args.db, "main")
    finally:
        proc.terminate()
        proc.wait()

    n = total.entities["articles"]["fetched"] + total.entities["customers"]["fetched"]
    print(f"records: {args.articles:,} articles + {args.customers:,} customers "
          f"({n:,} fetched by TOTAL), store: {'PostgreSQL' if args.db else 'SQLite'}")  # fmt: skip
    print(f"bare client paging of the same data : {paging_s:7.2f} s")
    print(f"TOTAL into an empty store           : {total_s:7.2f} s  ratio {total_s / paging_s:.2f} (target <= 1.3)")  # fmt: skip
    print(f"  CPU of one bare paging: {paging_cpu.summary()}")
    print(f"  CPU of the first TOTAL: {total_cpu.summary()}")
    print(f"TOTAL over the filled store         : {total2_s:7.2f} s  ratio {total2_s / paging_s:.2f}")  # fmt: skip
    for t in again:
        print(f"  and again                         : {t:7.2f} s  ratio {t / paging_s:.2f}")
    print(f"no-op CHANGED                       : {noop_s:7.2f} s")
    print(f"CHANGED with 1% changed             : {changed_s:7.2f} s  / TOTAL {changed_s / total_s:.3f} (target <= 0.1)")  # fmt: skip
    print(f"(CHANGED-1% - no-op CHANGED) / TOTAL: {(changed_s - noop_s) / total_s:.3f} (target <= 0.05)")  # fmt: skip
    upd = changed.entities["articles"]["updated"] + changed.entities["customers"]["updated"]
    print(f"  (CHANGED-1% updated {upd:,} records)")
    sizes = [args.articles] + ([1_000_000] if args.million else [])
    peaks = [peak_memory(a, args.customers, args.db) for a in sizes]
    for p in peaks:
        print(f"peak memory, TOTAL of {p['articles']:>9,} articles: {p['peak_all_mib']:7.1f} MiB "
              f"with its {p['helpers']} helper processes (PSS; the sync process alone "
              f"{p['peak_rss_mib']:.1f} MiB RSS; TOTAL {p['total_s']:.1f} s)")  # fmt: skip
    if len(peaks) == 2:
        print(f"peak memory 1M / 100k: {peaks[1]['peak_all_mib'] / peaks[0]['peak_all_mib']:.2f} (target <= 1.3)")  # fmt: skip


def paged_fields(engine: Any) -> dict[str, list[str]]:
    """The fields a TOTAL asks for, by resource, for what it pages through besides the
    small lookup tables (after the attribute update)."""
    from passweb_tui.engine.sync import SyncRunner

    runner = SyncRunner(engine.store, engine.client(), engine.settings.options)
    return {
        res: runner._request_fields(_spec(name))
        for res, name in (
            ("articoli", "articles"),
            ("clienti", "customers"),
            ("particolarita", "conditions"),
        )
    }


def _spec(name: str) -> Any:
    from passweb_tui.engine.records import ENTITIES

    return ENTITIES[name]


if __name__ == "__main__":
    main()
