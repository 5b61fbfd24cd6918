"""The ERP's fields per entity and which ones the site uses; toggle them; run the
attribute update (Aggiornamento Attributi).
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select
from textual.worker import Worker, WorkerState

from passweb_tui.i18n import engine_text, t
from passweb_tui.screens.base import BaseScreen, KeyTable, OrderedInput, value_of


def field_entities() -> list[str]:
    """The entities whose fields the operator chooses, as the engine names them."""
    from passweb_tui.engine.facade import Engine

    return list(Engine.field_entities())


USED = "✓"


class FieldsScreen(BaseScreen):
    """Choose which of the ERP's fields the site keeps."""

    TITLE_KEY = "nav.fields"
    RELOAD_WHEN_STALE = True
    OWN_ERRORS = frozenset({"fields-toggle"})  # a refused toggle is said here, as such
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_used", "key.toggle_used", id="fields.toggle"),
        Binding("t", "next_entity", "key.next_entity", id="fields.entity"),
        Binding(
            "u",
            "attribute_update",
            "key.attribute_update",
            id="fields.update",
            tooltip="key.attribute_update.tip",
        ),
        Binding("slash", "search", "key.search", id="fields.search", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entities = field_entities()
        self.entity = self.entities[0]
        self._rows: dict[str, Any] = {}  # the rows shown (those the filter lets through)
        self._all: list[Any] = []  # every field of the entity

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="fields-bar"):
            yield Label(t("fields.entity"), id="fields-entity-label")
            yield Select(
                [(t(f"entity.{e}"), e) for e in self.entities],
                value=self.entity,
                allow_blank=False,
                id="fields-entity",
                compact=True,
            )
            yield OrderedInput(
                placeholder=t("filter.fields", search=self.bound_key("fields.search")),
                id="fields-filter",
                compact=True,
            )
        with Vertical(classes="panel"):
            yield Label(id="fields-status", classes="panel-title")
            yield KeyTable(id="fields-table")

    def on_mount(self) -> None:
        table = self.query_one("#fields-table", KeyTable)
        table.add_column(t("col.used"), key="used", width=max(4, len(t("col.used"))))
        table.add_column(t("col.field"), key="name")
        table.add_column(t("col.type"), key="type")
        table.add_column(t("col.key"), key="key")
        table.add_column(t("col.description"), key="description")
        table.focus()
        self.load()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "fields-entity" and event.value != self.entity:
            self.entity = str(event.value)
            self.load()

    def action_next_entity(self) -> None:
        i = self.entities.index(self.entity)
        self.query_one("#fields-entity", Select).value = self.entities[(i + 1) % len(self.entities)]

    def action_search(self) -> None:
        self.query_one("#fields-filter", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "fields-filter":
            self.show(list(self._all))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "fields-filter":
            self.query_one("#fields-table", KeyTable).focus()

    def _matches(self, row: Any) -> bool:
        wanted = self.query_one("#fields-filter", Input).value.strip().casefold()
        if not wanted:
            return True
        text = f"{value_of(row, 'name')} {value_of(row, 'description') or ''}"
        return wanted in text.casefold()

    def load(self) -> None:
        engine = self.papp.engine
        if engine is None:
            return
        entity = self.entity
        self.run_worker(
            lambda: (entity, list(engine.fields(entity))),
            group="fields",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        group = event.worker.group
        if group == "fields" and event.state == WorkerState.SUCCESS:
            entity, rows = cast(Any, event.worker.result)
            if entity == self.entity:
                self.show(rows)
        elif group == "fields-toggle" and event.state == WorkerState.ERROR:
            # refused (the last used field, say): why, and what the store really holds
            self.notify(engine_text(str(event.worker.error)), severity="error", timeout=10)
            self.load()
        elif group == "attribute-update" and event.state == WorkerState.SUCCESS:
            self.notify(t("fields.updated"))
            self.load()

    def show(self, rows: list[Any]) -> None:
        table = self.query_one("#fields-table", KeyTable)
        cursor = table.selected_key()
        table.clear()
        self._all = list(rows)
        self._rows = {}
        for row in filter(self._matches, rows):
            name = str(value_of(row, "name"))
            self._rows[name] = row
            table.add_row(
                USED if value_of(row, "used") else "",
                name,
                str(value_of(row, "type") or ""),
                t("fields.key") if value_of(row, "key") else "",
                str(value_of(row, "description") or ""),
                key=name,
            )
        if cursor in self._rows:
            table.move_cursor(row=table.get_row_index(cursor))
        self.show_status()

    def show_status(self) -> None:
        rows = self._all  # the counts are of every field, whatever the filter shows
        used = sum(1 for r in rows if value_of(r, "used"))
        update = self.bound_key("fields.update")
        status = Text(
            t(
                "fields.status",
                used=used,
                total=len(rows),
                toggle=self.bound_key("fields.toggle"),
                update=update,
            )
        )
        if not rows:
            status = Text(t("fields.empty", update=update), style="yellow")
        self.query_one("#fields-status", Label).update(status)

    def action_toggle_used(self) -> None:
        table = self.query_one("#fields-table", KeyTable)
        name = table.selected_key()
        engine = self.papp.engine
        if name is None or engine is None or name not in self._rows:
            return
        row = self._rows[name]
        if value_of(row, "key"):
            self.notify(t("fields.key_always_used"), severity="warning")
            return
        used = not value_of(row, "used")
        entity = self.entity
        table.update_cell(name, "used", USED if used else "")
        self._rows[name] = _with_used(row, used)
        self._all = [self._rows[name] if value_of(r, "name") == name else r for r in self._all]
        self.show_status()
        self.run_worker(
            lambda: engine.set_used(entity, [name], used),
            group="fields-toggle",
            thread=True,
            exit_on_error=False,
        )
        self.notify(
            t("fields.filled_next_sync" if used else "fields.dropped_next_sync", field=name)
        )

    def action_attribute_update(self) -> None:
        engine = self.papp.engine
        if engine is None:
            return
        self.notify(t("fields.updating"))
        self.run_worker(
            engine.attribute_update, group="attribute-update", thread=True, exit_on_error=False
        )


def _with_used(row: Any, used: bool) -> Any:
    """The same field row with another `used` flag (rows may be frozen dataclasses)."""
    from dataclasses import is_dataclass, replace

    if isinstance(row, dict):
        return {**row, "used": used}
    if is_dataclass(row) and not isinstance(row, type):
        return replace(row, used=used)
    return row
