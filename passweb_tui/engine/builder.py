"""Rows of new records built in a second process, for a first full pass of a large table.

A first TOTAL writes every record, and building a record's row (decoding, checking,
canonicalising: about 15 µs of interpreter time a record here) takes as long as writing
it. In one process the two wait for each other on the interpreter lock; a worker
process builds page n+1 while the sync writes page n. The worker gets each page as the
ERP's reply bytes and gives back plain tuples, so neither side spends much on the
hand-over.

Nothing depends on the worker: any failure in it (a reply it cannot decode, a record
it cannot build, the process dying) makes that page go the in-process way, which gives
the exact error or reject.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import gc
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from passweb_tui.engine import helper_start
from passweb_tui.engine.batch import build_rows, nul_free, scan_page
from passweb_tui.engine.erp.client import decode_json
from passweb_tui.engine.helper_start import SERVER_ENV, quiet_stderr
from passweb_tui.engine.records import ENTITIES, FieldSpec, Known, Quick, SiteRules

log = logging.getLogger(__name__)

#: a new record's row as the sync writes it: key, derived values (in the order of
#: derived_columns), data JSON, digest, prices as (price list, price) pairs
Compact = tuple[str, tuple[Any, ...], str, str, tuple[tuple[int, Any], ...]]
#: (key, digest) of each record kept, keys off the site, rejects, records in the page,
#: the rows, rejects of the building
Built = tuple[
    list[tuple[str, str]],
    list[str],
    list[tuple[str | None, str]],
    int,
    list[Compact],
    list[tuple[str | None, str]],
]


@functools.cache
def derived_columns(entity: str) -> list[str]:
    """The columns of the entity's table that its derived values go to, in order."""
    spec = ENTITIES[entity]
    return [c for c in spec.derive({}, SiteRules()) if c in spec.table.c]


def build_page(
    entity: str,
    content: bytes,
    used: tuple[str, ...] | None,
    catalogue: Mapping[str, FieldSpec],
    rules: SiteRules,
    known: Known | None,
    salt: bytes,
) -> Built | None:
    """What a full pass into an empty table does with one page before writing it, for
    records none of which is stored yet; None when the page should go the in-process
    way instead. Runs in the worker (and in tests, in-process)."""
    try:
        data = decode_json(content, decimals=False)
        records = data.get("dati") if isinstance(data, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return None
        spec = ENTITIES[entity]
        scanned, rejects = scan_page(spec, records, salt, rules, content, stamps=False)
        by_key: dict[str, Quick] = {}
        removed: list[str] = []
        for q in scanned:
            if not q.on_site:
                removed.append(q.key)
                by_key.pop(q.key, None)
                continue
            by_key[q.key] = q
        items = list(by_key.values())
        rows, bad = build_rows(spec, items, used, catalogue, rules, known, nul_free(content))
        columns = derived_columns(entity)
        compact: list[Compact] = [
            (
                r.key,
                tuple(r.derived.get(c) for c in columns),
                r.data_json,
                r.digest,
                tuple(r.prices.items()),
            )
            for r in rows
        ]
        return [(q.key, q.digest) for q in items], removed, rejects, len(records), compact, bad
    except Exception:  # the in-process way gives the exact error
        return None


def _warm() -> bool:
    return True


def _init_worker() -> None:
    quiet_stderr()
    # the worker only makes pages of acyclic lists and dicts: the cycle collector, which
    # would scan them again and again, runs rarely (as in the sync, see sync.quiet_gc)
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
    # a worker holds both ends of its queues' pipes (and keeps its server alive), so it
    # would never see a killed sync go away: it watches the sync's process itself
    sync = multiprocessing.parent_process()

    def watch() -> None:
        while sync is not None:
            time.sleep(0.2)
            if not sync.is_alive():
                os._exit(0)

    threading.Thread(target=watch, name="row-builder-parent", daemon=True).start()


class RowBuilder:
    """One worker process, started in the background; `ready` once it answers."""

    def __init__(self) -> None:
        self._pool: cf.ProcessPoolExecutor | None = None
        self._warm: cf.Future[bool] | None = None
        self._failed = False
        self._closed = False
        self._lock = threading.Lock()
        self._started = threading.Event()  # set once the start attempt is over
        threading.Thread(target=self._start, name="row-builder-start", daemon=True).start()

    def _start(self) -> None:
        try:
            self._start_pool()
        finally:
            self._started.set()

    def _start_pool(self) -> None:
        try:
            methods = multiprocessing.get_all_start_methods()
            # forkserver: never a fork of this (threaded) process; the server loads this
            # module once and each worker starts from it
            os.environ[SERVER_ENV] = "1"  # inherited by the server (see helper_start.py)
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            if ctx.get_start_method() == "forkserver":
                # helper_start first: it quiets the server before the long part
                ctx.set_forkserver_preload([helper_start.__name__, __name__])
            pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_init_worker)
            warm = pool.submit(_warm)
            with self._lock:
                if not self._closed:
                    self._pool, self._warm = pool, warm
                    return
            pool.shutdown(wait=False, cancel_futures=True)  # closed while starting
        except Exception as exc:  # no worker: everything stays in-process
            log.info("row builder not started: %s", exc)
            self._failed = True

    def wait_ready(self, timeout: float) -> bool:
        """Wait (at most `timeout` seconds) until the worker answers; whether it does."""
        if not self._started.wait(timeout):
            return False
        with self._lock:
            warm = self._warm
        if warm is None:
            return False
        try:
            warm.result(timeout)
        except Exception:
            return False
        return self.ready

    @property
    def ready(self) -> bool:
        with self._lock:
            warm = self._warm
        if self._failed or warm is None or not warm.done():
            return False
        if warm.exception() is not None:
            self._failed = True
            return False
        return True

    def submit(self, *job: Any) -> cf.Future[Built | None] | None:
        """The page's job, or None when the worker cannot take it (then the caller
        builds the page itself)."""
        if not self.ready or self._pool is None:
            return None
        try:
            return self._pool.submit(build_page, *job)
        except Exception as exc:  # a broken pool: in-process from now on
            log.info("row builder stopped: %s", exc)
            self._failed = True
            return None

    def close(self, wait_s: float = 2.0) -> None:
        """Stop the worker: pages not started are dropped, and the one it may be
        building (tens of milliseconds) is waited for, at most `wait_s` seconds. The
        wait matters at exit: Python 3.11's exit hook for process pools writes to the
        pool's wake-up pipe while its manager thread may be closing that pipe, which
        printed "Exception ignored ... Bad file descriptor" after a run whose process
        ended at once (`sync | head`); a pool that is fully shut down is not touched."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is None:
            return
        stopping = threading.Thread(
            target=pool.shutdown,
            kwargs={"wait": True, "cancel_futures": True},
            name="row-builder-stop",
            daemon=True,
        )
        stopping.start()
        stopping.join(wait_s)
