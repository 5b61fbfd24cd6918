"""Pilot tests of the order screens with a real engine on a temp SQLite store and the
simulator on a real socket: send a waiting order now, review and acknowledge the
ERP's updates one by one and all at once, and page through many orders."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from test_orders_helpers import article_rows, jsonl, order_line
from textual import events
from textual.app import App, ComposeResult
from textual.content import Content
from textual.coordinate import Coordinate
from textual.widgets import Input, Label, Static
from ui_screen import on_screen, screen_lines, workers_done

from passweb_tui.app import PasswebApp, create_app
from passweb_tui.engine.facade import Engine
from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.api import WebOrders
from passweb_tui.i18n import set_language, t
from passweb_tui.screens.base import ConfirmScreen, KeyTable
from passweb_tui.screens.orders import (
    CHANGED_STYLE,
    PAGE,
    OrderDetailScreen,
    OrdersPanel,
    OrdersScreen,
    PageQuery,
    UpdateDetailScreen,
    read_page,
    update_summary,
)
from passweb_tui.screens.orders import state_label as orders_state_label

pytestmark = pytest.mark.anyio
pytest_plugins = ["ui_fixtures"]

SYNC_TIMEOUT_S = 60


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def engine(own_engine: Engine) -> Engine:
    return own_engine


async def settle(app: PasswebApp, pilot: Any) -> None:
    """Until the screen's reads have finished and their results are on screen."""
    await workers_done(app)
    await pilot.pause()


async def wait_sync(app: PasswebApp, pilot: Any) -> None:
    await asyncio.wait_for(app.sync_ended.wait(), SYNC_TIMEOUT_S)
    await settle(app, pilot)


def keys_of(app: Any, selector: str) -> list[str]:
    table = app.screen.query_one(selector, KeyTable)
    return [
        str(table.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value)
        for i in range(table.row_count)
    ]


def text_of(app: Any, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def open_orders(app: PasswebApp, pilot: Any) -> OrdersScreen:
    app.action_goto("orders")
    await settle(app, pilot)
    assert isinstance(app.screen, OrdersScreen)
    return app.screen


async def cursor_to(app: Any, pilot: Any, selector: str, key: str) -> None:
    """Move the cursor with j until it is on the row `key`."""
    keys = keys_of(app, selector)
    table = app.screen.query_one(selector, KeyTable)
    table.focus()
    await pilot.press("home", *["j"] * keys.index(key))
    assert table.selected_key() == key


def import_orders(engine: Engine, *lines: dict[str, Any]) -> None:
    report = WebOrders(engine.store).import_lines(jsonl(*lines).splitlines())
    assert report.complete, report.skipped


async def test_send_now_then_review_and_acknowledge_updates(engine: Engine, sim: Any) -> None:
    import_orders(
        engine,
        order_line("W1", rows=article_rows(2)),
        order_line("W2", customer={"code": "501.00002"}, rows=article_rows(1, first=5)),
        order_line("W3", payment="unconfirmed", rows=article_rows(1)),
    )
    orders = WebOrders(engine.store)
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_orders(app, pilot)
        # same placing time: newest id first
        assert keys_of(app, "#orders-table") == ["W3", "W2", "W1"]
        assert "(3)" in text_of(app, "#orders-views")

        # an order waiting on its payment is not sent, and the screen says why
        await cursor_to(app, pilot, "#orders-table", "W3")
        await pilot.press("S")
        await pilot.pause()
        assert not app.sync.running and app.sync.snapshot() is None
        assert any("payment" in str(n.message) for n in app._notifications)
        # on its own screen, P says the payment arrived (asked first); then it waits
        await pilot.press("enter")
        await settle(app, pilot)
        assert "P confirms it arrived" in text_of(app, "#order-header")
        assert "sends it now" not in text_of(app, "#order-header")  # S waits for P
        await pilot.press("P")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)
        assert orders.show("W3")["state"] == states.NEW
        assert "P confirms" not in text_of(app, "#order-header")
        # not waiting on it any more: P is not offered and asks nothing; S is
        shown = {k for k, b in app.screen.active_bindings.items() if b.binding.show}
        assert "P" not in shown and "S" in shown, shown
        await pilot.press("P")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        # (back to waiting on it, as the rest of this test expects)
        import sqlalchemy as sa

        from passweb_tui.engine.orders.push import orders_t

        with engine.store.write() as conn:
            conn.execute(
                sa.update(orders_t)
                .where(orders_t.c.id == "W3")
                .values(state=states.PAYMENT_UNCONFIRMED, payment="unconfirmed")
            )
        await pilot.press("escape")
        await settle(app, pilot)

        # send W2 from the list, W1 from its detail: each a Parziale of that order only
        await cursor_to(app, pilot, "#orders-table", "W2")
        await pilot.press("S")
        await wait_sync(app, pilot)
        snap = app.sync.snapshot()
        assert snap is not None and (snap.kind, snap.status) == ("partial", "ok")
        assert orders.show("W2")["state"] == states.STORED
        assert orders.show("W1")["state"] == states.NEW
        assert keys_of(app, "#orders-table") == ["W3", "W1"]

        await cursor_to(app, pilot, "#orders-table", "W1")
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, OrderDetailScreen)
        assert "S sends it now" in text_of(app, "#order-header")
        await pilot.press("S")
        await wait_sync(app, pilot)
        w1 = orders.show("W1")
        assert w1["state"] == states.STORED and w1["erp_key"]
        header = text_of(app, "#order-header")
        assert "Stored" in header and w1["erp_key"] in header  # the state in the UI's language
        assert "Parziale #" in header and ": ok" in header
        assert keys_of(app, "#order-rows") == ["1", "2"]

        # the ERP ships part of W1 and all of W2; a Variati brings the updates
        w2_key = orders.show("W2")["erp_key"]
        sim.admin(
            "POST", f"orders/{w1['erp_key']}/fulfil", json={"rows": {"1": 1}, "delivery_note": True}
        )
        sim.admin("POST", f"orders/{w2_key}/fulfil", json={"rows": {"1": 1}})
        # an order the ERP refuses (unknown article): the Variati's push phase fails it
        bad_row = {"article": "NOPE", "qty": 1, "price": 1, "vat_code": "22"}
        import_orders(engine, order_line("W4", rows=[bad_row]))
        assert app.start_sync("changed")
        await wait_sync(app, pilot)
        assert orders.show("W1")["state"] == states.PARTIALLY_FULFILLED
        # the open detail reloaded: the ERP's rows, with fulfilled quantity and row state
        rows = app.screen.query_one("#order-erp-rows", KeyTable)
        erp_row = orders.show("W1")["erp_document"]["rows"][0]
        assert erp_row["qta_evasa"] == "1"
        expected_state = {"E": "E evasa", "": "-"}[erp_row["stato_riga"]]
        assert [str(c) for c in rows.get_row("1/1")][2:5] == ["1", "1", expected_state]
        assert [str(c) for c in rows.get_row("2/2")][3:5] == ["0", "-"]
        assert "ERP updates: 1" in text_of(app, "#order-history")

        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen is screen
        offered = {b.binding.action for b in app.active_bindings.values()}
        assert {"send", "customer"} <= offered
        await pilot.press("3")
        await settle(app, pilot)
        # an update is no order to send or customer to mend: the footer does not offer them
        offered = {b.binding.action for b in app.active_bindings.values()}
        assert "send" not in offered and "customer" not in offered and "ack" in offered
        pending = {str(u["update_id"]): u["order_id"] for u in orders.updates(unreviewed=True)}
        assert sorted(pending.values()) == ["W1", "W2"]
        assert sorted(keys_of(app, "#orders-table")) == sorted(pending)
        # / narrows the updates by order id or customer too
        await pilot.press("slash", *"501.00002", "enter")
        await settle(app, pilot)
        assert [pending[k] for k in keys_of(app, "#orders-table")] == ["W2"]
        await pilot.press("slash", "ctrl+u", "enter")
        await settle(app, pilot)
        assert sorted(keys_of(app, "#orders-table")) == sorted(pending)

        # W1's update in detail: the fulfilled quantity marked as changed, after only
        w1_update = next(k for k, v in pending.items() if v == "W1")
        await cursor_to(app, pilot, "#orders-table", w1_update)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, UpdateDetailScreen)
        table = app.screen.query_one("#update-rows", KeyTable)
        before = dict(zip(table.columns, table.get_row("1/before"), strict=True))
        after = dict(zip(table.columns, table.get_row("1/after"), strict=True))
        qta = next(k for k in table.columns if table.columns[k].label.plain == "qta_evasa")
        assert (after[qta].plain, after[qta].style) == ("1", CHANGED_STYLE)
        assert before[qta].style == CHANGED_STYLE
        article = next(
            k for k in table.columns if table.columns[k].label.plain == "codice_articolo"
        )
        assert after[article].style == ""  # the article did not change

        # a acknowledges this one and goes back to the list, which no longer has it
        await pilot.press("a")
        await settle(app, pilot)
        assert app.screen is screen
        await settle(app, pilot)
        assert [u["order_id"] for u in orders.updates(unreviewed=True)] == ["W2"]
        assert len(keys_of(app, "#orders-table")) == 1

        # A asks first; no keeps the update, yes acknowledges every one shown
        await pilot.press("A")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(app, pilot)
        assert orders.unreviewed_count() == 1
        await pilot.press("A", "y")
        await settle(app, pilot)
        assert orders.unreviewed_count() == 0
        assert keys_of(app, "#orders-table") == []
        assert "(0)" in text_of(app, "#orders-views").split("3 ")[1]

        # W2 is fulfilled in full, so only W1 stays open; the all view has the three
        assert orders.show("W2")["state"] == states.FULFILLED
        await pilot.press("2")
        await settle(app, pilot)
        assert keys_of(app, "#orders-table") == ["W1"]
        await pilot.press("4")
        await settle(app, pilot)
        assert sorted(keys_of(app, "#orders-table")) == ["W1", "W2", "W3", "W4"]
        assert "1 failed to send" in text_of(app, "#orders-views")
        # the error's start in the list (after the order's id, which the row shows),
        # ending in an ellipsis where it does not fit
        error = str(app.screen.query_one("#orders-table", KeyTable).get_row("W4")[-1])
        full = orders.show("W4")["last_error"]
        assert "NOPE" in full and full.startswith("order W4: "), full
        assert full.removeprefix("order W4: ").startswith(error.removesuffix("…")), (error, full)
        # on the order's own screen the error is whole, also without the order's id
        await open_order(app, pilot, "W4")
        assert f"Last error: {full.removeprefix('order W4: ')}" in text_of(app, "#order-header")
        # and its history tells the attempt the same way, with no ERP key where none came
        history = text_of(app, "#order-history")
        assert f"sending attempt: failed: {full.removeprefix('order W4: ')}" in history, history
        app.pop_screen()
        await settle(app, pilot)

        # the runs say what each one did with web orders (a column wide terminals show)
        app.action_goto("runs")
        await settle(app, pilot)
        runs = app.screen.query_one("#runs-table", KeyTable)
        label = next(k for k in runs.columns if str(runs.columns[k].label) == "Web orders")
        done = [str(runs.get_row_at(i)[list(runs.columns).index(label)]) for i in range(3)]
        assert done == ["failed 1, updated 2", "sent 1", "sent 1"], done

    # the dashboard's panel counts the same, in a few statements
    panel_app = PanelApp(engine)
    async with panel_app.run_test(size=(80, 10)) as pilot:
        await settle(panel_app, pilot)
        body = str(panel_app.query_one("#orders-panel-body", Static).render())
        # W4 (failed) is to be sent again; W3 waits for its payment, and is not
        assert "Waiting to send: 2 (1 failed to send)\n" in body  # as the orders tab counts
        assert "  of which waiting for payment: 1" in body
        assert "Open in the ERP: 1" in body and "to review: 0" in body
        assert "to check" not in body

    # the ERP loses W1's document: the next re-reading makes it one to check, in red
    sim.admin("DELETE", f"records/ordini-clienti/{orders.show('W1')['erp_key']}")
    again = engine.run("changed")
    assert again.status == "ok_with_rejects" and again.orders["failed"] == 1  # W4, as before
    assert orders.show("W1")["state"] == states.TO_CHECK
    panel_app = PanelApp(engine)
    async with panel_app.run_test(size=(80, 10)) as pilot:
        await settle(panel_app, pilot)
        panel = panel_app.query_one("#orders-panel-body", Static)
        body = str(panel.render())
        assert "Open in the ERP: 1 (1 to check)" in body, body
        rendered = panel.render()
        assert isinstance(rendered, Content)
        assert any(
            "red" in str(span.style)
            and rendered.plain[span.start : span.end].strip() == "(1 to check)"
            for span in rendered.spans
        ), rendered.spans

    # the operator decides: R on its screen, asked first, puts it back in the queue (the
    # ERP searched for its marker before), and S then sends it, once
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(OrderDetailScreen("W1"))
        await settle(app, pilot)
        assert "R puts it back in the queue" in text_of(app, "#order-header")
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # no: nothing changes
        await settle(app, pilot)
        assert orders.show("W1")["state"] == states.TO_CHECK
        await pilot.press("R")
        await pilot.pause()
        await pilot.press("y")
        await settle(app, pilot)
        assert orders.show("W1")["state"] == states.NEW
        assert any("waits to be sent again" in str(n.message) for n in app._notifications)
        assert "operator: put back in the queue" in text_of(app, "#order-history")
        await pilot.press("S")
        await wait_sync(app, pilot)
        assert orders.show("W1")["state"] == states.STORED
        assert len(sim.admin("GET", "orders?marker=W1").json()["keys"]) == 1
        # an order that is not to check is not sent again: its screen offers no R (nor S,
        # now that it is in the ERP), and the key does nothing
        await settle(app, pilot)
        shown = {k for k, b in app.screen.active_bindings.items() if b.binding.show}
        assert "C" not in shown and not shown & {"R", "S", "P"}, shown
        await pilot.press("R")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert orders.show("W1")["state"] == states.STORED


class PanelApp(App[None]):
    """The orders panel alone, as the dashboard hosts it."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine

    def compose(self) -> ComposeResult:
        yield OrdersPanel()


async def test_the_panel_tells_orders_waiting_for_payment_from_those_to_send(
    engine: Engine,
) -> None:
    """An order whose payment is not confirmed is not sent yet: the dashboard counts it
    among those to send, as the orders screen's tab does, and says apart how many of them
    wait for their payment."""
    import_orders(
        engine,
        order_line("P1", rows=article_rows(1)),
        order_line("P2", rows=article_rows(1), payment="unconfirmed"),
        order_line("P3", rows=article_rows(1), payment="unconfirmed"),
    )
    panel_app = PanelApp(engine)
    async with panel_app.run_test(size=(80, 10)) as pilot:
        await settle(panel_app, pilot)
        body = str(panel_app.query_one("#orders-panel-body", Static).render())
        assert "Waiting to send: 3\n" in body, body
        assert "of which waiting for payment: 2" in body, body
    WebOrders(engine.store).confirm_payment("P2")
    panel_app = PanelApp(engine)
    async with panel_app.run_test(size=(80, 10)) as pilot:
        await settle(panel_app, pilot)
        body = str(panel_app.query_one("#orders-panel-body", Static).render())
        assert "Waiting to send: 3\n" in body and "of which waiting for payment: 1" in body, body


async def test_many_orders_are_paged_and_searched(engine: Engine) -> None:
    total = PAGE * 2 + 37
    import_orders(
        engine,
        *(
            order_line(f"M{i:05d}", rows=article_rows(1, first=1 + i % 40))
            | {"created": f"2026-11-{1 + i // 100:02d}T10:{i % 60:02d}:00"}
            for i in range(total)
        ),
    )
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_orders(app, pilot)
        table = app.screen.query_one("#orders-table", KeyTable)
        assert table.row_count == PAGE
        assert "Rows 1-200" in str(app.screen.query_one("#orders-status", Label).render())
        first_page = keys_of(app, "#orders-table")
        await pilot.press("n")
        await settle(app, pilot)
        second_page = keys_of(app, "#orders-table")
        assert len(second_page) == PAGE and not set(first_page) & set(second_page)
        await pilot.press("n")
        await settle(app, pilot)
        assert table.row_count == 37
        await pilot.press("n")  # past the last page: stays
        await settle(app, pilot)
        assert table.row_count == 37
        await pilot.press("b", "b")
        await settle(app, pilot)
        assert keys_of(app, "#orders-table") == first_page

        # / searches by id; enter goes back to the table with the match under the cursor
        await pilot.press("slash", *"M00042", "enter")
        await settle(app, pilot)
        assert app.screen.query_one("#orders-filter", Input).value == "M00042"
        assert keys_of(app, "#orders-table") == ["M00042"]
        assert table.has_focus
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, OrderDetailScreen)
        assert "M00042" in text_of(app, "#order-header")


async def test_order_screen_speaks_italian(engine: Engine) -> None:
    import_orders(engine, order_line("I1", rows=article_rows(1)))
    set_language("it")
    try:
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_orders(app, pilot)
            assert "[1 Da inviare (1)]" in text_of(app, "#orders-views")
            assert "Righe 1-1" in str(screen.query_one("#orders-status", Label).render())
            sends = screen._bindings.key_to_bindings["S"]
            assert [b.description for b in sends] == ["Invia ora"]
            await pilot.press("enter")
            await settle(app, pilot)
            # in Italian, the states are Passweb's own names
            assert "I1  Nuovo" in text_of(app, "#order-header")
            assert "Pagamento: confermato" in text_of(app, "#order-header")
            assert "S lo invia ora" in text_of(app, "#order-header")
            # its web customer's form too
            from test_orders_helpers import new_customer

            from passweb_tui.screens.customer import CustomerScreen

            import_orders(engine, order_line("I2", customer=new_customer(77_000_001)))
            await open_order(app, pilot, "I2")
            await pilot.press("C")
            await settle(app, pilot)
            assert isinstance(app.screen, CustomerScreen)
            assert on_screen(app, "Cliente web dell'ordine I2"), screen_lines(app)
            assert on_screen(app, "Partita IVA"), screen_lines(app)
            assert on_screen(app, "Collega al codice ^b"), screen_lines(app)
            # the footer offers the form's keys, not those of the order beneath
            footer = screen_lines(app)[-1]
            assert t("key.save") in footer and t("key.resend") not in footer, footer
            await pilot.press("escape")
            await settle(app, pilot)
            assert isinstance(app.screen, OrderDetailScreen)
            assert orders_unchanged(engine, "I2")
    finally:
        set_language("en")


async def test_an_orders_erp_updates_fit_80_columns_in_italian(engine: Engine, sim: Any) -> None:
    """The table of an order's ERP updates gives way as the others do: in Italian, at
    80 columns, its longer labels and states ran off the right edge, cut mid-word."""
    import_orders(engine, order_line("I9", rows=article_rows(3)))
    assert engine.run("partial").status == "ok"
    orders = WebOrders(engine.store)
    key = orders.show("I9")["erp_key"]
    sim.admin("POST", f"orders/{key}/fulfil", json={"rows": {"1": 1, "3": 2}})
    assert engine.run("changed").status == "ok"
    sim.admin("POST", f"orders/{key}/fulfil", json={"rows": {"1": 3, "2": 1, "3": 3}})
    assert engine.run("changed").status == "ok"
    assert len(orders.updates(order_id="I9")) == 2
    set_language("it")
    try:
        app = create_app(engine, poll_s=0)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_orders(app, pilot)
            await open_order(app, pilot, "I9")
            table = app.screen.query_one("#order-updates", KeyTable)
            await settle(app, pilot)
            assert table.row_count == 2
            assert table.virtual_size.width <= table.size.width, (
                table.virtual_size.width,
                table.size.width,
            )
            labels = [str(c.label) for c in table.columns.values()]
            assert labels[:2] == ["#", "Rilevato"], labels
    finally:
        set_language("en")


async def test_closing_the_customer_form_asks_before_dropping_what_was_typed(
    engine: Engine,
) -> None:
    """esc on the web customer's form with a correction typed and not saved: asked
    first (before, the correction went without a word); nothing typed, it just closes."""
    from test_orders_helpers import new_customer

    from passweb_tui.screens.customer import CustomerScreen

    import_orders(engine, order_line("K1", customer=new_customer(66_000_001)))
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_order(app, pilot, "K1")
        await pilot.press("C")
        await settle(app, pilot)
        form = app.screen
        assert isinstance(form, CustomerScreen)
        await type_into(app, pilot, "#customer-province", "TO")
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert on_screen(app, "Close without saving what you changed (Province)?"), screen_lines(
            app
        )
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is form
        assert form.query_one("#customer-province", Input).value == "TO"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("y")
        await settle(app, pilot)
        assert isinstance(app.screen, OrderDetailScreen)
        assert orders_unchanged(engine, "K1")
        # nothing typed: esc closes at once
        await pilot.press("C")
        await settle(app, pilot)
        assert isinstance(app.screen, CustomerScreen)
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.screen, OrderDetailScreen)


def orders_unchanged(engine: Engine, order_id: str) -> bool:
    """The order's new customer as imported: nothing sent, nothing corrected."""
    customer = WebOrders(engine.store).show(order_id)["customer"]
    return customer["erp_code"] is None and customer["last_error"] is None


@pytest.mark.slow
async def test_ten_thousand_orders_stay_one_page_in_the_widgets(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    """10,000 orders: the table holds one page, and each figure is printed.

    Run with: pytest -m slow -s tests/test_ui_orders.py -k ten_thousand
    """
    total = 10_000
    rows = article_rows(3)
    lines = [
        order_line(f"T{i:06d}", customer={"code": f"501.{1 + i % 100:05d}"}, rows=rows)
        | {"created": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T10:{i % 60:02d}:00"}
        for i in range(total)
    ]
    import_orders(engine, *lines)
    orders = WebOrders(engine.store)
    figures: dict[str, float] = {}
    for view, offset in (("all", 0), ("all", total - PAGE), ("waiting", 0)):
        started = time.perf_counter()
        page = read_page(orders, PageQuery(view, "", offset))
        figures[f"read {view} at {offset}"] = time.perf_counter() - started
        assert len(page.items) == PAGE
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)  # the dashboard's own reads first
        for label in ("switch to orders, first page shown", "switch back, page reloaded"):
            app.action_goto("dashboard")
            await settle(app, pilot)
            started = time.perf_counter()
            app.action_goto("orders")
            loaded = app.workers.wait_for_complete([w for w in app.workers if w.group == "orders"])
            await pilot.pause()
            await loaded
            await pilot.pause()
            figures[label] = time.perf_counter() - started
        table = app.screen.query_one("#orders-table", KeyTable)
        assert table.row_count == PAGE
        started = time.perf_counter()
        await pilot.press("n")
        await settle(app, pilot)
        figures["next page shown"] = time.perf_counter() - started
        assert table.row_count == PAGE
        assert "Rows 201-400" in str(app.screen.query_one("#orders-status", Label).render())
    with capsys.disabled():
        for name, seconds in figures.items():
            print(f"{total} orders: {name}: {seconds * 1000:.0f} ms")


def erp_row(rid: int, article: str, **changes: str) -> dict[str, Any]:
    """A row of an order as the ERP document stores it (see documents.py)."""
    row = {
        "id_riga": rid,
        "codice_articolo": article,
        "quantita": "2",
        "prezzo": "168.65",
        "sconto": "",
        "cod_iva": "22",
        "qta_evasa": "0",
        "stato_riga": "",
    }
    return row | changes


def an_update(header_after: dict[str, Any] | None = None) -> dict[str, Any]:
    """An ERP-side update as the engine records it: the ERP suspended row 4 of 4."""
    header = {
        "cod_conto": "501.00541",
        "data_documento": "20261203",
        "id_pagamento": "RD",
        "nota": "$W1$",
        "doc_collegati": [],
    }
    rows = [erp_row(i, f"ART000034{i}") for i in range(1, 5)]
    return {
        "update_id": 7,
        "order_id": "W1",
        "reviewed": False,
        "reviewed_at": None,
        "detected": "2026-12-03T16:44:01+00:00",
        "run_id": 3,
        "state_before": states.STORED,
        "state_after": "suspended",
        "site_edit": None,
        "before": {"header": header, "rows": rows},
        "after": {
            "header": header | (header_after or {}),
            "rows": [*rows[:3], erp_row(4, "ART0000344", stato_riga="S")],
        },
    }


async def test_an_update_shows_what_changed_first_at_80x24() -> None:
    """Row 4's state went from - to S: at 80 columns the changed column comes right
    after the row and before/after, highlighted, and both rows are on the screen; a
    changed header field comes first in the header."""
    from ui_screen import FRAME, screen_lines

    app = create_app(None, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.push_screen(UpdateDetailScreen(an_update()))
        await pilot.pause()
        rows = app.screen.query_one("#update-rows", KeyTable)
        labels = [c.label.plain for c in rows.columns.values()]
        assert labels[:3] == ["row", "", "stato_riga"]
        assert rows.columns[labels_key(rows, "stato_riga")].label.style == CHANGED_STYLE
        assert rows.columns[labels_key(rows, "quantita")].label.style == ""
        # on the terminal as it is: the row's before and after with the state in view
        lines = [line.strip(FRAME).split() for line in screen_lines(app)]
        assert next(w for w in lines if w[:1] == ["row"])[:2] == ["row", "stato_riga"]
        assert ["4", "before", "-"] in [w[:3] for w in lines]
        assert ["4", "after", "S"] in [w[:3] for w in lines]
        # no column cut at the right edge: unchanged fields are left out from the last
        assert rows.virtual_size.width <= rows.size.width, (rows.virtual_size, rows.size)
        fields = {n for r in an_update()["after"]["rows"] for n in r} - {"id_riga"}
        assert 3 < len(labels) < 2 + len(fields), (labels, fields)

    app = create_app(None, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.push_screen(UpdateDetailScreen(an_update({"id_pagamento": "BB30"})))
        await pilot.pause()
        header = app.screen.query_one("#update-header", KeyTable)
        assert keys_of(app, "#update-header")[0] == "id_pagamento"
        first = [str(c) for c in header.get_row_at(0)]
        assert first == ["* id_pagamento", "RD", "BB30"]
        assert header.get_row_at(0)[0].style == CHANGED_STYLE
        assert header.get_row_at(1)[0].style == ""


async def test_a_late_changed_row_of_a_long_order_is_in_view_at_80x24() -> None:
    """Of twelve rows, the ERP changed row 11: it comes first, before and after, in view
    at 80x24; the unchanged rows follow in their numeric order (2 before 10)."""
    from ui_screen import FRAME, screen_lines

    update = an_update()
    rows = [erp_row(i, f"ART00003{i:02}") for i in range(1, 13)]
    update["before"]["rows"] = rows
    update["after"]["rows"] = [
        *rows[:10], erp_row(11, "ART0000311", qta_evasa="2"), rows[11],
    ]  # fmt: skip
    assert "row 11: qta_evasa" in update_summary(update)
    # a row added or removed says so, as `orders updates` does, not all of its fields
    grown = an_update()
    grown["before"]["rows"], grown["after"]["rows"] = rows[:11], rows
    assert update_summary(grown) == "row 12: added"
    grown["before"]["rows"], grown["after"]["rows"] = rows, rows[:11]
    assert update_summary(grown) == "row 12: removed"
    app = create_app(None, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.push_screen(UpdateDetailScreen(update))
        await pilot.pause()
        keys = keys_of(app, "#update-rows")
        assert keys[:2] == ["11/before", "11/after"]
        assert keys[2:] == [f"{i}/same" for i in (*range(1, 11), 12)]
        lines = [line.strip(FRAME).split() for line in screen_lines(app)]
        assert ["11", "before", "0"] in [w[:3] for w in lines], lines
        assert ["11", "after", "2"] in [w[:3] for w in lines], lines


def labels_key(table: KeyTable, label: str) -> Any:
    return next(k for k, c in table.columns.items() if c.label.plain == label)


async def test_the_order_list_follows_new_orders_on_its_own(engine: Engine) -> None:
    """New web orders show while the list is shown, without ctrl+r; the cursor stays on
    its order and a search being typed is left alone."""
    import_orders(
        engine,
        *(
            order_line(f"P{i}", rows=article_rows(1)) | {"created": f"2026-11-2{i}T10:00:00"}
            for i in range(1, 4)
        ),
    )
    app = create_app(engine, poll_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_orders(app, pilot)
        assert keys_of(app, "#orders-table") == ["P3", "P2", "P1"]
        await cursor_to(app, pilot, "#orders-table", "P2")

        async def until(check: Any) -> None:
            for _ in range(50):
                await pilot.pause(0.1)
                if check():
                    return
            raise AssertionError("the screen did not refresh on its own")

        # the shopper places a newer order: it comes on top, the cursor stays on P2
        import_orders(engine, order_line("P4", rows=article_rows(1)) | {"created": "2026-11-25"})
        await until(lambda: "P4" in keys_of(app, "#orders-table"))
        assert keys_of(app, "#orders-table") == ["P4", "P3", "P2", "P1"]
        assert "Waiting (4)" in text_of(app, "#orders-views")
        table = screen.query_one("#orders-table", KeyTable)
        assert table.selected_key() == "P2" and table.has_focus

        # a search being typed keeps its field, its text and its narrowed list
        box = screen.query_one("#orders-filter", Input)
        await pilot.press("slash", *"P1")
        await settle(app, pilot)
        import_orders(engine, order_line("P15", rows=article_rows(1)) | {"created": "2026-11-26"})
        await until(lambda: "P15" in keys_of(app, "#orders-table"))
        assert keys_of(app, "#orders-table") == ["P15", "P1"]
        assert box.has_focus and box.value == "P1" and box.cursor_position == 2
        await pilot.press("5")
        assert box.value == "P15"


async def test_an_order_names_its_erp_customer_and_articles_and_fits_80_columns(
    engine: Engine, sim: Any
) -> None:
    """An order of a customer the ERP already has shows (and is found by) that
    customer's name from the store; a row that came without a description shows the
    stored article's; at 80 columns the amounts stay whole."""
    assert engine.run("total").status == "ok"
    customer = engine.record("customers", "501.00001")
    assert customer is not None and customer.columns["name"]
    name = str(customer.columns["name"])
    rows = [{**r, "price": "1234.5"} for r in article_rows(2)]
    rows[1]["description"] = "Told by the site"
    import_orders(engine, order_line("W9", rows=rows))
    orders = WebOrders(engine.store)
    (listed,) = [o for o in orders.list() if o["id"] == "W9"]
    assert listed["customer_name"] == name and listed["customer_code"] == "501.00001"
    assert [o["id"] for o in orders.list(search=name.split()[0].lower())] == ["W9"]
    mine = engine.record("customers", "501.00001")
    assert mine is not None and mine.order_count == 1 and mine.orders[0]["id"] == "W9"
    # a customer born on the site: once created in the ERP and pulled back, its orders
    # are found through the web customer it came from
    newcomer = {"name": "Nuovo Cliente Srl", "email": "nuovo@cliente.example",
                "vat_number": "09876543210", "city": "Pavia"}  # fmt: skip
    import_orders(engine, order_line("W10", customer=newcomer, rows=article_rows(1)))
    pushed = engine.run("partial")
    assert pushed.status == "ok", [(o["id"], o["last_error"]) for o in orders.list()]
    assert engine.run("changed").status == "ok"
    code = orders.show("W10")["customer"]["erp_code"]
    born = engine.record("customers", code)
    assert born is not None and [o["id"] for o in born.orders] == ["W10"]
    assert born.orders[0]["erp_key"] == orders.show("W10")["erp_key"]
    lines = orders.show("W9")["lines"]
    first = engine.record("articles", "ART0000001")
    assert first is not None
    assert lines[0]["description"] is None
    assert lines[0]["article_description"] == first.columns["description"]
    assert lines[1]["description"] == "Told by the site"

    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        from passweb_tui.screens.record import RecordScreen

        app.push_screen(RecordScreen("customers", "501.00001"))
        await settle(app, pilot)
        from passweb_tui.screens.orders import state_label

        w9 = state_label(orders.show("W9")["state"])  # pushed by the Parziale above
        assert on_screen(app, f"Web orders: 1 (W9 {w9})"), screen_lines(app)
        await pilot.press("o")
        await settle(app, pilot)
        await pilot.press("4")  # all orders
        await settle(app, pilot)
        assert on_screen(app, "3,703.50 EUR"), screen_lines(app)  # the total, two decimals
        await pilot.press("2")  # the open orders: their ERP key stays at 80 columns
        await settle(app, pilot)
        assert on_screen(app, str(orders.show("W9")["erp_key"])), screen_lines(app)
        assert on_screen(app, "3,703.50 EUR"), screen_lines(app)
        await pilot.press("4")
        await settle(app, pilot)
        table = app.screen.query_one("#orders-table", KeyTable)
        table.move_cursor(row=keys_of(app, "#orders-table").index("W9"))
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, OrderDetailScreen)
        header = text_of(app, "#order-header")
        assert f"501.00001 {name}" in header and "3,703.50 EUR" in header
        table = app.screen.query_one("#order-rows", KeyTable)
        cells = [str(c) for c in table.get_row("1")]
        assert "1,234.50" in cells and cells[-1] == "1,234.50"  # qty 1: the row total, whole
        assert any(first.columns["description"][:5] in c for c in cells)
        assert on_screen(app, "2,469.00"), screen_lines(app)  # qty 2, whole at 80 columns


async def open_order(app: PasswebApp, pilot: Any, order_id: str) -> OrderDetailScreen:
    app.push_screen(OrderDetailScreen(order_id))
    await settle(app, pilot)
    assert isinstance(app.screen, OrderDetailScreen)
    return app.screen


async def type_into(app: PasswebApp, pilot: Any, selector: str, text: str) -> None:
    box = app.screen.query_one(selector, Input)
    box.focus()
    box.value = ""
    await pilot.press(*text)


def notices(app: PasswebApp) -> list[str]:
    """Every notice the app has shown: those a toast still shows, and those whose toast
    went on a loaded machine before the test looked (when `keep_notices` was called)."""
    kept: list[str] = getattr(app, "_kept_notices", [])
    return [*kept, *(str(n.message) for n in app._notifications)]


def keep_notices(app: PasswebApp) -> None:
    """From now on, `notices` has every notice, however short its toast's timeout."""
    kept: list[str] = []
    real = app.notify

    def notify(message: Any, *args: Any, **kwargs: Any) -> None:
        kept.append(str(message))
        real(message, *args, **kwargs)

    app._kept_notices = kept  # type: ignore[attr-defined]
    app.notify = notify  # type: ignore[method-assign]


async def test_a_refused_web_customer_is_corrected_or_bound_from_its_order(
    engine: Engine, sim: Any
) -> None:
    """`C` on an order opens its web customer while the ERP has not taken it: a correction
    is checked as an import checks it (a bad one is said in the form, which stays open),
    a saved one goes with its orders at the next push; a code is looked up in the ERP
    before the customer is bound to it. A customer the ERP has is not offered."""
    from test_orders_helpers import new_customer

    from passweb_tui.screens.customer import CustomerScreen
    from passweb_tui.screens.keys import KeysScreen

    # the ERP takes 16 characters for a tax code; the site took 18
    long_cf = "RSSMRA80A01F205XYZ"
    import_orders(
        engine,
        order_line("W1", customer=new_customer(88_800_001, tax_code=long_cf), rows=article_rows(1)),
        order_line("W2", customer=new_customer(88_800_002, tax_code=long_cf), rows=article_rows(1)),
        order_line("W3", customer={"code": "501.00001"}, rows=article_rows(1)),
        # one the ERP has already, by VAT number: bound to it, not created again
        order_line("W4", customer=new_customer(88_800_004), rows=article_rows(1)),
    )
    office = engine.client().create(
        "clienti",
        {"codice": "501.AUTO", "ragione_sociale": "Ufficio Spa", "partita_iva": "00088800004"},
    )
    assert engine.run("partial").status in ("ok", "ok_with_rejects")
    orders = WebOrders(engine.store)
    assert "codice_fiscale" in orders.show("W1")["customer"]["last_error"]
    # the runs' Rejected column counts what the run's detail lists: here no record, but
    # the customers and orders it could not send
    from passweb_tui.screens.base import value_of
    from passweb_tui.screens.dashboard import run_rejects

    last = engine.runs(limit=1)[0]
    listed = value_of(engine.run_detail(last.run_id), "rejects")
    assert run_rejects(last) == len(listed) >= 4, listed
    # recorded apart from the ERP's customers and orders: a site id is no ERP code
    assert {r.entity for r in listed} == {"web_customers", "web_orders"}, listed
    assert orders.show("W4")["customer"]["erp_code"] == office

    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        keep_notices(app)
        # the run's detail: the Rejected column adds up to the rejects listed, the web
        # customers and orders it could not send in rows of their own
        from passweb_tui.screens.runs import COUNT_NAMES, RunDetailScreen

        app.push_screen(RunDetailScreen(last.run_id or 0))
        await settle(app, pilot)
        counts = app.screen.query_one("#run-counts", KeyTable)
        column = list(counts.columns).index(
            next(k for k in counts.columns if k.value == "rejected")
        )
        rejected = [str(counts.get_row_at(i)[column]) for i in range(counts.row_count)]
        assert sum(int(n) for n in rejected if n != "-") == len(listed), rejected
        assert "rejected" in COUNT_NAMES
        # each reject named as its count row is: a web customer or order, not an ERP one
        listed_rows = app.screen.query_one("#run-rejects", KeyTable)
        kinds = {str(listed_rows.get_row_at(i)[0]) for i in range(listed_rows.row_count)}
        assert kinds <= {"Web customers", "Web orders"} and "Web customers" in kinds, kinds
        app.pop_screen()
        await settle(app, pilot)
        # the dashboard says how many wait on the operator
        panel = str(app.screen.query_one("#orders-panel-body", Static).render())
        assert "New customers the ERP did not take: 2" in panel, panel
        await open_order(app, pilot, "W4")
        assert "(new on the site, already the ERP's customer)" in text_of(app, "#order-header")
        assert office in text_of(app, "#order-header")
        # a customer the ERP has is nothing to correct: C is not offered and opens nothing
        shown = {k for k, b in app.screen.active_bindings.items() if b.binding.show}
        assert "C" not in shown, shown
        await pilot.press("C")
        await pilot.pause()
        assert not isinstance(app.screen, CustomerScreen)
        app.pop_screen()

        await open_order(app, pilot, "W3")  # an order for an ERP customer: no C either
        assert "501.00001" in text_of(app, "#order-header")
        shown = {k for k, b in app.screen.active_bindings.items() if b.binding.show}
        assert "C" not in shown, shown
        await pilot.press("C")
        await pilot.pause()
        assert not isinstance(app.screen, CustomerScreen)
        app.pop_screen()

        detail = await open_order(app, pilot, "W1")
        assert "C corrects its details" in text_of(app, "#order-header")
        await pilot.press("C")
        await settle(app, pilot)
        form = app.screen
        assert isinstance(form, CustomerScreen)
        # the form opens on the detail the ERP refused, and fits 80x24
        focused = app.focused
        assert isinstance(focused, Input) and focused.id == "customer-tax_code"
        assert focused.value == long_cf
        # keys that come in one burst (as over SSH) take effect in their order: End,
        # Backspace, Z over the selected text, not Z over it and then the Backspace
        for key, character in (("end", None), ("backspace", None), ("Z", "Z")):
            app.post_message(events.Key(key, character))
        await settle(app, pilot)
        assert focused.value == long_cf
        # the error says what went wrong, not again which customer the form is about
        intro = text_of(app, "#customer-intro")
        assert "codice_fiscale" in intro and "(site id" not in intro, intro
        assert on_screen(app, "Bind to the ERP code"), screen_lines(app)
        # F1 lists the form's own keys over it (a modal box holds back the app's)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, KeysScreen)
        assert {"^s", "^b", "esc"} <= {" ".join(r.keys) for r in app.screen.sections[0].rows}
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is form and app.focused is focused
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Nothing changed" in text_of(app, "#customer-result")

        # a save key that comes in the same burst as the typing before it saves what was
        # typed (it is a priority binding: it ran before the field had read the keys
        # ahead of it, and said "Nothing changed")
        box = app.screen.query_one("#customer-email", Input)
        box.focus()
        await pilot.pause()
        burst = [("end", None)] + [("backspace", None)] * len(box.value)
        burst += [(c, c) for c in "nobody"] + [("ctrl+s", None)]
        for key, character in burst:
            app.post_message(events.Key(key, character))
        await settle(app, pilot)
        assert app.screen is form
        # the detail named by its label in the form
        assert "E-mail: not an e-mail address" in text_of(app, "#customer-result")
        assert orders.show("W1")["customer"]["email"] == "shop88800001@example.it"

        await type_into(app, pilot, "#customer-email", "shop88800001@example.it")
        # enter in a detail saves, what the detail held at the enter: a key typed after
        # it in the same burst was saved with it ("00199", enter, "7" saved "001997")
        box = app.screen.query_one("#customer-tax_code", Input)
        box.focus()
        await pilot.pause()
        burst = [("end", None)] + [("backspace", None)] * len(box.value)
        burst += [(c, c) for c in "rssmra80a01f205x"] + [("enter", None), ("q", "q")]
        for key, character in burst:
            app.post_message(events.Key(key, character))
        await settle(app, pilot)
        assert app.screen is detail
        assert any("corrected" in n for n in notices(app))
        mended = orders.show("W1")["customer"]
        assert (mended["tax_code"], mended["last_error"]) == ("RSSMRA80A01F205X", None)
        assert "corrects its details" not in text_of(app, "#order-header")
        assert "Last error" not in text_of(app, "#order-header")
        app.pop_screen()

        # from the list of waiting orders too
        await open_orders(app, pilot)
        await cursor_to(app, pilot, "#orders-table", "W2")
        # the row says what holds the order, the key that mends it first (at 80 columns
        # the column shows little more), then the ERP's reason, without the order's id
        # or the customer's name again
        row = [str(c) for c in app.screen.query_one("#orders-table", KeyTable).get_row("W2")]
        assert row[-1].startswith("C Fix customer"), row
        assert app.screen.error_cell(app.screen.items["W2"]).startswith(
            "C Fix customer - the ERP did not create it: "
        )
        await pilot.press("C")
        await settle(app, pilot)
        assert isinstance(app.screen, CustomerScreen) and app.screen.order_id == "W2"
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert "Type the code" in text_of(app, "#customer-result")
        await type_into(app, pilot, "#customer-erp_code", "501.99999")
        await pilot.press("ctrl+b")
        await settle(app, pilot)
        assert "The ERP has no customer 501.99999" in text_of(app, "#customer-result")
        await type_into(app, pilot, "#customer-city", "Roma")
        await type_into(app, pilot, "#customer-erp_code", "501.00002")
        await pilot.press("enter")  # enter in the code binds, but not over a correction
        await pilot.pause()
        assert "binding takes the ERP's customer as it is" in text_of(app, "#customer-result")
        await type_into(app, pilot, "#customer-city", "Milano")
        # the ERP's customer is read and shown before anything is bound: no, then yes
        erp = orders.erp_customer(engine.client(), "501.00002")
        assert erp is not None and erp["ragione_sociale"]
        for answer in ("n", "y"):
            await pilot.press("ctrl+b")
            await settle(app, pilot)
            assert isinstance(app.screen, ConfirmScreen)
            question = str(app.screen.query_one("#confirm-question", Label).render())
            assert "501.00002" in question and erp["ragione_sociale"] in question, question
            await pilot.press(answer)
            await settle(app, pilot)
            if answer == "n":
                assert isinstance(app.screen, CustomerScreen)
                assert orders.show("W2")["customer"]["erp_code"] is None
        assert isinstance(app.screen, OrdersScreen)
        assert any("bound to the ERP customer 501.00002" in n for n in notices(app))
        bound = orders.show("W2")["customer"]
        assert (bound["erp_code"], bound["erp_bound_by"]) == ("501.00002", "operator")
        # c stays the change log's key on the order screens
        from passweb_tui.screens.changes import ChangesScreen

        await pilot.press("c")
        await settle(app, pilot)
        assert isinstance(app.screen, ChangesScreen)

    # the next push sends both with their orders, W2 under the code it was bound to
    assert engine.run("partial").status == "ok"
    assert orders.show("W1")["state"] == orders.show("W2")["state"] == states.STORED
    assert orders.show("W2")["customer"]["erp_code"] == "501.00002"


async def test_an_order_the_erp_refuses_is_cancelled_with_x_after_asking(
    engine: Engine, sim: Any
) -> None:
    """X on the screen of an order the ERP refuses at every push sets it aside for good,
    asked first; an order in the ERP offers no X, and the key does nothing there."""
    orders = WebOrders(engine.store)
    engine.run("total")
    bad = {"article": "NOSUCHART", "qty": 1, "price": 1, "vat_code": "22"}
    orders.place(order_line("WX1", rows=[bad]))
    orders.place(order_line("WX2"))
    engine.run("partial")
    assert orders.show("WX1")["state"] == states.NEW
    assert orders.show("WX2")["state"] == states.STORED
    app = create_app(engine, poll_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(OrderDetailScreen("WX1"))
        await settle(app, pilot)
        shown = {k for k, b in app.screen.active_bindings.items() if b.binding.show}
        assert "X" in shown, shown
        await pilot.press("X")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(app, pilot)
        assert orders.show("WX1")["state"] == states.NEW
        await pilot.press("X")
        await pilot.pause()
        await pilot.press("y")
        await settle(app, pilot)
        assert orders.show("WX1")["state"] == states.CANCELLED
        assert any(
            "is cancelled: it will not be sent" in str(n.message) for n in app._notifications
        )
        assert "operator: cancelled, not to be sent" in text_of(app, "#order-history")
        app.pop_screen()
        app.push_screen(OrderDetailScreen("WX2"))
        await settle(app, pilot)
        shown = {k for k, b in app.screen.active_bindings.items() if b.binding.show}
        assert "X" not in shown, shown
        await pilot.press("X")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
    assert orders.show("WX2")["state"] == states.STORED


async def test_an_order_shows_the_erps_rows_and_follows_a_run_elsewhere(
    engine: Engine, sim: Any
) -> None:
    """The ERP wins: an order's screen showed the site's rows with the ERP's fulfilled
    quantity beside them (quantity 1, fulfilled 3), missed a row the ERP added, and kept
    showing what it first read while a run in another process changed the order. The
    ERP's rows now show as they are there, what differs from the site's marked, and the
    screen reads the order again on its own."""
    import_orders(engine, order_line("W1", rows=article_rows(2)))
    orders = WebOrders(engine.store)
    client = engine.client()
    assert orders.push(client).orders_sent == 1
    key = str(orders.show("W1")["erp_key"])
    app = create_app(engine, poll_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_order(app, pilot, "W1")
        erp_rows = app.screen.query_one("#order-erp-rows", KeyTable)
        assert keys_of(app, "#order-erp-rows") == ["1/1", "2/2"]
        assert not any(c.style for c in erp_rows.get_row("1/1"))  # as the site sent it

        # in the ERP: row 1 three of them, and a third row; a run elsewhere reads it
        doc = client.get("documenti/ordini-clienti", key)
        assert doc is not None
        for name, value in list(doc.items()):
            if isinstance(value, list) and value and isinstance(value[0], list):
                doc[name] = [*value, [3, value[-1][1]]]
        if "id_riga" in doc:
            doc["id_riga"][-1] = [3, 3]
        doc["quantita"] = [[i, 3 if i == 1 else q] for i, q in doc["quantita"]]
        doc["sconto"] = [[i, "5" if i == 2 else d] for i, d in doc["sconto"]]
        client.update(
            "documenti/ordini-clienti",
            key,
            {k: v for k, v in doc.items() if k not in ("sigla", "serie", "numero")},
        )
        assert orders.refresh(client).updated == 1
        for _ in range(50):
            await pilot.pause(0.1)
            if "3/3" in keys_of(app, "#order-erp-rows"):
                break
        await settle(app, pilot)
        assert keys_of(app, "#order-erp-rows") == ["1/1", "2/2", "3/3"]
        qty = erp_rows.get_row("1/1")[2]
        assert str(qty) == "3" and qty.style == CHANGED_STYLE  # differs from the site's 1
        assert all(c.style == CHANGED_STYLE for c in erp_rows.get_row("3/3")[:3])
        discount = erp_rows.get_row("2/2")[-1]
        assert str(discount) == "5" and discount.style == CHANGED_STYLE  # the site's none
        assert erp_rows.get_row("2/2")[2].style == ""  # its quantity is the site's
        assert keys_of(app, "#order-rows") == ["1", "2"]  # what the site sent, as sent
        assert orders_state_label(states.MODIFIED) in text_of(app, "#order-header")
        assert "ERP updates: 1" in text_of(app, "#order-history")
