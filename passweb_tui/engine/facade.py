"""The engine as the UI and the commands see it: start and watch runs, read the store.

Plain objects and callbacks only (no Textual); runs go on in a worker thread and
report through `ProgressEvent`s.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.engine import Connection

from passweb_tui.engine import fields as fields_mod
from passweb_tui.engine.fields import FieldRow, FieldsError
from passweb_tui.engine.lease import (
    LeaseInfo,
    LeaseRefused,
    holder_alive,
    last_lease,
    live_marks,
    read_lease,
)
from passweb_tui.engine.models import (
    Article,
    ArticlePrice,
    Category,
    ChangeEntry,
    Condition,
    Customer,
    Payment,
    PriceList,
    SyncReject,
    SyncRun,
    storable_id,
)
from passweb_tui.engine.orders.models import WebCustomer, WebOrder
from passweb_tui.engine.records import MAIN_ENTITIES, SiteRules, plain_money
from passweb_tui.engine.state import LAST_OK_RUN, WATERMARK, get_state
from passweb_tui.engine.store import Store, StoreError, open_store
from passweb_tui.engine.sync import (
    DRY_CHANGES_KEPT,
    INTERRUPTED,
    CancelEvent,
    ProgressEvent,
    RunResult,
    Scope,
    SyncError,
    SyncOptions,
    SyncRunner,
    failure_text,
    row_to_result,
    takes_lease,
)

if TYPE_CHECKING:
    from passweb_tui.config import Settings
    from passweb_tui.engine.erp.client import MexalClient
    from passweb_tui.engine.erp.settings import ErpConfig
    from passweb_tui.engine.orders.push import PushResult

__all__ = [
    "DRY_CHANGES_KEPT",
    "CategoryNode",
    "ChangeView",
    "Dashboard",
    "Engine",
    "EngineSettings",
    "FieldRow",
    "FieldsError",
    "LaunchRefused",
    "LeaseInfo",
    "ProgressEvent",
    "RejectView",
    "RunDetail",
    "RunHandle",
    "RunResult",
    "Scope",
    "StoreError",
    "SyncError",
    "failure_text",
]

_RUNS = SyncRun.__table__  # type: ignore[attr-defined]
_CHANGES = ChangeEntry.__table__  # type: ignore[attr-defined]
_REJECTS = SyncReject.__table__  # type: ignore[attr-defined]
_ARTICLES = Article.__table__  # type: ignore[attr-defined]
_PRICES = ArticlePrice.__table__  # type: ignore[attr-defined]
_CATEGORIES = Category.__table__  # type: ignore[attr-defined]
_CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
_PRICE_LISTS = PriceList.__table__  # type: ignore[attr-defined]
_PAYMENTS = Payment.__table__  # type: ignore[attr-defined]
_CONDITIONS = Condition.__table__  # type: ignore[attr-defined]
_WEB_ORDERS = WebOrder.__table__  # type: ignore[attr-defined]
_WEB_CUSTOMERS = WebCustomer.__table__  # type: ignore[attr-defined]
#: change-log rows read from the store at a time when entries are streamed
CHANGES_BATCH = 2000
#: the most particolarita a record view reads
RECORD_CONDITIONS = 200
#: the most web orders of a customer a record view reads
RECORD_ORDERS = 5


class LaunchRefused(Exception):
    """A TOTAL/CHANGED could not start: another holds the lease (message says which, since when)."""

    def __init__(self, message: str, info: LeaseInfo | None = None) -> None:
        super().__init__(message)
        self.info = info


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs: the store, the ERP (lazily), and the sync settings."""

    db_url: str
    erp: ErpConfig | Callable[[], ErpConfig] | None = None
    options: SyncOptions = field(default_factory=SyncOptions)
    #: TOTAL+CHANGED runs a month (0: no limit), the months counted in this IANA zone
    #: ("" for local time); checked by launches that ask for it (start_run(quota=True))
    monthly_quota: int = 0
    quota_zone: str = ""
    #: the store is the default one (in the data folder), whose folder is made if missing
    make_folder: bool = False

    @classmethod
    def from_settings(
        cls, settings: Settings, erp: ErpConfig | Callable[[], ErpConfig] | None = None
    ) -> EngineSettings:
        options = SyncOptions(
            rules=SiteRules(
                site_no=settings.site_no,
                publish_predeleted=settings.publish_predeleted,
                category_mode=settings.category_mode,
            ),
            overlap_minutes=settings.overlap_minutes,
            lease_seconds=float(settings.lease_seconds),
            change_log_days=settings.change_log_days,
            update_descriptions=dict(settings.update_descriptions),
            resources_dir=settings.site_data_dir / "resources",
            resources_mode=settings.resources,
            remove_missing_resources=settings.remove_missing_resources,
            customer_ledger=settings.customer_ledger,
            order_document=settings.order_document,
            order_series=settings.order_series,
            crash_wait_seconds=float(settings.crash_wait_seconds),
            match_erp_customers=settings.match_erp_customers,
            horeca=settings.horeca,
            site_timezone=settings.schedule_timezone,
        )
        return cls(
            settings.resolved_db_url,
            erp if erp is not None else settings.erp_config,
            options,
            monthly_quota=settings.monthly_quota,
            quota_zone=settings.schedule_timezone,
            make_folder=settings.default_store,
        )


@dataclass(frozen=True)
class ChangeView:
    id: int
    run_id: int
    at: datetime
    entity: str
    key: str
    change: str
    field: str | None
    old: str | None
    new: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "entity": self.entity,
            "key": self.key,
            "change": self.change,
            "field": self.field,
            "old": self.old,
            "new": self.new,
        }


@dataclass(frozen=True)
class RejectView:
    run_id: int
    entity: str
    key: str | None
    reason: str


@dataclass(frozen=True)
class RunDetail:
    run: RunResult
    rejects: list[RejectView]
    change_counts: list[tuple[str, str, int]]
    erp_clock: datetime | None


@dataclass(frozen=True)
class CategoryNode:
    code: str
    description: str | None
    parent: str | None
    web: bool
    article_count: int


@dataclass(frozen=True)
class RecordDetail:
    """One article or customer as the site store holds it."""

    entity: str
    code: str
    #: the store's own columns (description, category, published...; name, e-mail...)
    columns: dict[str, Any]
    #: the ERP fields the site uses, as stored
    data: dict[str, Any]
    #: an article's prices: (price list, its description, price as text)
    prices: list[tuple[int, str | None, str]]
    #: descriptions of the codes it links to: "category", "price_list", "payment"
    names: dict[str, str | None]
    synced_at: datetime
    #: the newest change-log entry of the record: (run, when), None if it has none
    last_change: tuple[int, datetime] | None
    #: particolarita: a customer's own, or those of any customer on an article (by its
    #: code or its category); each with customer, kind, article, article_group, price
    #: (text or None) and discount; at most RECORD_CONDITIONS of them
    conditions: list[dict[str, Any]] = field(default_factory=list)
    #: a customer's web orders, newest first (id, state, created, erp_key), at most
    #: RECORD_ORDERS of them, and how many it has in all
    orders: list[dict[str, Any]] = field(default_factory=list)
    order_count: int = 0

    def to_json(self) -> dict[str, Any]:
        """The record as `passweb-tui show --json` prints it: plain JSON values, amounts
        as decimal text, moments as ISO-8601."""

        def plain(value: Any) -> Any:
            if isinstance(value, Decimal):
                return str(plain_money(value))
            if isinstance(value, datetime):
                return (_aware(value) or value).isoformat()
            return value

        return {
            "entity": self.entity,
            "code": self.code,
            "columns": {k: plain(v) for k, v in self.columns.items()},
            "data": self.data,
            "prices": [
                {"price_list": code, "description": name, "price": price}
                for code, name, price in self.prices
            ],
            "names": self.names,
            "conditions": self.conditions,
            "orders": self.orders,
            "order_count": self.order_count,
            "synced_at": plain(self.synced_at),
            "last_change": None
            if self.last_change is None
            else {"run_id": self.last_change[0], "at": plain(self.last_change[1])},
        }


@dataclass
class Dashboard:
    erp_state: str  # "ok", "failing" or "unknown" (from the last run)
    erp_detail: str
    last_success: datetime | None
    watermark: str | None
    articles: int
    published_articles: int
    customers: int
    categories: int
    last_runs: list[RunResult]
    field_changes: list[tuple[str, str, int]]  # of the last run that changed something
    lease: LeaseInfo | None
    #: the run that last_success is the end of
    last_success_run: int | None = None
    #: its kind (total, changed, partial), however many runs came after it
    last_success_kind: str | None = None
    #: every run going on now, newest first, however many runs came after it
    under_way: list[RunResult] = field(default_factory=list)


class RunHandle:
    """A run going on in a worker thread."""

    def __init__(self, run_id: int | None, cancel: threading.Event) -> None:
        self.run_id = run_id
        self._cancel = cancel
        self._done = threading.Event()
        self._result: RunResult | None = None
        self.error: BaseException | None = None

    def cancel(self, reason: str | None = None) -> None:
        """Stop the run at its next step; `reason` is recorded as its error (by default,
        that the operator cancelled it)."""
        if reason and isinstance(self._cancel, CancelEvent) and not self._cancel.is_set():
            self._cancel.reason = reason
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> RunResult | None:
        self._done.wait(timeout)
        return self._result

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _finish(self, result: RunResult | None, error: BaseException | None = None) -> None:
        self._result = result
        self.error = error
        self._done.set()


def _aware(v: datetime | None) -> datetime | None:
    if v is not None and v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    return v


def _run_row(conn: Connection, run_id: int) -> Any:
    """The run's row; SyncError when the store has no such run."""
    row = None
    if storable_id(run_id):
        row = conn.execute(select(_RUNS).where(_RUNS.c.id == run_id)).mappings().first()
    if row is None:
        raise SyncError(f"no run {run_id} in the store")
    return row


class Engine:
    """An open site store plus a (lazily built) ERP client."""

    def __init__(self, settings: EngineSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._client: MexalClient | None = None
        self._client_lock = threading.Lock()
        #: the field counts of the last finished run that changed anything, by its id:
        #: the dashboard shows them at every refresh, and for a run that changed millions
        #: of fields counting them again takes a second or two
        self._run_counts: tuple[int, list[tuple[str, str, int]]] | None = None

    @classmethod
    def open(cls, settings: EngineSettings) -> Engine:
        """Open and migrate the store; the ERP client is built on first use."""
        return cls(settings, open_store(settings.db_url, settings.make_folder))

    # --- the ERP ------------------------------------------------------------------------

    def client(self) -> MexalClient:
        with self._client_lock:
            if self._client is None:
                from passweb_tui.engine.erp.client import MexalClient

                erp = self.settings.erp
                if erp is None:
                    raise StoreError("no ERP configured for this engine")
                config = erp() if callable(erp) else erp
                self._client = MexalClient(config)
            return self._client

    def push_orders(self, order_ids: Sequence[str]) -> PushResult:
        """Send these web orders (and their new customers) to the ERP now, exactly once,
        as a site does at checkout: no run is recorded; an order that cannot go waits,
        with its error, for the next sync."""
        from passweb_tui.engine.orders.api import WebOrders

        return WebOrders(self.store).push(
            self.client(), order_ids=list(order_ids), **self.settings.options.push_settings()
        )

    # --- runs -----------------------------------------------------------------------

    def _runner(
        self,
        on_event: Callable[[ProgressEvent], None] | None,
        cancel: threading.Event | None,
    ) -> SyncRunner:
        return SyncRunner(
            self.store, self.client(), self.settings.options, on_event=on_event, cancel=cancel
        )

    def _prepare(
        self, runner: SyncRunner, kind: str, scope: Scope | None, dry_run: bool, origin: str
    ) -> int:
        try:
            return runner.prepare(kind, scope=scope, dry_run=dry_run, origin=origin)
        except LeaseRefused as exc:
            raise LaunchRefused(str(exc), exc.info) from None

    def run(
        self,
        kind: str,
        *,
        scope: Scope | None = None,
        dry_run: bool = False,
        origin: str = "site",
        on_event: Callable[[ProgressEvent], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Run a sync in this thread; LaunchRefused or SyncError if it cannot start."""
        runner = self._runner(on_event, cancel)
        self._prepare(runner, kind, scope, dry_run, origin)
        return runner.execute()

    def quota_left(self) -> tuple[int, int] | None:
        """(TOTAL/CHANGED runs started this month, the monthly quota), or None when no
        quota is set."""
        if self.settings.monthly_quota <= 0:
            return None
        from passweb_tui.engine.service.quota import quota_status, site_zone

        status = quota_status(
            self.store, self.settings.monthly_quota, tz=site_zone(self.settings.quota_zone)
        )
        return status.used, status.quota

    def start_run(
        self,
        kind: str,
        *,
        scope: Scope | None = None,
        dry_run: bool = False,
        origin: str = "site",
        on_event: Callable[[ProgressEvent], None] | None = None,
        quota: bool = False,
    ) -> RunHandle:
        """Start a sync in a worker thread; raises LaunchRefused/SyncError before starting.
        With `quota`, a TOTAL/CHANGED beyond the monthly quota is refused too."""
        if quota and not dry_run:
            from passweb_tui.engine.service.quota import QuotaExhausted, check_quota, site_zone

            try:
                check_quota(
                    self.store,
                    self.settings.monthly_quota,
                    kind,
                    tz=site_zone(self.settings.quota_zone),
                )
            except QuotaExhausted as exc:
                raise LaunchRefused(str(exc)) from None
        cancel = CancelEvent()
        runner = self._runner(on_event, cancel)
        run_id = self._prepare(runner, kind, scope, dry_run, origin)
        handle = RunHandle(run_id, cancel)

        def work() -> None:
            try:
                handle._finish(runner.execute())
            except BaseException as exc:  # reported through the handle, never lost
                handle._finish(None, exc)

        threading.Thread(target=work, name=f"sync-run-{run_id}", daemon=True).start()
        return handle

    # --- reading ----------------------------------------------------------------------

    def data_mark(self) -> tuple[Any, ...]:
        """A cheap mark of what the syncs have done to the store: it differs once a run
        has started or ended since it was taken (in this process or any other), so a
        screen shown again knows whether what it shows may be out of date."""
        with self.store.read() as conn:
            row = conn.execute(
                select(func.max(_RUNS.c.id), func.max(_RUNS.c.finished), func.count())
            ).one()
        return tuple(row)

    def last_change_id(self) -> int | None:
        """The newest change-log entry's id (one step down its primary key): it moves as
        a run writes its changes, where data_mark moves only as a run starts or ends."""
        with self.store.read() as conn:
            newest = conn.execute(select(func.max(_CHANGES.c.id))).scalar()
        return None if newest is None else int(newest)

    def runs(self, limit: int = 50, offset: int = 0) -> list[RunResult]:
        """The recorded runs, newest first: `limit` of them, after the newest `offset`."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(_RUNS)
                .order_by(_RUNS.c.id.desc())
                .limit(max(limit, 0))
                .offset(max(offset, 0))
            ).mappings()
            results = [row_to_result(dict(r)) for r in rows]
        return self._interrupted(results)

    def runs_under_way(self, limit: int = 100) -> list[RunResult]:
        """The runs going on now, newest first (at most `limit`): a run recorded as
        running whose process is gone reads as failed and is left out (see
        `_interrupted`), so a run under way is never hidden by the runs after it."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(_RUNS)
                .where(_RUNS.c.status == "running")
                .order_by(_RUNS.c.id.desc())
                .limit(max(limit, 0))
            ).mappings()
            results = [row_to_result(dict(r)) for r in rows]
        return [r for r in self._interrupted(results) if r.status == "running"]

    def last_main_run(self) -> RunResult | None:
        """The newest TOTAL or CHANGED that was no dry run and is no longer going on
        (one whose process died reads as failed), however many runs came after it."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(_RUNS)
                .where(_RUNS.c.kind.in_(("total", "changed")), _RUNS.c.dry_run.is_(False))
                .order_by(_RUNS.c.id.desc())
                .limit(2)  # the newest may be the one going on
            ).mappings()
            results = self._interrupted([row_to_result(dict(r)) for r in rows])
        return next((r for r in results if r.status != "running"), None)

    def _interrupted(self, results: list[RunResult]) -> list[RunResult]:
        """Runs as they are: a run still marked running that lost its process (killed,
        crashed) reads as the failed run that the next TOTAL/CHANGED will record it as,
        instead of running for ever. A TOTAL/CHANGED has lost it when nobody holds the
        lease any more; another run (a PARTIAL, a dry run) when its mark is no longer live.
        A holder that ran on this machine is seen gone at once, and seen running however
        late its heartbeat (see lease.holder_alive)."""
        running = [r for r in results if r.status == "running"]
        if not running:
            return results
        lease = self.lease()
        # an expired lease still naming its run, whose holder is seen running on this
        # machine: a run whose heartbeat was held up, not a lost one (until another run
        # takes the lease over, which fences it)
        late = last_lease(self.store) if lease is None else None
        if late is not None and holder_alive(late.holder) is not True:
            late = None
        with self.store.read() as conn:
            alive = live_marks(conn)
        for r in running:
            if takes_lease(r.kind, r.dry_run):
                if lease is not None:
                    # a live lease not yet given its run (a run being set up) may be this one's
                    lost = lease.run_id is not None and lease.run_id != r.run_id
                else:
                    lost = late is None or late.run_id != r.run_id
            else:
                lost = r.run_id not in alive
            if lost:
                r.status, r.error = "failed", INTERRUPTED
        return results

    def run_result(self, run_id: int) -> RunResult:
        """The run as recorded, without its rejects and change counts (which take a while
        for a run that changed millions of fields); SyncError when there is no such run."""
        with self.store.read() as conn:
            row = _run_row(conn, run_id)
        (result,) = self._interrupted([row_to_result(dict(row))])
        return result

    def run_detail(self, run_id: int) -> RunDetail:
        with self.store.read() as conn:
            row = _run_row(conn, run_id)
            rejects = [
                RejectView(r.run_id, r.entity, r.key, r.reason)
                for r in conn.execute(
                    select(_REJECTS).where(_REJECTS.c.run_id == run_id).order_by(_REJECTS.c.id)
                )
            ]
        (result,) = self._interrupted([row_to_result(dict(row))])
        return RunDetail(result, rejects, self.change_counts(run_id=run_id), row["erp_clock"])

    def run_rejects(self, run_id: int, limit: int) -> tuple[list[RejectView], int]:
        """The first `limit` records a run rejected, in the order recorded, and how many
        it rejected in all."""
        r = _REJECTS.c
        if not storable_id(run_id):
            return [], 0
        with self.store.read() as conn:
            total = conn.execute(
                select(func.count()).select_from(_REJECTS).where(r.run_id == run_id)
            ).scalar_one()
            rows = conn.execute(
                select(r.run_id, r.entity, r.key, r.reason)
                .where(r.run_id == run_id)
                .order_by(r.id)
                .limit(max(limit, 0))
            )
            first = [RejectView(x.run_id, x.entity, x.key, x.reason) for x in rows]
        return first, int(total)

    def changes(self, **query: Any) -> list[ChangeView]:
        """Change-log entries, newest first, as a list (`iter_changes` tells the query)."""
        return list(self.iter_changes(**query))

    def iter_changes(
        self,
        *,
        run_id: int | None = None,
        entity: str | None = None,
        field: str | None = None,
        key: str | None = None,
        limit: int = 500,
        offset: int = 0,
        fields: Sequence[str] | None = None,
    ) -> Iterator[ChangeView]:
        """Change-log entries, newest first, one at a time, read from the store a batch of
        rows at a time in one read transaction: memory stays flat however many are asked
        for (an export of the whole log, millions of entries). `field` "(inserted)" or
        "(deleted)" (the labels change_counts gives whole records) picks the records
        inserted or deleted; `fields`, any of several such names (none: no entry)."""
        c = _CHANGES.c
        q = select(_CHANGES)
        if run_id is not None:
            q = q.where(c.run_id == run_id if storable_id(run_id) else false())
        if entity is not None:
            q = q.where(c.entity == entity)
        whole = {f"({kind})": kind for kind in ("inserted", "deleted")}
        if field is not None:
            fields = [field, *(fields or ())]
        if fields is not None:
            named = [f for f in fields if f not in whole]
            kinds = [whole[f] for f in fields if f in whole]
            q = q.where(
                or_(
                    c.field.in_(named) if named else false(),
                    and_(c.change.in_(kinds), c.field.is_(None)) if kinds else false(),
                )
            )
        if key is not None:
            q = q.where(c.key == key)
        q = q.order_by(c.id.desc()).limit(max(limit, 0)).offset(max(offset, 0))
        with self.store.read() as conn:
            rows = conn.execution_options(stream_results=True, yield_per=CHANGES_BATCH)
            for r in rows.execute(q):
                yield ChangeView(
                    r.id,
                    r.run_id,
                    _aware(r.at) or r.at,
                    r.entity,
                    r.key,
                    r.change,
                    r.field,
                    r.old,
                    r.new,
                )

    def change_counts(
        self, *, run_id: int | None = None, entity: str | None = None, key: str | None = None
    ) -> list[tuple[str, str, int]]:
        """(entity, field, count); inserted/deleted records count under "(inserted)"/"(deleted)".
        `key`: of the records with that key only."""
        c = _CHANGES.c
        label = func.coalesce(c.field, "(" + c.change + ")")
        q = select(c.entity, label, func.count()).group_by(c.entity, label)
        if run_id is not None:
            q = q.where(c.run_id == run_id if storable_id(run_id) else false())
        if entity is not None:
            q = q.where(c.entity == entity)
        if key is not None:
            q = q.where(c.key == key)
        with self.store.read() as conn:
            rows = [(e, f, int(n)) for e, f, n in conn.execute(q)]
        return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))

    def record_history(self, entity: str, key: str) -> list[ChangeView]:
        return self.changes(entity=entity, key=key, limit=10_000)

    def categories(self) -> list[CategoryNode]:
        counts = (
            select(_ARTICLES.c.category, func.count().label("n"))
            .group_by(_ARTICLES.c.category)
            .subquery()
        )
        q = (
            select(_CATEGORIES, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.category == _CATEGORIES.c.code)
            .order_by(_CATEGORIES.c.code)
        )
        with self.store.read() as conn:
            return [
                CategoryNode(r.code, r.description, r.parent, bool(r.web), int(r[-1]))
                for r in conn.execute(q)
            ]

    def record(self, entity: str, code: str) -> RecordDetail | None:
        """An article or a customer by its code, with what it links to; None when the
        store does not hold it."""
        if entity not in ("articles", "customers"):
            raise ValueError(f"no record view for {entity!r}: articles or customers")
        table = _ARTICLES if entity == "articles" else _CUSTOMERS
        private = {"data", "digest", "synced_at", "login", "password_hash"}
        with self.store.read() as conn:
            row = conn.execute(select(table).where(table.c.code == code)).first()
            if row is None:
                return None
            columns = {k: v for k, v in row._mapping.items() if k not in private}
            names: dict[str, str | None] = {}
            prices: list[tuple[int, str | None, str]] = []
            lists = {
                str(r.code): r.description
                for r in conn.execute(select(_PRICE_LISTS.c.code, _PRICE_LISTS.c.description))
            }
            if entity == "articles":
                if row.category is not None:
                    names["category"] = conn.execute(
                        select(_CATEGORIES.c.description).where(_CATEGORIES.c.code == row.category)
                    ).scalar_one_or_none()
                q = (
                    select(_PRICES.c.price_list, _PRICES.c.price)
                    .where(_PRICES.c.article_code == code)
                    .order_by(_PRICES.c.price_list)
                )
                prices = [
                    (int(p.price_list), lists.get(str(p.price_list)), str(plain_money(p.price)))
                    for p in conn.execute(q)
                ]
            else:
                if row.price_list is not None:
                    names["price_list"] = lists.get(str(row.price_list))
                if row.payment is not None:
                    names["payment"] = conn.execute(
                        select(_PAYMENTS.c.description).where(_PAYMENTS.c.code == row.payment)
                    ).scalar_one_or_none()
            k = _CONDITIONS.c
            if entity == "customers":
                which = k.customer == code
            elif row.category is not None:
                which = or_(k.article == code, k.article_group == row.category)
            else:
                which = k.article == code
            conditions = [
                {
                    "customer": r.customer,
                    "kind": r.kind,
                    "article": r.article,
                    "article_group": r.article_group,
                    "price": None if r.price is None else str(plain_money(r.price)),
                    "discount": r.discount,
                }
                for r in conn.execute(
                    select(_CONDITIONS)
                    .where(which)
                    # the same order on every database (SQLite sorts NULL first,
                    # PostgreSQL last): an article's own conditions, then its group's
                    .order_by(
                        k.customer, k.article.asc().nulls_last(), k.article_group.asc().nulls_last()
                    )
                    .limit(RECORD_CONDITIONS)
                )
            ]
            orders: list[dict[str, Any]] = []
            order_count = 0
            if entity == "customers":
                o, w = _WEB_ORDERS.c, _WEB_CUSTOMERS.c
                # its orders: by its code, or through the web customer it was created from
                its = or_(
                    o.customer_code == code,
                    o.web_customer_id.in_(select(w.id).where(w.erp_code == code)),
                )
                order_count = int(
                    conn.execute(
                        select(func.count()).select_from(_WEB_ORDERS).where(its)
                    ).scalar_one()
                )
                orders = [
                    {
                        "id": r.id,
                        "state": r.state,
                        "created": (_aware(r.created) or r.created).isoformat(),
                        "erp_key": r.erp_key,
                    }
                    for r in conn.execute(
                        select(o.id, o.state, o.created, o.erp_key)
                        .where(its)
                        .order_by(o.created.desc(), o.id.desc())
                        .limit(RECORD_ORDERS)
                    )
                ]
            c = _CHANGES.c
            last = conn.execute(
                select(c.run_id, c.at)
                .where(c.entity == entity, c.key == code)
                .order_by(c.id.desc())
                .limit(1)
            ).first()
        return RecordDetail(
            entity,
            code,
            columns,
            json.loads(row.data),
            prices,
            names,
            _aware(row.synced_at) or row.synced_at,
            (int(last.run_id), _aware(last.at) or last.at) if last is not None else None,
            conditions,
            orders,
            order_count,
        )

    def uncategorised_count(self) -> int:
        """How many articles are linked to no category the site has (none, or a code
        the store does not hold): the ones the category tree cannot show."""
        a = _ARTICLES.c
        q = select(func.count()).where(
            or_(a.category.is_(None), a.category.not_in(select(_CATEGORIES.c.code)))
        )
        with self.store.read() as conn:
            return int(conn.execute(q).scalar_one())

    def articles(
        self,
        *,
        search: str | None = None,
        category: str | None = None,
        categories: Sequence[str] | None = None,
        uncategorised: bool = False,
        limit: int = 200,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Articles by code: those whose code or description holds `search`, those of
        `category`, of any of `categories` (a branch of the tree), or with
        `uncategorised` those linked to no category the site has (none, or one the
        store does not hold)."""
        a = _ARTICLES.c
        q = select(a.code, a.description, a.category, a.vat, a.unit, a.published, a.data)
        if search:
            pattern = search.lower()  # "%" and "_" are themselves (autoescape below)
            q = q.where(
                or_(
                    func.lower(a.code).contains(pattern, autoescape=True),
                    func.lower(a.description).contains(pattern, autoescape=True),
                )
            )
        if category is not None:
            q = q.where(a.category == category)
        if categories is not None:
            q = q.where(a.category.in_(list(categories)))
        if uncategorised:
            q = q.where(or_(a.category.is_(None), a.category.not_in(select(_CATEGORIES.c.code))))
        q = q.order_by(a.code).limit(max(limit, 0)).offset(max(offset, 0))
        with self.store.read() as conn:
            rows = conn.execute(q).all()
            codes = [r.code for r in rows]
            prices: dict[str, dict[int, str]] = {}
            if codes:
                for p in conn.execute(select(_PRICES).where(_PRICES.c.article_code.in_(codes))):
                    price = plain_money(p.price)
                    prices.setdefault(p.article_code, {})[p.price_list] = str(price)
        return [
            {
                "code": r.code,
                "description": r.description,
                "category": r.category,
                "vat": r.vat,
                "unit": r.unit,
                "published": bool(r.published),
                "prices": prices.get(r.code, {}),
                "data": json.loads(r.data),
            }
            for r in rows
        ]

    def customers(
        self, *, search: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[dict[str, Any]]:
        c = _CUSTOMERS.c
        q = select(
            c.code,
            c.name,
            c.vat_number,
            c.tax_code,
            c.email,
            c.city,
            c.price_list,
            c.payment,
            c.data,
        )
        if search:
            pattern = search.lower()  # "%" and "_" are themselves (autoescape below)
            q = q.where(
                or_(
                    func.lower(c.code).contains(pattern, autoescape=True),
                    func.lower(c.name).contains(pattern, autoescape=True),
                    func.lower(c.vat_number).contains(pattern, autoescape=True),
                    func.lower(c.email).contains(pattern, autoescape=True),
                )
            )
        q = q.order_by(c.code).limit(max(limit, 0)).offset(max(offset, 0))
        with self.store.read() as conn:
            rows = conn.execute(q).mappings().all()
        return [
            {**{k: v for k, v in r.items() if k != "data"}, "data": json.loads(r["data"])}
            for r in rows
        ]

    def dashboard(self, *, field_counts: bool = True) -> Dashboard:
        """What the dashboard shows. `field_counts=False` leaves out the fields changed by
        the last run that changed any (empty): for a run that changed millions of fields,
        counting them takes a second or two."""
        with self.store.read() as conn:
            articles = conn.execute(select(func.count()).select_from(_ARTICLES)).scalar_one()
            published = conn.execute(
                select(func.count()).select_from(_ARTICLES).where(_ARTICLES.c.published)
            ).scalar_one()
            customers = conn.execute(select(func.count()).select_from(_CUSTOMERS)).scalar_one()
            categories = conn.execute(select(func.count()).select_from(_CATEGORIES)).scalar_one()
            watermark = get_state(conn, WATERMARK)
            last_ok = get_state(conn, LAST_OK_RUN)
            last_success = last_kind = None
            if last_ok:
                row = conn.execute(
                    select(_RUNS.c.finished, _RUNS.c.kind).where(_RUNS.c.id == int(last_ok))
                ).first()
                if row is not None:
                    last_success, last_kind = _aware(row.finished), row.kind
            last_changed = (
                conn.execute(select(func.max(_CHANGES.c.run_id))).scalar_one_or_none()
                if field_counts
                else None
            )
        runs = self.runs(limit=10)
        finished = [r for r in runs if r.status != "running"]
        if not finished:
            erp_state, detail = "unknown", "no sync has run yet"
        elif finished[0].status == "failed":
            erp_state, detail = "failing", finished[0].error or "the last run failed"
        else:
            erp_state, detail = "ok", f"last run {finished[0].run_id}: {finished[0].status}"
        return Dashboard(
            erp_state,
            detail,
            last_success,
            watermark,
            int(articles),
            int(published),
            int(customers),
            int(categories),
            runs,
            self._last_run_counts(last_changed) if last_changed is not None else [],
            self.lease(),
            last_success_run=int(last_ok) if last_ok else None,
            last_success_kind=last_kind,
            under_way=self.runs_under_way(),
        )

    def _last_run_counts(self, run_id: int) -> list[tuple[str, str, int]]:
        """The run's field counts; kept once it has finished, when they change no more."""
        kept = self._run_counts
        if kept is not None and kept[0] == run_id:
            return kept[1]
        with self.store.read() as conn:
            status = conn.execute(
                select(_RUNS.c.status).where(_RUNS.c.id == run_id)
            ).scalar_one_or_none()
        counts = self.change_counts(run_id=run_id)
        if status is not None and status != "running":
            self._run_counts = (run_id, counts)
        return counts

    # --- fields -----------------------------------------------------------------------

    def fields(self, entity: str) -> list[FieldRow]:
        return fields_mod.list_fields(self.store, entity)

    def set_used(self, entity: str, names: Sequence[str], used: bool) -> list[str]:
        return fields_mod.set_used(self.store, entity, names, used)

    def attribute_update(self) -> dict[str, int]:
        return fields_mod.attribute_update(self.store, self.client())

    @staticmethod
    def field_entities() -> tuple[str, ...]:
        return MAIN_ENTITIES

    # --- the lease and the end ------------------------------------------------------

    def lease(self) -> LeaseInfo | None:
        return read_lease(self.store)

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None
        self.store.close()
