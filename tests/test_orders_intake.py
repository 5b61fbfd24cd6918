"""Intake of web orders: line-by-line validation, customer matching, refusal of known ids,
and the read side (list, show, updates, ack) on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa
from test_orders_helpers import article_rows, jsonl, new_customer, order_line

from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.api import OrderNotFound, WebOrders
from passweb_tui.engine.orders.intake import OrderInvalid
from passweb_tui.engine.store import Store, open_store


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    try:
        yield s
    finally:
        s.close()


def erp_lengths(store: Store, *fields: tuple[str, str, int]) -> None:
    """The ERP's field catalogue as the first sync stores it: (entity, field, length) of
    text fields."""
    from datetime import UTC, datetime

    from passweb_tui.engine.models import ErpField

    with store.write() as conn:
        conn.execute(
            sa.insert(ErpField.__table__),  # type: ignore[attr-defined]
            [
                {"entity": entity, "name": name, "type": "C", "length": length,
                 "is_key": False, "array_size": 0, "description": "", "used": True,
                 "seen_at": datetime.now(UTC)}
                for entity, name, length in fields
            ],
        )  # fmt: skip


def count(store: Store, table: str) -> int:
    with store.read() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_good_lines_are_stored_with_states_and_exact_money(store: Store) -> None:
    orders = WebOrders(store)
    text = jsonl(
        order_line("W1001"),
        order_line("W1002", customer=new_customer(1)),
        # same VAT number, another e-mail: the same customer
        order_line("W1003", customer=new_customer(1, email="other@example.it")),
        # no VAT number, same e-mail as customer 1: the same customer again
        order_line("W1004", customer=new_customer(1, vat_number=None), payment="unconfirmed"),
        order_line(
            "W1005",
            customer=new_customer(2),
            rows=[{"article": "KIT/0001", "qty": 0.1, "price": 0.35, "vat_code": 22}],
        ),
    )
    report = orders.import_lines(text.splitlines())
    assert report.complete and report.stored == ["W1001", "W1002", "W1003", "W1004", "W1005"]
    assert report.new_customers == 2
    assert count(store, "web_customer") == 2
    by_id = {o["id"]: o for o in orders.list()}
    assert by_id["W1004"]["state"] == states.PAYMENT_UNCONFIRMED
    assert {by_id[i]["state"] for i in ("W1001", "W1002", "W1003", "W1005")} == {states.NEW}
    # 2 x 12.5 less 10% = 22.50, plus 3.35
    assert Decimal(by_id["W1001"]["total"]) == Decimal("25.85")
    detail = orders.show("W1005")
    assert detail["lines"][0]["qty"] == "0.1" and detail["lines"][0]["price"] == "0.35"
    assert detail["lines"][0]["vat_code"] == "22"
    assert detail["customer"]["vat_number"] == "00000000002"
    assert orders.counts()[states.NEW] == 4


BAD = [
    ("{not json", "not valid JSON"),
    ('["a list"]', "must be a JSON object"),
    (order_line("W2002", rows=[]), "rows: required"),
    (
        order_line("W2003", rows=[{"article": "A", "qty": -2, "price": 1, "vat_code": "22"}]),
        "rows[1].qty: must be greater than 0",
    ),
    (
        order_line("W2004", rows=[{"article": "A", "qty": 1, "price": "x", "vat_code": "22"}]),
        "rows[1].price: must be a number",
    ),
    (order_line("W2005", customer=new_customer(9, email="not-an-email")), "customer.email"),
    (order_line("W2006", note="pay $W1001$ twice"), "note: must not contain '$'"),
    (order_line("W2018", note="ring\u0007 twice\u0000"), "note: contains control characters"),
    (order_line("W2007", colour="red"), "unknown field 'colour'"),
    (order_line("W 2008"), "id: must be"),
    (order_line("W2009", payment="maybe"), "payment: must be"),
    (order_line("W2010", customer={"code": "501.00001", "name": "X"}), "not both"),
    (order_line("W2011", created="yesterday"), "created: not an ISO-8601"),
    (
        order_line(
            "W2012",
            rows=[{"article": "A", "qty": 1, "price": 1, "vat_code": "22", "discount": "ten"}],
        ),
        "rows[1].discount",
    ),
    (order_line("W2013", customer=new_customer(8, name="")), "customer.name: required"),
    (
        order_line(
            "W2016",
            rows=[{"article": "A", "qty": 1, "price": 1, "vat_code": "22", "discount": "150"}],
        ),
        "rows[1].discount: each percentage at most 100, got '150'",
    ),
    (
        order_line(
            "W2017",
            rows=[{"article": "A", "qty": 1, "price": 1, "vat_code": "22", "discount": "10+101"}],
        ),
        "rows[1].discount: each percentage at most 100",
    ),
    (
        order_line("W2014", rows=[{"article": "A", "qty": 1, "price": 1.00001, "vat_code": "22"}]),
        "more than 4 decimals",
    ),
    # numbers where text is expected (numbers are read as decimals): named, not a crash
    (
        order_line("W2015", customer={"code": 501.00042}),
        'customer.code: must be text, like "501.00042", got 501.00042',
    ),
    (
        order_line("W2016", rows=[{"article": "A", "qty": 1, "price": 1, "vat_code": 22.5}]),
        "rows[1].vat_code: must be text, got 22.5",
    ),
    (order_line("W2017", customer=new_customer(7, zip=20100.5)), "customer.zip: must be text"),
    (order_line(1001.5), "id: must be 1-40 letters, digits, '_', '.' or '-', got 1001.5"),
    # nested past what the JSON reader takes: it stopped the whole import, good lines too
    ("[" * 100_000, "not an order: arrays or objects nested deeper than can be read"),
]


def test_bad_lines_are_reported_by_number_and_store_nothing(store: Store) -> None:
    orders = WebOrders(store)
    lines = [order_line("W1001", customer=new_customer(1))]
    for bad, _ in BAD:
        lines.append(bad)
    lines.append(order_line("W1002"))
    report = orders.import_lines(jsonl(*lines).splitlines())
    assert report.stored == ["W1001", "W1002"]
    assert [p.line for p in report.skipped] == list(range(2, 2 + len(BAD)))
    for problem, (_, reason) in zip(report.skipped, BAD, strict=True):
        assert reason in problem.reason, (problem, reason)
    # the bad line with a new customer (W2005) created no customer
    assert count(store, "web_customer") == 1
    assert count(store, "web_order") == 2
    assert count(store, "web_order_row") == 4
    assert report.skipped[2].order_id == "W2002"
    assert str(report.skipped[2]).startswith("line 4 (order W2002): rows: required")


def test_a_line_with_several_problems_names_each_of_them(store: Store) -> None:
    """Every field of a bad line is checked: the operator mends it once, not once a field;
    a field that fails one way is not said to be missing as well; a line with a great
    many problems names the first five and counts the rest."""
    orders = WebOrders(store)
    customer = {"name": "", "email": "not-mail", "vat_number": "IT 01 / 2"}
    rows = [
        {"article": "A", "qty": -1, "price": "abc", "vat_code": "22"},
        "not a row",
        {"article": "B", "qty": 1, "price": 1, "vat_code": "22", "colour": "red"},
    ]
    line = order_line("W1", payment="maybe", customer=customer, rows=rows)
    report = orders.import_lines(jsonl(line).splitlines())
    assert report.stored == []
    (problem,) = report.skipped
    assert problem.order_id == "W1"
    assert problem.reason.split("; ") == [
        'payment: must be "confirmed" or "unconfirmed", got "maybe"',
        "customer.name: required for a new customer",
        "customer.email: not an e-mail address: 'not-mail'",
        "customer.vat_number: letters and digits only: 'IT01/2'",
        "rows[1].qty: must be greater than 0, got -1",
        "and 3 more",
    ]
    # the rest, one at a time: none of them hides behind another
    for only, reason in (
        (rows[0] | {"qty": 1}, "rows[1].price: must be a number, got 'abc'"),
        ("not a row", "rows[1]: must be an object"),
        (rows[2], "rows[1]: unknown field 'colour'"),
    ):
        single = order_line("W2", rows=[only])
        (bad,) = orders.import_lines(jsonl(single).splitlines()).skipped
        assert bad.reason == reason
    # a text too long is said once, not "required" as well
    long_name = order_line("W3", customer={"name": "N" * 500, "email": "a@b.it"})
    (bad,) = orders.import_lines(jsonl(long_name).splitlines()).skipped
    assert bad.reason.startswith("customer.name: longer than") and "required" not in bad.reason
    with pytest.raises(OrderInvalid, match=r"^rows\[1\]\.price: must be a number"):
        orders.place(order_line("W4", rows=[rows[0] | {"qty": 1}]))


def test_a_discount_written_as_a_number_is_taken(store: Store) -> None:
    orders = WebOrders(store)
    row = {"article": "A", "qty": 1, "price": "10.00", "vat_code": "22", "discount": 12.5}
    report = orders.import_lines(jsonl(order_line("W1", rows=[row])).splitlines())
    assert report.stored == ["W1"]
    (line,) = orders.show("W1")["lines"]
    assert line["discount"] == "12.5" and line["total"] == "8.75"


def test_known_ids_are_refused_never_duplicated(store: Store) -> None:
    orders = WebOrders(store)
    first = orders.import_lines(jsonl(order_line("W1"), order_line("W2")).splitlines())
    assert first.complete
    again = orders.import_lines(
        jsonl(
            order_line("W2"), order_line("W3"), order_line("W3"), "", order_line("W1")
        ).splitlines()
    )
    assert again.stored == ["W3"]
    assert [(p.line, p.reason) for p in again.skipped] == [
        (1, "order W2 already exists"),
        (3, "order W3 already exists"),
        (5, "order W1 already exists"),
    ]
    assert count(store, "web_order") == 3
    with pytest.raises(OrderInvalid, match="already exists"):
        orders.place(order_line("W1"))


def test_email_of_another_vat_number_is_refused(store: Store) -> None:
    orders = WebOrders(store)
    report = orders.import_lines(
        jsonl(
            order_line("W1", customer=new_customer(1)),
            order_line("W2", customer=new_customer(2, email="shop1@example.it")),
        ).splitlines()
    )
    assert report.stored == ["W1"]
    assert "belongs to the customer with VAT number 00000000001" in report.skipped[0].reason
    assert count(store, "web_customer") == 1


def test_a_vat_number_first_given_under_a_known_email_is_kept_for_later_orders(
    store: Store,
) -> None:
    """A customer first known by e-mail alone gives its VAT number with a later order:
    the number is kept, so that an order with that VAT number and another e-mail, in
    this import or a later one, is the same customer's, not a second customer."""
    orders = WebOrders(store)
    first = orders.import_lines(
        jsonl(
            order_line("M1", customer=new_customer(4, vat_number=None)),
            order_line("M2", customer=new_customer(4)),  # same e-mail, now with its VAT
            order_line("M3", customer=new_customer(4, email="orders@shop4.it")),
            # that customer's e-mail with another VAT number: refused, as before
            order_line("M4", customer=new_customer(5, email="shop4@example.it")),
        ).splitlines()
    )
    assert first.stored == ["M1", "M2", "M3"] and first.new_customers == 1
    assert "belongs to the customer with VAT number 00000000004" in first.skipped[0].reason
    later = orders.import_lines(
        jsonl(order_line("M5", customer=new_customer(4, email="admin@shop4.it"))).splitlines()
    )
    assert later.stored == ["M5"] and later.new_customers == 0
    assert count(store, "web_customer") == 1
    customers = {orders.show(i)["customer"]["vat_number"] for i in ("M1", "M3", "M5")}
    assert customers == {"00000000004"}


def test_a_vat_number_kept_later_is_held_to_the_erps_length_and_not_while_pushed(
    store: Store,
) -> None:
    """The VAT number given under a known e-mail: one longer than the ERP's field is
    refused with the reason a new customer would get (the ERP would refuse the customer
    and hold its earlier orders); and while a push of the customer is under way nothing
    is kept, so a later line with another VAT number is not refused in its name."""
    erp_lengths(store, ("customers", "partita_iva", 16))  # as the first sync reads them
    orders = WebOrders(store)
    first = orders.import_lines(
        jsonl(
            order_line("L1", customer=new_customer(6, vat_number=None)),
            order_line("L2", customer=new_customer(6, vat_number="IT11111111111111111")),
        ).splitlines()
    )
    assert first.stored == ["L1"]
    assert first.skipped[0].reason == (
        "customer.vat_number: at most 16 characters (the ERP's partita_iva), got 19"
    )
    with store.write() as conn:  # a push of the customer is under way
        conn.execute(sa.text("UPDATE web_customer SET claim_owner = 'host:1:abc'"))
    held = orders.import_lines(
        jsonl(
            order_line("L3", customer=new_customer(6)),
            order_line("L4", customer=new_customer(9, email="shop6@example.it")),
        ).splitlines()
    )
    assert held.stored == ["L3", "L4"], [p.reason for p in held.skipped]
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT vat_number FROM web_customer")).scalars().all() == [
            None
        ]


def test_imports_at_once_make_one_customer_of_one_vat_number(store: Store) -> None:
    """Two imports running together (two processes, or the site and an operator), both
    bringing the same new customers: each VAT number is one customer. (On PostgreSQL
    nothing but the intake's own lock keeps the two from both creating it.)"""
    import threading

    files = [
        jsonl(
            *(order_line(f"R{side}{i}", customer=new_customer(100 + i % 40)) for i in range(200))
        ).splitlines()
        for side in "ab"
    ]
    start = threading.Barrier(2)
    reports = []

    def run(lines: list[str]) -> None:
        start.wait()
        reports.append(WebOrders(store).import_lines(lines))

    threads = [threading.Thread(target=run, args=(lines,)) for lines in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [len(r.stored) for r in reports] == [200, 200]
    assert sum(r.new_customers for r in reports) == 40
    with store.read() as conn:
        vats = conn.execute(sa.text("SELECT vat_number FROM web_customer")).scalars().all()
    assert len(vats) == len(set(vats)) == 40


def test_non_utf8_line_is_reported(store: Store) -> None:
    orders = WebOrders(store)
    good = jsonl(order_line("W1")).encode()
    report = orders.import_lines([good, b'{"id": "W\xff"}\n'])
    assert report.stored == ["W1"]
    assert report.skipped[0].line == 2 and "not UTF-8" in report.skipped[0].reason


def test_payment_confirmation_edit_and_unknown_order(store: Store) -> None:
    orders = WebOrders(store)
    orders.place(order_line("W1", payment="unconfirmed"))
    assert orders.show("W1")["state"] == states.PAYMENT_UNCONFIRMED
    assert orders.confirm_payment("W1") is True
    assert orders.confirm_payment("W1") is False
    assert orders.show("W1")["state"] == states.NEW
    orders.edit("W1", {"note": "leave at the door"})
    assert orders.show("W1")["site_edit"]["changes"] == {"note": "leave at the door"}
    with pytest.raises(OrderNotFound):
        orders.show("W404")
    with pytest.raises(OrderNotFound):
        orders.confirm_payment("W404")
    assert orders.ack([1, 2]) == ([], [1, 2])
    assert orders.updates() == []


@pytest.fixture
def rome_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import time

    monkeypatch.setenv("TZ", "Europe/Rome")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_an_order_placed_just_after_midnight_is_dated_that_day_in_the_erp(
    rome_time: None,
) -> None:
    """Stored in UTC, an order placed at 00:30 in Italy is still on the day before: the
    ERP document must carry the day the shop saw."""
    from passweb_tui.engine.orders.documents import DocumentSeries, build_document
    from passweb_tui.engine.orders.intake import parse_line

    order = parse_line(jsonl(order_line("W1", created="2026-11-27T00:30:00")))
    assert order.created.isoformat() == "2026-11-26T23:30:00+00:00"
    record = build_document(
        order_id=order.id,
        created=order.created.replace(tzinfo=None),  # as SQLite gives it back
        customer_code="501.00001",
        payment_code=None,
        currency_id=None,
        note=None,
        rows=order.rows,
        series=DocumentSeries(),
    )
    assert record["data_documento"] == "20261127"


def test_article_and_payment_codes_are_held_to_the_erps_lengths(store: Store) -> None:
    """An order naming an article or payment code longer than the ERP's code fields
    (from the field catalogue the first sync read) is refused at import with the reason;
    before, it was stored and then refused by the ERP at every push."""
    orders = WebOrders(store)
    long_article = [{"article": "A" * 21, "qty": 1, "price": 1, "vat_code": "22"}]
    # before the first sync there is no catalogue: the intake's own limits hold
    assert orders.import_lines(jsonl(order_line("C1", rows=long_article)).splitlines()).complete
    erp_lengths(store, ("articles", "codice", 20), ("customers", "cod_pagamento", 6))
    rows = [*article_rows(1), *long_article]
    report = orders.import_lines(
        jsonl(
            order_line("C2", rows=rows),
            order_line("C3", payment_code="BB30GG7"),
            order_line("C4", customer=new_customer(31), payment_code="BB30GG7"),
            order_line("C5", rows=[{**long_article[0], "article": "A" * 20}]),
        ).splitlines()
    )
    assert report.stored == ["C5"]
    assert [p.reason for p in report.skipped] == [
        "rows[2].article: at most 20 characters (the ERP's articoli.codice), got 21",
        "payment_code: at most 6 characters (the ERP's clienti.cod_pagamento), got 7",
        "payment_code: at most 6 characters (the ERP's clienti.cod_pagamento), got 7",
    ]
    assert count(store, "web_customer") == 0  # a refused order makes no customer


def test_a_line_is_refused_with_every_problem_at_once_the_erps_lengths_with_the_rest(
    store: Store,
) -> None:
    """The operator mends a bad line at one go: the ERP's lengths (from the catalogue)
    are said with the intake's own checks, every field of them; a new customer's
    details too, in a line refused anyway."""
    erp_lengths(
        store,
        ("articles", "codice", 20),
        ("customers", "cod_pagamento", 6),
        ("customers", "partita_iva", 16),
    )
    long_rows = [
        {"article": "A" * 21, "qty": 1, "price": 1, "vat_code": "22"},
        {"article": "B" * 22, "qty": -1, "price": 1, "vat_code": "22"},
    ]
    report = WebOrders(store).import_lines(
        jsonl(
            order_line("M1", payment_code="BB30GG7", rows=long_rows),
            order_line(
                "M2",
                customer=new_customer(40, vat_number="IT123456789012345"),
                payment_code="BB30GG7",
            ),
            # a detail of the customer wrong for the intake: its others are checked too
            order_line(
                "M3", customer=new_customer(41, vat_number=" IT1234567890123456", province="MIL")
            ),
        ).splitlines()
    )
    assert report.stored == []
    assert [p.reason for p in report.skipped] == [
        "rows[2].qty: must be greater than 0, got -1; "
        "payment_code: at most 6 characters (the ERP's clienti.cod_pagamento), got 7; "
        "rows[1].article: at most 20 characters (the ERP's articoli.codice), got 21; "
        "rows[2].article: at most 20 characters (the ERP's articoli.codice), got 22",
        "payment_code: at most 6 characters (the ERP's clienti.cod_pagamento), got 7; "
        "customer.vat_number: at most 16 characters (the ERP's partita_iva), got 17",
        "customer.province: longer than 2 characters (3); "
        "customer.vat_number: at most 16 characters (the ERP's partita_iva), got 18",
    ]
    assert count(store, "web_customer") == 0


def test_a_note_the_erp_would_cut_is_refused_at_import(store: Store) -> None:
    """The note goes into the ERP document's note after the order's marker: one that
    would not fit is refused with its room, rather than cut at its end without a word."""
    from passweb_tui.engine.orders.documents import NOTE_LENGTH, marker, note_text

    orders = WebOrders(store)
    room = NOTE_LENGTH - len(marker("W1")) - 1
    fits = "x" * (room - 20) + " CODICE CANCELLO 4711"[-20:]
    assert len(fits) == room
    too_long = "x" * room + " CODICE CANCELLO 4711"
    report = orders.import_lines(
        jsonl(order_line("W1", note=fits), order_line("W2", note=too_long)).splitlines()
    )
    assert report.stored == ["W1"]
    ((_, order_id, reason),) = [(p.line, p.order_id, p.reason) for p in report.skipped]
    assert order_id == "W2"
    assert reason == (
        f"note: at most {NOTE_LENGTH - len(marker('W2')) - 1} characters for this order (the"
        f" ERP's document note holds {NOTE_LENGTH}, the order's marker $W2$ first), got"
        f" {len(too_long)}"
    )
    assert note_text("W1", fits).endswith("CANCELLO 4711")  # whole, as imported
