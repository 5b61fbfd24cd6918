"""TOTAL, CHANGED and scoped PARTIAL pulls: ERP pages in, compared by digest, changes out.

Each page is applied in one short transaction (rows, prices, change log, run counts),
so a failure leaves every page fully applied or not at all; the next page is fetched
by a prefetch thread while the last one is written.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gc
import json
import logging
import queue
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    Numeric,
    String,
    Table,
    and_,
    cast,
    delete,
    distinct,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from passweb_tui.engine import fields as fields_mod
from passweb_tui.engine.batch import (
    build_rows,
    nul_free,
    scan_page,
    site_flag_of,
    text_digests,
)
from passweb_tui.engine.builder import Compact, RowBuilder, derived_columns
from passweb_tui.engine.erp.client import (
    READS_CUT_BY,
    RETRY_CANCEL,
    RETRY_LISTENER,
    cut_reads,
    in_context,
)
from passweb_tui.engine.erp.errors import ErpError
from passweb_tui.engine.lease import (
    Lease,
    LeaseLost,
    RunMark,
    dead_mark_beats,
    drop_dead_marks,
    live_marks,
    utcnow,
)
from passweb_tui.engine.models import (
    ArticlePrice,
    ChangeEntry,
    ExactNumeric,
    RetryKey,
    SyncReject,
    SyncRun,
)
from passweb_tui.engine.records import (
    ENTITIES,
    KEY_FIELD,
    LINK_TARGETS,
    LOOKUP_ENTITIES,
    MAIN_ENTITIES,
    EntitySpec,
    FieldSpec,
    Known,
    Quick,
    Row,
    SiteRules,
    as_text,
    digest_salt,
    dumps,
)
from passweb_tui.engine.state import (
    ATTRIBUTES_DONE,
    LAST_OK_RUN,
    REFILL_PREFIX,
    WATERMARK,
    clear_state_if,
    get_prefixed,
    get_state,
    refill_token,
    set_state,
)
from passweb_tui.engine.store import Store

log = logging.getLogger(__name__)

KINDS = ("total", "changed", "partial")
STATUSES = ("ok", "ok_with_rejects", "failed", "cancelled")
SCOPE_ENTITIES = (*MAIN_ENTITIES, *LOOKUP_ENTITIES, "resources", "orders")
PAGE_SIZE = 1000
MAX_CATEGORIES = 1000  # DOMAIN.md: keep the category tree under this
#: the lookup entities some record links to: a pass of one gathers its keys
_LINKED = frozenset(t for targets in LINK_TARGETS.values() for t in targets)
STAMP = "%Y%m%d %H%M%S"

_RUNS = SyncRun.__table__  # type: ignore[attr-defined]
_CHANGES = ChangeEntry.__table__  # type: ignore[attr-defined]
_REJECTS = SyncReject.__table__  # type: ignore[attr-defined]
_RETRY = RetryKey.__table__  # type: ignore[attr-defined]
_PRICES = ArticlePrice.__table__  # type: ignore[attr-defined]
#: the article field that article_prices is made from (one row per price list)
PRICES_FIELD = "prz_listino"

# Keys the ERP still has, written page by page for the anti-join deletions of a full
# pass. A temporary table: private to the run's connection, gone with it, and on
# SQLite written without taking the store's write lock.
_seen_md = MetaData()
_SEEN = Table(
    "pwt_seen",
    _seen_md,
    Column("entity", String(64), primary_key=True),
    Column("key", String(256), primary_key=True),
    prefixes=["TEMPORARY"],
)


#: the error recorded with a cancelled run (the UI shows it in its own language)
CANCELLED_BY_OPERATOR = "cancelled by the operator"


class CancelEvent(threading.Event):
    """A run's cancel flag, with what the run records as its error once cancelled."""

    reason: str = CANCELLED_BY_OPERATOR


class SyncError(Exception):
    """A run could not start: bad scope or kind; the message says what."""


class _Client(Protocol):
    def iter_pages(
        self,
        resource: str,
        *,
        filters: Sequence[Any] = (),
        fields: Sequence[str] | None = None,
        page_size: int = 1000,
        key_field: str = "codice",
        decimals: bool = True,
        lazy: bool = False,
    ) -> Iterator[Any]: ...

    def info(self, resource: str) -> Sequence[Any]: ...


@dataclass(frozen=True)
class Scope:
    entities: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]] | None:
        if not self.entities and not self.codes:
            return None
        return {"entities": list(self.entities), "codes": list(self.codes)}


@dataclass(frozen=True)
class ProgressEvent:
    run_id: int | None
    kind: str
    phase: str  # "attributes", "push", "lookups", "articles", ..., "deletions", "done"
    entity: str | None
    done: int
    total: int | None
    rate: float | None
    eta_s: float | None
    message: str | None
    finished: bool = False
    status: str | None = None


COUNTERS = ("fetched", "inserted", "updated", "unchanged", "deleted", "rejected")
#: the run record's own count, beside COUNTERS and not in the `--json` shape: records
#: read that are not for this site (transfer flag off, or not published to the site;
#: those the store had are also among the deleted)
OFF_SITE = "off_site"
#: the entity a run's reject of a web customer or order it could not send is recorded
#: under, by the push's word for it
PUSH_REJECTS = {"customer": "web_customers", "order": "web_orders"}
#: the most would-be changes a dry run keeps in its result (its counts count them all)
DRY_CHANGES_KEPT = 1000


#: the error of a run whose process ended before the run did (a kill, a crash)
INTERRUPTED = "interrupted: its process ended before the run finished"


def takes_lease(kind: str, dry_run: bool) -> bool:
    """Whether a run of this kind holds the TOTAL/CHANGED lease (the others mark
    themselves alive instead: see lease.RunMark)."""
    return kind in ("total", "changed") and not dry_run


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


def split_counts(
    stored: Mapping[str, Any],
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """A run's counts as it records them: the per-entity counts of the `--json` shape,
    and the records read that were not for the site, per entity (those with any)."""
    entities: dict[str, dict[str, int]] = {}
    off_site: dict[str, int] = {}
    for entity, counts in stored.items():
        if not isinstance(counts, dict):
            continue
        entities[entity] = {k: v for k, v in counts.items() if k != OFF_SITE}
        n = counts.get(OFF_SITE)
        if isinstance(n, int) and n > 0:
            off_site[entity] = n
    return entities, off_site


@dataclass
class RunResult:
    run_id: int | None
    kind: str
    requested_kind: str
    origin: str
    scope: dict[str, list[str]] | None
    status: str
    dry_run: bool
    started: datetime
    finished: datetime | None
    entities: dict[str, dict[str, int]] = field(default_factory=dict)
    orders: dict[str, int] = field(default_factory=lambda: {"sent": 0, "failed": 0, "updated": 0})
    customers: dict[str, int] = field(default_factory=lambda: {"sent": 0, "failed": 0})
    error: str | None = None
    message: str | None = None
    #: records read that were not for the site, per entity (see OFF_SITE); not in to_json
    off_site: dict[str, int] = field(default_factory=dict)
    #: a dry run's changes, as the change log would have had them: (entity, key,
    #: change, field, old, new), the first DRY_CHANGES_KEPT of them; not in to_json
    #: (the `sync --json` shape of CONTRACTS.md), and not kept once the run is over
    would_change: list[tuple[str, str, str, str | None, str | None, str | None]] = field(
        default_factory=list
    )

    @property
    def duration_s(self) -> float | None:
        if self.finished is None:
            return None
        return round((self.finished - self.started).total_seconds(), 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "requested_kind": self.requested_kind,
            "origin": self.origin,
            "scope": self.scope,
            "status": self.status,
            "dry_run": self.dry_run,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "duration_s": self.duration_s,
            "entities": self.entities,
            "orders": self.orders,
            "customers": self.customers,
            "error": self.error,
        }

    def totals(self) -> dict[str, int]:
        out = empty_counts()
        for counts in self.entities.values():
            for k in COUNTERS:
                out[k] += counts.get(k, 0)
        return out


@dataclass(frozen=True)
class SyncOptions:
    """What a run needs from the settings."""

    rules: SiteRules = field(default_factory=SiteRules)
    overlap_minutes: int = 65
    lease_seconds: float = 120.0
    change_log_days: int = 180
    update_descriptions: Mapping[str, bool] = field(default_factory=dict)
    page_size: int = PAGE_SIZE
    #: where article images and technical sheets are kept; None: resources are not synced
    resources_dir: Path | None = None
    #: "changed" (since the last correctly completed sync), "all" or "none"
    resources_mode: str = "changed"
    remove_missing_resources: bool = False
    #: where pushed customers and orders go in the ERP: customers are created under this
    #: ledger ("<ledger>.AUTO"), orders as documents of this type and number series
    customer_ledger: str = "501"
    order_document: str = "OC"
    order_series: int = 1
    #: how long a record whose sending process died waits before it is looked up in the
    #: ERP and sent again (see orders/push.py: SETTLE)
    crash_wait_seconds: float = 360.0
    #: a new web customer the ERP already has (the same VAT number, else tax code) is
    #: bound to that ERP customer instead of created again
    match_erp_customers: bool = True
    #: a site of the Ho.Re.Ca. family: only a TOTAL deletes there
    horeca: bool = False
    #: the site's time zone ([service] timezone; empty: this machine's): the day an
    #: order was placed, its ERP document's date, is counted there
    site_timezone: str = ""
    #: a full pass into an empty table builds its rows in a second process once it has
    #: read this many records (None: never)
    worker_after_records: int | None = 2000

    def push_settings(self) -> dict[str, Any]:
        """Where and how WebOrders.push sends this site's customers and orders: the same
        for a run, the service's checkout path and the demo's."""
        from passweb_tui.engine.orders.documents import DocumentSeries

        return {
            "ledger": self.customer_ledger,
            "series": DocumentSeries(self.order_document, self.order_series),
            "site_no": self.rules.site_no,
            "settle": timedelta(seconds=self.crash_wait_seconds),
            "match_existing": self.match_erp_customers,
            "zone": self.site_timezone,
        }


class Cancelled(Exception):
    pass


def validate_scope(kind: str, scope: Scope | None) -> None:
    if kind not in KINDS:
        raise SyncError(f"unknown sync kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if scope is None or (not scope.entities and not scope.codes):
        return
    if kind != "partial":
        raise SyncError("--entity and --code go with `sync partial` only")
    unknown = [e for e in scope.entities if e not in SCOPE_ENTITIES]
    if unknown:
        raise SyncError(
            f"unknown entity {', '.join(unknown)}; choose from: {', '.join(SCOPE_ENTITIES)}"
        )
    if scope.codes and len(scope.entities) != 1:
        raise SyncError("--code needs exactly one --entity")
    if any("\x00" in code for code in scope.codes):
        raise SyncError("--code: a code cannot hold a NUL character (0x00)")


def _stamp(value: datetime) -> str:
    return value.strftime(STAMP)


def _price_delta(before: Any, after: Any) -> tuple[set[int], list[int]] | None:
    """What changed between an article's stored and new price lists, both in their
    canonical form ({"1": "12.5"}): the lists whose value is new or different, and the
    lists gone. None when either is missing or not such a map: its prices are then
    written whole."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    try:
        old = {int(k): v for k, v in before.items()}
        new = {int(k): v for k, v in after.items()}
    except (TypeError, ValueError):
        return None
    return {n for n, v in new.items() if old.get(n) != v}, [n for n in old if n not in new]


class _Prefetch:
    """Fetches pages in a thread, at most `depth` ahead of the writer."""

    _END = object()

    def __init__(self, pages: Iterator[Any], cancel: threading.Event, depth: int = 2) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._cancel = cancel
        self._thread = threading.Thread(
            target=in_context(self._work), args=(pages,), name="sync-prefetch", daemon=True
        )
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, pages: Iterator[Any]) -> None:
        try:
            for page in pages:
                if self._cancel.is_set():
                    # not the end of the pages: the writer must not take the pass as done
                    self._put(Cancelled())
                    return
                if self._stop.is_set() or not self._put(page):
                    return
            self._put(self._END)
        except BaseException as exc:  # handed to the writer, which reports it
            self._put(exc)
        finally:
            close = getattr(pages, "close", None)
            if close:
                close()

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                try:
                    item = self._q.get(timeout=0.1)
                except queue.Empty:
                    if self._cancel.is_set():
                        raise Cancelled() from None
                    continue
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()
            self._thread.join(timeout=30)


#: the tables whose stored records are checked for links to what the ERP no longer has
#: at the end of a pass (see _stale_category_links, _stale_customer_links)
_STALE_CHECKED = ("articles", "customers")


class _Pass:
    """One entity pulled by one run: what to ask and how to store it."""

    def __init__(
        self,
        spec: EntitySpec,
        *,
        full: bool,
        deletions: bool,
        codes: tuple[str, ...] = (),
        since: str | None = None,
        removals: bool = True,
    ) -> None:
        self.spec = spec
        self.full = full
        self.deletions = deletions  # rows the pass did not meet are deleted at its end
        # records met with their transfer flag off are removed (else left as they are)
        self.removals = removals
        self.codes = codes
        self.since = since
        #: the keys it reads are noted (pwt_seen): for the deletions, and for the stale
        #: links' rejects to tell which records it read (see _stale_rejects)
        self.seen = deletions


class SyncRunner:
    """Runs one sync from start to its run record; one instance per run."""

    def __init__(
        self,
        store: Store,
        client: _Client,
        options: SyncOptions,
        *,
        on_event: Callable[[ProgressEvent], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.options = options
        self.on_event = on_event
        self.cancel = cancel or threading.Event()
        self.run_id: int | None = None
        self.kind = "changed"
        self.counts: dict[str, dict[str, int]] = {}
        self._counts_due = 0.0  # when the run record's counts are next written
        self._builder: RowBuilder | None = None  # the worker process, once a pass wants it
        self.erp_clock: datetime | None = None
        self._clock_said = False  # the clock found set back has been said in the message
        self._stmts: dict[str, Any] = {}
        self._catalogues: dict[str, tuple[tuple[str, ...] | None, dict[str, FieldSpec]]] = {}
        #: the keys of the lookup tables records link to (see records.LINK_TARGETS): read
        #: by this run's pass of the table, or from the store when it had none
        self._known: dict[str, set[str]] = {}
        self._retry: dict[str, set[str]] = {}
        self._messages: list[str] = []
        self._would_change: list[tuple[str, str, str, str | None, str | None, str | None]] = []
        #: a dry run's lookup records that the real run would delete or take off: the
        #: links to them are checked as the real run would find them
        self._dry_gone: dict[str, set[str]] = {}
        #: and the records it would insert or update: a lookup code it would insert is
        #: one the real run has; a record it would write was checked as it was built
        self._dry_put: dict[str, set[str]] = {}
        self._waiting_orders = 0  # web orders waiting to be sent when the push began
        self._lease: Lease | None = None
        #: a run without the lease marks itself alive instead (see lease.RunMark)
        self._mark: RunMark | None = None
        self._request: Any = None
        self.orders = {"sent": 0, "failed": 0, "updated": 0}
        self._resources_since: datetime | None = None  # saved by _finish, if the run ends well
        self.customers = {"sent": 0, "failed": 0}
        self._plan_inputs: Any = None

    # --- events -----------------------------------------------------------------------

    def _emit(
        self, phase: str, entity: str | None, done: int, total: int | None, **kw: Any
    ) -> None:
        if self.on_event is None:
            return
        started = kw.pop("started", None)
        rate = eta = None
        if started is not None and done:
            elapsed = max(time.monotonic() - started, 1e-6)
            rate = done / elapsed
            if total is not None and total >= done:
                eta = (total - done) / rate
        kw.setdefault("message", None)
        event = ProgressEvent(self.run_id, self.kind, phase, entity, done, total, rate, eta, **kw)
        try:
            self.on_event(event)
        except Exception:
            log.debug("progress listener failed", exc_info=True)

    # --- the run ----------------------------------------------------------------------

    def run(
        self,
        kind: str,
        *,
        scope: Scope | None = None,
        dry_run: bool = False,
        origin: str = "site",
    ) -> RunResult:
        """Run a sync to its end (prepare + execute)."""
        self.prepare(kind, scope=scope, dry_run=dry_run, origin=origin)
        return self.execute()

    def prepare(
        self,
        kind: str,
        *,
        scope: Scope | None = None,
        dry_run: bool = False,
        origin: str = "site",
    ) -> int:
        """Check the request, take the lease and record the run; returns the run id.

        Raises SyncError for a bad request and LeaseRefused when another TOTAL or
        CHANGED holds the lease (then nothing is recorded).
        """
        validate_scope(kind, scope)
        scope = scope if scope and (scope.entities or scope.codes) else None
        requested = kind
        with self.store.read() as conn:
            watermark = get_state(conn, WATERMARK)
            attrs_done = get_state(conn, ATTRIBUTES_DONE) is not None
            refill = get_prefixed(conn, REFILL_PREFIX)  # entity -> the request's token
            rules_before = get_state(conn, SITE_RULES)
        rules_now = _rules_text(self.options.rules)
        if kind == "changed" and rules_before is not None and rules_before != rules_now:
            # a setting that decides the site's rows changed since the last good run: the
            # tables it decides are pulled in full, as for a newly used field
            moved = _rules_entities(rules_before, rules_now)
            refill = {**{name: None for name in moved}, **refill}
            self._messages.append(
                f"site settings changed ({rules_before} -> {rules_now}): "
                f"{', '.join(moved)} pulled in full"
            )
        if kind == "changed" and watermark is None:
            kind = "total"
            self._messages.append("no correctly completed sync yet: this CHANGED runs as a TOTAL")
        kept = {}
        if not dry_run and rules_before is not None and rules_before != rules_now:
            # rows about to be written under other settings than the store's were made
            # under: until a TOTAL or CHANGED ends well under them, a refill of the tables
            # they decide is kept in the store. A run that fails (or a PARTIAL) and the
            # setting put back would otherwise leave the rows it wrote as they were made,
            # the settings the store records being the same as the new run's.
            # (a PARTIAL writes the rows of the entities it names only: none, when it
            # just sends what waits on the site)
            scoped = (set(scope.entities) if scope else set()) if kind == "partial" else None
            moved = _rules_entities(rules_before, rules_now)
            kept = {
                name: refill_token()
                for name in moved
                if refill.get(name) is None and (scoped is None or name in scoped)
            }
            refill = {**refill, **kept}
        self.kind = kind
        if takes_lease(kind, dry_run):
            self._lease = Lease(self.store, self.options.lease_seconds)
            self._lease.acquire()
        try:
            if self._lease is not None:
                self._close_abandoned_runs()
            started = utcnow()  # after them: a run closed here ended before this one began
            self.run_id = self._create_run(kind, requested, origin, scope, dry_run, started, kept)
            if self._lease is not None:
                self._lease.set_run(self.run_id)
                self._lease.start_heartbeat()
            else:
                assert self._mark is not None
                self._mark.start_heartbeat()
        except BaseException:
            self._let_go()
            raise
        self._request = (kind, requested, origin, scope, dry_run, started)
        self._plan_inputs = (watermark, attrs_done, refill)
        return self.run_id

    def _let_go(self) -> None:
        """Give back the lease, or take away the run's mark. A store that cannot be
        written now keeps them until they expire (or are seen gone with this process)."""
        for held in (self._lease, self._mark):
            if held is not None:
                try:
                    held.release()
                except Exception:
                    log.debug("giving back the run's lease or mark failed", exc_info=True)

    def _close_abandoned_runs(self) -> None:
        """With the lease in hand, any TOTAL/CHANGED still marked running lost its process,
        and so did any other run whose mark expired or is gone."""
        with self.store.write() as conn:
            # takes_lease, in SQL
            pulls = and_(_RUNS.c.kind.in_(("total", "changed")), _RUNS.c.dry_run.is_(False))
            alive = live_marks(conn)
            others = and_(not_(pulls), _RUNS.c.id.not_in(alive)) if alive else not_(pulls)
            abandoned = conn.execute(
                select(_RUNS.c.id, _RUNS.c.started).where(
                    _RUNS.c.status == "running", or_(pulls, others)
                )
            ).all()
            # each ended about its last heartbeat (that of the lease taken from it, or of
            # its mark), not when it is seen gone: a killed run's time is how long it ran
            beats = dead_mark_beats(conn)
            taken = self._lease.taken_from if self._lease is not None else None
            if taken is not None:
                beats.setdefault(*taken)
            now = utcnow()
            for run_id, started in abandoned:
                beat = beats.get(run_id)
                began = started if started.tzinfo else started.replace(tzinfo=UTC)
                # (a run that died before its first heartbeat has only the lease's taking,
                # a moment before its start: it ended soon after that start, not now)
                end = max(began, beat) if beat is not None and beat <= now else now
                conn.execute(
                    update(_RUNS)
                    .where(_RUNS.c.id == run_id, _RUNS.c.status == "running")
                    .values(status="failed", finished=end, error=INTERRUPTED)
                )
            drop_dead_marks(conn)

    def execute(self) -> RunResult:
        """Pull what `prepare` planned, then close the run record and release the lease."""
        hearing = RETRY_LISTENER.set(self._retrying)
        stopping = RETRY_CANCEL.set(self.cancel)
        # a cancel cuts short the reads the run waits for (an ERP that takes minutes to
        # answer, or none at all, does not hold a cancelled run that long); never a write
        cutting = READS_CUT_BY.set(self.cancel)
        over = threading.Event()
        threading.Thread(
            target=self._cut_reads_on_cancel, args=(over,), name="sync-cancel", daemon=True
        ).start()
        try:
            with quiet_gc():
                return self._execute()
        finally:
            over.set()
            READS_CUT_BY.reset(cutting)
            RETRY_CANCEL.reset(stopping)
            RETRY_LISTENER.reset(hearing)
            if self._builder is not None:
                self._builder.close()
                self._builder = None

    def _cut_reads_on_cancel(self, over: threading.Event) -> None:
        """Until the run is over: once cancelled, cut short the reads it is waiting for
        (see client.cut_reads); those a write is waiting for are left to finish."""
        while not over.is_set():
            if self.cancel.wait(0.2):
                cut_reads(self.cancel)
                return

    def _retrying(self, exc: Exception, attempt: int, retries: int, delay: float) -> None:
        """A request the client tries again: said in the run's log as it happens, so that
        a busy or silent ERP does not look like a run standing still."""
        self._emit("", None, 0, None, message=retry_message(exc, attempt, retries, delay))

    def _execute(self) -> RunResult:
        kind, requested, origin, scope, dry_run, started = self._request
        watermark, attrs_done, refill = self._plan_inputs
        status, error = "ok", None
        try:
            conn = self.store.engine.connect()
        except Exception as exc:
            # the store went away between prepare and now: record what we can, free the lease
            try:
                self._finish("failed", f"{exc.__class__.__name__}: {exc}", utcnow(), kind,
                             scope, refill, dry_run)  # fmt: skip
            finally:
                self._let_go()
            raise
        try:
            if conn.dialect.name == "postgresql":
                # no key and no index: the keys go in by the page, which cannot skip a
                # repeated one (harmless: the table is only asked whether a key is in
                # it), and it is read once, by the deletions' anti-join, which hashes it
                conn.exec_driver_sql(
                    "CREATE TEMPORARY TABLE IF NOT EXISTS pwt_seen "
                    "(entity VARCHAR(64) NOT NULL, key VARCHAR(256) NOT NULL)"
                )
            else:
                conn.exec_driver_sql(
                    "CREATE TEMPORARY TABLE IF NOT EXISTS pwt_seen "
                    "(entity VARCHAR(64) NOT NULL, key VARCHAR(256) NOT NULL, "
                    "PRIMARY KEY (entity, key))"
                )
            conn.commit()
            passes = self._plan(kind, scope, watermark, refill, dry_run)
            if passes and (not attrs_done):
                self._emit("attributes", None, 0, None, message="reading the ERP's field catalogue")
                if dry_run:
                    self._memory_catalogue()
                else:
                    fields_mod.attribute_update(self.store, self.client)
            orders_scope = self._orders_scope(kind, scope)
            # a PARTIAL of whole entities only pulls; named orders are pushed if they wait
            pushes = scope is None or bool(scope.codes)
            if orders_scope:
                self._named_orders(orders_scope, dry_run)
            if orders_scope is not None and pushes and not dry_run:
                self._push_orders(orders_scope)
            elif orders_scope is not None and pushes:
                self._waiting_note(orders_scope)
            elif orders_scope == () and scope is not None:
                self._unsent_note()
            if kind == "partial" and scope is None:
                pushed = sum(self.orders.values()) + sum(self.customers.values())
                if not pushed and self._waiting_orders and not dry_run:
                    # held: settling after an unknown outcome (said above), or another
                    # process's push has them
                    n = self._waiting_orders
                    self._messages.append(
                        f"partial sync: {n} web order{'s' if n != 1 else ''} waiting, none"
                        " could be sent now"
                    )
                elif not pushed and not self._waiting_orders:
                    self._messages.append(
                        "partial sync: pushes waiting web customers and orders; nothing was"
                        " waiting; nothing to do"
                    )
            for p in passes:
                self._check_cancel()
                self._pull(conn, p, dry_run)
            if orders_scope is not None and (kind != "partial" or scope is not None):
                self._refresh_orders(orders_scope, dry_run)
            if kind != "partial" or (scope is not None and "resources" in scope.entities):
                self._sync_resources(kind, scope, dry_run)
            # a cancel that came while the last step waited on the ERP (a write, whose
            # answer is awaited so that its outcome is known): the run was still cancelled
            self._check_cancel()
            if self._rejected_any() or self.orders["failed"] or self.customers["failed"]:
                status = "ok_with_rejects"
        except Cancelled:
            error = self.cancel.reason if isinstance(self.cancel, CancelEvent) else None
            status, error = "cancelled", error or CANCELLED_BY_OPERATOR
        except LeaseLost as exc:
            status, error = "failed", str(exc)
        except Exception as exc:
            log.debug("run %s failed", self.run_id, exc_info=True)  # the log file has it all
            status, error = "failed", failure_text(exc)
            if self.cancel.is_set() and isinstance(exc, ErpError):
                # a request that gave up its retries for the cancel: the run was cancelled
                reason = self.cancel.reason if isinstance(self.cancel, CancelEvent) else None
                status, error = "cancelled", reason or CANCELLED_BY_OPERATOR
        finally:
            try:
                conn.rollback()
                conn.exec_driver_sql("DROP TABLE IF EXISTS pwt_seen")
                conn.commit()
            except Exception:
                log.debug("dropping the seen-keys table failed", exc_info=True)
            conn.close()
        try:
            finished = utcnow()
            try:
                status, error = self._finish(status, error, finished, kind, scope, refill, dry_run)
            except Exception as exc:
                # the store itself is gone (its server stopped) or refuses the writes (a
                # full disk): the run is still told as it ended, its failure recorded in
                # the least way that may still go in; else the next run finds it
                # unfinished and marks it interrupted
                log.debug("recording the end of run %s failed", self.run_id, exc_info=True)
                why = f"its end could not be recorded: {failure_text(exc)}"
                status, error = "failed", f"{error}; {why}" if error else why
                self._record_failure_only(error, finished)
        finally:
            self._let_go()
        entities, off_site = split_counts(self.counts)
        result = RunResult(
            self.run_id,
            kind,
            requested,
            origin,
            scope.to_json() if scope else None,
            status,
            dry_run,
            started,
            finished,
            entities=entities,
            off_site=off_site,
            orders=self.orders,
            customers=self.customers,
            error=error,
            message="; ".join(self._messages) or None,
            would_change=self._would_change,
        )
        self._emit("done", None, 0, None, finished=True, status=status, message=result.message)
        return result

    def _clock_set_back(self, since: str) -> bool:
        """Whether the ERP's clock (as this run's first reply gave it) is behind the
        watermark: set back since the last good run (one that ran a day ahead,
        corrected). Said once in the run's message."""
        if self.erp_clock is None:
            return False
        now = _stamp(self.erp_clock)
        if now >= since:
            return False
        if not self._clock_said:
            self._clock_said = True
            self._messages.append(
                f"the ERP's clock ({now}) is behind the last sync's watermark ({since}): it"
                " was set back, so what changed since cannot be found by its date;"
                " articles, customers and conditions pulled in full"
            )
        return True

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()
        if self._lease is not None and self._lease.lost.is_set():
            raise LeaseLost(
                "the lease was lost: another run took it over, as this run's heartbeat had"
                " not renewed it in time (the process stalled, or the store was unreachable)"
            )

    def _rejected_any(self) -> bool:
        return any(c["rejected"] for c in self.counts.values())

    def _plan(
        self,
        kind: str,
        scope: Scope | None,
        watermark: str | None,
        refill: Mapping[str, str | None],
        dry_run: bool,
    ) -> list[_Pass]:
        passes: list[_Pass] = []
        if kind == "partial":
            if scope is None:
                return []
            pulled = [n for n in scope.entities if n in ENTITIES]
            for name in sorted(pulled, key=lambda n: list(ENTITIES).index(n)):
                # a PARTIAL deletes nothing: not even a record whose flag went off
                passes.append(
                    _Pass(
                        ENTITIES[name],
                        full=not scope.codes,
                        deletions=False,
                        codes=scope.codes,
                        removals=False,
                    )
                )
            return passes
        # on a Ho.Re.Ca. site only a TOTAL deletes (DOMAIN.md): a CHANGED, even one that
        # refills a table in full, leaves the records whose flag went off, and the lookup
        # records the ERP deleted, for the next TOTAL
        removes = kind == "total" or not self.options.horeca
        for name in LOOKUP_ENTITIES:
            passes.append(_Pass(ENTITIES[name], full=True, deletions=removes, removals=removes))
        for name in MAIN_ENTITIES:
            full = kind == "total" or name in refill
            passes.append(
                _Pass(
                    ENTITIES[name],
                    full=full,
                    deletions=full and removes,
                    since=None if full else watermark,
                    removals=removes,
                )
            )
        with self.store.read() as conn:
            for name in MAIN_ENTITIES:
                keys = conn.execute(select(_RETRY.c.key).where(_RETRY.c.entity == name))
                self._retry[name] = {k for (k,) in keys}
        return passes

    # --- web orders (engine/orders does the work; the run decides when) ---------------

    @staticmethod
    def _orders_scope(kind: str, scope: Scope | None) -> tuple[str, ...] | None:
        """None: the run leaves orders alone; () all waiting/open orders; else those ids."""
        if scope is None:
            return ()
        if "orders" in scope.entities:
            return scope.codes
        return None

    def _unsent_note(self) -> None:
        """A PARTIAL of the orders entity as a whole re-reads the orders open in the ERP
        and sends none: the waiting ones are named in a message, with how to send them."""
        from passweb_tui.engine.orders.api import WebOrders

        waiting = WebOrders(self.store).waiting_count()
        if waiting:
            self._messages.append(
                f"{waiting} web order{'s' if waiting != 1 else ''} waiting, not sent: a partial"
                " sync of whole entities only re-reads; a partial sync with no entity, or"
                " naming the orders, sends them"
            )

    def _named_orders(self, order_ids: tuple[str, ...], dry_run: bool) -> None:
        """What a partial sync naming web orders says of those it can do nothing with: an
        id the store does not have is a reject of the run (a typing slip must not end
        `ok`), and an order whose payment is not confirmed is named in the message."""
        from passweb_tui.engine.orders import states
        from passweb_tui.engine.orders.models import WebOrder

        t = WebOrder.__table__  # type: ignore[attr-defined]
        with self.store.read() as conn:
            known: dict[str, str] = dict(
                conn.execute(select(t.c.id, t.c.state).where(t.c.id.in_(order_ids))).all()
            )
        missing = [oid for oid in dict.fromkeys(order_ids) if oid not in known]
        unpaid = sorted(oid for oid, state in known.items() if state == states.PAYMENT_UNCONFIRMED)
        if unpaid:
            self._messages.append(
                f"orders waiting for their payment to be confirmed, not sent: {_few(unpaid)}"
            )
        if missing:
            # counted as the orders' rejects (the counts' "orders" entity), as a code
            # of a record the ERP does not have is counted as its entity's
            self.counts.setdefault("orders", empty_counts())["rejected"] += len(missing)
            why = "not in the store: no web order has this id"
            self._add_rejects([("orders", oid, why) for oid in missing])

    def _add_rejects(self, rejects: Sequence[tuple[str, str | None, str]]) -> None:
        """Rejects of this run, as (entity, key, reason), in a transaction of their own:
        each with its whole reason in the run's detail (messages are digests)."""
        rows = [
            {"run_id": self.run_id, "entity": entity, "key": key, "reason": why}
            for entity, key, why in rejects
        ]
        with self.store.write() as conn:
            conn.execute(insert(_REJECTS), rows)

    def _order_progress(self, phase: str) -> Callable[[int, int, str | None], None]:
        started = time.monotonic()

        def progress(done: int, total: int, message: str | None) -> None:
            self._emit(phase, "orders", done, total, started=started, message=message)

        return progress

    def _waiting_note(self, order_ids: tuple[str, ...]) -> None:
        """What a dry run would have sent: the web orders waiting, said in its message."""
        from passweb_tui.engine.orders.api import WebOrders

        waiting = WebOrders(self.store).waiting_ids()
        if order_ids:
            waiting = [i for i in waiting if i in order_ids]
        self._waiting_orders = n = len(waiting)
        if n:
            self._messages.append(
                f"{n} web order{'s' if n != 1 else ''} waiting to be sent (with any new"
                " customer of theirs): a dry run sends nothing"
            )

    def _push_orders(self, order_ids: tuple[str, ...]) -> None:
        from passweb_tui.engine.orders.api import WebOrders
        from passweb_tui.engine.orders.push import PushAborted

        self._waiting_orders = len(order_ids) or WebOrders(self.store).waiting_count()
        if not self._waiting_orders:
            return
        self._emit("push", "orders", 0, None, message="sending waiting customers and orders")
        # the push's reads (is this order in the ERP already?) are never cut short: what
        # it sends next hangs on their answers, and a cancel stops it between records
        whole = READS_CUT_BY.set(None)
        try:
            pushed = WebOrders(self.store).push(
                self.client,  # type: ignore[arg-type]
                order_ids=order_ids or None,
                **self.options.push_settings(),
                cancel=self.cancel,
                on_progress=self._order_progress("push"),
                log_failures=False,  # the run tells of each, as one of its rejects
            )
        except Exception as exc:
            # a push stopped midway (refused credentials, an unreachable ERP, a cancel):
            # what it did before the stop is in the run's counts and rejects all the same
            done = getattr(exc, "push_result", None)
            if done is not None:
                self._record_push(done)
            if isinstance(exc, PushAborted):
                raise Cancelled() from None
            raise
        finally:
            READS_CUT_BY.reset(whole)
        self._record_push(pushed)
        unanswered = _unanswered(pushed)
        if unanswered is not None:
            # not one record got an answer (a busy or failing ERP, past its retries): the
            # run failed, as it does when the ERP cannot be reached at all
            raise ErpError(f"nothing was sent, the ERP did not answer: {unanswered}")

    def _record_push(self, pushed: Any) -> None:
        """A push's outcome in the run: counts, one line a failure, the whole reasons as
        rejects."""
        from passweb_tui.engine.orders.push import (
            error_reason,
            failure_notes,
            order_subject,
            settling_message,
        )

        self.customers["sent"] += pushed.customers_sent
        self.customers["failed"] += pushed.customers_failed
        self.orders["sent"] += pushed.orders_sent + pushed.orders_recovered
        self.orders["failed"] += pushed.orders_failed
        for _ident, said in pushed.matched[:20]:
            self._messages.append(said)
        notes = failure_notes(pushed)
        self._messages.extend(notes[:20])
        if len(notes) > 20:
            self._messages.append(f"{len(notes) - 20} more not sent (see the run's rejects)")
        if pushed.settling:
            self._messages.append(settling_message(pushed.settling))
        if pushed.errors:
            # entities of their own: a web customer's site id is no ERP customer code
            self._add_rejects(
                [
                    (
                        PUSH_REJECTS[entity],
                        ident,
                        # the reject's key names the order already
                        f"not sent: {error_reason(why, order_subject(ident))}",
                    )
                    for entity, ident, why in pushed.errors
                ]
            )
        self._save_order_counts()

    def _refresh_orders(self, order_ids: tuple[str, ...], dry_run: bool) -> None:
        from passweb_tui.engine.orders.api import WebOrders
        from passweb_tui.engine.orders.refresh import RefreshAborted

        if not order_ids:
            from passweb_tui.engine.orders import states

            counts = WebOrders(self.store).counts()
            if not any(counts.get(state, 0) for state in states.OPEN):
                return
        self._emit("orders", "orders", 0, None, message="re-reading orders open in the ERP")
        try:
            refreshed = WebOrders(self.store).refresh(
                self.client,  # type: ignore[arg-type]
                run_id=self.run_id,
                order_ids=order_ids or None,
                dry_run=dry_run,
                cancel=self.cancel,
                on_progress=self._order_progress("orders"),
            )
        except RefreshAborted:
            raise Cancelled() from None
        self.orders["updated"] += refreshed.updated
        if refreshed.rejected:
            # an ERP document that cannot be read: its order is left as it was, and the
            # run lists it with its reason, like a rejected record
            self.counts.setdefault("orders", empty_counts())["rejected"] += len(refreshed.rejected)
            self._messages.append(
                f"{len(refreshed.rejected)} open order(s) not updated: their ERP document"
                " could not be read (see the run's rejects)"
            )
            self._add_rejects([("orders", oid, why) for oid, why in refreshed.rejected])
        if not dry_run:
            self._save_order_counts()

    def _sync_resources(self, kind: str, scope: Scope | None, dry_run: bool) -> None:
        """Images and technical sheets of the site's articles, stored by content hash."""
        from passweb_tui.engine.orders.resources import sync_resources

        folder = self.options.resources_dir
        if folder is None:
            if kind == "partial":
                raise SyncError("resources need a data folder for their files")
            return
        # a scoped PARTIAL re-reads what the operator named; the others follow the setting
        mode = "all" if kind == "partial" else self.options.resources_mode
        if mode == "none":
            return
        self._emit("resources", "resources", 0, None, message="article images and sheets")
        result = sync_resources(
            self.store,
            self.client,  # type: ignore[arg-type]
            folder,
            mode=mode,
            articles=(scope.codes or None) if scope is not None else None,
            remove_missing=self.options.remove_missing_resources,
            dry_run=dry_run,
            check=self._check_cancel,
            save_mark=False,
            run_id=None if dry_run else self.run_id,
            # a dry run stored nothing: the articles it would have stored count too
            would_store=self._dry_put.get("articles", ()) if dry_run else (),
        )
        if dry_run:
            room = max(0, DRY_CHANGES_KEPT - len(self._would_change))
            self._would_change.extend(("resources", *c) for c in result.changes[:room])
        # moved with the run's watermark, by _finish: a failed or cancelled run leaves it,
        # and a PARTIAL, even of every article, never moves a watermark (DOMAIN.md)
        self._resources_since = result.next_since
        counts = self.counts.setdefault("resources", empty_counts())
        counts["fetched"] += result.listed
        counts["inserted"] += result.inserted
        counts["updated"] += result.updated
        counts["unchanged"] += result.unchanged
        counts["deleted"] += result.removed
        counts["rejected"] += len(result.errors)
        for article, why in result.errors[:20]:
            self._messages.append(f"resources of {article}: {why}")
        if result.errors:
            # the resource step tries them again by itself: not kept for a retry
            self._add_rejects([("resources", article, why) for article, why in result.errors])

    def _save_order_counts(self) -> None:
        with self.store.write() as conn:
            conn.execute(
                update(_RUNS)
                .where(_RUNS.c.id == self.run_id)
                .values(orders=json.dumps({"orders": self.orders, "customers": self.customers}))
            )

    def _memory_catalogue(self) -> None:
        for name in MAIN_ENTITIES:
            spec = ENTITIES[name]
            infos = list(self.client.info(spec.resource))
            defaults = set(spec.default_fields)
            used = tuple(sorted(fi.name for fi in infos if fi.name in defaults and not fi.key))
            cat = {fi.name: FieldSpec(fi.type, fi.length, fi.array_size or 0) for fi in infos}
            self._catalogues[name] = (used, cat)

    def _catalogue(self, name: str) -> tuple[tuple[str, ...] | None, dict[str, FieldSpec]]:
        if name not in self._catalogues:
            with self.store.read() as conn:
                self._catalogues[name] = fields_mod.load_catalogue(conn, name)
        return self._catalogues[name]

    # --- one entity -------------------------------------------------------------------

    def _request_fields(self, spec: EntitySpec) -> list[str] | None:
        if spec.lookup:
            return None
        used, cat = self._catalogue(spec.name)
        wanted = [KEY_FIELD, *(used if used is not None else spec.default_fields)]
        wanted += [f for f in spec.control_fields if not cat or f in cat]
        return list(dict.fromkeys(wanted))

    def _pages(self, p: _Pass) -> Iterator[Any]:
        from passweb_tui.engine.erp.client import Filter

        spec = p.spec
        fields = self._request_fields(spec)
        size = self.options.page_size
        if p.codes:
            for i in range(0, len(p.codes), 100):
                chunk = list(p.codes[i : i + 100])
                yield from self.client.iter_pages(
                    spec.resource,
                    filters=[Filter(KEY_FIELD, "=", chunk)],
                    fields=fields,
                    page_size=size,
                    decimals=False,
                )
            return
        if p.full or p.since is None or spec.mod_date is None:
            yield from self.client.iter_pages(
                spec.resource,
                fields=fields,
                page_size=size,
                decimals=False,
                lazy=p.full and spec.main,
            )
            return
        yield from self.client.iter_pages(
            spec.resource,
            filters=[Filter(spec.mod_date, ">=", p.since[:8])],
            fields=fields,
            page_size=size,
            decimals=False,
        )

    def _retry_pages(self, p: _Pass, pending: set[str]) -> Iterator[Any]:
        """Records rejected by an earlier run and not met again in this one."""
        from passweb_tui.engine.erp.client import Filter

        keys = sorted(pending)
        fields = self._request_fields(p.spec)
        for i in range(0, len(keys), 100):
            yield from self.client.iter_pages(
                p.spec.resource,
                filters=[Filter(KEY_FIELD, "=", keys[i : i + 100])],
                fields=fields,
                page_size=self.options.page_size,
                decimals=False,
            )

    def _pull(self, conn: Connection, p: _Pass, dry_run: bool) -> None:
        spec = p.spec
        if p.since is not None and not p.full and not p.codes and self._clock_set_back(p.since):
            # what changed after the ERP's clock was set back is stamped before the
            # watermark, and a search from it would never find it: the pass reads all
            p.full, p.since, p.deletions = True, None, p.removals
        counts = self.counts.setdefault(spec.name, empty_counts())
        used, cat = self._catalogue(spec.name) if spec.main else (None, {})
        for target in LINK_TARGETS.get(spec.name, ()):
            if target not in self._known:
                self._known[target] = self._stored_keys(target)
        known = self._known_for(spec.name)
        collected: set[str] | None = None
        if spec.name in _LINKED:
            # a pass that deletes what it does not meet leaves the table as it read it; any
            # other (a Parziale) only adds to what the store has
            collected = set() if p.deletions else self._stored_keys(spec.name)
            self._known[spec.name] = collected
        phase = "lookups" if spec.lookup else spec.name
        total = None  # the records the pass expects to read, for its progress
        stored = None
        if p.full and spec.main:
            with self.store.read() as rconn:
                stored = rconn.execute(select(func.count()).select_from(spec.table)).scalar_one()
                # the last full pass also read the records not on the site, which the
                # table does not hold: its count is the better guess
                total = max(stored, _last_full_read(rconn, spec.name))
            if stored == 0:
                p.deletions = False  # an empty table has nothing to delete: no keys to note
        # a pass whose table is checked for stale links at its end notes what it read
        p.seen = p.deletions or (spec.name in _STALE_CHECKED and not p.codes and stored != 0)
        if p.seen:
            with conn.begin():
                conn.execute(delete(_SEEN).where(_SEEN.c.entity == spec.name))
        # a full pass over a filled table first looks at each page's records as text: a
        # page whose records all keep their digests is done without decoding it
        by_text = p.full and spec.main and bool(stored)
        salt = self._salt(spec, used)
        started = time.monotonic()
        self._emit(phase, spec.name, 0, total, started=started)
        pending_retry = set(self._retry.get(spec.name, ())) if not p.full else set()
        retry_all = set(self._retry.get(spec.name, ()))
        sources: list[Iterable[Any]] = [self._pages(p)]
        if not p.full and not p.codes and spec.main:
            sources.append(_Later(lambda: self._retry_pages(p, pending_retry)))
        # a first full pass of a large table: rows built by a worker process, see builder.py
        after = self.options.worker_after_records
        worker = p.full and spec.main and stored == 0 and after is not None
        waiting: collections.deque[tuple[Any, Any]] = collections.deque()

        met: set[str] = set()  # the named records the ERP gave (a pass by codes)
        off_site: list[str] = []

        def in_process(page: Any) -> None:
            content = getattr(page, "content", None)
            items, removed, rejects, skipped = self._build(p, page.records, content)
            if p.codes:
                met.update(str(r.get(KEY_FIELD)) for r in page.records if isinstance(r, dict))
                if not p.removals:
                    off_site.extend(removed)
            if pending_retry:
                pending_retry.difference_update(q.key for q in items)
                pending_retry.difference_update(removed)
                pending_retry.difference_update(k for k, _ in rejects if k)
            if collected is not None:
                collected.update(q.key for q in items)
            self._apply_page(
                conn, p, items, removed, rejects, counts, retry_all, dry_run, used, cat,
                nul_free=nul_free(content), fetched=len(page.records) - skipped,
            )  # fmt: skip
            self._emit(phase, spec.name, counts["fetched"], total, started=started)

        def apply_built(page: Any, future: Any) -> None:
            try:
                built = future.result()
            except Exception as exc:  # the worker is gone: this page (and the rest) here
                log.info("row builder failed on a page of %s (built here): %r", spec.name, exc)
                built = None
            if not isinstance(built, tuple) or len(built) != 6:  # None: it gave up
                in_process(page)
                return
            pairs, removed, rejects, n, compact, bad = built
            items = [Quick(k, d, {}) for k, d in pairs]
            prebuilt = (compact, bad)
            self._apply_page(
                conn, p, items, removed, rejects, counts, retry_all, dry_run, used, cat,
                prebuilt=prebuilt, records=lambda: page.records,
                nul_free=nul_free(getattr(page, "content", None)), fetched=n,
            )  # fmt: skip
            self._emit(phase, spec.name, counts["fetched"], total, started=started)

        try:
            for source in sources:
                for page in _Prefetch(iter(source), self.cancel):
                    self._check_cancel()
                    if self.erp_clock is None and getattr(page, "data_ric_elab", None) is not None:
                        self.erp_clock = page.data_ric_elab
                        self._record_clock(dry_run)
                    cut = getattr(page, "cut", None) if by_text else None
                    if cut is not None:
                        n = self._unchanged_page(conn, p, cut, salt, counts, retry_all, dry_run)
                        if n:
                            self._emit(phase, spec.name, counts["fetched"], total, started=started)
                            continue
                    if worker and self._builder is None and counts["fetched"] >= (after or 0):
                        self._builder = RowBuilder()  # one per run, for every pass that wants it
                    future = None
                    builder = self._builder if worker else None
                    if builder is not None and getattr(page, "cut", None) is not None:
                        future = builder.submit(
                            spec.name, page.content, used, cat, self.options.rules,
                            known, salt,
                        )  # fmt: skip
                    if future is not None:
                        waiting.append((page, future))
                        if len(waiting) > 2:  # the worker builds ahead while pages are written
                            apply_built(*waiting.popleft())
                        continue
                    while waiting:  # in order: what the worker has, then this page
                        apply_built(*waiting.popleft())
                    in_process(page)
            while waiting:
                self._check_cancel()
                apply_built(*waiting.popleft())
        finally:
            for _, future in waiting:  # a pass that stopped early: its pages are not wanted
                future.cancel()
        self._check_cancel()  # a pass cut short by a cancel never counts as complete
        if pending_retry and not dry_run and len(sources) > 1:
            # rejected by an earlier run, asked for again by key, and not given: the ERP
            # has them no more. Kept, every later CHANGED would ask for them again, and
            # the run that rejected them would never be pruned.
            gone = sorted(pending_retry)
            with self.store.write(conn):
                for i in range(0, len(gone), 500):
                    conn.execute(
                        delete(_RETRY).where(
                            _RETRY.c.entity == spec.name, _RETRY.c.key.in_(gone[i : i + 500])
                        )
                    )
        # the pass has read everything: its total is known now (a first TOTAL or a CHANGED
        # did not know it in advance, a TOTAL only guessed it from the store)
        total = counts["fetched"]
        self._emit(phase, spec.name, total, total, started=started)
        if spec.name == "categories" and collected and len(collected) > MAX_CATEGORIES:
            self._messages.append(
                f"{len(collected)} categories: the site works best under {MAX_CATEGORIES}"
                " (the secondary mode keeps only the web-flagged groups)"
            )
        if p.codes:
            self._named_records(conn, spec, p.codes, met, off_site, counts, dry_run)
        if p.deletions:
            self._check_cancel()
            self._emit("deletions", spec.name, counts["fetched"], total)
            self._delete_unseen(conn, spec, counts, dry_run)
        if spec.name == "articles" and not p.codes:  # after the deletions: what stays
            self._stale_category_links(conn, counts, dry_run)
        if spec.name == "customers" and not p.codes:
            self._stale_customer_links(conn, counts, dry_run)

    def _named_records(
        self,
        conn: Connection,
        spec: EntitySpec,
        codes: Sequence[str],
        met: set[str],
        off_site: list[str],
        counts: dict[str, int],
        dry_run: bool,
    ) -> None:
        """What a pass by codes says of the records it was asked for and did not store:
        a code the ERP does not have is a reject of the run (a typing slip must not end
        `ok` as if the record had been pulled), and one whose transfer flag is off is
        named in the run's message, since a partial sync removes nothing."""
        missing = [c for c in dict.fromkeys(codes) if c not in met]
        if off_site:
            self._messages.append(
                f"{spec.name} not flagged for the site in the ERP, left as stored (a partial"
                f" sync removes nothing): {_few(sorted(set(off_site)))}"
            )
        if not missing:
            return
        rows = [
            {
                "run_id": self.run_id,
                "entity": spec.name,
                "key": code,
                "reason": f"not in the ERP: no {spec.resource} record has codice {code!r}",
            }
            for code in missing
        ]
        # not kept for a retry: a later CHANGED would not find the record either
        with self.store.write() if dry_run else self.store.write(conn) as wconn:
            wconn.execute(insert(_REJECTS), rows)
        counts["rejected"] += len(rows)

    def _stored_keys(self, entity: str) -> set[str]:
        t = ENTITIES[entity].table
        with self.store.read() as rconn:
            return {c for (c,) in rconn.execute(select(t.c.code))}

    def _known_for(self, entity: str) -> Known | None:
        """The lookup keys the entity's records are checked against (None: it has no
        links)."""
        targets = LINK_TARGETS.get(entity)
        if targets is None:
            return None
        return {t: self._known[t] for t in targets if t in self._known}

    def _stale_category_links(
        self, conn: Connection, counts: dict[str, int], dry_run: bool
    ) -> None:
        """Stored articles linked to a category the site no longer has (the ERP deleted
        the group, or took its web flag away): rejects of this run, with the reason, and
        looked at again by the next one. A record only looks at its category when it
        changes, so without this an unchanged article would keep a dead link unseen."""
        a = ENTITIES["articles"].table
        c = ENTITIES["categories"].table
        # first the dead categories, from the category index alone (a few ms for 100,000
        # articles, where reading the rows takes ten times that), then their articles
        dead_query = (
            select(a.c.category)
            .distinct()
            .where(
                a.c.category.is_not(None), a.c.category.not_in(self._live_codes(c, "categories"))
            )
        )
        with self.store.read() as rconn:
            dead = list(rconn.execute(dead_query).scalars())
        dead = [d for d in dead if d not in self._dry_put.get("categories", ())]
        if not dead:
            return
        query = (
            select(a.c.code, a.c.category)
            .where(
                a.c.category.in_(dead),
                a.c.code.not_in(self._rejected_keys("articles")),
            )
            .order_by(a.c.code)
        )
        with self.store.read() as rconn:
            stale = rconn.execute(query).all()
        # (a dry run's: rewritten, or deleted by the real run, it would not be checked so)
        skipped = self._dry_put.get("articles", set()) | self._dry_gone.get("articles", set())
        stale = [row for row in stale if row[0] not in skipped]
        if not stale:
            return
        link = "cat_web" if self.options.rules.category_mode == "secondaria" else "cod_grp_merc"
        reasons = [
            (
                code,
                f"category {category!r} ({link}) is no longer among the site's categories;"
                " the article keeps the link until the ERP changes it",
            )
            for code, category in stale
        ]
        self._stale_rejects(conn, "articles", reasons, counts, dry_run)

    def _live_codes(self, lookup: Table, entity: str) -> Any:
        """The codes of a lookup table as this run leaves it: a dry run's would-be
        deletions are left out, as the real run would have made them."""
        gone = self._dry_gone.get(entity)
        if not gone:
            return select(lookup.c.code)
        return select(lookup.c.code).where(lookup.c.code.not_in(sorted(gone)))

    def _stale_customer_links(
        self, conn: Connection, counts: dict[str, int], dry_run: bool
    ) -> None:
        """Stored customers whose usual payment, price list or currency the ERP's tables
        no longer have (deleted there after the customer was stored): rejects of this
        run, looked at again by the next, as dead category links are. A table the store
        holds nothing of is not checked (see records.link_problem), nor the currency
        while the site does not use the field (it is kept only in the record's data)."""
        cu = ENTITIES["customers"].table
        links = [
            (cu.c.payment, cu.c.payment, "payments", "payment", "cod_pagamento"),
            (cu.c.price_list, cast(cu.c.price_list, String), "price_lists", "price list",
             "cod_listino"),
        ]  # fmt: skip
        if "valuta" in (self._catalogue("customers")[0] or ()):
            currency = stored_field(cu.c.data, "valuta", conn.dialect.name)
            links.append((currency, currency, "currencies", "currency", "valuta"))
        stale: dict[str, str] = {}
        for column, text, target, label, source in links:
            lookup = ENTITIES[target].table
            with self.store.read() as rconn:
                if rconn.execute(select(lookup.c.code).limit(1)).first() is None:
                    continue
                rows = rconn.execute(
                    select(cu.c.code, column)
                    .where(
                        column.is_not(None),
                        text.not_in(("", "0")),
                        text.not_in(self._live_codes(lookup, target)),
                        cu.c.code.not_in(self._rejected_keys("customers")),
                    )
                    .order_by(cu.c.code)
                ).all()
            added = self._dry_put.get(target, set())
            rewritten = self._dry_put.get("customers", set()) | self._dry_gone.get(
                "customers", set()
            )
            for code, value in rows:
                if str(value) in added or code in rewritten:
                    # (a dry run's: the real run would have it, check it anew, or have
                    # deleted the customer)
                    continue
                stale.setdefault(
                    code,
                    f"{label} {str(value)!r} ({source}) is no longer among the ERP's; the"
                    " customer keeps the link until the ERP changes it",
                )
        self._stale_rejects(conn, "customers", sorted(stale.items()), counts, dry_run)

    def _rejected_keys(self, entity: str) -> Any:
        """The keys of the entity this run has rejected so far, as a subquery."""
        return select(_REJECTS.c.key).where(
            _REJECTS.c.run_id == self.run_id,
            _REJECTS.c.entity == entity,
            _REJECTS.c.key.is_not(None),
        )

    def _stale_rejects(
        self,
        conn: Connection,
        entity: str,
        reasons: Sequence[tuple[str, str]],
        counts: dict[str, int],
        dry_run: bool,
    ) -> None:
        """Stored records with a dead link, as rejects of the run and kept for a retry.
        One this run read (unchanged: a changed one is checked as it is read) is counted
        once, as rejected, so that what a run read adds up; one it did not read (a
        CHANGED reads only what changed) is a reject on top of what it read."""
        if not reasons:
            return
        rows = [
            {"run_id": self.run_id, "entity": entity, "key": key, "reason": reason}
            for key, reason in reasons
        ]
        keys = [key for key, _ in reasons]
        read = 0
        with conn.begin() if dry_run else self.store.write(conn):
            for at in range(0, len(keys), 500):
                read += conn.execute(
                    select(func.count(distinct(_SEEN.c.key))).where(
                        _SEEN.c.entity == entity, _SEEN.c.key.in_(keys[at : at + 500])
                    )
                ).scalar_one()
            if not dry_run:
                conn.execute(insert(_REJECTS), rows)
                conn.execute(
                    self._retry_upsert(conn),
                    [{"entity": entity, "key": key, "run_id": self.run_id} for key in keys],
                )
        if dry_run:
            with self.store.write() as wconn:  # a dry run's rejects are kept all the same
                wconn.execute(insert(_REJECTS), rows)
        counts["rejected"] += len(rows)
        counts["unchanged"] -= min(read, counts["unchanged"])

    def _unchanged_page(
        self,
        conn: Connection,
        p: _Pass,
        cut: Callable[[str], tuple[list[str], list[bytes]] | None],
        salt: bytes,
        counts: dict[str, int],
        retry_all: set[str],
        dry_run: bool,
    ) -> int:
        """A page of a full pass whose every record is stored with the digest of its
        text: its keys are noted for the deletions and nothing else is done (not even
        decoding it). Returns how many records it had, or 0 when some record is new or
        changed (then the page goes the usual way, which decodes it)."""
        got = cut(KEY_FIELD)
        if got is None:
            return 0
        keys, texts = got
        digests = text_digests(texts, salt)
        spec = p.spec
        with conn.begin():
            existing = _digests_by_span(conn, spec, keys)
            if any(existing.get(k, d) != d for k, d in zip(keys, digests, strict=True)):
                return 0
            if len(existing) != len(keys):
                # a record not in the store is nothing to do only when the ERP does not
                # flag it for the site (such records are never stored)
                site_no = self.options.rules.site_no
                for key, text in zip(keys, texts, strict=True):
                    if (
                        key not in existing
                        and (
                            not spec.site_flag or _site_flag_in_text(text, spec.site_flag, site_no)
                        )
                        is not False
                    ):
                        return 0
                keys = [k for k in keys if k in existing]
            if p.seen and keys:
                self._note_seen(conn, spec, keys)
        # read, with what was done of it: a killed run's counts add up
        added = {"fetched": len(texts), "unchanged": len(keys)}
        if len(keys) < len(texts):
            added[OFF_SITE] = len(texts) - len(keys)
        done = [k for k in keys if k in retry_all] if retry_all else []
        if (done and not dry_run) or time.monotonic() >= self._counts_due:
            with conn.begin() if dry_run else self.store.write(conn):
                if done and not dry_run:
                    conn.execute(
                        delete(_RETRY).where(_RETRY.c.entity == spec.name, _RETRY.c.key.in_(done))
                    )
                self._write_counts(conn, spec.name, added)
        _add_counts(counts, added)
        return len(texts)

    def _note_seen(self, conn: Connection, spec: EntitySpec, keys: Sequence[str]) -> None:
        """These keys are still in the ERP (a full pass deletes the rows it did not see)."""
        if conn.dialect.name == "postgresql":
            # one statement with the keys as an array: fewer round trips than COPY
            conn.exec_driver_sql(
                "INSERT INTO pwt_seen (entity, key) SELECT %s, unnest(%s::varchar[])",
                (spec.name, list(keys)),
            )
        else:
            _bulk_insert(
                conn,
                "pwt_seen",
                ("entity", "key"),
                [(spec.name, k) for k in keys],
                on_conflict_do_nothing=True,
            )

    def _record_clock(self, dry_run: bool) -> None:
        with self.store.write() as conn:
            conn.execute(
                update(_RUNS).where(_RUNS.c.id == self.run_id).values(erp_clock=self.erp_clock)
            )

    def _build(
        self, p: _Pass, records: list[dict[str, Any]], content: bytes | None = None
    ) -> tuple[list[Quick], list[str], list[tuple[str | None, str]], int]:
        """Keys and digests of a page; records off the site or older than the watermark
        are set apart. Full validation waits until a record is known to have changed."""
        spec = p.spec
        rules = self.options.rules
        used = self._catalogue(spec.name)[0] if spec.main else None
        salt = self._salt(spec, used)
        since = p.since if not p.full and not p.codes else None
        by_key: dict[str, Quick] = {}
        removed: list[str] = []
        skipped = 0
        retry = self._retry.get(spec.name, ())
        secondary_categories = spec.name == "categories" and rules.category_mode == "secondaria"
        scanned, rejects = scan_page(spec, records, salt, rules, content, since is not None)
        for q in scanned:
            if since is not None and q.mod_stamp is not None:
                stamp = q.mod_stamp
                older = (stamp < since[:8]) if len(stamp) == 8 else (stamp < since)
                if older and q.key not in retry:
                    skipped += 1
                    continue
            if secondary_categories and q.record.get("web") != "S":
                skipped += 1
                continue
            if not q.on_site:
                removed.append(q.key)
                by_key.pop(q.key, None)
                continue
            by_key[q.key] = q
        return list(by_key.values()), removed, rejects, skipped

    # --- writing ----------------------------------------------------------------------

    def _keeps_descriptions(self, spec: EntitySpec) -> bool:
        """A lookup table whose descriptions the site keeps (the per-table setting)."""
        return spec.lookup and not self.options.update_descriptions.get(spec.name, True)

    def _salt(self, spec: EntitySpec, used: tuple[str, ...] | None) -> bytes:
        return digest_salt(spec, self.options.rules, used, self._keeps_descriptions(spec))

    def _where_part(self, spec: EntitySpec) -> list[Any]:
        t = spec.table
        return [t.c[col] == value for col, value in spec.partition]

    @staticmethod
    def _derived_columns(spec: EntitySpec) -> list[str]:
        return derived_columns(spec.name)

    def _apply_page(
        self,
        conn: Connection,
        p: _Pass,
        items: list[Quick],
        removed: list[str],
        rejects: list[tuple[str | None, str]],
        counts: dict[str, int],
        retry_all: set[str],
        dry_run: bool,
        used: tuple[str, ...] | None,
        cat: dict[str, FieldSpec],
        prebuilt: tuple[list[Compact], list[tuple[str | None, str]]] | None = None,
        records: Callable[[], list[dict[str, Any]]] | None = None,
        nul_free: bool = False,
        fetched: int = 0,
    ) -> None:
        """Write one page (`fetched` of its records read: counted with what was done of
        them, in the same transaction, so that a killed run's counts add up). `prebuilt` rows (the worker's, of records none of which was
        stored) are written as they are when the store agrees that none is; otherwise
        the page's `records` are decoded and built here (`nul_free`: their reply holds
        no NUL character, see batch.nul_free). The page's counts are added to `counts`
        once its transaction has committed (a dry run's, once it has read the page)."""
        spec = p.spec
        off_site = len(set(removed))
        if not p.removals:
            removed = []  # records whose flag went off stay as they are
        t = spec.table
        now = utcnow()
        part = self._where_part(spec)
        keys = [q.key for q in items]
        site_cols = [c for c in spec.site_fields if c in t.c]
        rules = self.options.rules
        known = self._known_for(spec.name)
        begin = conn.begin() if dry_run else self.store.write(conn)
        with begin:
            if conn.dialect.name == "postgresql" and not dry_run:
                # a page's commit need not wait for its WAL to reach the disk: the run's
                # last commit (which moves the watermark) does, and the WAL is written in
                # order, so a page lost to a server crash is always one the next run redoes
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                # one page of an entity written at a time, whichever run writes it: a
                # PARTIAL takes no lease and may write the same records as the TOTAL or
                # CHANGED going on. Taken before the page's records are read, so that of
                # two runs the second compares with what the first committed and logs
                # nothing twice (SQLite's write lock does the same there)
                conn.exec_driver_sql(
                    "SELECT pg_advisory_xact_lock(%s)", (_page_lock_key(spec.name),)
                )
            existing: dict[str, str] = {}
            lookup_keys = keys + removed
            if lookup_keys:
                existing = _digests(conn, spec, lookup_keys)
            changed = [q for q in items if existing.get(q.key) != q.digest]
            new: list[Compact] = []  # the worker's rows, all of them inserts
            if prebuilt is not None and not existing:
                new, bad = prebuilt
                rows: list[Row] = []
            else:
                if prebuilt is not None and records is not None:
                    # some of these records are stored after all: build them here
                    by_key = {str(r.get(KEY_FIELD)): r for r in records()}
                    changed = [Quick(q.key, q.digest, by_key[q.key]) for q in changed]
                rows, bad = build_rows(spec, changed, used, cat, rules, known, nul_free)
            rejects.extend(bad)
            rejected_keys = {k for k, _ in rejects if k}
            protect_descriptions = self._keeps_descriptions(spec)
            inserts = [r for r in rows if r.key not in existing]
            updates = [r for r in rows if r.key in existing]
            inserted = [c[0] for c in new] or [r.key for r in inserts]
            same = 0  # digest differed (e.g. a setting changed) but no value did
            gone = [k for k in removed if k in existing]
            if dry_run and gone:
                # (of a main table too: its stale links are not checked for records that
                # the real run would have removed)
                self._dry_gone.setdefault(spec.name, set()).update(gone)
            if dry_run and spec.name in _DRY_PUT_NOTED:
                self._dry_put.setdefault(spec.name, set()).update(
                    [*inserted, *(r.key for r in updates)]
                )
            changes: list[tuple[Any, ...]] = []
            at = _bound_now(conn, now)
            #: updated articles whose price lists were stored before, with what changed in
            #: them (see _price_delta): only those price rows are written or deleted
            price_delta: dict[str, tuple[set[int], list[int]]] = {}
            if updates:
                cols = [t.c.code, t.c.data, *[t.c[c] for c in site_cols]]
                old_rows = conn.execute(
                    select(*cols).where(*part, t.c.code.in_([r.key for r in updates]))
                ).all()
                old = {row[0]: row for row in old_rows}
                for r in updates:
                    o = old.get(r.key)
                    if o is None:
                        continue
                    before = len(changes)
                    old_data = json.loads(o[1])
                    delta = _price_delta(old_data.get(PRICES_FIELD), r.data.get(PRICES_FIELD))
                    if delta is not None:
                        price_delta[r.key] = delta
                    if protect_descriptions and "descrizione" in old_data:
                        # the per-table setting keeps the site's description as it is
                        r.data["descrizione"] = old_data["descrizione"]
                        r.data_json = dumps(r.data)
                        if "description" in r.derived:
                            r.derived["description"] = old_data["descrizione"]
                    # a field no longer used leaves the record unlogged: the ERP did not
                    # clear it, the site stopped keeping it
                    compared = set(r.data) if used is not None else set(old_data) | set(r.data)
                    for f in sorted(compared):
                        a, b = old_data.get(f), r.data.get(f)
                        if a != b:
                            changes.append(
                                self._change(at, spec, r.key, "updated", f, as_text(a), as_text(b))
                            )
                    for i, c in enumerate(site_cols):
                        a, b = o[2 + i], r.derived.get(c)
                        if a != b:
                            changes.append(
                                self._change(at, spec, r.key, "updated", c, as_text(a), as_text(b))
                            )
                    if len(changes) == before:
                        same += 1
            for k in gone:
                changes.append(self._change(at, spec, k, "deleted"))
            if p.seen:
                # (a dry run's removed records stay in the table: seen, so that the
                # pass's deletions do not count them a second time)
                seen = [*keys, *(k for k, _ in rejects if k), *(gone if dry_run else ())]
                if seen:
                    self._note_seen(conn, spec, list(dict.fromkeys(seen)))
            unusable = len(rejected_keys & set(keys)) if rejected_keys else 0
            added = {
                "fetched": fetched,
                "inserted": len(inserted),
                "updated": len(updates) - same,
                "unchanged": len(items) - len(rows) - len(new) - unusable + same,
                "deleted": len(gone),
                "rejected": len(rejects),
            }
            if off_site:
                added[OFF_SITE] = off_site
            if rejects:
                reject_rows = [
                    {"run_id": self.run_id, "entity": spec.name, "key": k, "reason": why}
                    for k, why in rejects
                ]
                if dry_run:
                    # a dry run's page only reads: on SQLite, a write in that transaction
                    # would fail at once if another run committed since its first read
                    with self.store.write() as wconn:
                        wconn.execute(insert(_REJECTS), reject_rows)
                else:
                    conn.execute(insert(_REJECTS), reject_rows)
            if dry_run:
                _add_counts(counts, added)  # it writes nothing: what it read counts
                self._keep_would_change(spec, inserted, changes)
                return
            write = inserts + updates
            if write or new:
                fixed = [v for _, v in spec.partition]
                derived_cols = self._derived_columns(spec)
                columns = [
                    "code",
                    *(c for c, _ in spec.partition),
                    *derived_cols,
                    "data",
                    "digest",
                    "synced_at",
                ]
                stamp = _bind(conn, t.c.synced_at, now)
                pick = _picker(derived_cols)
                if new:
                    values = [(k, *fixed, *d, data, h, stamp) for k, d, data, h, _ in new]
                else:
                    values = [
                        (r.key, *fixed, *pick(r.derived), r.data_json, r.digest, stamp)
                        for r in write
                    ]
                rows_out = _convert(conn, t, columns, values)
                prices: list[tuple[Any, ...]] | None = None
                dropped: list[tuple[str, int]] = []  # (article, price list) rows to delete
                if spec.name == "articles":
                    money = _money(conn)
                    if new:
                        prices = [(k, n, money(v)) for k, _, _, _, p in new for n, v in p]
                    else:
                        prices = []
                        for r in write:
                            delta = price_delta.get(r.key)
                            if delta is None:  # new, or its lists not stored before
                                prices.extend((r.key, n, money(v)) for n, v in r.prices.items())
                                continue
                            changed_lists, lists_gone = delta
                            for n in sorted(changed_lists):
                                if n in r.prices:
                                    prices.append((r.key, n, money(r.prices[n])))
                                else:  # a list whose value gives no price any more
                                    dropped.append((r.key, n))
                            dropped.extend((r.key, n) for n in lists_gone)

                def put(upsert: bool) -> None:
                    _bulk_insert(
                        conn, t.name, columns, rows_out,
                        conflict=[c.name for c in t.primary_key.columns] if upsert else (),
                        update=["data", "digest", "synced_at", *derived_cols],
                    )  # fmt: skip
                    if prices is None:
                        return
                    rewrite = [r.key for r in updates if r.key not in price_delta]
                    if rewrite:  # a new article has no prices yet
                        conn.execute(delete(_PRICES).where(_PRICES.c.article_code.in_(rewrite)))
                    if dropped:
                        conn.execute(
                            delete(_PRICES).where(
                                tuple_(_PRICES.c.article_code, _PRICES.c.price_list).in_(dropped)
                            )
                        )
                    _bulk_insert(
                        conn, _PRICES.name, ("article_code", "price_list", "price"), prices,
                        conflict=["article_code", "price_list"] if upsert else (),
                        update=["price"],
                    )  # fmt: skip

                if not existing and conn.dialect.name == "postgresql":
                    # no record of the page is stored: its rows are copied straight in,
                    # without a staging table and a conflict check. A PARTIAL (which
                    # takes no lease) may have stored one of them since the look-up:
                    # then the page goes the upsert way after all.
                    try:
                        with conn.begin_nested():
                            put(upsert=False)
                    except Exception as exc:
                        if not _unique_violation(exc):
                            raise
                        put(upsert=True)
                else:
                    put(upsert=True)
            if gone:
                conn.execute(delete(t).where(*part, t.c.code.in_(gone)))
                if spec.name == "articles":
                    conn.execute(delete(_PRICES).where(_PRICES.c.article_code.in_(gone)))
            if inserted:  # one entry a record, made by the database from the keys
                self._log_inserted(conn, at, spec, inserted)
            if changes:
                _bulk_insert(conn, "change_log", _CHANGE_COLUMNS, changes)
            if spec.main:
                if rejected_keys:
                    conn.execute(
                        self._retry_upsert(conn),
                        [
                            {"entity": spec.name, "key": k, "run_id": self.run_id}
                            for k in sorted(rejected_keys)
                        ],
                    )
                done = retry_all and [
                    k for k in (*keys, *removed) if k in retry_all and k not in rejected_keys
                ]
                if done:
                    conn.execute(
                        delete(_RETRY).where(_RETRY.c.entity == spec.name, _RETRY.c.key.in_(done))
                    )
            # a page that changed the store writes the counts with its changes, so that
            # a run killed at any moment is recorded with what it committed; pages of
            # unchanged records, at most once a second
            if (
                added["inserted"] or added["updated"] or added["deleted"] or added["rejected"]
            ) or time.monotonic() >= self._counts_due:
                self._write_counts(conn, spec.name, added)
        _add_counts(counts, added)  # only now that the page is in

    def _log_inserted(self, conn: Connection, at: Any, spec: EntitySpec, keys: list[str]) -> None:
        """The change-log entries of these new records, in their order: one statement
        with the keys as one parameter, which the database spreads into rows (a tenth
        of the work of binding each entry's columns from here)."""
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "INSERT INTO change_log (run_id, at, entity, key, change) SELECT %s, %s, %s,"
                " k, 'inserted' FROM unnest(%s::varchar[]) WITH ORDINALITY AS u(k, n) ORDER BY n",
                (self.run_id, at, spec.name, keys),
            )
        elif _SQLITE_JSON:
            conn.exec_driver_sql(
                'INSERT INTO change_log (run_id, at, entity, "key", change) SELECT ?, ?, ?,'
                " value, 'inserted' FROM json_each(?) ORDER BY key",
                (self.run_id, at, spec.name, orjson.dumps(keys).decode()),
            )
        else:
            rows = [self._change(at, spec, k, "inserted") for k in keys]
            _bulk_insert(conn, "change_log", _CHANGE_COLUMNS, rows)

    def _write_counts(
        self, conn: Connection, entity: str | None = None, added: Mapping[str, int] | None = None
    ) -> None:
        """The run record's counts, for whoever watches from elsewhere and for a run
        killed before its end (which writes them all): with every page that changed the
        store, else at most once a second. `added`: the counts of the entity's page being
        written in the same transaction, not yet in the run's counts."""
        self._counts_due = time.monotonic() + 1.0
        conn.execute(
            update(_RUNS)
            .where(_RUNS.c.id == self.run_id)
            .values(counts=json.dumps(self._counts_with(entity, added)))
        )

    def _counts_with(
        self, entity: str | None, added: Mapping[str, int] | None
    ) -> dict[str, dict[str, int]]:
        """The run's counts with a page's, not yet added, added."""
        if entity is None or not added:
            return self.counts
        mine = dict(self.counts.get(entity) or empty_counts())
        for name, n in added.items():
            mine[name] = mine.get(name, 0) + n
        return {**self.counts, entity: mine}

    def _retry_upsert(self, conn: Connection) -> Any:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        ins = dialect.insert(_RETRY)
        return ins.on_conflict_do_update(
            index_elements=["entity", "key"], set_={"run_id": ins.excluded.run_id}
        )

    def _keep_would_change(
        self, spec: EntitySpec, inserted: Sequence[str], changes: Sequence[tuple[Any, ...]]
    ) -> None:
        """A dry run's page: what it would have written to the change log, kept (up to
        DRY_CHANGES_KEPT) for its result."""
        room = DRY_CHANGES_KEPT - len(self._would_change)
        if room <= 0:
            return
        kept = [(spec.name, k, "inserted", None, None, None) for k in inserted[:room]]
        kept += [(c[2], c[3], c[4], c[5], c[6], c[7]) for c in changes[: room - len(kept)]]
        self._would_change.extend(kept)

    def _change(
        self,
        at: Any,  # already in the driver's form (see _bound_now)
        spec: EntitySpec,
        key: str,
        change: str,
        field_name: str | None = None,
        old: str | None = None,
        new: str | None = None,
    ) -> tuple[Any, ...]:
        return (self.run_id, at, spec.name, key, change, field_name, old, new)

    def _delete_unseen(
        self, conn: Connection, spec: EntitySpec, counts: dict[str, int], dry_run: bool
    ) -> None:
        """The ERP no longer has these records: one anti-join, not a look at every row."""
        t = spec.table
        part = self._where_part(spec)
        unseen = and_(
            *part,
            ~exists().where(_SEEN.c.entity == spec.name, _SEEN.c.key == t.c.code),
        )
        begin = conn.begin() if dry_run else self.store.write(conn)
        with begin:
            if conn.dialect.name == "postgresql":
                # a temporary table has no statistics until asked: the planner needs them
                # to hash the keys seen rather than scan them once per stored row
                conn.exec_driver_sql("ANALYZE pwt_seen")
            n = conn.execute(select(func.count()).select_from(t).where(unseen)).scalar_one()
            if not dry_run and n:
                self._delete_rows(conn, spec, unseen, n)
            if not dry_run:
                # a rejected record the ERP no longer has (or no longer flags for the
                # site) is not fetched again by every later CHANGED
                conn.execute(
                    delete(_RETRY).where(
                        _RETRY.c.entity == spec.name,
                        ~exists().where(_SEEN.c.entity == spec.name, _SEEN.c.key == _RETRY.c.key),
                    )
                )
            if dry_run and n:  # the codes only, and only of a dry run
                self._dry_gone.setdefault(spec.name, set()).update(
                    conn.execute(select(t.c.code).where(unseen)).scalars()
                )
            room = DRY_CHANGES_KEPT - len(self._would_change)
            if dry_run and n and room > 0:
                gone = conn.execute(
                    select(t.c.code).where(unseen).order_by(t.c.code).limit(room)
                ).scalars()
                self._keep_would_change(
                    spec, [], [self._change(None, spec, k, "deleted") for k in gone]
                )
        counts["deleted"] += n  # once they are gone (a dry run's: once counted)

    def _delete_rows(self, conn: Connection, spec: EntitySpec, unseen: Any, n: int) -> None:
        """The unseen rows' deletion, logged, with the run's counts as they will be."""
        t = spec.table
        now = utcnow()
        conn.execute(
            insert(_CHANGES).from_select(
                ["run_id", "at", "entity", "key", "change"],
                select(
                    literal(self.run_id),
                    literal(now, _CHANGES.c.at.type),
                    literal(spec.name),
                    t.c.code,
                    literal("deleted"),
                ).where(unseen),
            )
        )
        if spec.name == "articles":
            conn.execute(
                delete(_PRICES).where(
                    ~exists().where(
                        _SEEN.c.entity == spec.name, _SEEN.c.key == _PRICES.c.article_code
                    )
                )
            )
        conn.execute(delete(t).where(unseen))
        conn.execute(
            update(_RUNS)
            .where(_RUNS.c.id == self.run_id)
            .values(counts=json.dumps(self._counts_with(spec.name, {"deleted": n})))
        )

    # --- the run record ---------------------------------------------------------------

    def _create_run(
        self,
        kind: str,
        requested: str,
        origin: str,
        scope: Scope | None,
        dry_run: bool,
        started: datetime,
        refills: Mapping[str, str],
    ) -> int:
        with self.store.write() as conn:
            for name, token in refills.items():  # in the same transaction as the run
                set_state(conn, REFILL_PREFIX + name, token)
            result = conn.execute(
                insert(_RUNS)
                .values(
                    kind=kind,
                    requested_kind=requested,
                    origin=origin,
                    scope=json.dumps(scope.to_json()) if scope else None,
                    dry_run=dry_run,
                    status="running",
                    started=started,
                    counts="{}",
                    message="; ".join(self._messages) or None,
                )
                .returning(_RUNS.c.id)
            )
            run_id = int(result.scalar_one())
            if self._lease is None:  # marked alive in the same transaction: never without
                self._mark = RunMark(self.store, self.options.lease_seconds, run_id)
                self._mark.insert(conn)
            return run_id

    def _record_failure_only(self, error: str, finished: datetime) -> None:
        """After the run's end could not be recorded (a full disk, say): the least of it,
        its failure and the error, one small update in place, which may still go in
        where the whole end did not. Otherwise the next run would record it only as
        interrupted, the error that stopped it lost. Best effort: nothing moves."""
        try:
            with self.store.write() as conn:
                conn.execute(
                    update(_RUNS)
                    .where(_RUNS.c.id == self.run_id, _RUNS.c.status == "running")
                    .values(status="failed", finished=finished, error=error[:2000])
                )
        except Exception:
            log.debug("recording the failure of run %s failed", self.run_id, exc_info=True)

    def _finish(
        self,
        status: str,
        error: str | None,
        finished: datetime,
        kind: str,
        scope: Scope | None,
        refill: Mapping[str, str | None],
        dry_run: bool,
    ) -> tuple[str, str | None]:
        """Record the run's end (and move the watermark, and the resource step's, after a
        good TOTAL or CHANGED); returns the status and error as recorded."""
        with self.store.write() as conn:
            if conn.dialect.name == "postgresql":
                # the end of a run is worth waiting for: a lock held past the store's
                # usual lock timeout left the run `running` and read as interrupted
                conn.exec_driver_sql(FINISH_LOCK_WAIT)
            moves = (
                status in ("ok", "ok_with_rejects") and kind in ("total", "changed") and not dry_run
            )
            if moves and self._lease is not None and not self._lease.held(conn):
                # another run took the lease over (this one stalled past its expiry): what
                # this one wrote stays, but the watermark is that run's to move
                moves = False
                status, error = "failed", "the lease was taken over by another run"
            if moves:
                clock = self.erp_clock or datetime.now()
                mark = clock - timedelta(minutes=self.options.overlap_minutes)
                set_state(conn, WATERMARK, _stamp(mark))
                set_state(conn, LAST_OK_RUN, str(self.run_id))
                set_state(conn, SITE_RULES, _rules_text(self.options.rules))
                if self._resources_since is not None:
                    from passweb_tui.engine.orders.resources import set_resources_since

                    set_resources_since(conn, self._resources_since)
                for name, token in refill.items():
                    # only the requests this run read: one made meanwhile waits for the next
                    clear_state_if(conn, REFILL_PREFIX + name, token)
                cutoff = finished - timedelta(days=self.options.change_log_days)
                conn.execute(delete(_CHANGES).where(_CHANGES.c.at < cutoff))
            conn.execute(
                update(_RUNS)
                .where(_RUNS.c.id == self.run_id)
                .values(
                    status=status,
                    finished=finished,
                    error=error,
                    counts=json.dumps(self.counts),
                    orders=json.dumps({"orders": self.orders, "customers": self.customers}),
                    message="; ".join(self._messages) or None,
                )
            )
        return status, error


_CHANGE_COLUMNS = ("run_id", "at", "entity", "key", "change", "field", "old", "new")
#: PostgreSQL: the transaction recording a run's end waits at least 5 minutes for a lock
#: (longer, or for ever, where the session's own lock timeout says so)
FINISH_LOCK_WAIT = (
    "SELECT set_config('lock_timeout', CASE WHEN setting::bigint = 0"
    " OR setting::bigint >= 300000 THEN setting ELSE '300000' END, true)"
    " FROM pg_settings WHERE name = 'lock_timeout'"
)
# json_each is built into SQLite from 3.38 (older builds may lack it)
_SQLITE_JSON = sqlite3.sqlite_version_info >= (3, 38)


#: the site settings the store's rows were last made under (see _rules_text)
SITE_RULES = "site_rules"


def _last_full_read(conn: Connection, entity: str) -> int:
    """How many records of the entity the last TOTAL that ended well read (0 if none)."""
    counts = conn.execute(
        select(_RUNS.c.counts)
        .where(
            _RUNS.c.kind == "total",
            _RUNS.c.status.in_(("ok", "ok_with_rejects")),
            _RUNS.c.dry_run.is_(False),
        )
        .order_by(_RUNS.c.id.desc())
        .limit(1)
    ).scalar()
    try:
        fetched = json.loads(counts or "{}").get(entity, {}).get("fetched", 0)
        return fetched if isinstance(fetched, int) else 0
    except (ValueError, AttributeError):
        return 0


#: the tables whose records a dry run would write are noted (see _dry_put): the lookup
#: tables that records link to, and the records whose links are checked
_DRY_PUT_NOTED = frozenset({"categories", "payments", "price_lists", "currencies", "articles",
                            "customers"})  # fmt: skip


@functools.cache
def _page_lock_key(entity: str) -> int:
    """The PostgreSQL advisory lock that a page of `entity` is written under."""
    return zlib.crc32(f"passweb-tui page of {entity}".encode())


def _add_counts(counts: dict[str, int], added: Mapping[str, int]) -> None:
    for name, n in added.items():
        counts[name] = counts.get(name, 0) + n


def _few(keys: Sequence[str], shown: int = 10) -> str:
    """Some keys for a message: the first few, and how many more there are."""
    text = ", ".join(keys[:shown])
    return f"{text} and {len(keys) - shown} more" if len(keys) > shown else text


def _rules_text(rules: SiteRules) -> str:
    return (
        f"site_no={rules.site_no} publish_predeleted={str(rules.publish_predeleted).lower()}"
        f" category_mode={rules.category_mode}"
    )


def _rules_entities(before: str, now: str) -> list[str]:
    """The main tables whose rows a change of site settings decides: the site number
    decides every one (its transfer flags), the rest only the articles."""
    site = [p for p in before.split() if p.startswith("site_no=")]
    if site and site[0] not in now.split():
        return list(MAIN_ENTITIES)
    return ["articles"]


def retry_message(exc: Exception, attempt: int, retries: int, delay: float) -> str:
    """One line for a request tried again: what went wrong, in short, and when next."""
    from passweb_tui.engine.erp import errors

    said: dict[type[Exception], str] = {
        errors.PoolExhaustedError: "the ERP is busy",
        errors.ErpTimeoutError: "the ERP did not answer in time",
        errors.ErpConnectionError: "the connection to the ERP failed",
        errors.LinkDownError: "the ERP failed to serve a request",
    }
    why = said.get(type(exc), "a request to the ERP failed")
    return f"{why}: trying again in {delay:.1f} s ({attempt} of {retries})"


def _unanswered(pushed: Any) -> str | None:
    """The first failure of a push none of whose records got an answer from the ERP
    (each failed for want of one, or waits for a new customer that did), or None."""
    if not pushed.unreachable or pushed.customers_sent or pushed.orders_sent:
        return None
    if pushed.orders_recovered:
        return None
    unreachable = set(pushed.unreachable)
    first = None
    for entity, ident, why in pushed.errors:
        held_by = pushed.held.get(ident) if entity == "order" else None
        if (entity, ident) in unreachable:
            first = first or why
        elif held_by is None or ("customer", held_by) not in unreachable:
            return None  # this one got an answer (a refusal)
    return first


def failure_text(exc: BaseException) -> str:
    """What a run's record (and the screens) say about the error that stopped it: the
    error and its message on one line. A database error says what the database said,
    without the statement, its parameters or the lines below (store.database_words);
    the log keeps the whole error."""
    from sqlalchemy.exc import DBAPIError

    from passweb_tui.engine.store import database_words

    words = database_words(exc)
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = words if words is not None else " ".join(str(cause).split())
    if len(text) > 500:
        text = text[:499] + "…"
    kind = cause.__class__.__name__
    if words is not None or isinstance(exc, DBAPIError):
        return f"database error ({kind}): {text}"
    return f"{kind}: {text}"


def _bound_now(conn: Connection, now: datetime) -> Any:
    """`now` as the change log's `at` column binds it, computed once per page."""
    return _bind(conn, _CHANGES.c.at, now)


def _bulk_insert(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    on_conflict_do_nothing: bool = False,
    conflict: Sequence[str] = (),
    update: Sequence[str] = (),
) -> None:
    """Many rows of plain, already-bound values in one executemany (optionally an upsert:
    the same ON CONFLICT syntax serves SQLite and PostgreSQL), without the per-row
    parameter processing of a Core insert, which dominates a first TOTAL."""
    if not rows:
        return
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(quote(c) for c in columns)
    sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(mark for _ in columns)})"
    tail = ""
    if on_conflict_do_nothing:
        tail = " ON CONFLICT DO NOTHING"
    elif conflict:
        sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in update)
        tail = f" ON CONFLICT ({', '.join(quote(c) for c in conflict)}) DO UPDATE SET {sets}"
    if conn.dialect.name == "postgresql" and len(rows) >= _COPY_FROM:
        _copy_rows(conn, table, names, rows, tail)
        return
    # one prepared statement for every row: a loop in C on SQLite
    conn.exec_driver_sql(sql + tail, list(rows))


_COPY_FROM = 20  # rows; fewer go as one executemany


def _unique_violation(exc: BaseException) -> bool:
    """Whether a database error is a duplicate key (from the driver, or wrapped)."""
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlstate", None) == "23505"


def _copy_rows(
    conn: Connection, table: str, names: str, rows: Sequence[tuple[Any, ...]], tail: str
) -> None:
    """PostgreSQL: the rows by COPY, about ten times less work per row than a pipelined
    executemany (measured: 0.7 against 9 µs). COPY cannot resolve conflicts, so rows
    that may meet existing ones are copied to a temporary staging table (emptied at
    every commit) and moved by one INSERT ... SELECT with the ON CONFLICT clause."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        target = table
        if tail:
            target = f"pwt_stage_{table}"
            staged: set[str] = conn.info.setdefault("pwt_staging", set())
            if target not in staged:
                cur.execute(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {target} (LIKE {table}) "
                    "ON COMMIT DELETE ROWS"
                )
                staged.add(target)
        with cur.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        if tail:
            cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {target}{tail}")
            cur.execute(f"DELETE FROM {target}")


def stored_field(data: Any, name: str, dialect: str) -> Any:
    """SQL for one field of a record's stored data (its JSON text), as text: a number
    as its digits (the data holds it canonical: 1, never 1.0), None when absent."""
    if dialect == "postgresql":
        return func.jsonb_extract_path_text(cast(data, postgresql.JSONB), name)
    return cast(func.json_extract(data, f'$."{name}"'), String)


def _bind(conn: Connection, column: Column[Any], value: Any) -> Any:
    """One value as the driver takes it for this column (for values shared by a page)."""
    proc = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return proc(value) if proc else value


def _convert(
    conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """Apply the column types' bind processing where the driver needs it (decimals on
    SQLite); other values go as they are."""
    procs = []
    for i, name in enumerate(columns):
        col = table.c[name]
        if isinstance(col.type, Numeric | ExactNumeric):
            proc = col.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
            if proc is not None:
                procs.append((i, proc))
    if not procs:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for i, proc in procs:
            if values[i] is not None:
                values[i] = proc(values[i])
        out.append(tuple(values))
    return out


def _site_flag_in_text(text: bytes, name: str, site_no: int) -> bool | None:
    """Whether a record's per-site array (its text as received) flags it for this site;
    None when the text does not show it plainly (then the record is decoded)."""
    found = _flag_pattern(name).findall(text)
    if len(found) != 1:
        return None
    try:
        pairs = orjson.loads(found[0])
    except orjson.JSONDecodeError:
        return None
    return site_flag_of(pairs, site_no)


@functools.cache
def _flag_pattern(name: str) -> re.Pattern[bytes]:
    # the field's name (the first field of a cut piece has lost its opening quote) and an
    # array of flat arrays
    return re.compile(re.escape(name.encode()) + rb'":(\[(?:\[[^\[\]]*\],?)*\])')


@functools.cache
def _digests_sql(table: str, partition: tuple[str, ...], n: int, mark: str) -> str:
    where = "".join(f" AND {col} = {mark}" for col in partition)
    if n == 0:  # PostgreSQL: the keys as one array
        return f"SELECT code, digest FROM {table} WHERE code = ANY({mark}){where}"
    return f"SELECT code, digest FROM {table} WHERE code IN ({', '.join([mark] * n)}){where}"


@functools.cache
def _span_sql(table: str, partition: tuple[str, ...], mark: str) -> str:
    where = "".join(f" AND {col} = {mark}" for col in partition)
    return (
        f"SELECT code, digest FROM {table} WHERE code >= {mark} AND code <= {mark}{where}"
        f" ORDER BY code LIMIT {mark}"
    )


def _digests_by_span(conn: Connection, spec: EntitySpec, keys: list[str]) -> dict[str, str]:
    """Stored digests for the keys of a page of a full pass: one index range read from
    the page's first key to its last (pages come in key order, and a store that is in
    step holds the same keys there), then an exact look-up of the keys the range did not
    give. That also covers a database whose collation orders the keys otherwise, and
    the range is cut at twice the page, so it never reads much more than the page."""
    if not keys:
        return {}
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    sql = _span_sql(spec.table.name, tuple(col for col, _ in spec.partition), mark)
    part = [value for _, value in spec.partition]
    found = _pairs(conn, sql, [min(keys), max(keys), *part, 2 * len(keys) + 16])
    wanted = set(keys)
    existing = {k: d for k, d in found.items() if k in wanted}
    missing = [k for k in keys if k not in existing]
    if missing:
        existing.update(_digests(conn, spec, missing))
    return existing


def _digests(conn: Connection, spec: EntitySpec, keys: list[str]) -> dict[str, str]:
    """Stored digest by key, for these keys: one statement on the driver's own cursor
    (the SQL is made once per table and count of keys, and the rows stay plain tuples)."""
    columns = tuple(col for col, _ in spec.partition)
    if conn.dialect.name == "postgresql":
        # one array parameter: planned once, not a thousand placeholders per page
        sql = _digests_sql(spec.table.name, columns, 0, "%s")
        params: list[Any] = [keys]
    else:
        sql = _digests_sql(spec.table.name, columns, len(keys), "?")
        params = list(keys)
    return _pairs(conn, sql, [*params, *(value for _, value in spec.partition)])


def _pairs(conn: Connection, sql: str, params: list[Any]) -> dict[str, str]:
    """A two-column query's rows as a dict, on the driver's own cursor (plain tuples)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())
    finally:
        cursor.close()


def _picker(columns: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function giving these keys' values of a dict, as a tuple (None where missing)."""
    names = tuple(columns)
    return lambda d: tuple(map(d.get, names))


def _money(conn: Connection) -> Callable[[Any], Any]:
    """A price (Decimal, or an int or float decoded exactly) as the driver takes it for
    a NUMERIC column: a float on SQLite (what SQLAlchemy's Numeric binds there), a
    Decimal with the number's own digits on PostgreSQL."""
    if conn.dialect.name == "sqlite":
        return float
    return lambda v: v if type(v) is Decimal else Decimal(repr(v) if type(v) is float else v)


_gc_lock = threading.Lock()
_gc_runs = 0
_gc_saved: tuple[int, int, int] = (700, 10, 10)


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """The cycle collector, much less often while a run is on.

    A page of ERP records is tens of thousands of new lists and dicts, none in a cycle;
    at the default threshold they start a collection every 700 allocations, and the
    older generations behind them are scanned again and again (measured: a third of the
    time of a paging). Objects from before the run are frozen out of every scan, and
    the first generation is collected every 50,000 allocations instead of 700; both
    settings come back when the last run in the process ends."""
    global _gc_runs, _gc_saved
    with _gc_lock:
        if _gc_runs == 0:
            _gc_saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(_gc_saved[0], 50_000), _gc_saved[1], _gc_saved[2])
        _gc_runs += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_runs -= 1
            if _gc_runs == 0:
                gc.set_threshold(*_gc_saved)
                gc.unfreeze()


class _Later:
    """An iterable built only when iteration starts (after the pages before it)."""

    def __init__(self, make: Callable[[], Iterator[Any]]) -> None:
        self._make = make

    def __iter__(self) -> Iterator[Any]:
        return iter(self._make())


def row_to_result(row: Mapping[str, Any]) -> RunResult:
    """A stored run as a RunResult."""

    def aware(v: datetime | None) -> datetime | None:
        if v is None:
            return None
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    orders = json.loads(row["orders"]) if row.get("orders") else None
    entities, off_site = split_counts(json.loads(row["counts"] or "{}"))
    result = RunResult(
        row["id"],
        row["kind"],
        row["requested_kind"],
        row["origin"],
        json.loads(row["scope"]) if row["scope"] else None,
        row["status"],
        bool(row["dry_run"]),
        aware(row["started"]) or utcnow(),
        aware(row["finished"]),
        entities=entities,
        off_site=off_site,
        error=row["error"],
        message=row["message"],
    )
    if orders:
        result.orders = orders.get("orders", result.orders)
        result.customers = orders.get("customers", result.customers)
    return result
