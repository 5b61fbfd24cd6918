"""One article or customer as the site store holds it: the ERP fields the site uses,
an article's prices per price list, what it links to, and when it last changed."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Static
from textual.worker import Worker, WorkerState

from passweb_tui.i18n import t
from passweb_tui.screens.base import BaseScreen, fmt_money, fmt_when
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


def show_value(value: Any) -> str:
    """A stored ERP value as read on screen: per-list pairs such as `prz_listino` as
    "1: 12.50 · 2: 11.00", other lists joined, nothing as "-"."""
    if value is None or value == "":
        return "-"
    if isinstance(value, dict):  # a per-site or per-list array, keyed by its index
        return " · ".join(f"{k}: {show_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        if value and all(isinstance(v, list) and len(v) == 2 for v in value):
            return " · ".join(f"{k}: {show_value(v)}" for k, v in value)
        return ", ".join(show_value(v) for v in value)
    if isinstance(value, bool):
        return t("record.yes") if value else t("record.no")
    return str(value)


class RecordScreen(BaseScreen):
    """An article or a customer in full; escape goes back to where it was opened."""

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
        Binding("ctrl+r", "reload", "key.reload", id="record.reload", show=False),
    ]

    def __init__(self, entity: str, code: str) -> None:
        super().__init__()
        self.entity = entity
        self.code = code
        self.detail: Any = None

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

        def read() -> tuple[Any, dict[str, str | None]]:
            described = {f.name: f.description for f in engine.fields(entity)}
            return engine.record(entity, code), described

        self.run_worker(read, group="record", thread=True, exclusive=True, exit_on_error=False)

    def action_reload(self) -> None:
        self.load()

    def sync_finished(self, snap: Any) -> None:
        self.load()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.worker.group != "record" or event.state != WorkerState.SUCCESS:
            return
        detail, described = cast(Any, event.worker.result)
        self.show(detail, described)

    def show(self, detail: Any, described: dict[str, str | None]) -> None:
        self.detail = detail
        summary = self.query_one("#record-summary", Static)
        if detail is None:
            summary.update(Text(t("record.missing"), style="bold yellow"))
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
        text.append("\n" + t("record.synced_at") + ": ", style="bold")
        text.append(fmt_when(self.app, detail.synced_at))
        if detail.last_change is not None:
            run, when = detail.last_change
            text.append(
                " · " + t("record.last_change", run=run, when=fmt_when(self.app, when)), "dim"
            )
        summary.update(text)
        self.query_one("#record-fields", FitTable).show_rows(
            [
                (name, [name, show_value(detail.data[name]), described.get(name) or ""])
                for name in sorted(detail.data)
            ]
        )
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
            self.notify(t("catalogue.partial_started", count=1, entity=t(f"entity.{self.entity}")))


KEYMAP_CLASSES = [RecordScreen]
