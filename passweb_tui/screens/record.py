"""One article or customer as the site store holds it: the ERP fields the site uses,
an article's prices per price list, what it links to, and when it last changed."""

from __future__ import annotations

import json
from typing import Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Static
from textual.worker import Worker, WorkerState

from passweb_tui.engine.records import value_text
from passweb_tui.i18n import decimal_point, engine_text, t
from passweb_tui.screens.base import BaseScreen, fmt_money, fmt_when, number_value
from passweb_tui.screens.fit_table import Col, FitTable

#: the store's own columns shown above the fields, by entity: a line each, its columns
#: joined by " · " (short ones share a line, so the summary fits half an 80-column screen)
SUMMARY: dict[str, tuple[tuple[str, ...], ...]] = {
    "articles": (("description",), ("category",), ("vat", "unit", "published")),
    "customers": (
        ("name",),
        ("vat_number", "tax_code"),
        ("email", "city"),
        ("price_list", "payment"),
    ),
}


def show_value(value: Any, kind: str | bool | None = None) -> str:
    """A stored ERP value as read on screen (see records.value_text), yes/no translated;
    of a numeric field (`kind` "N"), a number with a fraction kept as text in the
    language's style; of a date field ("D"), a day as the screens write one."""
    return value_text(
        number_value(value, kind), t("record.yes"), t("record.no"), decimal_point(".")
    )


def _parsed(text: str | None) -> Any:
    """A value as the change log spells it (lists and maps as JSON), back as a value."""
    if text is None or text[:1] not in ("[", "{"):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


class RecordScreen(BaseScreen):
    """An article or a customer in full; escape goes back to where it was opened."""

    # focused as soon as it is composed, so that keys typed right behind the one that
    # opened the screen go to it, not to the first field (see OrderedScroll)
    AUTO_FOCUS = "#record-fields"

    TITLE_KEY = "record.title"
    RELOAD_WHEN_STALE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("h", "history", "key.history", id="record.history"),
        Binding(
            "p",
            "partial",
            "key.partial_record",
            id="record.partial",
            tooltip="key.partial_record.tip",
        ),
        Binding(
            "d",
            "compare",
            "key.compare_erp",
            id="record.compare",
            tooltip="key.compare_erp.tip",
        ),
        Binding("ctrl+r", "reload", "key.reload", id="record.reload", show=False),
    ]

    def __init__(self, entity: str, code: str) -> None:
        super().__init__()
        self.entity = entity
        self.code = code
        self.detail: Any = None
        self.described: dict[str, str | None] = {}
        self.numeric: dict[str, str] = {}  # the numeric (N) and date (D) fields
        #: a comparison with the ERP under way: the dry-run Parziale launched from here
        self.comparing = False
        #: what the last comparison found: field -> the ERP's value as text, and a line
        self.erp_values: dict[str, str | None] | None = None
        self.erp_line: Text | None = None
        self.loaded = False  # the store's record has been read and shown once

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="record-top"):
            with Vertical(classes="panel", id="record-summary-panel"):
                yield Label(
                    t(f"record.heading.{self.entity}", code=self.code),
                    id="record-heading",
                    classes="panel-title",
                )
                yield Static(t("dash.loading"), id="record-summary")
            if self.entity == "customers":
                with Vertical(classes="panel", id="record-conditions-panel"):
                    yield Label(t("record.conditions"), id="record-conditions-title")
                    yield FitTable(
                        [
                            Col("target", t("col.article_or_group")),
                            Col("price", t("col.price")),
                            Col("discount", t("col.discount"), shrink=True),
                        ],
                        id="record-conditions",
                    )
            if self.entity == "articles":
                with Vertical(classes="panel", id="record-prices-panel"):
                    yield Label(t("record.prices"), classes="panel-title")
                    yield FitTable(
                        [
                            Col("list", t("col.listino")),
                            Col("price", t("col.price")),
                            Col("name", t("col.description"), shrink=True),
                        ],
                        id="record-prices",
                    )
        with Vertical(classes="panel", id="record-fields-panel"):
            yield Label(t("record.fields"), classes="panel-title")
            yield FitTable(
                [
                    Col("field", t("col.field")),
                    Col("value", t("col.value"), shrink=True),
                    # the ERP's description of a field, where there is room after its value
                    Col("description", t("col.description"), drop=1, shrink=True),
                ],
                id="record-fields",
            )

    def on_mount(self) -> None:
        self.query_one("#record-fields", FitTable).focus()
        self.load()

    def load(self) -> None:
        engine = self.papp.engine
        if engine is None:
            return
        entity, code = self.entity, self.code

        def read() -> tuple[Any, dict[str, str | None], dict[str, str]]:
            fields = engine.fields(entity)
            described = {f.name: f.description for f in fields}
            numeric = {f.name: f.type for f in fields if f.type in ("N", "D")}
            return engine.record(entity, code), described, numeric

        self.run_worker(read, group="record", thread=True, exclusive=True, exit_on_error=False)

    def action_reload(self) -> None:
        self.load()

    def sync_finished(self, snap: Any) -> None:
        result = getattr(snap, "result", None)
        if self.comparing and snap.dry_run:
            self.comparing = False
            engine = self.papp.engine
            if result is None or result.run_id is None or engine is None:
                self.erp_line = Text(
                    t("record.erp_failed", error=engine_text(snap.error or "-")), "red"
                )
                self.show_again()
                return
            run_id = result.run_id
            self.run_worker(
                lambda: (result, engine.run_rejects(run_id, 3)[0]),
                group="record-compare",
                thread=True,
                exit_on_error=False,
            )
            return
        # a real run: what the ERP said before may be in the store by now
        self.erp_values, self.erp_line = None, None
        self.load()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.worker.group == "record-compare" and event.state == WorkerState.SUCCESS:
            result, rejects = cast(Any, event.worker.result)
            self.compared(result, rejects)
            return
        if event.worker.group != "record" or event.state != WorkerState.SUCCESS:
            return
        detail, described, self.numeric = cast(Any, event.worker.result)
        self.show(detail, described)

    def action_compare(self) -> None:
        """Ask the ERP what it holds now: a dry-run Parziale of this record (recorded in
        the run history like any dry run), whose would-be changes show beside the
        stored values. Nothing is written."""
        from passweb_tui.engine.facade import Scope

        scope = Scope(entities=(self.entity,), codes=(self.code,))
        if self.papp.start_sync("partial", scope=scope, dry_run=True):
            self.comparing = True
            self.erp_line = Text(t("record.erp_asking"), "dim")
            self.show_again()

    def compared(self, result: Any, rejects: list[Any]) -> None:
        """What the dry run found for this record, said in one line and, field by field,
        in the fields table's column of the ERP's values."""
        mine = [c for c in result.would_change if c[0] == self.entity and c[1] == self.code]
        counts = result.entities.get(self.entity, {})
        read = counts.get("fetched", 0)
        kept = sum(counts.get(k, 0) for k in ("inserted", "updated", "unchanged", "rejected"))
        self.erp_values = None
        if result.status == "failed":
            self.erp_line = Text(
                t("record.erp_failed", error=engine_text(result.error or "-")), "red"
            )
        elif rejects:
            self.erp_line = Text(t("record.erp_rejected", reason=rejects[0].reason), "red")
        elif read > kept:
            self.erp_line = Text(t("record.erp_off_site"), "yellow")
        elif any(c[2] == "inserted" for c in mine):
            self.erp_line = Text(
                t("record.erp_new", partial=self.bound_key("record.partial")), "yellow"
            )
        elif mine:
            # the ERP's fields (the store's own columns, derived from them, follow them)
            known = set(self.described) | set(getattr(self.detail, "data", None) or ())
            self.erp_values = {str(c[3]): c[5] for c in mine if c[3] in known}
            names = sorted({str(c[3]) for c in mine if c[3] is not None})
            fields = ", ".join(names)
            self.erp_line = Text(
                t(
                    "record.erp_differs",
                    count=len(names),
                    fields=fields,
                    partial=self.bound_key("record.partial"),
                ),
                "yellow",
            )
        else:
            self.erp_line = Text(t("record.erp_same"), "green")
        self.show_again()

    def show_again(self) -> None:
        """The record as last read, with what the ERP said of it (once it was read)."""
        if self.loaded:
            self.show(self.detail, self.described)

    def show(self, detail: Any, described: dict[str, str | None]) -> None:
        self.detail = detail
        self.described = described
        self.loaded = True
        summary = self.query_one("#record-summary", Static)
        if detail is None:
            missing = Text(t("record.missing"), style="bold yellow")
            missing.append(
                "\n" + t("record.compare_hint", compare=self.bound_key("record.compare"))
            )
            if self.erp_line is not None:
                missing.append("\n")
                missing.append_text(self.erp_line)
            summary.update(missing)
            self.query_one("#record-fields", FitTable).show_rows([])
            for table in self.query("#record-prices, #record-conditions").results(FitTable):
                table.show_rows([])
            return
        text = Text()
        for line in SUMMARY[self.entity]:
            if text:
                text.append("\n")
            for i, name in enumerate(line):
                value = detail.columns.get(name)
                if name == "published":
                    shown = t("record.on_site") if value else t("record.off_site")
                else:
                    shown = show_value(value)
                    description = detail.names.get(name)
                    if value is not None and description:
                        shown += f" {description}"
                if i:
                    text.append(" · ")
                text.append(t(f"record.col.{name}") + ": ", style="bold")
                text.append(shown)
        if self.entity == "articles" and detail.conditions:
            # who has particolarita on it (by its code or its category): the first few
            customers = sorted({c["customer"] for c in detail.conditions if c["customer"]})
            shown = ", ".join(customers[:3]) + (", …" if len(customers) > 3 else "")
            text.append("\n" + t("record.conditions") + ": ", style="bold")
            if len(customers) == 1:
                text.append(t("record.conditions_of_one", customer=shown))
            else:
                text.append(t("record.conditions_of", count=len(customers), customers=shown))
        if self.entity == "customers" and detail.order_count:
            from passweb_tui.screens.orders import state_label

            listed = ", ".join(f"{o['id']} {state_label(o['state'])}" for o in detail.orders)
            more = ", …" if detail.order_count > len(detail.orders) else ""
            text.append("\n" + t("record.orders") + ": ", style="bold")
            text.append(f"{detail.order_count} ({listed}{more})")
        text.append("\n" + t("record.synced_at") + ": ", style="bold")
        text.append(fmt_when(self.app, detail.synced_at))
        if detail.last_change is not None:
            run, when = detail.last_change
            text.append(
                " · " + t("record.last_change", run=run, when=fmt_when(self.app, when)), "dim"
            )
        if self.erp_line is not None:
            text.append("\n")
            text.append_text(self.erp_line)
        summary.update(text)
        fields = self.query_one("#record-fields", FitTable)
        erp = self.erp_values
        wanted = ["field", "value", *(["erp"] if erp is not None else []), "description"]
        if [c.key for c in fields.all_columns] != wanted:
            fields.set_columns(
                [
                    Col("field", t("col.field")),
                    Col("value", t("col.value"), shrink=True),
                    *([Col("erp", t("col.erp_now"), shrink=True)] if erp is not None else []),
                    Col("description", t("col.description"), drop=1, shrink=True),
                ]
            )
        rows: list[tuple[str, list[Any]]] = []
        for name in sorted(set(detail.data) | set(erp or ())):
            numeric = self.numeric.get(name)
            cells: list[Any] = [name, show_value(detail.data.get(name), numeric)]
            if erp is not None:
                cells.append(
                    Text(show_value(_parsed(erp[name]), numeric), style="bold yellow")
                    if name in erp
                    else Text("=", style="dim")
                )
            cells.append(described.get(name) or "")
            rows.append((name, cells))
        fields.show_rows(rows)
        if self.entity == "articles":
            self.query_one("#record-prices", FitTable).show_rows(
                [
                    (str(code), [str(code), fmt_money(price), name or ""])
                    for code, name, price in detail.prices
                ]
            )
        else:
            rows = []
            for i, c in enumerate(detail.conditions):
                target = c["article"] or (
                    t("record.group", code=c["article_group"]) if c["article_group"] else "-"
                )
                price = fmt_money(c["price"]) if c["price"] is not None else "-"
                rows.append((str(i), [target, price, c["discount"] or "-"]))
            self.query_one("#record-conditions", FitTable).show_rows(rows)
            self.query_one("#record-conditions-title", Label).update(
                t("record.conditions_count", count=len(rows))
            )

    def action_history(self) -> None:
        from passweb_tui.screens.changes import RecordHistoryScreen

        self.app.push_screen(RecordHistoryScreen(self.entity, self.code))

    def action_partial(self) -> None:
        """A Parziale of this record alone: the ERP's current values, now."""
        from passweb_tui.engine.facade import Scope

        scope = Scope(entities=(self.entity,), codes=(self.code,))
        if self.papp.start_sync("partial", scope=scope):
            self.notify(
                t(
                    "catalogue.partial_started",
                    count=1,
                    entity=t(f"entity.{self.entity}"),
                    entity_one=t(f"entity_one.{self.entity}"),
                )
            )


KEYMAP_CLASSES = [RecordScreen]
