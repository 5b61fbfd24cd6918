"""The change log: filter by run, entity, field and key; counts per field; a record's history."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Static
from textual.worker import Worker, WorkerState

from passweb_tui.engine.facade import DRY_CHANGES_KEPT
from passweb_tui.i18n import decimal_point, t
from passweb_tui.screens.base import (
    BaseScreen,
    FieldKinds,
    KeyTable,
    OrderedInput,
    field_label,
    fmt_int,
    number_value,
    numeric_fields,
    value_of,
)
from passweb_tui.screens.fit_table import Col, FitTable
from passweb_tui.screens.sync_state import SyncSnapshot

PAGE = 500
#: no field's kind known (yet): every value as it is
_NO_KINDS: FieldKinds = {}
#: the lines the change log's note has under its table (app.tcss: .row-note)
NOTE_LINES = 4
#: the most of a value a cell shows (a wide terminal shows this much of a text whole)
VALUE_WIDTH = 60


def short(value: Any) -> str:
    """A value for a table cell: one line, cut to a readable width."""
    if value is None:
        return "-"
    text = str(value).replace("\n", " ")
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def entity_named(text: str | None) -> str | None:
    """The entity a typed name means: its own name or its label in either language, in
    any case and without accents ("particolarita", "Articoli"); else the text as typed."""
    import unicodedata

    from passweb_tui.i18n import CATALOGUE, EN

    if not text:
        return text

    def plain(s: str) -> str:
        folded = unicodedata.normalize("NFKD", s.casefold())
        return "".join(c for c in folded if not unicodedata.combining(c))

    wanted = plain(text)
    for name in (k.removeprefix("entity.") for k in EN if k.startswith("entity.")):
        labels = {name, *(cat.get(f"entity.{name}", name) for cat in CATALOGUE.values())}
        if wanted in {plain(label) for label in labels}:
            return name
    return text


@dataclass(frozen=True)
class ChangeFilter:
    run_id: int | None = None
    entity: str | None = None
    field: str | None = None
    key: str | None = None


#: the per-field counts of a run, entity and record, as of a mark of the store (its runs,
#: Engine.data_mark, and its newest change): what a typed field is looked for among
Counts = list[tuple[str, str, int]]


def counted_for(flt: ChangeFilter) -> tuple[int | None, str | None, str | None]:
    """What a filter's per-field counts depend on: all but its field."""
    return flt.run_id, flt.entity, flt.key


def read_changes(
    engine: Any, flt: ChangeFilter, counted: Counts | None = None
) -> tuple[list[Any], Counts | None]:
    """The newest entries the filter picks, and the per-field counts when they had to be
    read for them (a typed field is looked for among the counted fields; `counted`, the
    counts already read for the filter's run, entity and record, saves reading them
    again); None when they were not, since counting a log of millions takes seconds
    that the entries do not need (they are read by `read_counts` after the entries are
    shown)."""
    counts = None
    fields = None
    if flt.field is not None:
        counts = counted if counted is not None else read_counts(engine, flt)
        fields = fields_meant(counts, flt.field)
    entries = engine.changes(
        run_id=flt.run_id, entity=flt.entity, fields=fields, key=flt.key, limit=PAGE
    )
    return list(entries), counts


def read_counts(engine: Any, flt: ChangeFilter) -> Counts:
    """The per-field counts of the filter's run, entity and record."""
    return list(engine.change_counts(run_id=flt.run_id, entity=flt.entity, key=flt.key))


def fields_meant(counts: Counts, typed: str | None) -> list[str] | None:
    """The fields a typed filter names (None: no filter): the one it spells exactly, or
    else every field whose name or label holds it, in any case ("prz" finds
    prz_listino), among those the per-field counts list."""
    if typed is None:
        return None
    names = list(dict.fromkeys(name for _, name, _ in counts))
    if typed in names:
        return [typed]
    low = typed.lower()
    return [n for n in names if low in n.lower() or low in field_label(n).lower()]


def matching(counts: Counts, field: str | None) -> int:
    """How many changes the filter picks, from the per-field counts of its run, entity and
    key (the table shows at most a page of them)."""
    fields = fields_meant(counts, field)
    return sum(n for _, name, n in counts if fields is None or name in fields)


def change_columns(*, with_run: bool, with_record: bool = True) -> list[Col]:
    """The change log's columns (a dry run's would-be changes have no run of their own,
    a record's history names its record once, above). At 80 columns long keys and
    values end in an ellipsis, so that the new value stays on the screen; the line
    under the table shows the change under the cursor whole (see change_note)."""
    return [
        *([Col("run", "#")] if with_run else []),
        *(
            [Col("entity", t("col.entity"), shrink=True), Col("key", t("col.key"), shrink=True)]
            if with_record
            else []
        ),
        Col("change", t("col.change")),
        Col("field", t("col.field"), shrink=True),
        Col("old", t("col.old"), shrink=True, shorten=_from_difference(0)),
        Col("new", t("col.new"), shrink=True, shorten=_from_difference(1)),
    ]


def _from_difference(side: int) -> Callable[[Mapping[str, Any], int], Any]:
    """An old (0) or new (1) value too wide for its column: shown from just before where
    it differs from the other (see records.from_difference), so that the two cut cells
    do not read the same. A value that fits is shown whole."""
    from passweb_tui.engine.records import from_difference

    def shorten(row: Mapping[str, Any], _width: int) -> Any:
        old, new = row.get("old"), row.get("new")
        return from_difference(old, new)[side]

    return shorten


def shown_parts(entry: Any, numeric: FieldKinds) -> tuple[Any, Any]:
    """An entry's old and new values as the screens compare them (see changed_parts),
    numbers in the language's style: those of a per-list field, and those of a field
    that `numeric` (see numeric_fields) names numeric; days of a date field."""
    from passweb_tui.engine.records import changed_parts

    old, new = changed_parts(value_of(entry, "old"), value_of(entry, "new"), decimal_point("."))
    kind = numeric.get((str(value_of(entry, "entity")), str(value_of(entry, "field"))))
    return number_value(old, kind), number_value(new, kind)


def change_row(entry: Any, numeric: FieldKinds = _NO_KINDS) -> tuple[str, tuple[str, ...]]:
    """A change-log entry as (row key, cells); of a per-list field, only the lists that
    changed."""
    from passweb_tui.engine.records import from_difference

    old, new = shown_parts(entry, numeric)
    if max(len(str(old)), len(str(new))) > VALUE_WIDTH:
        # longer than a cell ever shows: from where they differ, before cutting the end
        old, new = from_difference(old, new)
    # (shorter ones whole: cut where they differ only if the column is narrower)
    cells = (
        str(value_of(entry, "run_id", "")),
        t("entity." + str(value_of(entry, "entity")), default=str(value_of(entry, "entity"))),
        str(value_of(entry, "key", "")),
        t("change." + str(value_of(entry, "change")), default=str(value_of(entry, "change"))),
        str(value_of(entry, "field") or "-"),
        short(old),
        short(new),
    )
    ident = value_of(entry, "id")
    key = str(ident) if ident is not None else "|".join(cells[:5])
    return key, cells


def change_note(entry: Any, numeric: FieldKinds = _NO_KINDS) -> Text:
    """The whole of one change, for the line under its table (the cells are cut):
    which record, which field, and its old and new values in full."""
    entity = str(value_of(entry, "entity"))
    note = Text()
    note.append(t(f"entity.{entity}", default=entity) + " ")
    note.append(str(value_of(entry, "key", "")), style="bold")
    name = value_of(entry, "field")
    if not name:
        change = str(value_of(entry, "change"))
        note.append(" " + t("change." + change, default=change))
        return note
    old, new = shown_parts(entry, numeric)
    note.append(f" {name}: ")
    note.append("-" if old is None else str(old), style="red")
    note.append(" → ")
    note.append("-" if new is None else str(new), style="green")
    return note


def selected_change_note(
    table: KeyTable, entries: Mapping[str, Any], numeric: FieldKinds = _NO_KINDS
) -> Text | str:
    """The whole of the change under the cursor of `table`, whose rows are `entries`
    by row key (nothing when the table is empty)."""
    entry = entries.get(table.selected_key() or "")
    return change_note(entry, numeric) if entry is not None else ""


class ChangesScreen(BaseScreen):
    """Every changed field, newest first, narrowed by the filters above the table."""

    # focused as soon as it is composed, so that keys typed right behind the one that
    # opened the screen go to it, not to the first field (see OrderedScroll)
    AUTO_FOCUS = "#changes-table"

    TITLE_KEY = "nav.changes"
    RELOAD_WHEN_STALE = True
    FIELD_EXIT = "#changes-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "key.search", id="changes.search"),
        Binding("ctrl+r", "reload", "key.reload", id="changes.reload", show=False),
        Binding("h", "history", "key.history", id="changes.history"),
    ]

    def __init__(self, *, run_id: int | None = None, entity: str | None = None) -> None:
        super().__init__()
        self.initial = ChangeFilter(run_id=run_id, entity=entity)
        self._rows: dict[str, Any] = {}
        self._shown_filter: ChangeFilter | None = None  # what the table shows the answer to
        self._shown_entries = 0  # how many entries the table shows
        self._counted_filter: ChangeFilter | None = None  # whose counts the panel shows
        #: counts read, by what they depend on and the data mark they were read at: a
        #: field typed letter by letter, or a filter gone back to, is not counted again
        self._counts: dict[tuple[Any, Any], Counts] = {}
        self._numeric: FieldKinds = _NO_KINDS  # see numeric_fields

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="changes-filters"):
            yield OrderedInput(
                str(self.initial.run_id or ""),
                placeholder=t("filter.run"),
                id="f-run",
                type="integer",
                compact=True,
            )
            yield OrderedInput(
                self.initial.entity or "",
                placeholder=t("filter.entity"),
                id="f-entity",
                compact=True,
            )
            yield OrderedInput(placeholder=t("filter.field"), id="f-field", compact=True)
            yield OrderedInput(
                placeholder=t("filter.key", search=self.bound_key("changes.search")),
                id="f-key",
                compact=True,
            )
        with Horizontal(id="changes-body"):
            with Vertical(id="changes-counts", classes="panel"):
                yield Label(t("changes.per_field"), classes="panel-title")
                # a long field name ends in an ellipsis; the count is always shown
                yield FitTable(
                    [
                        Col("entity", t("col.entity"), shrink=True),
                        Col("field", t("col.field"), shrink=True),
                        Col("count", t("col.count")),
                    ],
                    id="changes-counts-table",
                )
            with Vertical(id="changes-log", classes="panel"):
                yield Label(t("changes.log"), id="changes-log-title", classes="panel-title")
                yield FitTable(
                    change_columns(with_run=True),
                    id="changes-table",
                )
                yield Static("", id="changes-note", classes="row-note")

    def on_mount(self) -> None:
        table = self.query_one("#changes-table", FitTable)
        self.load()
        table.focus()

    def sync_finished(self, snap: SyncSnapshot) -> None:
        self._counts.clear()
        self.load()

    def current_filter(self) -> ChangeFilter:
        run = self.query_one("#f-run", Input).value.strip()
        values = {
            name: self.query_one(f"#f-{name}", Input).value.strip() or None
            for name in ("entity", "field", "key")
        }
        values["entity"] = entity_named(values["entity"])
        # what no run is numbered (a number too long for any, or past what int() reads;
        # other text) shows no entry, not every one
        number = run.isascii() and run.isdigit() and len(run) <= 18
        run_id = (int(run) if number else 0) if run else None
        return ChangeFilter(run_id=run_id, **values)

    def on_input_changed(self, _event: Input.Changed) -> None:
        self.load()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.query_one("#changes-table", FitTable).focus()

    def action_search(self) -> None:
        self.query_one("#f-key", Input).focus()

    def action_reload(self) -> None:
        self._counts.clear()
        self.load()

    def load(self) -> None:
        engine = self.papp.engine
        if engine is None:
            return
        flt = self.current_filter()
        known = dict(self._counts)
        if flt != self._shown_filter:
            # the first read or another filter: keys typed meanwhile ("c" then "j") are
            # for its rows
            self.query_one("#changes-table", FitTable).wait_for_rows()

        def read() -> tuple[Any, ...]:
            # the mark first: counts read before a run that ends meanwhile are older;
            # the newest entry too, which moves while a run writes its changes
            mark = (engine.data_mark(), engine.last_change_id())
            counted = known.get((counted_for(flt), mark))
            entries, counts = read_changes(engine, flt, counted)
            numeric = numeric_fields(engine)
            return flt, mark, entries, counts if counts is not None else counted, numeric

        self._read("changes", read)

    def _read(self, group: str, work: Any) -> None:
        """`work` in a thread; a newer read of the same group supersedes it."""
        self.run_worker(
            work, name=group, group=group, thread=True, exclusive=True, exit_on_error=False
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.group == "changes":
            self.query_one("#changes-table", FitTable).rows_came()  # the keys go on
        if event.state != WorkerState.SUCCESS:
            return
        if event.worker.group == "changes-counts":
            flt, mark, counts = cast(Any, event.worker.result)
            self.keep_counts(flt, mark, counts)
            if flt == self.current_filter() and flt == self._shown_filter:
                self.show_counts(flt, counts)
            return
        if event.worker.group != "changes":
            return
        flt, mark, entries, counts, self._numeric = cast(Any, event.worker.result)
        if counts is not None:
            self.keep_counts(flt, mark, counts)
        if flt != self.current_filter():
            return  # a newer filter is being read
        self._rows = {}
        rows = []
        for entry in entries:
            key, cells = change_row(entry, self._numeric)
            if key in self._rows:
                continue
            self._rows[key] = entry
            rows.append((key, cells))
        table = self.query_one("#changes-table", FitTable)
        table.show_rows(rows)
        if flt != self._shown_filter:
            # another filter starts at the newest change; the same one read again after
            # a sync keeps the cursor on its change
            self._shown_filter = flt
            table.move_cursor(row=0, scroll=True)
        table.rows_came()
        self._shown_entries = len(entries)
        self.show_note()
        if counts is not None:
            self.show_counts(flt, counts)
            return
        # the entries first; their counts (seconds, in a log of millions) when read, and
        # until then no counts of another filter's
        if flt != self._counted_filter:
            self.query_one("#changes-counts-table", FitTable).show_rows([])
        title = t("changes.log")
        if len(entries) >= PAGE:
            title += " " + t("changes.first_only", count=fmt_int(len(entries)))
        self.query_one("#changes-log-title", Label).update(title)
        engine = self.papp.engine
        if engine is not None:
            self._read("changes-counts", lambda: (flt, mark, read_counts(engine, flt)))

    def keep_counts(self, flt: ChangeFilter, mark: Any, counts: Counts) -> None:
        if len(self._counts) >= 16:  # a few filters' worth; the oldest go
            for old in list(self._counts)[:8]:
                del self._counts[old]
        self._counts[(counted_for(flt), mark)] = counts

    def show_counts(self, flt: ChangeFilter, counts: Counts) -> None:
        """The per-field panel, and the log's title with how many changes the filter picks."""
        self._counted_filter = flt
        self.query_one("#changes-counts-table", FitTable).show_rows(
            [
                (
                    f"{entity}/{name}",
                    [t(f"entity.{entity}", default=entity), field_label(name), fmt_int(count)],
                )
                for entity, name, count in counts
            ]
        )
        shown = self._shown_entries
        total = max(matching(counts, flt.field), shown)
        title = t("changes.log_count", count=fmt_int(total))
        if total > shown:
            title += " " + t("changes.first_only", count=fmt_int(shown))
        self.query_one("#changes-log-title", Label).update(title)

    def on_data_table_row_selected(self, event: KeyTable.RowSelected) -> None:
        if event.data_table.id == "changes-counts-table" and event.row_key.value:
            entity, name = str(event.row_key.value).split("/", 1)
            self.query_one("#f-entity", Input).value = entity
            self.query_one("#f-field", Input).value = name
        elif event.data_table.id == "changes-table":
            self.action_history()

    def on_data_table_row_highlighted(self, event: KeyTable.RowHighlighted) -> None:
        if event.data_table.id == "changes-table":
            self.show_note()

    def show_note(self) -> None:
        """The change under the cursor in full, under the table; one too long for the
        lines the note has here ends saying where it is shown whole."""
        table = self.query_one("#changes-table", FitTable)
        box = self.query_one("#changes-note", Static)
        note = selected_change_note(table, self._rows, self._numeric)
        width = box.size.width - 2  # its padding
        if isinstance(note, Text) and width > 20:
            lines = note.wrap(self.app.console, width)
            if len(lines) > NOTE_LINES:
                more = "… " + t("changes.note_more", key=self.bound_key("changes.history"))
                last = lines[NOTE_LINES - 1].copy()
                last.rstrip()
                last.truncate(max(0, width - len(more)))
                last.append(more, style="italic")
                note = Text("\n").join([*lines[: NOTE_LINES - 1], last])
        box.update(note)

    def action_history(self) -> None:
        key = self.query_one("#changes-table", FitTable).selected_key()
        entry = self._rows.get(key or "")
        if entry is None:
            return
        self.app.push_screen(
            RecordHistoryScreen(str(value_of(entry, "entity")), str(value_of(entry, "key")))
        )


class RecordHistoryScreen(BaseScreen):
    """Every recorded change of one record, newest first; the change under the cursor
    whole under the table (the screen scrolls when it is longer than the room left)."""

    TITLE_KEY = "changes.history"

    def __init__(self, entity: str, key: str) -> None:
        super().__init__()
        self.entity = entity
        self.key = key
        self._rows: dict[str, Any] = {}
        self._numeric: FieldKinds = _NO_KINDS  # see numeric_fields

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="history-body"), Vertical(classes="panel"):
            yield Label(
                t("changes.history_of", entity=t(f"entity.{self.entity}"), key=self.key),
                classes="panel-title",
            )
            yield FitTable(change_columns(with_run=True, with_record=False), id="history-table")
            yield Static("", id="history-note", classes="row-note")

    def on_mount(self) -> None:
        table = self.query_one("#history-table", FitTable)
        engine = self.papp.engine
        self.run_worker(
            lambda: (list(engine.record_history(self.entity, self.key)), numeric_fields(engine)),
            group="history",
            thread=True,
            exit_on_error=False,
        )
        table.focus()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "history" or event.state != WorkerState.SUCCESS:
            return
        entries, self._numeric = cast(Any, event.worker.result)
        self._rows = {str(i): entry for i, entry in enumerate(entries)}
        rows = []
        for key, entry in self._rows.items():
            # the record is named in the title, not again on each row
            run, _entity, _key, *cells = change_row(entry, self._numeric)[1]
            rows.append((key, [run, *cells]))
        self.query_one("#history-table", FitTable).show_rows(rows)
        self.show_note()

    def on_data_table_row_highlighted(self, _event: FitTable.RowHighlighted) -> None:
        self.show_note()

    def show_note(self) -> None:
        table = self.query_one("#history-table", FitTable)
        self.query_one("#history-note", Static).update(
            selected_change_note(table, self._rows, self._numeric)
        )


class WouldChangeScreen(BaseScreen):
    """What a dry run would have changed, as the change log would have had it (kept in
    its result, the first 1,000; not stored); enter opens a record's history."""

    TITLE_KEY = "changes.would"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("h", "history", "key.history", id="would.history"),
    ]

    def __init__(self, run_id: int, entries: list[tuple[Any, ...]], total: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.entries = entries
        self.total = total
        #: the entries as the change log has them, by row key
        self._rows = {
            str(i): dict(zip(("entity", "key", "change", "field", "old", "new"), e, strict=True))
            for i, e in enumerate(entries)
        }

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="panel"):
            title = t("changes.would_of", run=self.run_id, records=fmt_int(self.total))
            if len(self.entries) >= DRY_CHANGES_KEPT:
                title += " " + t("changes.first_only", count=fmt_int(len(self.entries)))
            yield Label(title, classes="panel-title")
            yield FitTable(
                change_columns(with_run=False),
                id="would-table",
            )
            yield Static("", id="would-note", classes="row-note")

    def on_mount(self) -> None:
        engine = self.papp.engine
        self.run_worker(
            lambda: numeric_fields(engine) if engine is not None else _NO_KINDS,
            group="would-numeric",
            thread=True,
            exit_on_error=False,
        )
        self.show_rows()
        self.query_one("#would-table", FitTable).focus()

    _numeric: FieldKinds = _NO_KINDS  # see numeric_fields

    def show_rows(self) -> None:
        self.query_one("#would-table", FitTable).show_rows(
            [(key, list(change_row(e, self._numeric)[1][1:])) for key, e in self._rows.items()]
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "would-numeric" and event.state == WorkerState.SUCCESS:
            self._numeric = cast(Any, event.worker.result)
            self.show_rows()
            self.show_note()

    def on_data_table_row_selected(self, _event: FitTable.RowSelected) -> None:
        self.action_history()

    def on_data_table_row_highlighted(self, _event: FitTable.RowHighlighted) -> None:
        self.show_note()

    def show_note(self) -> None:
        """The change under the cursor in full, under the table."""
        table = self.query_one("#would-table", FitTable)
        self.query_one("#would-note", Static).update(
            selected_change_note(table, self._rows, self._numeric)
        )

    def action_history(self) -> None:
        """The record's recorded history (what the store holds, not the dry run's)."""
        key = self.query_one("#would-table", FitTable).selected_key()
        if key is None:
            return
        entity, code = self.entries[int(str(key))][:2]
        self.app.push_screen(RecordHistoryScreen(str(entity), str(code)))


KEYMAP_CLASSES = [RecordHistoryScreen, WouldChangeScreen]
