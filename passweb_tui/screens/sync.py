"""The sync launcher: choose Totale, Variati or Parziale (with its scope) and watch the run:
progress per entity with rate and ETA, the phase, the last log lines, cancel, and a summary.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    RadioSet,
    RichLog,
    SelectionList,
    Static,
)
from textual.widgets.data_table import RowDoesNotExist

from passweb_tui.i18n import decimal_point, engine_notes, group_digits, t
from passweb_tui.screens.base import (
    BaseScreen,
    ConfirmScreen,
    OrderedButton,
    OrderedInput,
    StateCheckbox,
    StateRadioButton,
    StateSelectionList,
    fmt_duration,
    fmt_int,
    kind_label,
    orders_cell,
    status_text,
    value_of,
)
from passweb_tui.screens.fit_table import Col, FitTable
from passweb_tui.screens.sync_state import LogLine, SyncSnapshot

ENTITIES = [
    "articles",
    "customers",
    "conditions",
    "categories",
    "price_lists",
    "currencies",
    "payments",
    "resources",
    "orders",
]
KINDS = ["total", "changed", "partial"]


def parse_codes(text: str) -> tuple[str, ...]:
    """Codes typed by the operator, separated by commas or spaces, without repeats."""
    seen: dict[str, None] = {}
    for part in text.replace(",", " ").split():
        seen.setdefault(part.strip(), None)
    return tuple(seen)


def fmt_rate(rate: float | None) -> str:
    """Records a second; under ten with a decimal (web orders go one every few seconds,
    which a whole number read as none at all)."""
    if rate is None:
        return "-"
    if rate < 9.95:
        return decimal_point(f"{rate:.1f}/s")
    return group_digits(f"{rate:,.0f}/s")


def fmt_eta(app: Any, eta: float | None) -> str:
    return "-" if eta is None else fmt_duration(app, eta)


class LaunchButton(OrderedButton):
    """Launch, which enter in the codes field moves to: a second enter launches, but not
    one typed before Launch had the focus (enter, enter in one burst, a key bouncing),
    so that one keystroke too many starts nothing."""

    #: when enter in the codes field gave Launch the focus (Textual's clock, as events')
    armed_at: float | None = None

    async def _on_key(self, event: events.Key) -> None:
        armed = self.armed_at
        if armed is not None and event.key in ("enter", "space") and event.time <= armed:
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)


class SyncScreen(BaseScreen):
    """Launch a sync and follow it; the operator may leave and come back."""

    TITLE_KEY = "nav.sync"
    FIELD_EXIT = "#sync-entity"  # the codes typed belong to the entity chosen there
    # one more step below 80 columns, where the form and the progress stack (app.tcss)
    HORIZONTAL_BREAKPOINTS = [
        (0, "-slim"),
        (80, "-narrow"),
        (110, "-wide"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "launch('total')", "key.launch_total", id="sync.total"),
        Binding("v", "launch('changed')", "key.launch_changed", id="sync.changed"),
        Binding("p", "launch('partial')", "key.launch_partial", id="sync.partial"),
        Binding("y", "toggle_dry_run", "key.dry_run", id="sync.dry_run"),
        Binding("x", "app.cancel_sync", "key.cancel", id="sync.cancel", tooltip="key.cancel.tip"),
        Binding("l", "open_changes", "key.run_changes", id="sync.run_changes", show=False),
        Binding("e", "open_run", "key.run_detail", id="sync.run_detail", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="sync")
        self._form_run: float | None = None  # the launch whose kind the form was set to

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="sync-body"):
            with VerticalScroll(id="sync-form", classes="panel"):
                yield Label(t("sync.choose"), classes="panel-title")
                with RadioSet(id="sync-kind", compact=True):
                    for kind in KINDS:
                        yield StateRadioButton(
                            kind_label(kind),
                            value=kind == "changed",
                            id=f"kind-{kind}",
                            compact=True,
                        )
                yield StateCheckbox(t("sync.dry_run"), id="sync-dry", compact=True)
                yield Label(t("sync.scope"), classes="panel-title")
                yield StateSelectionList(
                    *[(t(f"entity.{e}"), e) for e in ENTITIES],
                    id="sync-entity",
                    compact=True,
                )
                yield OrderedInput(placeholder=t("sync.codes_hint"), id="sync-codes", compact=True)
                yield StateCheckbox(t("sync.use_marked", count=0), id="sync-marked", compact=True)
                yield LaunchButton(
                    t("sync.launch"), id="sync-launch", variant="primary", compact=True
                )
            with Vertical(id="sync-progress", classes="panel"):
                idle = t(
                    "sync.idle",
                    total=self.bound_key("sync.total"),
                    changed=self.bound_key("sync.changed"),
                    partial=self.bound_key("sync.partial"),
                )
                yield Static(Text(idle), id="sync-phase")  # a key name is not markup
                with Vertical(id="sync-run"):  # the table takes what it needs
                    yield FitTable(
                        [
                            Col("entity", t("col.entity"), shrink=True),
                            Col("done", t("col.progress")),
                            Col("pct", "%", min_width=3),
                            # at 80 columns there is room for the numbers, not for these:
                            # the phase line then gives the running entity's rate and ETA
                            Col("rate", t("col.rate"), drop=2, min_width=8),
                            Col("eta", t("col.eta"), drop=1, min_width=6),
                        ],
                        id="sync-entities",
                    )
                    # wrapped to the pane's width, so the whole line is read without
                    # scrolling sideways (and no scrollbar takes a line of a short log)
                    yield RichLog(id="sync-log", max_lines=200, wrap=True, min_width=1)
                yield Static(id="sync-summary")

    def on_mount(self) -> None:
        self._log_count = 0
        self._log_run: int | None = None
        self._log_width = 0

    def on_shown(self) -> None:
        marked = self.papp.marked
        count = sum(len(codes) for codes in marked.values())
        box = self.query_one("#sync-marked", Checkbox)
        box.label = t("sync.use_marked", count=count)
        box.disabled = count == 0
        if count == 0:
            box.value = False
        snap = self.papp.sync.snapshot()
        if snap is not None and snap.running:  # e.g. launched from the palette
            self.query_one("#sync-progress").scroll_visible(animate=False)

    # -- launching --------------------------------------------------------------

    def selected_kind(self) -> str:
        pressed = self.query_one("#sync-kind", RadioSet).pressed_button
        return (pressed.id or "kind-changed").removeprefix("kind-") if pressed else "changed"

    def build_scope(self) -> Any:
        """The PARTIAL's scope from the form: marked records, an entity, typed codes."""
        from passweb_tui.engine.facade import Scope

        if self.query_one("#sync-marked", Checkbox).value:
            entities = [e for e, codes in self.papp.marked.items() if codes]
            if len(entities) != 1:
                raise ValueError(t("sync.marked_one_entity"))
            entity = entities[0]
            return Scope(entities=(entity,), codes=tuple(sorted(self.papp.marked[entity])))
        picked = set(self.query_one("#sync-entity", SelectionList).selected)
        chosen = tuple(e for e in ENTITIES if e in picked)
        codes = parse_codes(self.query_one("#sync-codes", Input).value)
        if codes and len(chosen) != 1:
            raise ValueError(t("sync.codes_need_entity"))
        if not chosen:
            return None  # a plain Parziale: send what waits on the site
        return Scope(entities=chosen, codes=codes)

    def action_launch(self, kind: str) -> None:
        if self.papp.sync.running:  # the form keeps showing the run that goes on
            self.papp.start_sync(kind)  # which says a run is going on
            return
        self.query_one(f"#kind-{kind}", StateRadioButton).value = True  # the form shows it
        dry_run = self.query_one("#sync-dry", Checkbox).value
        scope = None
        if kind == "partial":
            try:
                scope = self.build_scope()
            except ValueError as exc:
                self.notify(str(exc), severity="error")
                return
        quota = None
        engine = self.papp.engine
        if kind in ("total", "changed") and not dry_run and engine is not None:
            try:
                quota = engine.quota_left()
            except Exception:  # the store cannot say now: the launch itself will tell
                quota = None
        if quota is not None and quota[0] < quota[1]:
            # each TOTAL/CHANGED spends one of the month's: a stray key must not (one
            # used up is refused at once, saying so)
            used, most = quota
            question = t("sync.quota_question", kind=kind_label(kind), used=used, quota=most)

            def answer(yes: bool | None) -> None:
                if yes:
                    self._launch(kind, scope, dry_run)

            self.app.push_screen(ConfirmScreen(question), answer)
            return
        self._launch(kind, scope, dry_run)

    def scope_filled(self) -> bool:
        """Whether the form holds a Parziale's scope: an entity chosen, codes typed, the
        marked records asked for."""
        return bool(
            self.query_one("#sync-entity", SelectionList).selected
            or self.query_one("#sync-codes", Input).value.strip()
            or self.query_one("#sync-marked", Checkbox).value
        )

    def _launch(self, kind: str, scope: Any, dry_run: bool) -> None:
        if self.papp.start_sync(kind, scope=scope, dry_run=dry_run):
            if kind != "partial" and self.scope_filled():
                # the scope stays on the form: it must not look as if it applied
                self.notify(
                    t(
                        "sync.scope_not_used",
                        kind=kind_label(kind),
                        partial=kind_label("partial"),
                        key=self.bound_key("sync.partial"),
                    )
                )
            self.query_one("#sync-log", RichLog).clear()
            self._log_count = 0
            # stacked under the form on a small terminal: bring the run into view
            self.query_one("#sync-progress").scroll_visible(animate=False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "sync-launch":
            self.action_launch(self.selected_kind())

    # a scope filled in is a Parziale's: the form selects it, so that Launch (or enter
    # after the codes, then enter) does not run the Variati still selected
    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        if event.selection_list.id == "sync-entity" and event.selection_list.selected:
            self.choose_partial()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "sync-codes" and event.value.strip():
            self.choose_partial()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "sync-marked" and event.value:
            self.choose_partial()

    def choose_partial(self) -> None:
        button = self.query_one("#kind-partial", StateRadioButton)
        if not button.value:
            button.value = True

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter after the codes goes to Launch (in view, on a small terminal too): a
        second enter launches, so that one keystroke too many starts nothing."""
        if event.input.id == "sync-codes":
            event.stop()
            launch = self.query_one("#sync-launch", LaunchButton)
            launch.armed_at = event.time
            launch.focus()
            launch.scroll_visible(animate=False)

    def action_toggle_dry_run(self) -> None:
        box = self.query_one("#sync-dry", Checkbox)
        box.value = not box.value

    # -- following the run -----------------------------------------------------------

    def show_sync(self, snap: SyncSnapshot | None) -> None:
        super().show_sync(snap)
        if snap is None:
            return
        app = self.papp
        if snap.running and snap.started != self._form_run:
            # a run just launched, from this form, a key or the palette: the form shows
            # its kind, so that Launch does not start another kind than the one seen
            self._form_run = snap.started
            self.query_one(f"#kind-{snap.kind}", StateRadioButton).value = True
            self.query_one("#sync-dry", Checkbox).value = bool(snap.dry_run)  # its dry run too
        table = self.query_one("#sync-entities", FitTable)
        phase = Text()
        phase.append(kind_label(snap.ran_kind), style="bold")
        if snap.dry_run:
            phase.append(" " + t("sync.dry"))
        if snap.run_id:
            phase.append(f"  #{snap.run_id}")
        # the time so far next to the run, not after the ETA where the two would read as
        # one when the line wraps at 80 columns
        phase.append("  " + fmt_duration(app, snap.elapsed_s), style="dim")
        phase.append("  ")
        if snap.running:
            phase.append(t("sync.phase") + ": ")
            phase.append(t("phase." + snap.phase, default=snap.phase), style="cyan")
            current = snap.entities[-1] if snap.entities else None
            if current is not None and not app.stable and "rate" not in table.shown_columns:
                # the table has no room for them: the running entity's, on this line
                phase.append(f"  {fmt_rate(current.rate)}", style="dim")
                if "eta" not in table.shown_columns:
                    phase.append(f"  {t('col.eta')} {fmt_eta(app, current.eta_s)}", style="dim")
            if snap.cancelling:
                phase.append("  " + t("sync.cancelling"), style="magenta")
        else:
            phase.append_text(status_text(snap.status))
        self.query_one("#sync-phase", Static).update(phase)
        table.show_rows(
            [
                (
                    p.entity,
                    (
                        t(f"entity.{p.entity}", default=p.entity),
                        fmt_int(p.done) + (f"/{fmt_int(p.total)}" if p.total else ""),
                        p.percent,
                        "-" if app.stable else fmt_rate(p.rate),
                        "-"
                        if app.stable or (p.total and p.done >= p.total)
                        else fmt_eta(app, p.eta_s),
                    ),
                )
                for p in snap.entities
            ],
        )
        if snap.running and snap.entities:
            self.call_after_refresh(self.follow_entity, snap.entities[-1].entity)
        self.show_log(snap)
        self.query_one("#sync-summary", Static).update(
            self.summary(snap) if not snap.running else ""
        )

    def show_log(self, snap: SyncSnapshot) -> None:
        """Write the run's new log lines; all of them again for another run, or once the
        pane's width changed (lines are wrapped to it)."""
        log = self.query_one("#sync-log", RichLog)
        width = log.scrollable_content_region.width
        if (
            self._log_run != snap.run_id
            or len(snap.log) < self._log_count
            or (width != self._log_width and self._log_count)
        ):
            log.clear()
            self._log_count = 0
            self._log_run = snap.run_id
        self._log_width = width
        for line in snap.log[self._log_count :]:
            log.write(Text(self.log_text(line)))
        self._log_count = len(snap.log)

    def on_resize(self) -> None:
        snap = self.papp.sync.snapshot()
        if snap is not None:  # lines wrapped to the old width are wrapped again
            self.call_after_refresh(self.show_log, snap)

    def log_text(self, line: LogLine) -> str:
        """A log line as shown: the time of day, what happened, how long a step took."""
        app = self.papp
        clock = "··:··:··" if app.stable else time.strftime("%H:%M:%S", time.localtime(line.at))
        took = "" if line.seconds is None else f" ({fmt_duration(app, line.seconds)})"
        return f"{clock}  {line.text}{took}"

    def follow_entity(self, entity: str) -> None:
        """Scroll the progress table so the entity being worked on is in view."""
        table = self.query_one("#sync-entities", FitTable)
        try:
            row = table.get_row_index(entity)
        except RowDoesNotExist:
            return
        visible = table.scrollable_content_region.height - table.header_height
        if visible <= 0:
            return
        top = int(table.scroll_y)
        if row < top:
            table.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + visible:
            table.scroll_to(y=row - visible + 1, animate=False, immediate=True)

    def summary(self, snap: SyncSnapshot) -> Text:
        """The end of a run: counts, the error if any, and where to read more."""
        out = Text()
        result = snap.result
        if snap.status == "refused":
            out.append(t("sync.refused") + ": ", style="bold red")
            out.append(snap.error or "")
            return out
        if result is not None:
            requested = value_of(result, "requested_kind")
            ran = value_of(result, "kind")
            if requested and ran and requested != ran:
                out.append(
                    t("sync.ran_as", requested=kind_label(requested), kind=kind_label(ran)) + "\n"
                )
            totals = dict.fromkeys(
                ("fetched", "inserted", "updated", "unchanged", "deleted", "rejected"), 0
            )
            for counts in (value_of(result, "entities") or {}).values():
                for name in totals:
                    totals[name] += int(value_of(counts, name, 0) or 0)
            # what became of the records read, so that the line adds up (the records not
            # for the site included); a count of none is left out, but for the rejects,
            # unless what the run did reject are web orders or customers (said below):
            # "rejected 0" beside an outcome "ok with rejects" reads as a contradiction
            totals["off_site"] = sum((value_of(result, "off_site") or {}).values())
            failed_pushes = any(
                isinstance(c, dict) and c.get("failed")
                for c in (value_of(result, "orders"), value_of(result, "customers"))
            )
            parts = [
                t(f"sync.count.{name}", n=fmt_int(totals[name]))
                for name in ("inserted", "updated", "unchanged", "deleted", "off_site", "rejected")
                if totals[name] or (name == "rejected" and not failed_pushes)
            ]
            line = t("sync.counts", fetched=fmt_int(totals["fetched"]), parts=", ".join(parts))
            out.append(line + "\n", style="bold red" if totals["rejected"] else "")
            for group in ("orders", "customers"):  # what it sent to the ERP, if anything
                counts = value_of(result, group) or {}
                if isinstance(counts, dict) and any(counts.values()):
                    done = orders_cell(counts)
                    out.append(
                        t(f"runs.pushed_{group}") + ": " + done + "\n",
                        style="bold red" if counts.get("failed") else "",
                    )
        if snap.error:
            out.append(t("sync.error") + ": ", style="bold red")
            out.append(engine_notes(str(snap.error)) + "\n")
        if snap.run_id:
            detail = self.bound_key("sync.run_detail")
            would = value_of(snap.result, "would_change") if snap.result is not None else None
            if snap.dry_run and would:  # what it would change, kept in its result
                links = t(
                    "sync.dry_would_links",
                    changes=self.bound_key("sync.run_changes"),
                    detail=detail,
                )
            elif snap.dry_run:  # it wrote no change log, and would change nothing
                links = t("sync.dry_links", detail=detail)
            else:
                links = t("sync.links", changes=self.bound_key("sync.run_changes"), detail=detail)
            out.append(links, style="dim")
        return out

    def action_open_changes(self) -> None:
        snap = self.papp.sync.snapshot()
        if snap is None or snap.running or not snap.run_id:
            return
        from passweb_tui.screens.runs import open_run_changes

        open_run_changes(self, snap.run_id, dry_run=snap.dry_run, result=snap.result)

    def action_open_run(self) -> None:
        snap = self.papp.sync.snapshot()
        if snap is None or snap.running or not snap.run_id:
            return
        from passweb_tui.screens.runs import RunDetailScreen

        self.app.push_screen(RunDetailScreen(snap.run_id))
