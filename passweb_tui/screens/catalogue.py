"""The catalogue: articles and customers with search; mark records with the keyboard and
launch a Parziale of exactly those.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label
from textual.worker import Worker, WorkerState

from passweb_tui.i18n import t
from passweb_tui.screens.base import BaseScreen, OrderedInput, fmt_int, fmt_money, value_of
from passweb_tui.screens.fit_table import Col, FitTable
from passweb_tui.screens.sync_state import SyncSnapshot

PAGE = 200
MARK = "●"

#: What each catalogue entity shows: (row field, column label key, may be shortened),
#: the code first. At 80 columns a long description or name ends in an ellipsis, so that
#: the columns after it stay on the screen.
COLUMNS: dict[str, list[tuple[str, str, bool]]] = {
    "articles": [
        ("code", "col.code", False),
        ("description", "col.description", True),
        ("prices", "col.price", False),
        ("category", "col.category", False),
        ("vat", "col.vat", False),
    ],
    "customers": [
        ("code", "col.code", False),
        ("name", "col.name", True),
        ("city", "col.city", True),
        ("vat_number", "col.vat_number", False),
        ("price_list", "col.listino", False),
    ],
}


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        # per-list prices: the first list is the one people quote
        return fmt_money(value[min(value)]) if value else ""
    return str(value)


class CatalogueScreen(BaseScreen):
    """Search the site's copy of the ERP's articles or customers and mark some."""

    # focused as soon as it is composed, so that keys typed right behind the one that
    # opened the screen go to it, not to the first field (see OrderedScroll)
    AUTO_FOCUS = "#catalogue-table"

    TITLE_KEY = "nav.catalogue"
    RELOAD_WHEN_STALE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "search", "key.search", id="catalogue.search"),
        Binding("t", "toggle_entity", "key.toggle_entity", id="catalogue.entity"),
        Binding("space", "mark", "key.mark", id="catalogue.mark"),
        Binding("u", "unmark_all", "key.unmark_all", id="catalogue.unmark", show=False),
        Binding(
            "p",
            "partial",
            "key.partial_marked",
            id="catalogue.partial",
            tooltip="key.partial_marked.tip",
        ),
        Binding("enter", "open", "key.open_record", id="catalogue.open", show=False),
        Binding("h", "history", "key.history", id="catalogue.history", show=False),
        Binding("n", "page(1)", "key.next_page", id="catalogue.next", show=False),
        Binding("b", "page(-1)", "key.prev_page", id="catalogue.prev", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entity = "articles"
        self.page_offset = 0
        self.rows: list[list[Any]] = []  # the page shown, a cell per column of COLUMNS
        self.shown_query: tuple[str, str | None, int] | None = None  # what `rows` answer

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="cat-search-bar"):
            yield Label(id="catalogue-entity")
            yield OrderedInput(
                placeholder=t("catalogue.search_hint", search=self.bound_key("catalogue.search")),
                id="catalogue-search",
                compact=True,
            )
        with Vertical(classes="panel"):
            yield Label(id="catalogue-status", classes="panel-title")
            yield FitTable([], id="catalogue-table")

    def on_mount(self) -> None:
        self.setup_columns()
        self.load()
        self.query_one("#catalogue-table", FitTable).focus()

    @property
    def marked(self) -> set[str]:
        return self.papp.marked.setdefault(self.entity, set())

    def setup_columns(self) -> None:
        self.query_one("#catalogue-table", FitTable).set_columns(
            [
                Col("mark", " "),
                *(
                    Col(name, t(label), shrink=shrink)
                    for name, label, shrink in COLUMNS[self.entity]
                ),
            ]
        )
        self.rows = []
        self.query_one("#catalogue-entity", Label).update(
            Text(t(f"entity.{self.entity}"), style="bold")
        )

    def sync_finished(self, snap: SyncSnapshot) -> None:
        self.load()

    def load(self) -> None:
        engine = self.papp.engine
        if engine is None:
            return
        search = self.query_one("#catalogue-search", Input).value.strip() or None
        entity, offset = self.entity, self.page_offset
        if (entity, search, offset) != self.shown_query:
            # another entity or page: the table's keys are for its rows, not these
            self.query_one("#catalogue-table", FitTable).wait_for_rows()
        reader = engine.articles if entity == "articles" else engine.customers
        self.run_worker(
            lambda: (
                (entity, search, offset),
                list(reader(search=search, limit=PAGE, offset=offset)),
            ),
            group="catalogue",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "catalogue":
            return
        if event.state == WorkerState.ERROR:  # said by the screen; the keys go on
            self.query_one("#catalogue-table", FitTable).rows_came()
        if event.state != WorkerState.SUCCESS:
            return
        (entity, search, offset), rows = cast(Any, event.worker.result)
        current = self.query_one("#catalogue-search", Input).value.strip() or None
        if (entity, search, offset) != (self.entity, current, self.page_offset):
            return  # the operator typed on; a newer read follows
        self.rows = []
        for row in rows:
            cells: list[Any] = [cell(value_of(row, name)) for name, _, _ in COLUMNS[entity]]
            if entity == "articles" and value_of(row, "published") is False:
                # kept in the store, not on the site (pre-deleted or cancelled in the ERP)
                shown = f"({t('catalogue.unpublished')}) {cells[1]}"
                cells[1] = Text(shown, style="dim italic")
            self.rows.append(cells)
        self.show_rows()
        if (entity, search, offset) != self.shown_query:
            # another page or search starts at its top; the same one read again after a
            # sync keeps the cursor on its record
            self.shown_query = (entity, search, offset)
            self.query_one("#catalogue-table", FitTable).move_cursor(row=0, scroll=True)
        self.query_one("#catalogue-table", FitTable).rows_came()
        self.rows_shown = len(rows)
        self.show_status()
        if search is not None and self._open_found == search:
            self._open_if_found(search)

    def show_rows(self) -> None:
        """The page read, each row with its mark (the code is the first column)."""
        marked = self.marked
        self.query_one("#catalogue-table", FitTable).show_rows(
            [(cells[0], [MARK if cells[0] in marked else "", *cells]) for cells in self.rows]
        )

    def show_status(self) -> None:
        shown = getattr(self, "rows_shown", 0)
        text = t(
            "catalogue.status" if shown else "catalogue.status_empty",
            first=fmt_int(self.page_offset + 1 if shown else 0),
            last=fmt_int(self.page_offset + shown),
            marked=fmt_int(len(self.marked)),
            open=self.bound_key("catalogue.open"),
            mark=self.bound_key("catalogue.mark"),
            partial=self.bound_key("catalogue.partial"),
        )
        self.query_one("#catalogue-status", Label).update(text)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "catalogue-search":
            self.page_offset = 0
            self.load()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        """Enter in the search goes to the table; on the record the search names (its
        whole code, or the only one found), it opens it, once the search has been read."""
        self.query_one("#catalogue-table", FitTable).focus()
        search = self.query_one("#catalogue-search", Input).value.strip() or None
        if search is None:
            return
        self._open_found = search
        if self.shown_query == (self.entity, search, self.page_offset):
            self._open_if_found(search)

    _open_found: str | None = None  # a search whose record Enter asked to open once read

    def _open_if_found(self, search: str) -> None:
        self._open_found = None
        codes = [str(cells[0]) for cells in self.rows]
        exact = [i for i, code in enumerate(codes) if code.casefold() == search.casefold()]
        found = exact[0] if exact else (0 if len(codes) == 1 else None)
        if found is not None:
            table = self.query_one("#catalogue-table", FitTable)
            table.move_cursor(row=found, scroll=True)
            self.action_open()

    def action_search(self) -> None:
        self.query_one("#catalogue-search", Input).focus()

    def action_toggle_entity(self) -> None:
        self.entity = "customers" if self.entity == "articles" else "articles"
        self.page_offset = 0
        self.setup_columns()
        self.load()

    def action_page(self, step: int) -> None:
        shown = getattr(self, "rows_shown", 0)
        if step > 0 and shown < PAGE:
            return
        self.page_offset = max(0, self.page_offset + step * PAGE)
        self.load()

    def action_mark(self) -> None:
        """Mark or unmark the record under the cursor, then move down to the next one."""
        table = self.query_one("#catalogue-table", FitTable)
        code = table.selected_key()
        if code is None:
            return
        marked = self.marked
        if code in marked:
            marked.discard(code)
        else:
            marked.add(code)
        self.show_rows()
        table.action_cursor_down()
        self.show_status()

    def action_unmark_all(self) -> None:
        self.marked.clear()
        self.show_rows()
        self.show_status()

    def on_data_table_row_selected(self, event: FitTable.RowSelected) -> None:
        if event.data_table.id == "catalogue-table":
            self.action_open()

    def action_open(self) -> None:
        """The record under the cursor in full: its fields, prices and links."""
        code = self.query_one("#catalogue-table", FitTable).selected_key()
        if code is None:
            return
        from passweb_tui.screens.record import RecordScreen

        self.app.push_screen(RecordScreen(self.entity, code))

    def action_history(self) -> None:
        """Every recorded change of the record under the cursor."""
        code = self.query_one("#catalogue-table", FitTable).selected_key()
        if code is None:
            return
        from passweb_tui.screens.changes import RecordHistoryScreen

        self.app.push_screen(RecordHistoryScreen(self.entity, code))

    def action_partial(self) -> None:
        """A Parziale of exactly the marked records of this entity."""
        from passweb_tui.engine.facade import Scope

        codes = tuple(sorted(self.marked))
        if not codes:
            self.notify(
                t("catalogue.nothing_marked", mark=self.bound_key("catalogue.mark")),
                severity="warning",
            )
            return
        scope = Scope(entities=(self.entity,), codes=codes)
        if self.papp.start_sync("partial", scope=scope):
            self.notify(
                t(
                    "catalogue.partial_started",
                    count=len(codes),
                    entity=t(f"entity.{self.entity}"),
                    entity_one=t(f"entity_one.{self.entity}"),
                )
            )
