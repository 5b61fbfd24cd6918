"""What SQLite alone costs for the rows a first TOTAL writes, next to the bare paging.

Runs one first TOTAL (100,000 articles, 20,000 customers) against the simulator,
reads back the rows it stored (articles, their prices, the articles' change-log
entries), then writes them again into fresh stores a page of 1,000 articles at a
time, with the store's own pragmas and schema and nothing else going on: no HTTP,
no decoding, no row building. Each variant (run twice, in order and in reverse
order) prints wall and CPU time, split into
articles, prices, change log and commits; the bare paging of bench_sync.py is
printed beside them, measured in the same run.

    .venv/bin/python bench/bench_store_writes.py
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_sync as bs

AT = "2026-11-27 10:00:00.000000"
PAGE = 1000


def _fresh(folder: Path, name: str) -> sqlite3.Connection:
    from passweb_tui.engine.store import open_store

    path = folder / f"{name}.db"
    open_store(f"sqlite:///{path}").close()  # the real schema, by the migrations
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _bound_log(conn: sqlite3.Connection, keys: list[str]) -> None:
    conn.executemany(
        'INSERT INTO change_log (run_id, at, entity, "key", change, field, old, new)'
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(1, AT, "articles", k, "inserted", None, None, None) for k in keys],
    )


def _spread_log(conn: sqlite3.Connection, keys: list[str]) -> None:
    import orjson

    conn.execute(
        'INSERT INTO change_log (run_id, at, entity, "key", change)'
        " SELECT 1, ?, 'articles', value, 'inserted' FROM json_each(?) ORDER BY key",
        (AT, orjson.dumps(keys).decode()),
    )


def write_pages(
    conn: sqlite3.Connection,
    articles: list[tuple[object, ...]],
    prices: dict[str, list[tuple[object, ...]]],
    log: Callable[[sqlite3.Connection, list[str]], None],
    per_transaction: int = 1,
) -> dict[str, float]:
    marks = ", ".join("?" * len(articles[0]))
    took = dict.fromkeys(("articles", "prices", "change log", "commits"), 0.0)
    wall, cpu = time.perf_counter(), time.process_time()
    for n, i in enumerate(range(0, len(articles), PAGE)):
        rows = articles[i : i + PAGE]
        last = n % per_transaction == per_transaction - 1 or i + PAGE >= len(articles)
        if n % per_transaction == 0:
            conn.execute("BEGIN IMMEDIATE")
        t0 = time.perf_counter()
        conn.executemany(f"INSERT INTO articles VALUES ({marks})", rows)
        t1 = time.perf_counter()
        conn.executemany(
            "INSERT INTO article_prices VALUES (?, ?, ?)",
            [p for r in rows for p in prices.get(str(r[0]), ())],
        )
        t2 = time.perf_counter()
        log(conn, [str(r[0]) for r in rows])
        t3 = time.perf_counter()
        if last:
            conn.execute("COMMIT")
        t4 = time.perf_counter()
        for part, (a, b) in zip(took, ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True):
            took[part] += b - a
    took["wall"] = time.perf_counter() - wall
    took["cpu"] = time.process_time() - cpu
    return took


_NO_ROWID_PRICES = """
DROP TABLE article_prices;
CREATE TABLE article_prices (
    article_code VARCHAR(64) NOT NULL, price_list INTEGER NOT NULL,
    price NUMERIC(18, 4) NOT NULL, PRIMARY KEY (article_code, price_list)
) WITHOUT ROWID;
"""
#: name, how the change log is written, SQL run first on the fresh store, pages a transaction
VARIANTS: list[tuple[str, Callable[[sqlite3.Connection, list[str]], None], str, int]] = [
    ("change-log entries bound (the code before)", _bound_log, "", 1),
    ("change-log entries spread (the code now)", _spread_log, "", 1),
    ("spread, with a 64 MiB page cache", _spread_log, "PRAGMA cache_size = -65536;", 1),
    ("spread, with price rows WITHOUT ROWID", _spread_log, _NO_ROWID_PRICES, 1),
    ("spread, with ten pages a transaction", _spread_log, "", 10),
    ("spread, with WAL checkpoints every 10,000 pages", _spread_log,
     "PRAGMA wal_autocheckpoint = 10000;", 1),
]  # fmt: skip


def main() -> None:
    proc, sim = bs.start_sim(100_000, 20_000)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            engine = bs.open_engine(f"sqlite:///{folder / 'source.db'}", sim)
            try:
                engine.attribute_update()
                fields = bs.paged_fields(engine)
                bs.bare_paging(sim, fields)  # the simulator builds its records once
                paging = min(bs.bare_paging(sim, fields), bs.bare_paging(sim, fields))
                total, _ = bs.timed(engine, "total")
            finally:
                engine.close()
            source = sqlite3.connect(folder / "source.db")
            articles = source.execute("SELECT * FROM articles ORDER BY code").fetchall()
            prices: dict[str, list[tuple[object, ...]]] = {}
            for row in source.execute("SELECT * FROM article_prices ORDER BY 1, 2"):
                prices.setdefault(row[0], []).append(row)
            source.close()
            n_prices = sum(map(len, prices.values()))
            print(f"{len(articles):,} articles with {n_prices:,} prices, pages of {PAGE:,}")
            print(f"bare client paging (as bench_sync.py): {paging:5.2f} s")
            print(f"first TOTAL (everything, sim included): {total:5.2f} s")
            # twice, the second time in reverse order: a machine that warms up (or slows
            # down) over the run would otherwise look like a difference between variants
            for k, (name, log, setup, per_transaction) in enumerate(
                [*VARIANTS, *reversed(VARIANTS)]
            ):
                if k == len(VARIANTS):
                    print("again, in reverse order:")
                conn = _fresh(folder, f"v{k}")
                conn.executescript(setup)
                took = write_pages(conn, articles, prices, log, per_transaction)
                conn.close()
                parts = ", ".join(
                    f"{k} {v:.2f}" for k, v in took.items() if k not in ("wall", "cpu")
                )
                print(
                    f"{name:44s}: {took['wall']:5.2f} s wall, {took['cpu']:5.2f} s CPU"
                    f" ({parts}) = {took['wall'] / paging:.2f}x the paging"
                )
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
