"""Web orders: waiting to send, open in the ERP, ERP updates to review, all; an order's
detail, an update's before and after, acknowledging, and sending one order now."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, cast

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Input, Label, Static
from textual.widgets.data_table import RowDoesNotExist
from textual.worker import Worker, WorkerState

from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.api import OrdersSummary, WebOrders, row_order, update_changes
from passweb_tui.engine.orders.documents import HEADER_FIELDS, ROW_FIELDS
from passweb_tui.engine.orders.push import error_reason, no_answer, order_subject
from passweb_tui.i18n import date_text, decimal_point, engine_notes, engine_text, grouped_number, t
from passweb_tui.screens.base import (
    BaseScreen,
    ConfirmScreen,
    KeyTable,
    OrderedInput,
    fmt_int,
    fmt_money,
    fmt_when,
    kind_label,
    status_text,
)
from passweb_tui.screens.customer import CustomerScreen
from passweb_tui.screens.fit_table import Col, FitTable
from passweb_tui.screens.sync_state import SyncSnapshot

#: Rows read per page: the tables never hold more, whatever the store holds.
PAGE = 200
VIEWS = ("waiting", "open", "updates", "all")
#: states of each order view (None: every state)
VIEW_STATES: dict[str, tuple[str, ...] | None] = {
    "waiting": states.WAITING,
    "open": states.OPEN,
    "all": None,
}
#: the ERP's row states (stato_riga) in the words operators know from it, in both languages
ROW_STATES = {"E": "evasa", "S": "sospesa", "B": "bloccata", "N": "annullata"}
#: how a changed cell reads: reverse video survives 16 colours and NO_COLOR
CHANGED_STYLE = "bold reverse"


def orders_of(app: Any) -> WebOrders:
    """The orders engine on the app's store (cheap: it only holds the store)."""
    return WebOrders(app.engine.store)


def state_label(state: str | None) -> str:
    """A site state in the UI's language (in Italian, as Passweb names it)."""
    if not state:
        return "-"
    return t(f"orders.state.{state}", default=states.LABELS.get(state, state))


def payment_label(payment: str | None) -> str:
    """An order's payment as the operator reads it ("confirmed" is the import format's)."""
    return t(f"orders.payment.{payment}", default=cell(payment))


def outcome_label(outcome: str | None) -> str:
    """How a sending attempt ended, in the operator's words."""
    return t(f"orders.outcome.{outcome}", default=cell(outcome))


def error_gist(order_id: str, error: str | None) -> str | None:
    """An order's error as its row in a list shows it: without the order's id, which the
    row shows already, so that a narrow column starts with what went wrong."""
    return engine_text(error_reason(error, order_subject(order_id))) if error else error


def cell(value: Any, width: int | None = None) -> str:
    """A value for a table cell; at most `width` characters (the detail shows it all)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, list):
        text = ", ".join(str(v) for v in value) or "-"
    elif isinstance(value, float | Decimal):
        text = decimal_point(str(value))  # an ERP quantity or price, as the UI writes numbers
    else:
        text = str(value).replace("\n", " ")
    if width is not None and len(text) > width:
        return text[: width - 1] + "…"
    return text


#: an ERP document's fields that hold a number, and its date (AAAAMMGG)
_DOC_NUMBERS = frozenset({"quantita", "prezzo", "qta_evasa"})
_DOC_DATES = frozenset({"data_documento"})
_DOC_MONEY = frozenset({"prezzo"})


def doc_cell(name: str, value: Any) -> str:
    """A field of an ERP document as the UI writes it: numbers in the language's style,
    a date as the screens give dates; anything else as cell() shows it."""
    if isinstance(value, str) and name in _DOC_NUMBERS and re.fullmatch(r"-?\d+(\.\d+)?", value):
        # a price as the order's rows write it (23,90, not the ERP's 23,9)
        return fmt_money(value) if name in _DOC_MONEY else grouped_number(value)
    if isinstance(value, str) and name in _DOC_DATES and re.fullmatch(r"\d{8}", value):
        return date_text(int(value[:4]), int(value[4:6]), int(value[6:]))
    return cell(value)


#: the widest a customer's name is in the order list (at 80 columns the state, total
#: and ERP key must stay in view; the error, the last column, is shown whole)
NAME_WIDTH = 24


def same_number(site: Any, erp: Any) -> bool:
    """Whether a quantity or price of the site's row is the ERP's (written differently:
    "1" and "1.000", "10.00" and "10")."""
    try:
        return Decimal(str(site)) == Decimal(str(erp))
    except (InvalidOperation, ValueError):
        return str(site) == str(erp)


def row_state(code: str | None) -> str:
    """An ERP row state as code and word ("E evasa"); "-" while the row is open."""
    if not code:
        return "-"
    word = ROW_STATES.get(code)
    return f"{code} {word}" if word else code


def ordered(names: set[str] | Sequence[str], canonical: Sequence[str]) -> list[str]:
    """Field names in the ERP document's own order; names it does not know, sorted, last."""
    known = [n for n in canonical if n in names]
    return known + sorted(set(names) - set(known))


@dataclass(frozen=True)
class PageQuery:
    """What the table shows: a view, a search, a page."""

    view: str
    search: str
    offset: int


@dataclass
class PageResult:
    query: PageQuery
    items: list[dict[str, Any]]
    counts: dict[str, int]
    unreviewed: int
    failed: int


def read_page(orders: WebOrders, query: PageQuery) -> PageResult:
    """One page of the view, with the counts shown on the view selector."""
    if query.view == "updates":
        items = orders.updates(
            unreviewed=True, search=query.search or None, limit=PAGE, offset=query.offset
        )
    else:
        items = orders.list(
            state=VIEW_STATES[query.view],
            search=query.search or None,
            limit=PAGE,
            offset=query.offset,
        )
    return PageResult(
        query, items, orders.counts(), orders.unreviewed_count(), orders.failed_count()
    )


def update_summary(update: dict[str, Any]) -> str:
    """Which parts of an order the ERP changed, in a few words."""
    changes = update_changes(update)
    if changes.whole:
        return t("orders.whole_document")
    if changes.gone:
        return t("orders.document_gone")

    def what(rid: Any, fields: list[str]) -> str:
        # a row the ERP added or removed is that, not a list of every one of its fields
        if rid in changes.added:
            return t("orders.row_added")
        if rid in changes.removed:
            return t("orders.row_removed")
        return ", ".join(fields)

    parts = [
        *changes.header,
        *(f"{t('orders.row')} {rid}: {what(rid, fields)}" for rid, fields in changes.rows),
    ]
    return "; ".join(parts) or "-"


class AckMixin:
    """Acknowledging updates from a screen: in a worker, then a message and a reload."""

    #: go back to the screen below once acknowledged (an update's own detail does)
    ack_goes_back: ClassVar[bool] = False

    def acknowledge(self, update_ids: Sequence[int]) -> None:
        screen = cast(BaseScreen, self)
        orders = orders_of(screen.papp)
        ids = list(update_ids)
        screen.run_worker(
            lambda: orders.ack(ids),
            name="orders-ack",
            group="orders-ack",
            thread=True,
            exit_on_error=False,
        )

    def after_ack(self, event: Worker.StateChanged) -> bool:
        """Handle the end of an acknowledgement; True if the event was one."""
        screen = cast(BaseScreen, self)
        if event.worker.group != "orders-ack":
            return False
        if event.state == WorkerState.SUCCESS:
            acked, unknown = cast(tuple[list[int], list[int]], event.worker.result)
            screen.notify(
                t("orders.acked_one") if len(acked) == 1 else t("orders.acked", count=len(acked))
            )
            if unknown:
                screen.notify(
                    t("orders.ack_unknown", ids=", ".join(map(str, unknown))), severity="warning"
                )
            if self.ack_goes_back:
                screen.app.pop_screen()
                below = screen.app.screen
                if isinstance(below, OrdersScreen | OrderDetailScreen):
                    below.load()
            else:
                cast(Any, screen).load()
        elif event.state == WorkerState.ERROR:
            screen.papp.report_error(t("orders.ack_failed"), event.worker.error)
        return True


class RereadWhileShown:
    """A screen that reads what it shows again on its own every `poll_s` seconds while
    it is in front (new web orders, updates found by a run in another process: the
    service, a cron job), one read at a time: its reads are the workers of `READ_GROUP`,
    and the next is scheduled only once the last has ended."""

    READ_GROUP: ClassVar[str]
    #: the next read on its own, while the screen is shown
    _timer: Timer | None = None

    def stop_rereading(self) -> None:
        """A read starts now: the one scheduled is not needed."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def poll(self) -> None:
        screen = cast(BaseScreen, self)
        self._timer = None
        if screen.is_current and not any(
            w.group == self.READ_GROUP and not w.is_finished for w in screen.workers
        ):
            cast(Any, screen).load()  # the screen's own read

    def reread_after(self, event: Worker.StateChanged) -> None:
        """Schedule the next read once this one (of READ_GROUP) has ended."""
        screen = cast(BaseScreen, self)
        if (
            event.state in {WorkerState.SUCCESS, WorkerState.ERROR}
            and self._timer is None
            and screen.is_current
            and screen.papp.poll_s > 0
        ):
            self._timer = screen.set_timer(screen.papp.poll_s, self.poll)


class OrdersScreen(AckMixin, RereadWhileShown, BaseScreen):
    """The order lists, one page at a time; 1-4 choose the view."""

    # focused as soon as it is composed, so that keys typed right behind the one that
    # opened the screen go to it, not to the first field (see OrderedScroll)
    AUTO_FOCUS = "#orders-table"

    TITLE_KEY = "nav.orders"
    READ_GROUP = "orders"
    DEFAULT_CSS = """
    OrdersScreen #orders-views { height: auto; max-height: 2; padding: 0 1; }
    OrdersScreen #orders-filter { width: 40; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "view('waiting')", "orders.view.waiting", id="orders.waiting", show=False),
        Binding("2", "view('open')", "orders.view.open", id="orders.open", show=False),
        Binding("3", "view('updates')", "orders.view.updates", id="orders.updates", show=False),
        Binding("4", "view('all')", "orders.view.all", id="orders.all", show=False),
        Binding("slash", "search", "key.search", id="orders.search"),
        Binding("S", "send", "key.send_now", id="orders.send"),
        Binding("C", "customer", "key.customer", id="orders.customer", show=False),
        Binding("a", "ack", "key.ack", id="orders.ack"),
        Binding("A", "ack_all", "key.ack_all", id="orders.ack_all", tooltip="key.ack_all.tip"),
        Binding("n", "page(1)", "key.next_page", id="orders.next_page", show=False),
        Binding("b", "page(-1)", "key.prev_page", id="orders.prev_page", show=False),
        Binding("ctrl+r", "reload", "key.reload", id="orders.reload", show=False),
    ]

    def __init__(self, view: str = "waiting") -> None:
        super().__init__()
        self.view_name = view
        self.page_offset = 0
        self.items: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, int] = {}
        self.unreviewed = 0
        self.failed = 0

    def compose_body(self) -> ComposeResult:
        yield Static("", id="orders-views")
        with Horizontal(id="orders-search-bar"):
            yield OrderedInput(
                placeholder=t("orders.search_hint", search=self.bound_key("orders.search")),
                id="orders-filter",
                compact=True,
            )
            yield Label("", id="orders-status")
        with Vertical(id="orders-panel", classes="panel"):
            yield FitTable([], id="orders-table")

    def on_mount(self) -> None:
        self.set_columns()
        self.query_one("#orders-table", FitTable).focus()

    def on_shown(self) -> None:
        self.load()

    def sync_finished(self, snap: SyncSnapshot) -> None:
        self.load()

    # -- reading ---------------------------------------------------------------------

    def set_columns(self) -> None:
        """The view's columns. At 80 columns the rows and then the ERP key are left out,
        and a long name, state or error ends in an ellipsis (the detail shows it all)."""
        if self.view_name == "updates":
            columns = [
                Col("update", "#"),
                Col("order", t("orders.col.order")),
                Col("detected", t("orders.col.detected")),
                Col("before", t("orders.col.state_before"), shrink=True),
                Col("after", t("orders.col.state_after"), shrink=True),
                Col("what", t("orders.col.what"), shrink=True),
            ]
        else:
            columns = [
                Col("id", t("orders.col.order")),
                Col("created", t("orders.col.created")),
                # a long name gives way (to 14) before the ERP key is left out for it:
                # on the open orders' page, the key is what an operator looks them up by
                Col("customer", t("orders.col.customer"), shrink=True, give_way=14),
                Col("state", t("orders.col.state"), shrink=True),
                Col("total", t("orders.col.total")),
                Col("rows", t("orders.col.rows"), drop=2),
                Col("erp_key", t("orders.col.erp_key_short"), drop=1, empty_first=True),
                # a long error gives way before the ERP key or the rows are left out
                # for it (14: "C Fix customer" stays whole); no error on the page, the
                # column is the first left out
                Col("error", t("orders.col.error"), shrink=True, give_way=14, empty_first=True),
            ]
        self.query_one("#orders-table", FitTable).set_columns(columns)

    def current_query(self) -> PageQuery:
        search = self.query_one("#orders-filter", Input).value.strip()
        return PageQuery(self.view_name, search, self.page_offset)

    def load(self) -> None:
        if self.papp.engine is None:
            return
        self.stop_rereading()
        orders = orders_of(self.papp)
        query = self.current_query()
        self.run_worker(
            lambda: read_page(orders, query),
            name="orders",
            group="orders",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if self.after_ack(event):
            return
        if event.worker.group == "orders-customer" and event.state == WorkerState.SUCCESS:
            open_customer(self, cast(dict[str, Any], event.worker.result), self.load)
            return
        if event.worker.group != "orders":
            super().on_worker_state_changed(event)
            return
        self.reread_after(event)
        if event.state == WorkerState.ERROR:
            super().on_worker_state_changed(event)
            return
        if event.state != WorkerState.SUCCESS:
            return
        result = cast(PageResult, event.worker.result)
        if result.query != self.current_query():
            return  # a newer view, search or page is being read
        self.show_page(result)

    def show_page(self, result: PageResult) -> None:
        app = self.papp
        table = self.query_one("#orders-table", FitTable)
        # the cursor stays on the same order (or update) when rows come and go above it
        keep, keep_key = table.cursor_row, table.selected_key()
        self.items = {}
        self.counts, self.unreviewed = result.counts, result.unreviewed
        self.failed = result.failed
        rows: list[tuple[str, list[Any]]] = []
        for item in result.items:
            if self.view_name == "updates":
                key = str(item["update_id"])
                cells: list[Any] = [
                    key,
                    item["order_id"],
                    fmt_when(app, item["detected"]),
                    state_label(item["state_before"]),
                    state_label(item["state_after"]),
                    update_summary(item),
                ]
            else:
                key = str(item["id"])
                cells = [
                    key,
                    fmt_when(app, item["created"]),
                    cell(item["customer_name"] or item["customer_code"], NAME_WIDTH),
                    state_label(item["state"]),
                    f"{fmt_money(item['total'])} {item['currency'] or ''}".strip(),
                    str(item["rows"]),
                    cell(item["erp_key"]),
                    Text(
                        cell(self.error_cell(item)),
                        style="red" if item["last_error"] or item["customer_error"] else "",
                    ),
                ]
            rows.append((key, cells))
            self.items[key] = item
        table.show_rows(rows)
        if table.row_count:
            row = self.row_of(table, keep_key)
            if row is None:
                row = min(keep, table.row_count - 1)
            table.move_cursor(row=row, animate=False)
        self.show_views()
        self.query_one("#orders-status", Label).update(
            t(
                "orders.status" if result.items else "orders.status_empty",
                first=fmt_int(result.query.offset + 1),
                last=fmt_int(result.query.offset + len(result.items)),
                next=self.bound_key("orders.next_page"),
                prev=self.bound_key("orders.prev_page"),
            )
        )

    @staticmethod
    def row_of(table: KeyTable, key: str | None) -> int | None:
        if key is None:
            return None
        try:
            return table.get_row_index(key)
        except RowDoesNotExist:
            return None

    def on_resize(self, _event: events.Resize) -> None:
        self.show_views()  # the note of failed orders beside the tabs or under them

    def show_views(self) -> None:
        counts = self.counts
        numbers = {
            "waiting": sum(counts.get(s, 0) for s in states.WAITING),
            "open": sum(counts.get(s, 0) for s in states.OPEN),
            "updates": self.unreviewed,
            "all": sum(counts.values()),
        }
        line = Text()
        for view in VIEWS:
            key = self.bound_key(f"orders.{view}")
            label = f" {key} {t('orders.view.' + view)} ({fmt_int(numbers[view])}) "
            # the chosen view is bracketed as well as styled, for terminals without colour
            if view == self.view_name:
                line.append(f"[{label.strip()}]", style="bold reverse")
                line.append(" ")
            else:
                line.append(label)
        views = self.query_one("#orders-views", Static)
        if self.failed:
            note = t("orders.failing", count=fmt_int(self.failed))
            width = views.content_size.width
            # on its own line when the tabs leave it too little room (never cut)
            fits = not width or line.cell_len + 2 + len(note) <= width
            line.append(("  " if fits else "\n") + note, style="red")
        views.update(line)

    # -- actions ---------------------------------------------------------------------

    def action_view(self, view: str) -> None:
        if view == self.view_name:
            return
        self.view_name, self.page_offset = view, 0
        self.items = {}  # the other view's rows are no rows of this one
        self.set_columns()
        self.load()
        self.refresh_bindings()  # the footer offers what works on this view

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer (and F1) offer what works on this view: S and C on the orders' views,
        a and A on the updates to review. Elsewhere they are not bound here: a key the
        app has as well (a, the catalogue) does what it does on every other screen."""
        if action in ("send", "customer") and self.view_name == "updates":
            return False  # an update is no order to send or customer to mend
        if action in ("ack", "ack_all") and self.view_name != "updates":
            return False  # an order is no update to acknowledge
        return super().check_action(action, parameters)

    def action_page(self, step: int) -> None:
        if step > 0 and len(self.items) < PAGE:
            return  # this was the last page
        offset = max(0, self.page_offset + step * PAGE)
        if offset != self.page_offset:
            self.page_offset = offset
            self.load()

    def action_reload(self) -> None:
        self.load()

    def action_search(self) -> None:
        self.query_one("#orders-filter", Input).focus()

    def on_input_changed(self, _event: Input.Changed) -> None:
        self.page_offset = 0
        self.load()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.query_one("#orders-table", FitTable).focus()

    def selected(self) -> dict[str, Any] | None:
        key = self.query_one("#orders-table", FitTable).selected_key()
        return self.items.get(key or "")

    def on_data_table_row_selected(self, event: KeyTable.RowSelected) -> None:
        item = self.items.get(str(event.row_key.value))
        if item is None:
            return
        if self.view_name == "updates":
            self.app.push_screen(UpdateDetailScreen(item))
        else:
            self.app.push_screen(OrderDetailScreen(item["id"]))

    def error_cell(self, item: dict[str, Any]) -> str | None:
        """What holds an order, as its row says it: a new customer the ERP refused, with
        the key that mends it first (a narrow column shows little more), before the
        order's own error, which then only repeats it."""
        customer = item["customer_error"]
        if customer and no_answer(customer):
            return engine_text(customer)  # the ERP did not answer: nothing to mend
        if customer:
            said = t("orders.customer_refused", key=self.bound_key("orders.customer"))
            return f"{said} - {engine_text(customer)}"
        return error_gist(str(item["id"]), item["last_error"])

    def action_send(self) -> None:
        item = self.selected()
        if item is not None and self.view_name != "updates":
            send_now(self, item["id"], item["state"])

    def action_customer(self) -> None:
        """The web customer of the order under the cursor (read whole first)."""
        item = self.selected()
        if item is None or self.view_name == "updates":
            return
        orders, order_id = orders_of(self.papp), str(item["id"])
        self.run_worker(
            lambda: orders.show(order_id),
            group="orders-customer",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def action_ack(self) -> None:
        item = self.selected()
        if item is not None:
            self.acknowledge([int(item["update_id"])])

    def action_ack_all(self) -> None:
        if not self.items:
            return
        ids = [int(i["update_id"]) for i in self.items.values()]

        def answer(yes: bool | None) -> None:
            if yes:
                self.acknowledge(ids)

        self.app.push_screen(ConfirmScreen(t("orders.ack_all_question", count=len(ids))), answer)


def send_now(screen: BaseScreen, order_id: str, state: str) -> None:
    """A Parziale of this one order; only orders that wait to be sent are sent."""
    if state == states.PAYMENT_UNCONFIRMED:
        screen.notify(t("orders.payment_unconfirmed", order=order_id), severity="warning")
        return
    if state != states.NEW:
        screen.notify(t("orders.not_waiting", order=order_id, state=state_label(state)))
        return
    from passweb_tui.engine.facade import Scope

    if screen.papp.start_sync("partial", scope=Scope(entities=("orders",), codes=(order_id,))):
        screen.notify(t("orders.sending", order=order_id))


def open_customer(screen: BaseScreen, detail: dict[str, Any], reload: Callable[[], None]) -> None:
    """The form of an order's web customer (`detail` as `WebOrders.show` gives it), or
    why there is none to correct; `reload` runs once the form changed something."""
    customer = detail.get("customer")
    if not customer:
        screen.notify(
            t("orders.customer_of_erp", order=detail["id"], code=cell(detail["customer_code"]))
        )
        return
    if customer.get("erp_code"):
        screen.notify(t("orders.customer_in_erp", order=detail["id"], code=customer["erp_code"]))
        return

    def done(notice: str | None) -> None:
        if notice:
            screen.notify(notice)
            reload()

    screen.app.push_screen(CustomerScreen(detail["id"], customer), done)


#: the states of an order that `orders cancel` takes: not in the ERP
CANCELLABLE = (*states.WAITING, states.TO_CHECK)


class OrderDetailScreen(AckMixin, RereadWhileShown, BaseScreen):
    """One order: header, the rows the site sent and those of its ERP document, history."""

    TITLE_KEY = "orders.detail"
    READ_GROUP = "order-detail"
    OWN_ERRORS = frozenset({"order-detail"})
    DEFAULT_CSS = """
    OrderDetailScreen #order-detail .panel { height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("S", "send", "key.send_now", id="order.send"),
        Binding("C", "customer", "key.customer", id="order.customer"),
        Binding("R", "resend", "key.resend", id="order.resend"),
        Binding("P", "confirm_payment", "key.confirm_payment", id="order.payment"),
        Binding("X", "cancel_order", "key.cancel_order", id="order.cancel"),
        Binding("ctrl+r", "reload", "key.reload", id="order.reload", show=False),
    ]

    def __init__(self, order_id: str) -> None:
        super().__init__()
        self.order_id = order_id
        self.detail: dict[str, Any] | None = None
        self.updates: dict[str, dict[str, Any]] = {}
        self.outcome: Text | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="order-detail"):
            yield Static(t("dash.loading"), id="order-header", classes="panel")
            with Vertical(classes="panel"):
                yield Label(t("orders.rows"), classes="panel-title")
                yield FitTable(
                    [
                        Col("line", "#"),
                        Col("article", t("orders.col.article")),
                        Col("description", t("col.description"), shrink=True),
                        Col("qty", t("orders.col.qty")),
                        Col("price", t("col.price")),
                        Col("discount", t("orders.col.discount"), shrink=True),
                        Col("total", t("orders.col.total")),
                    ],
                    id="order-rows",
                )
            # the ERP's document as last read: the ERP wins, so its rows (a quantity it
            # changed, a row it added) are shown as they are there, not beside the
            # site's, with what differs from the site's rows marked
            with Vertical(id="order-erp", classes="panel"):
                yield Label(
                    t("orders.in_erp", links="-"), id="order-erp-title", classes="panel-title"
                )
                yield FitTable(
                    [
                        Col("line", "#"),
                        Col("article", t("orders.col.article")),
                        Col("qty", t("orders.col.qty")),
                        Col("fulfilled", t("orders.col.fulfilled")),
                        Col("row_state", t("orders.col.row_state"), shrink=True),
                        Col("price", t("col.price")),
                        Col("discount", t("orders.col.discount"), shrink=True),
                    ],
                    id="order-erp-rows",
                )
            with Vertical(classes="panel"):
                yield Label(t("orders.history"), classes="panel-title")
                yield Static("", id="order-history")
                yield FitTable(
                    [
                        Col("update", "#"),
                        Col("detected", t("orders.col.detected")),
                        Col("before", t("orders.col.state_before"), shrink=True),
                        Col("after", t("orders.col.state_after"), shrink=True),
                        Col("reviewed", t("orders.col.reviewed")),
                        # what changed gives way first: the update's screen has it whole
                        Col("what", t("orders.col.what"), shrink=True, give_way=12),
                    ],
                    id="order-updates",
                )

    def on_mount(self) -> None:
        rows = self.query_one("#order-rows", FitTable)
        rows.focus()

    def on_shown(self) -> None:
        # first shown, or back from an update's screen (acknowledged there, say)
        self.load()

    def sync_finished(self, snap: SyncSnapshot) -> None:
        # the outcome of a Parziale sent from here, beside what it did to the order
        self.outcome = Text()
        self.outcome.append(f"{kind_label(snap.kind)} #{snap.run_id or '-'}: ")
        self.outcome.append_text(status_text(snap.status or "failed"))
        if snap.error:
            self.outcome.append(f" {engine_notes(snap.error)}", style="red")
        self.load()

    def action_reload(self) -> None:
        self.load()

    def load(self) -> None:
        self.stop_rereading()
        orders = orders_of(self.papp)
        order_id = self.order_id
        self.run_worker(
            lambda: (orders.show(order_id), orders.updates(order_id=order_id)),
            name="order-detail",
            group="order-detail",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "order-decision":
            self.after_decision(event)
            return
        if self.after_ack(event) or event.worker.group != "order-detail":
            return
        self.reread_after(event)
        if event.state == WorkerState.ERROR:
            self.query_one("#order-header", Static).update(
                Text(
                    t("orders.not_found", order=self.order_id, error=str(event.worker.error)), "red"
                )
            )
        elif event.state == WorkerState.SUCCESS:
            detail, updates = cast(tuple[dict[str, Any], list[dict[str, Any]]], event.worker.result)
            self.show(detail, updates)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers what the order allows as last read: S while it waits to be
        sent, C while its new customer is not in the ERP, R once its ERP document is
        gone, P while its payment is awaited, X while it is not in the ERP; F1 lists the
        same."""
        if action in ("send", "customer", "resend", "confirm_payment", "cancel_order"):
            detail = self.detail
            if detail is None:
                return False
            state = detail.get("state")
            customer = detail.get("customer") or {}
            allowed = {
                "send": state == states.NEW,
                "customer": bool(customer) and not customer.get("erp_code"),
                "resend": state == states.TO_CHECK,
                "confirm_payment": state == states.PAYMENT_UNCONFIRMED,
                "cancel_order": state in CANCELLABLE,
            }[action]
            if not allowed:
                return False
        return super().check_action(action, parameters)

    def show(self, detail: dict[str, Any], updates: list[dict[str, Any]]) -> None:
        app = self.papp
        self.detail = detail
        self.refresh_bindings()
        head = Text()
        head.append(f"{detail['id']}  ", style="bold")
        head.append(state_label(detail["state"]), style="bold")
        head.append(f"   {t('orders.col.erp_key')}: {cell(detail['erp_key'])}")
        customer = detail.get("customer") or {}
        who = detail.get("customer_name") or customer.get("name") or ""
        # a new customer has no ERP code yet: its name alone, not "-" before it
        named = " ".join(filter(None, (detail["customer_code"], who))) or "-"
        head.append(f"\n{t('orders.col.customer')}: {named}")
        if customer.get("erp_bound_by") == "matched":
            head.append(" " + t("orders.matched_customer"))
        elif detail.get("new_customer"):
            head.append(" " + t("orders.new_customer"))
        head.append(
            f"\n{t('orders.col.created')}: {fmt_when(app, detail['created'])}"
            f"   {t('orders.payment')}: {payment_label(detail['payment'])}"
            f" {cell(detail['payment_code'])}"
            f"   {t('orders.col.total')}: {fmt_money(detail['total'])} {detail['currency'] or ''}"
        )
        if detail.get("note"):
            head.append(f"\n{t('orders.note')}: {cell(detail['note'])}")
        if detail.get("last_error"):
            head.append(f"\n{t('orders.last_error')}: ", style="bold red")
            # (without the order's id, which heads the screen)
            head.append(error_gist(str(detail["id"]), str(detail["last_error"])) or "")
        if detail["state"] == states.NEW:  # one waiting on its payment has P's hint below
            head.append("\n" + t("orders.send_hint", send=self.bound_key("order.send")))
        if detail["state"] == states.TO_CHECK:
            head.append("\n" + t("orders.resend_hint", key=self.bound_key("order.resend")))
        if detail["state"] == states.PAYMENT_UNCONFIRMED:
            head.append("\n" + t("orders.payment_hint", key=self.bound_key("order.payment")))
        if customer.get("last_error") and not customer.get("erp_code"):
            head.append("\n" + t("orders.customer_hint", key=self.bound_key("order.customer")))
        if self.outcome is not None:
            head.append("\n")
            head.append_text(self.outcome)
        self.query_one("#order-header", Static).update(head)

        shown_rows: list[tuple[str, list[Any]]] = []
        for line in detail["lines"]:
            # a row that came without a description shows the stored article's, dimmed
            own = line["description"]
            described: Any = (
                cell(own)
                if own or not line.get("article_description")
                else Text(line["article_description"], style="dim")
            )
            shown_rows.append(
                (
                    str(line["line"]),
                    [
                        str(line["line"]),
                        line["article"],
                        described,
                        grouped_number(str(line["qty"])),
                        fmt_money(line["price"]),
                        cell(line["discount"]),
                        fmt_money(line["total"]),
                    ],
                )
            )
        self.query_one("#order-rows", FitTable).show_rows(shown_rows)
        self.show_erp_rows(detail)

        history = Text()
        for attempt in detail.get("push_attempts") or []:
            who = t("orders.decision" if attempt.get("by_operator") else "orders.attempt")
            history.append(
                f"{fmt_when(app, attempt['started'])} {who}: {outcome_label(attempt['outcome'])}"
            )
            if attempt.get("erp_key"):
                history.append(f" {attempt['erp_key']}")
            if attempt.get("error"):  # in the UI's language, without the order's id
                history.append(": ")
                history.append(error_gist(str(detail["id"]), str(attempt["error"])) or "", "red")
            history.append("\n")
        if detail.get("sent_at"):
            history.append(f"{t('orders.sent_at')}: {fmt_when(app, detail['sent_at'])}   ")
        if detail.get("refreshed_at"):
            history.append(f"{t('orders.refreshed_at')}: {fmt_when(app, detail['refreshed_at'])}")
        history.append("\n" + t("orders.updates_count", count=len(updates)))
        self.query_one("#order-history", Static).update(history)
        self.updates = {str(update["update_id"]): update for update in updates}
        self.query_one("#order-updates", FitTable).show_rows(
            [
                (
                    key,
                    (
                        key,
                        fmt_when(app, update["detected"]),
                        state_label(update["state_before"]),
                        state_label(update["state_after"]),
                        t("key.yes") if update["reviewed"] else t("key.no"),
                        update_summary(update),
                    ),
                )
                for key, update in self.updates.items()
            ]
        )

    def show_erp_rows(self, detail: dict[str, Any]) -> None:
        """The rows of the order's ERP document as last read, what differs from the rows
        the site sent marked (a row the ERP added, all of it); none before it is sent."""
        doc = detail.get("erp_document") or None
        self.query_one("#order-erp").display = bool(doc)
        if not doc:
            self.query_one("#order-erp-rows", FitTable).show_rows([])
            return
        links = ", ".join((doc.get("header") or {}).get("doc_collegati") or []) or "-"
        self.query_one("#order-erp-title", Label).update(t("orders.in_erp", links=links))
        site = {str(line["line"]): line for line in detail["lines"]}
        shown: list[tuple[str, list[Any]]] = []
        for number, row in enumerate(doc.get("rows") or [], 1):
            rid = str(row.get("id_riga") or number)
            own = site.get(rid)

            def marked(text: str, differs: bool) -> Text:
                return Text(text, style=CHANGED_STYLE if differs else "")

            shown.append(
                (
                    f"{rid}/{number}",
                    [
                        marked(rid, own is None),
                        marked(
                            cell(row.get("codice_articolo")),
                            own is None or own["article"] != row.get("codice_articolo"),
                        ),
                        marked(
                            doc_cell("quantita", row.get("quantita")),
                            own is None or not same_number(own["qty"], row.get("quantita")),
                        ),
                        marked(doc_cell("qta_evasa", row.get("qta_evasa")), False),
                        marked(row_state(row.get("stato_riga")), False),
                        marked(
                            fmt_money(row.get("prezzo")) if row.get("prezzo") is not None else "-",
                            own is None or not same_number(own["price"], row.get("prezzo")),
                        ),
                        marked(
                            cell(row.get("sconto") or None),
                            own is None or (own["discount"] or "") != (row.get("sconto") or ""),
                        ),
                    ],
                )
            )
        self.query_one("#order-erp-rows", FitTable).show_rows(shown)

    def on_data_table_row_selected(self, event: KeyTable.RowSelected) -> None:
        if event.data_table.id == "order-updates":
            update = self.updates.get(str(event.row_key.value))
            if update is not None:
                self.app.push_screen(UpdateDetailScreen(update))

    def action_send(self) -> None:
        if self.detail is not None:
            send_now(self, self.detail["id"], self.detail["state"])

    def action_customer(self) -> None:
        """The order's web customer, to correct or bind while the ERP has not taken it."""
        if self.detail is not None:
            open_customer(self, self.detail, self.load)

    def action_resend(self) -> None:
        """Put back in the queue an order whose ERP document is gone (the engine refuses
        while any ERP document carries the order's marker)."""
        engine = self.papp.engine
        orders = orders_of(self.papp)
        self._decide(
            states.TO_CHECK,
            "orders.not_to_check",
            "orders.resend_question",
            lambda order_id: orders.resend(engine.client(), order_id),
            asking=t("orders.resending", order=self.order_id),
            done="orders.resent",
        )

    def action_cancel_order(self) -> None:
        """Set aside for good an order the site will not send (the engine refuses one a
        document in the ERP carries)."""
        engine = self.papp.engine
        orders = orders_of(self.papp)
        self._decide(
            CANCELLABLE,
            "orders.not_cancellable",
            "orders.cancel_question",
            lambda order_id: orders.cancel(engine.client(), order_id),
            asking=t("orders.cancelling", order=self.order_id),
            done="orders.cancelled_done",
        )

    def action_confirm_payment(self) -> None:
        """The payment of an order waiting on it arrived: it then waits to be sent."""
        orders = orders_of(self.papp)
        self._decide(
            states.PAYMENT_UNCONFIRMED,
            "orders.payment_not_awaited",
            "orders.payment_question",
            orders.confirm_payment,
            done="orders.payment_confirmed",
        )

    def _decide(
        self,
        state: str | tuple[str, ...],
        refused: str,
        question: str,
        work: Callable[[str], Any],
        *,
        done: str,
        asking: str | None = None,
    ) -> None:
        """An operator's decision on the order, asked first: said to be refused unless
        the order is in `state`; on a yes, `work(order id)` runs in a worker, and `done`
        is said once it has (with the key that sends the order now)."""
        if self.detail is None:
            return
        order_id, now = str(self.detail["id"]), self.detail["state"]
        if now not in ((state,) if isinstance(state, str) else state):
            self.notify(t(refused, order=order_id, state=state_label(now)))
            return

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            if asking:
                self.notify(asking)
            self.run_worker(
                lambda: work(order_id),
                name=done,  # what to say once it is done
                group="order-decision",
                thread=True,
                exclusive=True,
                exit_on_error=False,
            )

        self.app.push_screen(ConfirmScreen(t(question, order=order_id)), answer)

    def after_decision(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(engine_text(str(event.worker.error)), severity="error", timeout=12)
        elif event.state == WorkerState.SUCCESS:
            if event.worker.result is not False:  # False: it changed meanwhile, as shown
                send = self.bound_key("order.send")
                self.notify(t(event.worker.name, order=self.order_id, send=send))
            self.load()


class UpdateDetailScreen(AckMixin, BaseScreen):
    """One ERP-side update of an order: header and rows before and after, changes marked."""

    TITLE_KEY = "orders.update"
    ack_goes_back = True
    DEFAULT_CSS = """
    UpdateDetailScreen #update-detail .panel { height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "ack", "key.ack", id="update.ack"),
        Binding("o", "order", "key.open_order", id="update.order"),
    ]

    def __init__(self, update: dict[str, Any]) -> None:
        super().__init__()
        self.update_data = update

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="update-detail"):
            yield Static("", id="update-head", classes="panel")
            with Vertical(classes="panel"):
                yield Label(t("orders.header"), classes="panel-title")
                yield KeyTable(id="update-header")
            with Vertical(classes="panel"):
                yield Label(t("orders.rows"), classes="panel-title")
                yield FitTable([], id="update-rows")

    def on_mount(self) -> None:
        u = self.update_data
        app = self.papp
        head = Text()
        head.append(f"#{u['update_id']}  {u['order_id']}  ", style="bold")
        head.append(f"{state_label(u['state_before'])} → {state_label(u['state_after'])}")
        head.append(f"\n{t('orders.col.detected')}: {fmt_when(app, u['detected'])}")
        if u.get("run_id"):
            head.append(f"   #{u['run_id']}")
        head.append(
            "   "
            + (
                t("orders.reviewed_at", when=fmt_when(app, u["reviewed_at"]))
                if u["reviewed"]
                else t("orders.to_review", ack=self.bound_key("update.ack"))
            )
        )
        if u.get("site_edit"):
            head.append(f"\n{t('orders.site_edit')}: {cell(u['site_edit'])}", style="yellow")
        self.query_one("#update-head", Static).update(head)

        before, after = u.get("before") or {}, u.get("after") or {}
        # what changed comes first, so that at 80x24 it is in view without scrolling
        header = self.query_one("#update-header", KeyTable)
        header.add_column(t("col.field"), key="field")
        header.add_column(t("col.old"), key="before")
        header.add_column(t("col.new"), key="after")
        bh, ah = before.get("header") or {}, after.get("header") or {}
        head_names = ordered(set(bh) | set(ah), HEADER_FIELDS)
        changed_head = [n for n in head_names if bh.get(n) != ah.get(n)]
        for name in [*changed_head, *(n for n in head_names if n not in changed_head)]:
            changed = name in changed_head
            style = CHANGED_STYLE if changed else ""
            header.add_row(
                Text(("* " if changed else "  ") + name, style=style),
                Text(doc_cell(name, bh.get(name)), style=style),
                Text(doc_cell(name, ah.get(name)), style=style),
                key=name,
            )

        rows = self.query_one("#update-rows", FitTable)
        brows = {r.get("id_riga"): r for r in before.get("rows") or []}
        arows = {r.get("id_riga"): r for r in after.get("rows") or []}
        names = {n for r in [*brows.values(), *arows.values()] for n in r} - {"id_riga"}
        changed_cols = {
            n
            for rid in set(brows) | set(arows)
            for n in names
            if (brows.get(rid) or {}).get(n) != (arows.get(rid) or {}).get(n)
        }
        # the changed columns right after the row and before/after, the others after them
        fields = [
            *ordered(changed_cols, ROW_FIELDS),
            *ordered(names - changed_cols, ROW_FIELDS),
        ]
        # at 80 columns the unchanged fields are left out from the last (never a column
        # cut at the edge); the changed ones always show
        unchanged = [n for n in fields if n not in changed_cols]
        rows.set_columns(
            [
                Col("row", t("orders.row")),
                Col("when", ""),
                *(
                    Col(name, Text(name, CHANGED_STYLE))
                    if name in changed_cols
                    else Col(name, name, drop=1 + unchanged.index(name))
                    for name in fields
                ),
            ]
        )
        shown: list[tuple[str, list[Any]]] = []
        ids = sorted(set(brows) | set(arows), key=row_order)
        # the changed rows first (in their order), so that at 80x24 a change in row 11
        # of 12 is in view too; then the others
        changed_rows = [rid for rid, _ in update_changes(u).rows]
        for rid in [*changed_rows, *(r for r in ids if r not in changed_rows)]:
            b, a = brows.get(rid), arows.get(rid)
            if b == a:
                # an unchanged row reads once, so the changed ones stand out
                shown.append(
                    (
                        f"{rid}/same",
                        [
                            str(rid),
                            t("orders.same"),
                            *(doc_cell(name, (a or {}).get(name)) for name in fields),
                        ],
                    )
                )
                continue
            for label, this, other in (("before", b, a), ("after", a, b)):
                cells: list[Any] = [str(rid), t(f"orders.{label}")]
                for name in fields:
                    value = (this or {}).get(name)
                    changed = this is None or other is None or value != other.get(name)
                    cells.append(
                        Text(doc_cell(name, value), style=CHANGED_STYLE if changed else "")
                    )
                shown.append((f"{rid}/{label}", cells))
        rows.show_rows(shown)
        header.focus()

    def action_ack(self) -> None:
        self.acknowledge([int(self.update_data["update_id"])])

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if not self.after_ack(event):
            super().on_worker_state_changed(event)

    def action_order(self) -> None:
        self.app.push_screen(OrderDetailScreen(str(self.update_data["order_id"])))


class OrdersPanel(Vertical):
    """A dashboard panel: orders waiting (and failed), open in the ERP, updates to review.

    The dashboard yields it and calls `reload()` when it refreshes; it reads in a worker.
    """

    def compose(self) -> ComposeResult:
        yield Label(t("orders.panel.title"), classes="panel-title")
        yield Static(t("dash.loading"), id="orders-panel-body")

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        app: Any = self.app
        if getattr(app, "engine", None) is None:
            return
        orders = orders_of(app)
        self.run_worker(
            orders.summary,
            name="orders-panel",
            group="orders-panel",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "orders-panel":
            return
        event.stop()  # the screen below has its own workers to watch
        body = self.query_one("#orders-panel-body", Static)
        if event.state == WorkerState.ERROR:
            body.update(Text(str(event.worker.error), style="red"))
        elif event.state == WorkerState.SUCCESS:
            summary = cast(OrdersSummary, event.worker.result)
            # counted as the orders screen's tab counts them: those waiting for their
            # payment too, said apart
            waiting = summary.waiting + summary.unconfirmed
            text = Text(t("orders.panel.waiting", count=fmt_int(waiting)))
            if summary.failed:
                text.append(
                    " " + t("orders.panel.failed", count=fmt_int(summary.failed)), style="bold red"
                )
            if summary.unconfirmed:
                text.append(
                    "\n  " + t("orders.panel.unconfirmed", count=fmt_int(summary.unconfirmed))
                )
            if summary.customers_failed:
                text.append(
                    "\n" + t("orders.panel.customers", count=fmt_int(summary.customers_failed)),
                    style="bold red",
                )
            text.append("\n" + t("orders.panel.open", count=fmt_int(summary.open)))
            if summary.to_check:
                text.append(
                    " " + t("orders.panel.to_check", count=fmt_int(summary.to_check)),
                    style="bold red",
                )
            text.append("\n" + t("orders.panel.unreviewed", count=fmt_int(summary.unreviewed)))
            if summary.unreviewed:
                text.stylize("bold", len(text) - len(str(summary.unreviewed)))
            body.update(text)


#: Screens of this module whose bindings the keymap may override.
KEYMAP_CLASSES = [OrderDetailScreen, UpdateDetailScreen, CustomerScreen]
