"""Run history, and one run's detail: counts per entity, rejected records, the error."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Label, Static
from textual.worker import Worker, WorkerState

from passweb_tui.i18n import engine_notes, engine_text, t
from passweb_tui.screens.base import (
    BaseScreen,
    KeyTable,
    fmt_duration,
    fmt_int,
    fmt_when,
    kind_label,
    orders_cell,
    run_changes_cell,
    run_kind,
    status_text,
    value_of,
)
from passweb_tui.screens.dashboard import run_changes, run_rejects
from passweb_tui.screens.fit_table import Col, FitTable
from passweb_tui.screens.sync_state import SyncSnapshot

HISTORY = 200
#: a run's counts per entity, in the order shown
COUNT_NAMES = ("fetched", "inserted", "updated", "deleted", "rejected", "unchanged", "off_site")
#: the counts left out first when the table is too narrow for all of them: the records
#: not for the site, then the unchanged ones (at 80 columns, only a count of none goes)
_DROP = {"off_site": 2, "unchanged": 1}


def origin_label(origin: str | None) -> str:
    return t(f"origin.{origin}", default=origin or "-")


def scope_label(scope: Any) -> str:
    if not scope:
        return "-"
    entities = value_of(scope, "entities") or ()
    codes = value_of(scope, "codes") or ()
    text = ", ".join(t(f"entity.{e}", default=e) for e in entities) or "-"
    if codes:
        shown = ", ".join(list(codes)[:5]) + (" …" if len(codes) > 5 else "")
        text += f": {shown}"
    return text


class RunsScreen(BaseScreen):
    """Every run, newest first; enter opens one."""

    # focused as soon as it is composed, so that keys typed right behind the one that
    # opened the screen go to it, not to the first field (see OrderedScroll)
    AUTO_FOCUS = "#runs-table"

    TITLE_KEY = "nav.runs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "reload", "key.reload", id="runs.reload", show=False),
        Binding("l", "changes", "key.run_changes", id="runs.changes"),
        Binding("n", "page(1)", "key.next_page", id="runs.next_page", show=False),
        Binding("b", "page(-1)", "key.prev_page", id="runs.prev_page", show=False),
    ]

    _poll: Timer | None = None  # the pending re-read while a run is going on
    _dry_runs: frozenset[int] = frozenset()  # runs shown that were dry runs
    _offset = 0  # how many newer runs come before the page shown
    _more = False  # whether older runs come after it
    _shown_offset: int | None = None  # the page the table shows, once read

    def action_changes(self) -> None:
        """The change log of the run under the cursor (a dry run has none: it says so)."""
        key = self.query_one("#runs-table", KeyTable).selected_key()
        if key:
            open_run_changes(self, int(key), dry_run=int(key) in self._dry_runs)

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="panel"):
            # too narrow for all: a column with nothing in it ("-" on every run) goes
            # first, then the web orders, the origin, the duration and the scope; a long
            # scope is shortened before a column goes for it, a long outcome as a last
            # resort (the run's detail has them all)
            yield FitTable(
                [
                    Col("id", "#"),
                    Col("kind", t("col.kind")),
                    Col("origin", t("col.origin"), drop=3),
                    Col("status", t("col.outcome"), shrink=True),
                    Col("started", t("col.started")),
                    Col("duration", t("col.duration"), drop=2),
                    Col("changes", t("col.changes")),
                    Col("rejected", t("col.rejected")),
                    Col("orders", t("runs.pushed_orders"), drop=4, empty_first=True),
                    Col(
                        "scope",
                        t("col.scope"),
                        drop=1,
                        shrink=True,
                        give_way=12,
                        empty_first=True,
                    ),
                ],
                id="runs-table",
            )
            yield Label("", id="runs-status")

    def on_mount(self) -> None:
        self.query_one("#runs-table", FitTable).focus()

    def action_page(self, step: int) -> None:
        """The page of older (1) or newer (-1) runs: months of syncs are more than one
        page, and the oldest (the first TOTAL, say) stay within reach."""
        if step > 0 and not self._more:
            return
        offset = max(0, self._offset + step * HISTORY)
        if offset != self._offset:
            self._offset = offset
            self.load()

    def on_shown(self) -> None:
        self.load()

    def sync_finished(self, snap: SyncSnapshot) -> None:
        self.load()

    def action_reload(self) -> None:
        self.load()

    def load(self) -> None:
        engine = self.papp.engine
        if engine is None:
            return
        offset = self._offset
        if offset != self._shown_offset:
            # the first page or another one: keys typed meanwhile ("r" then "j") are
            # for its rows
            self.query_one("#runs-table", FitTable).wait_for_rows()
        self.run_worker(
            # one more than a page: whether older runs come after it
            lambda: (offset, list(engine.runs(limit=HISTORY + 1, offset=offset))),
            group="runs",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "runs":
            return
        if event.state == WorkerState.ERROR:  # said by the screen; the keys go on
            self.query_one("#runs-table", FitTable).rows_came()
        if event.state != WorkerState.SUCCESS:
            return
        app = self.papp
        offset, runs = cast(Any, event.worker.result)
        if offset != self._offset:
            return  # another page is being read
        if not runs and offset:
            # the page is gone (a prune took the older runs): back to the first
            self._offset = 0
            self.load()
            return
        self._more = len(runs) > HISTORY
        runs = runs[:HISTORY]
        key = "runs.status" if self._more or offset else "runs.status_all"
        self.query_one("#runs-status", Label).update(
            t(
                key if runs else "runs.status_empty",
                first=fmt_int(offset + 1),
                last=fmt_int(offset + len(runs)),
                next=self.bound_key("runs.next_page"),
                prev=self.bound_key("runs.prev_page"),
            )
        )
        self._dry_runs = frozenset(
            int(value_of(r, "run_id")) for r in runs if value_of(r, "dry_run")
        )
        running = any(value_of(r, "status") == "running" for r in runs)
        if app.poll_s > 0 and running and self._poll is None:
            # a run going on (perhaps in another process): read again until it ends
            self._poll = self.set_timer(app.poll_s, self._reload_if_shown)
        self.query_one("#runs-table", FitTable).show_rows(
            [
                (
                    value_of(run, "run_id"),
                    [
                        str(value_of(run, "run_id")),
                        run_kind(run),
                        origin_label(value_of(run, "origin")),
                        status_text(value_of(run, "status")),
                        fmt_when(app, value_of(run, "started")),
                        fmt_duration(app, value_of(run, "duration_s")),
                        run_changes_cell(run, run_changes(run)),
                        fmt_int(run_rejects(run)),
                        orders_cell(value_of(run, "orders") or {}),
                        scope_label(value_of(run, "scope")),
                    ],
                )
                for run in runs
            ],
        )
        self._shown_offset = offset
        self.query_one("#runs-table", FitTable).rows_came()

    def _reload_if_shown(self) -> None:
        self._poll = None
        if self.is_current:
            self.load()

    def on_data_table_row_selected(self, event: KeyTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.push_screen(RunDetailScreen(int(event.row_key.value)))


class RunDetailScreen(BaseScreen):
    """One run: what it was, its counts per entity, what it rejected and why, its error."""

    TITLE_KEY = "runs.detail"
    OWN_ERRORS = frozenset({"run-detail"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "changes", "key.run_changes", id="run.changes"),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.dry_run = False  # known once the run is read
        self.rejects: list[Any] = []

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="run-detail"):
            yield Static(t("dash.loading"), id="run-header", classes="panel")
            with Vertical(classes="panel"):
                yield Label(t("runs.counts"), classes="panel-title")
                # too narrow for all (80 columns): a count that is none on every row goes
                # first, the least needed first; then the counts take their short labels
                # and a long entity name gives way, so that every count of something shows
                yield FitTable(
                    [
                        Col("entity", t("col.entity"), shrink=True, give_way=14),
                        *(
                            Col(
                                name,
                                t(f"col.{name}"),
                                drop=_DROP.get(name, 0),
                                empty_first=True,
                                short=t(f"col.{name}.short"),
                            )
                            for name in COUNT_NAMES
                        ),
                    ],
                    id="run-counts",
                )
            with Vertical(classes="panel", id="run-rejects-panel"):
                yield Label(t("runs.rejects"), id="run-rejects-title", classes="panel-title")
                # a long key or reason ends in an ellipsis; the one under the cursor is
                # shown whole under the table
                yield FitTable(
                    [
                        Col("entity", t("col.entity")),
                        Col("key", t("col.key"), shrink=True),
                        Col("reason", t("col.reason"), shrink=True),
                    ],
                    id="run-rejects",
                )
                yield Static("", id="run-reject-note", classes="row-note")

    def on_mount(self) -> None:
        counts = self.query_one("#run-counts", FitTable)
        engine = self.papp.engine
        run_id = self.run_id
        self.run_worker(
            lambda: engine.run_detail(run_id), group="run-detail", thread=True, exit_on_error=False
        )
        counts.focus()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "run-detail":
            return
        if event.state == WorkerState.ERROR:
            self.query_one("#run-header", Static).update(
                Text(t("runs.not_found", run=self.run_id, error=str(event.worker.error)), "red")
            )
            return
        if event.state == WorkerState.SUCCESS:
            self.show(cast(Any, event.worker.result))

    def show(self, detail: Any) -> None:
        app = self.papp
        run = value_of(detail, "run", detail)
        head = Text()
        head.append(f"#{self.run_id} ", style="bold")
        head.append(kind_label(value_of(run, "kind")), style="bold")
        requested = value_of(run, "requested_kind")
        if requested and requested != value_of(run, "kind"):
            head.append(" " + t("runs.requested", kind=kind_label(requested)))
        self.dry_run = bool(value_of(run, "dry_run"))
        if self.dry_run:
            head.append(" " + t("sync.dry"))
        head.append("  ")
        head.append_text(status_text(value_of(run, "status")))
        head.append("\n" + t("col.origin") + ": " + origin_label(value_of(run, "origin")))
        head.append("   " + t("col.scope") + ": " + scope_label(value_of(run, "scope")))
        head.append(
            "\n"
            + t("col.started")
            + ": "
            + fmt_when(app, value_of(run, "started"))
            + "   "
            + t("col.duration")
            + ": "
            + fmt_duration(app, value_of(run, "duration_s"))
        )
        for group in ("customers", "orders"):
            counts = value_of(run, group) or {}
            if any(counts.values()) if isinstance(counts, dict) else False:
                head.append(
                    "\n"
                    + t(f"runs.pushed_{group}")
                    + ": "
                    + ", ".join(
                        f"{t('col.' + k, default=k).lower()} {fmt_int(v)}"
                        for k, v in counts.items()
                    )
                )
        error = value_of(run, "error")
        if error:
            head.append("\n" + t("sync.error") + ": ", style="bold red")
            head.append(engine_text(str(error)))
        message = value_of(run, "message")
        if message:  # what the run said of itself (as `sync` prints it), each part translated
            head.append("\n" + t("runs.notes") + ": ", style="bold")
            head.append(engine_notes(str(message)))
        self.query_one("#run-header", Static).update(head)
        off_site = value_of(run, "off_site") or {}
        rows = [
            (
                entity,
                [
                    t(f"entity.{entity}", default=entity),
                    *(
                        fmt_int(
                            off_site.get(entity, 0)
                            if name == "off_site"
                            else value_of(counts, name, 0)
                        )
                        for name in COUNT_NAMES
                    ),
                ],
            )
            for entity, counts in (value_of(run, "entities") or {}).items()
        ]
        # the web customers and orders the run could not send are among its rejects too:
        # a row each, so that the Rejected column adds up to the list below
        for group in ("customers", "orders"):
            pushed = value_of(run, group) or {}
            failed = pushed.get("failed", 0) if isinstance(pushed, dict) else 0
            if failed:
                cells = [t(f"runs.pushed_{group}")]
                cells += [fmt_int(failed) if name == "rejected" else "-" for name in COUNT_NAMES]
                rows.append((f"web-{group}", cells))
        self.query_one("#run-counts", FitTable).show_rows(rows)
        self.rejects = list(value_of(detail, "rejects") or [])
        self.query_one("#run-rejects", FitTable).show_rows(
            [
                (
                    str(i),
                    [
                        reject_entity(reject),
                        str(value_of(reject, "key", "") or "-"),
                        engine_text(str(value_of(reject, "reason", ""))).replace("\n", " "),
                    ],
                )
                for i, reject in enumerate(self.rejects)
            ]
        )  # fmt: skip
        self.show_reject_note()
        rejects = self.rejects
        self.query_one("#run-rejects-title", Label).update(
            t("runs.rejects_count", count=fmt_int(len(rejects)))
        )

    def on_data_table_row_highlighted(self, event: FitTable.RowHighlighted) -> None:
        if event.data_table.id == "run-rejects":
            self.show_reject_note()

    def show_reject_note(self) -> None:
        """The reject under the cursor, its reason whole."""
        key = self.query_one("#run-rejects", FitTable).selected_key()
        note = Text()
        if key is not None and int(key) < len(self.rejects):
            reject = self.rejects[int(key)]
            note.append(reject_entity(reject) + " ")
            note.append(str(value_of(reject, "key", "") or "-"), style="bold")
            note.append(": " + engine_text(str(value_of(reject, "reason", ""))))
        self.query_one("#run-reject-note", Static).update(note)

    def action_changes(self) -> None:
        open_run_changes(self, self.run_id, dry_run=self.dry_run)


def reject_entity(reject: Any) -> str:
    """What a reject is of, as the counts above name it: a web customer or order the run
    could not send (its site id or order id as the key) apart from an ERP record."""
    entity = str(value_of(reject, "entity", ""))
    if entity in ("web_customers", "web_orders"):
        return t(f"runs.pushed_{entity.removeprefix('web_')}")
    return t(f"entity.{entity}", default=entity)


def open_run_changes(screen: BaseScreen, run_id: int, *, dry_run: bool, result: Any = None) -> None:
    """Open a run's change log. A dry run wrote none: what it would have changed is shown
    when its result is at hand (the launcher's last run), else the user is told why
    there is nothing to show rather than being shown an empty log."""
    if dry_run:
        would = list(value_of(result, "would_change") or [])
        if would:
            from passweb_tui.screens.changes import WouldChangeScreen

            counts = (value_of(result, "entities") or {}).values()
            records = sum(
                int(value_of(c, k, 0) or 0)
                for c in counts
                for k in ("inserted", "updated", "deleted")
            )
            screen.app.push_screen(WouldChangeScreen(run_id, would, records))
            return
        screen.notify(t("sync.dry_no_changes", run=run_id))
        return
    from passweb_tui.screens.changes import ChangesScreen

    screen.app.push_screen(ChangesScreen(run_id=run_id))


KEYMAP_CLASSES = [RunDetailScreen]
