"""The dashboard: ERP state, last successful sync, last runs, a chart of recent runs,
fields changed by entity and the category count; refreshed by polling that never overlaps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import Label, Sparkline, Static
from textual.worker import Worker, WorkerState

from passweb_tui.i18n import engine_text, t
from passweb_tui.screens.base import (
    BaseScreen,
    KeyTable,
    OrderedScroll,
    field_label,
    fmt_duration,
    fmt_int,
    fmt_when,
    run_changes_cell,
    run_kind,
    status_text,
    value_of,
)
from passweb_tui.screens.fit_table import Col, FitTable
from passweb_tui.screens.orders import OrdersPanel
from passweb_tui.screens.sync_state import SyncSnapshot

RECENT_RUNS = 30
#: How often the dashboard asks the ERP itself whether it answers (after the last check).
ERP_CHECK_S = 60.0
#: the dashboard has not read the store yet
_UNREAD = object()


def run_changes(run: Any) -> int:
    """Records inserted, updated or deleted by a run, over all entities."""
    total = 0
    for counts in (value_of(run, "entities") or {}).values():
        for name in ("inserted", "updated", "deleted"):
            total += int(value_of(counts, name, 0) or 0)
    return total


def run_rejects(run: Any) -> int:
    """What a run rejected: records it could not take, and web orders and customers
    it could not send (each of which made it end "ok with rejects" as well)."""
    records = sum(
        int(value_of(c, "rejected", 0) or 0) for c in (value_of(run, "entities") or {}).values()
    )
    sent = [value_of(run, "orders") or {}, value_of(run, "customers") or {}]
    return records + sum(int(g.get("failed", 0) or 0) for g in sent if isinstance(g, dict))


@dataclass
class DashboardView:
    """What the dashboard shows, read from the engine off the UI thread."""

    erp_state: str = "unknown"
    erp_detail: str = ""
    last_success: Any = None
    categories: int | None = None
    articles: int | None = None
    #: articles kept in the store but not published (pre-deleted or cancelled in the ERP)
    unpublished: int | None = None
    customers: int | None = None
    runs: list[Any] = field(default_factory=list)
    field_changes: list[tuple[str, str, int]] = field(default_factory=list)
    lease: Any = None


def read_dashboard(engine: Any) -> DashboardView:
    """Collect the dashboard from the facade (runs in a worker thread)."""
    board = engine.dashboard()
    view = DashboardView()
    view.erp_state = value_of(board, "erp_state", "unknown") or "unknown"
    view.erp_detail = value_of(board, "erp_detail", "") or ""
    view.last_success = value_of(board, "last_success")
    view.categories = value_of(board, "categories")
    view.articles = value_of(board, "articles")
    published = value_of(board, "published_articles")
    if view.articles is not None and published is not None:
        view.unpublished = int(view.articles) - int(published)
    view.customers = value_of(board, "customers")
    runs = value_of(board, "last_runs")
    view.runs = list(runs) if runs is not None else list(engine.runs(limit=RECENT_RUNS))
    changes = value_of(board, "field_changes")
    view.field_changes = list(changes) if changes is not None else []
    view.lease = value_of(board, "lease")
    return view


def check_erp(engine: Any) -> tuple[str, str]:
    """Ask the ERP whether it answers and accepts us: (state, detail); in a worker thread."""
    from passweb_tui.engine.erp.errors import AuthError, ErpError, PoolExhaustedError

    try:
        info = engine.client().check()
    except AuthError as exc:
        return "auth", str(exc)
    except PoolExhaustedError as exc:
        return "busy", str(exc)
    except ErpError as exc:
        return "unreachable", str(exc)
    except Exception as exc:  # no ERP configured, bad settings: say it, do not crash
        return "unknown", str(exc)
    return "ok", t("dash.erp_version", version=info.get("version") or "?")


class DashboardScreen(BaseScreen):
    """The first screen: is the site in step with the ERP, and what happened lately."""

    TITLE_KEY = "nav.dashboard"
    OWN_ERRORS = frozenset({"dashboard", "erp-check"})
    # the screen everything starts from: where to go next, and how to leave
    FOOTER_APP_KEYS = ("goto.sync", "goto.orders", "goto.runs", "app.quit")
    BINDINGS: ClassVar[list[BindingType]] = [
        # the dashboard reads itself again every few seconds; the key is in F1's list
        Binding("ctrl+r", "reload", "key.reload", id="dashboard.reload", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="dashboard")
        self._timer: Timer | None = None
        self._loading = False
        self._erp_live: tuple[str, str] | None = None
        self._erp_checking = False
        self._erp_checked_at: float | None = None  # monotonic time of the last answer
        #: the newest finished run the last read found: a newer one asks the ERP again
        self._newest_run: Any = _UNREAD
        self._erp_timer: Timer | None = None  # the one pending periodic check
        self._view: DashboardView | None = None

    def compose_body(self) -> ComposeResult:
        with OrderedScroll(id="dash-body"):
            with Vertical(id="dash-status", classes="panel"):
                yield Static(id="dash-erp")
                yield Static(id="dash-store")
            yield OrdersPanel(id="dash-orders", classes="panel")
            # the whole width, so that its numbers fit at 80 columns: when they do not,
            # the start time is left out (it is in the run's detail) rather than cut
            with Vertical(id="dash-runs", classes="panel"):
                yield Label(t("dash.last_runs"), classes="panel-title")
                yield FitTable(
                    [
                        Col("id", "#"),
                        Col("kind", t("col.kind")),
                        Col("status", t("col.outcome"), shrink=True),
                        Col("duration", t("col.duration")),
                        Col("changes", t("col.changes")),
                        Col("rejected", t("col.rejected")),
                        Col("started", t("col.started"), drop=1),
                    ],
                    id="dash-runs-table",
                )
            with Vertical(id="dash-chart", classes="panel"):
                yield Label(t("dash.chart_changes"), classes="panel-title")
                yield Sparkline([], id="dash-spark-changes")
                yield Label(t("dash.chart_duration"), classes="panel-title")
                yield Sparkline([], id="dash-spark-duration")
            with Vertical(id="dash-fields", classes="panel"):
                yield Label(t("dash.fields_changed"), classes="panel-title")
                yield FitTable(
                    [
                        Col("entity", t("col.entity"), shrink=True),
                        Col("field", t("col.field"), shrink=True),  # a long name is cut
                        Col("count", t("col.count")),
                    ],
                    id="dash-fields-table",
                )

    def on_mount(self) -> None:
        self.query_one("#dash-erp", Static).update(t("dash.loading"))

    def on_shown(self) -> None:
        self.poll()
        snap = self.papp.sync.snapshot()
        checked = self._erp_checked_at
        # a run that failed since the last check (perhaps on the ERP) is a reason to ask
        # the ERP again now: its "connected" would be stale
        failed_since = (
            snap is not None
            and snap.status == "failed"
            and checked is not None
            and snap.started + snap.elapsed_s > checked
        )
        self.check_erp(only_if_due=not failed_since)

    def check_erp(self, only_if_due: bool = False) -> None:
        """Ask the ERP in the background. One check at a time, and one periodic timer
        however often the screen is shown; credentials the ERP refused are not tried
        again by themselves (the ERP locks a user after a few failed logins): ctrl+r
        asks again."""
        engine = self.papp.engine
        if self._erp_checking or engine is None:
            return
        checked = self._erp_checked_at
        recent = checked is not None and time.monotonic() - checked < ERP_CHECK_S
        if only_if_due and checked is not None and (self._erp_refused or recent):
            return
        self._erp_checking = True
        self.run_worker(
            lambda: check_erp(engine), group="erp-check", thread=True, exit_on_error=False
        )
        if self._view is not None:
            self.show(self._view)  # says the ERP is being asked

    @property
    def _erp_refused(self) -> bool:
        """The last check's answer was: credentials refused."""
        return self._erp_live is not None and self._erp_live[0] == "auth"

    def _erp_tick(self) -> None:
        self._erp_timer = None
        if not self._erp_refused:
            self.check_erp()

    def sync_finished(self, snap: SyncSnapshot) -> None:
        self.poll()
        self.check_erp()  # what the ERP says now, not what it said before the run

    def action_reload(self) -> None:
        self.poll()
        self.check_erp()

    def poll(self) -> None:
        """Read the dashboard unless a read is already under way (polls never overlap)."""
        if self._loading or self.papp.engine is None:
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._loading = True
        engine = self.papp.engine
        self.query_one(OrdersPanel).reload()
        self.run_worker(
            lambda: read_dashboard(engine),
            name="dashboard",
            group="dashboard",
            thread=True,
            exit_on_error=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "erp-check" and event.state in {
            WorkerState.SUCCESS,
            WorkerState.ERROR,
        }:
            self._erp_checking = False
            self._erp_checked_at = time.monotonic()
            if event.state == WorkerState.SUCCESS:
                self._erp_live = event.worker.result
            if self._view is not None:
                self.show(self._view)
            if self.papp.poll_s > 0 and self._erp_timer is None and not self._erp_refused:
                self._erp_timer = self.set_timer(ERP_CHECK_S, self._erp_tick)
            return
        if event.worker.group != "dashboard" or event.state not in {
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        }:
            return
        self._loading = False
        if event.state == WorkerState.SUCCESS and event.worker.result is not None:
            view = event.worker.result
            ended = [r for r in view.runs if value_of(r, "status") != "running"]
            newest = value_of(ended[0], "run_id") if ended else None
            if self._newest_run is not _UNREAD and newest != self._newest_run:
                # a run ended since (here or in another process): the ERP's state it found
                # is newer than the last check's, so ask the ERP again; refused credentials
                # only once a run got through (the ERP locks a user after a few failures)
                ok = value_of(ended[0], "status") in ("ok", "ok_with_rejects")
                if ok or not self._erp_refused:
                    self.check_erp()
            self._newest_run = newest
            if newest is not None and newest != getattr(self.papp, "newest_run_seen", None):
                # the top bar's badge gives way to a later run's outcome (the dashboard's)
                self.papp.newest_run_seen = newest
                self.show_sync(self.papp.sync.snapshot())
            self.show(view)
        elif event.state == WorkerState.ERROR:
            self.query_one("#dash-erp", Static).update(
                Text(t("dash.read_failed", error=str(event.worker.error)), style="red")
            )
        # the next poll is scheduled only after this one ended
        if self.is_current and self.papp.poll_s > 0:
            self._timer = self.set_timer(self.papp.poll_s, self.poll)

    def show(self, view: DashboardView) -> None:
        app = self.papp
        self._view = view
        erp = Text()
        erp.append(t("dash.erp") + ": ", style="bold")
        bad = "bold red"
        state_style = {
            "ok": "green",
            "failing": bad,
            "unreachable": bad,
            "auth": bad,
            "busy": "bold yellow",
        }
        # the ERP's own answer when asked; until then what the last run found
        state, live_detail = self._erp_live or (view.erp_state, "")
        if state != "ok":
            live_detail = engine_text(live_detail)  # the client's words, in the UI's language
        erp.append(t(f"erp.{state}", default=state), state_style.get(state, ""))
        if live_detail and state == "ok":
            erp.append(f" ({live_detail})", "dim")
        if self._erp_checking:  # after the version: never two brackets in a row
            erp.append(" · " + t("dash.erp_checking").strip("()"), "dim italic")
        if live_detail and state != "ok":
            erp.append(f"\n{live_detail}", "dim")
        if app.erp_label and not app.stable:
            erp.append(f"  {app.erp_label}", style="dim")
        finished = [r for r in view.runs if value_of(r, "status") != "running"]
        # the error that stopped the last run, unless the ERP's answer now says its own
        stopped = engine_text(view.erp_detail) if view.erp_state == "failing" else ""
        if finished:
            last = finished[0]
            status = t("status." + str(value_of(last, "status")))
            erp.append(
                "\n" + t("dash.last_run", run=value_of(last, "run_id"), status=status), "dim"
            )
        if stopped and (state in ("ok", "unknown", "failing") or not live_detail):
            erp.append(f"{':' if finished else ''}\n{stopped}", style="dim")
        erp.append("\n" + t("dash.last_success") + ": ", style="bold")
        erp.append(fmt_when(app, view.last_success) if view.last_success else t("dash.never"))
        if not view.last_success and not view.runs and view.lease is None:
            # a new store: the one thing to do first, said where the eye already is
            erp.append("\n" + t("dash.first_sync"), style="italic")
        if view.lease is not None:
            describe = getattr(view.lease, "brief", None)
            holder = (
                engine_text(describe())
                if callable(describe)
                else str(value_of(view.lease, "holder", ""))
            )
            erp.append("\n" + t("dash.lease", holder=holder), style="yellow")
        self.query_one("#dash-erp", Static).update(erp)
        store = Text()
        store.append(t("dash.store") + ": ", style="bold")
        parts = []
        for key, value in (
            ("dash.articles", view.articles),
            ("dash.customers", view.customers),
            ("dash.categories", view.categories),
        ):
            if value is not None:
                part = f"{t(key)} {fmt_int(value)}"
                if key == "dash.articles" and view.unpublished:
                    part += " " + t("dash.unpublished", count=fmt_int(view.unpublished))
                parts.append(part)
        store.append(" · ".join(parts) if parts else "-")
        self.query_one("#dash-store", Static).update(store)

        runs = view.runs[:RECENT_RUNS]
        self.query_one("#dash-runs-table", FitTable).show_rows(
            [
                (
                    value_of(run, "run_id"),
                    (
                        str(value_of(run, "run_id")),
                        run_kind(run),
                        status_text(value_of(run, "status")),
                        fmt_duration(app, value_of(run, "duration_s")),
                        run_changes_cell(run, run_changes(run)),
                        fmt_int(run_rejects(run)),
                        fmt_when(app, value_of(run, "started")),
                    ),
                )
                for run in runs
            ],
        )
        # the charts are of what runs did: a dry run wrote nothing
        oldest_first = [r for r in reversed(runs) if not value_of(r, "dry_run")]
        # a chart of fewer than two runs says nothing; it appears with the second run
        self.query_one("#dash-chart").display = len(oldest_first) >= 2
        self.query_one("#dash-spark-changes", Sparkline).data = [
            float(run_changes(r)) for r in oldest_first
        ] or [0.0]
        durations = [float(value_of(r, "duration_s") or 0.0) for r in oldest_first]
        # durations vary between runs; the snapshot rendering flattens them
        self.query_one("#dash-spark-duration", Sparkline).data = (
            [1.0] * len(durations) if app.stable else durations
        ) or [0.0]
        self.query_one("#dash-fields-table", FitTable).show_rows(
            [
                (
                    f"{entity}/{name}",
                    (t(f"entity.{entity}", default=entity), field_label(name), fmt_int(count)),
                )
                for entity, name, count in view.field_changes
            ],
        )

    def on_data_table_row_selected(self, event: KeyTable.RowSelected) -> None:
        if event.data_table.id == "dash-runs-table" and event.row_key.value:
            from passweb_tui.screens.runs import RunDetailScreen

            self.app.push_screen(RunDetailScreen(int(event.row_key.value)))
