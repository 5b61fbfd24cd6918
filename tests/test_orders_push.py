"""Exactly-once push of web orders and customers to the simulator over a real socket:
crashes injected at every step, ERP faults, concurrent pushes, refusals and retries."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from test_orders_helpers import (
    article_rows,
    erp_config,
    erp_marker_counts,
    jsonl,
    new_customer,
    order_line,
)

from passweb_tui.codice_fiscale import check_char
from passweb_tui.engine.erp.client import Filter, MexalClient
from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.api import WebOrders
from passweb_tui.engine.orders.push import CRASH_STEPS, Pusher, PushResult, cust_t, orders_t
from passweb_tui.engine.store import Store, open_store

# one simulator for the module: every test uses order ids and VAT numbers of its own
# (see `base`), and the tests that set faults clear them when they end
_bases = itertools.count(1)


@pytest.fixture(scope="module")
def erp() -> Iterator[Any]:
    from conftest import start_sim

    p = start_sim("--articles", "100", "--customers", "60", "--orders", "5", "--seed", "5")
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def sim(erp: Any) -> Iterator[Any]:
    try:
        yield erp
    finally:
        erp.admin("DELETE", "faults")


@pytest.fixture
def base() -> int:
    """A number of this test's own: order ids W<base>..., VAT numbers from it."""
    return next(_bases) * 1000


class SimulatedCrash(BaseException):
    """Stands for the process dying: BaseException, so no `except Exception` stops it."""


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def client(sim: Any) -> Iterator[MexalClient]:
    with MexalClient(erp_config(sim)) as c:
        yield c


def import_orders(store: Store, base: int, n: int, *, new_customers: int = 0) -> list[str]:
    """n orders for existing customers, the first `new_customers` of them for new ones."""
    lines = []
    for i in range(n):
        customer = (
            new_customer(base + i + 1) if i < new_customers else {"code": f"501.{i % 50 + 1:05d}"}
        )
        rows = article_rows(1 + i % 3, first=1 + i % 90)
        lines.append(order_line(f"W{base + i + 1}", customer=customer, rows=rows))
    report = WebOrders(store).import_lines(jsonl(*lines).splitlines())
    assert report.complete
    return report.stored


def states_of(store: Store) -> dict[str, str]:
    return {o["id"]: o["state"] for o in WebOrders(store).list()}


def erp_customers_with_vat(client: MexalClient, vat: str) -> list[str]:
    page = client.search_page("clienti", [Filter("partita_iva", "=", vat)], fields=["codice"])
    return [r["codice"] for r in page.records]


def vat(n: int) -> str:
    return f"{n:011d}"


def test_push_sends_customers_then_orders_once(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    ids = import_orders(store, base, 6, new_customers=2)
    orders = WebOrders(store)
    result = orders.push(client)
    assert (result.orders_sent, result.orders_failed) == (6, 0)
    assert (result.customers_sent, result.customers_failed) == (2, 0)
    assert set(states_of(store).values()) == {states.STORED}
    assert erp_marker_counts(sim, ids) == {i: 1 for i in ids}
    # the new customer's order went to the code the ERP gave the new customer
    first = orders.show(ids[0])
    assert first["customer"]["erp_code"].startswith("501.")
    doc = client.get("documenti/ordini-clienti", first["erp_key"])
    assert doc is not None and doc["cod_conto"] == first["customer"]["erp_code"]
    assert doc["nota"].startswith(f"${ids[0]}$")
    assert erp_customers_with_vat(client, vat(base + 1)) == [first["customer"]["erp_code"]]
    # nothing waits any more: a second push sends nothing
    again = orders.push(client)
    assert (again.orders_sent, again.customers_sent, again.orders_failed) == (0, 0, 0)
    assert erp_marker_counts(sim, ids) == {i: 1 for i in ids}


def test_rows_with_and_without_a_description_go_in_one_document(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """The ERP takes the rows' arrays only whole: a row without a description of its own
    goes with an empty one beside a row that has one, instead of the order being refused."""
    oid = f"W{base}"
    rows = article_rows(3)
    rows[1]["description"] = "Colore a scelta: rosso"
    WebOrders(store).place(order_line(oid, rows=rows))
    result = WebOrders(store).push(client)
    assert (result.orders_sent, result.orders_failed) == (1, 0), states_of(store)
    doc = client.get("documenti/ordini-clienti", WebOrders(store).show(oid)["erp_key"])
    assert doc is not None
    assert [i for i, _ in doc["id_riga"]] == [i for i, _ in doc["descr_riga"]] == [1, 2, 3]
    assert dict(doc["descr_riga"])[2] == "Colore a scelta: rosso"
    assert [a for _, a in doc["codice_articolo"]] == [r["article"] for r in rows]


def test_unconfirmed_payment_is_never_sent_until_confirmed(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    orders = WebOrders(store)
    oid = f"W{base}"
    orders.place(
        order_line(oid, payment="unconfirmed", customer=new_customer(base), rows=article_rows(1))
    )
    result = orders.push(client)
    assert (result.orders_sent, result.customers_sent) == (0, 0)
    assert erp_marker_counts(sim, [oid]) == {oid: 0}
    assert erp_customers_with_vat(client, vat(base)) == []
    assert orders.confirm_payment(oid)
    result = orders.push(client)
    assert (result.orders_sent, result.customers_sent) == (1, 1)
    assert erp_marker_counts(sim, [oid]) == {oid: 1}


def test_refused_order_waits_with_its_error_and_goes_next_time(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    orders = WebOrders(store)
    article = f"NEW{base}"
    w1, w2 = f"W{base + 1}", f"W{base + 2}"
    orders.place(
        order_line(w1, rows=[{"article": article, "qty": 1, "price": 5, "vat_code": "22"}])
    )
    orders.place(order_line(w2, rows=article_rows(2)))
    result = orders.push(client)
    assert (result.orders_sent, result.orders_failed) == (1, 1)
    shown = orders.show(w1)
    assert shown["state"] == states.NEW
    assert article in shown["last_error"] and "inesistente" in shown["last_error"]
    assert [a["outcome"] for a in shown["push_attempts"]] == ["failed"]
    assert orders.failed_count() == 1
    # the article appears in the ERP; the next sync sends the order
    sim.admin(
        "POST",
        "records/articoli",
        json={"codice": article, "descrizione": "Nuovo", "alq_iva": "22", "um_principale": "PZ"},
    )
    result = orders.push(client)
    assert (result.orders_sent, result.orders_failed) == (1, 0)
    shown = orders.show(w1)
    assert shown["state"] == states.STORED and shown["last_error"] is None
    assert orders.failed_count() == 0
    assert erp_marker_counts(sim, [w1, w2]) == {w1: 1, w2: 1}


def test_refused_customer_holds_its_orders_with_a_clear_error(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    orders = WebOrders(store)
    # the ERP takes 16 characters for a tax code; the site took 18
    who = new_customer(base, tax_code="RSSMRA80A01F205XYZ")
    w1, w2, w3 = f"W{base + 1}", f"W{base + 2}", f"W{base + 3}"
    orders.place(order_line(w1, customer=who, rows=article_rows(1)))
    orders.place(order_line(w2, customer=who, rows=article_rows(2)))
    orders.place(order_line(w3, rows=article_rows(1)))
    result = orders.push(client)
    assert (result.customers_failed, result.orders_failed, result.orders_sent) == (1, 2, 1)
    assert set(result.held) == {w1, w2}  # what holds them, for the notes to say once
    shown = orders.show(w1)
    assert shown["state"] == states.NEW
    assert f"customer 'Cliente Web {base} Srl'" in shown["last_error"]
    assert "is not in the ERP yet" in shown["last_error"]
    assert "codice_fiscale" in shown["last_error"]
    assert "codice_fiscale" in shown["customer"]["last_error"]
    # the list says what holds each order: the customer's refusal, without its name
    listed = {o["id"]: o for o in orders.list()}
    for held in (w1, w2):
        why = listed[held]["customer_error"]
        assert why.startswith("the ERP did not create it: ") and "codice_fiscale" in why
    assert listed[w3]["customer_error"] is None
    assert erp_customers_with_vat(client, vat(base)) == []
    assert erp_marker_counts(sim, [w1, w2, w3]) == {w1: 0, w2: 0, w3: 1}
    # the Italian UI reads the order's error in Italian, the ERP's own words kept
    from passweb_tui import i18n

    i18n.set_language("it")
    try:
        said = i18n.engine_text(shown["last_error"])
    finally:
        i18n.set_language("en")
    english = re.compile(r"\b(its|customer|not|yet|ERP|the|did|create|site|refused)\b")
    assert not english.search(said), said
    assert said.startswith(f"ordine {w1}: il suo cliente 'Cliente Web {base} Srl' non è")
    assert "codice_fiscale" in said


def test_a_store_failing_mid_push_is_one_warning_line_and_the_next_push_sends_once(
    store: Store,
    client: MexalClient,
    sim: Any,
    base: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The store refuses its writes (a full disk) once a customer went in: the push
    stops with the store's error, and that its claims could not be marked settling is a
    warning of one line, the store's words (its traceback printed some 90 lines on the
    terminal); the log file keeps it. A push once the store writes again sends all once."""
    import logging

    ids = import_orders(store, base, 3, new_customers=1)
    import sqlite3

    full = sa.exc.OperationalError(
        "INSERT ...", {}, sqlite3.OperationalError("database or disk is full")
    )
    real_write = store.write

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise full

    def crash(at: str, site_id: str) -> None:
        if at == "accepted" and not site_id.startswith("W"):
            monkeypatch.setattr(store, "write", refused)
            raise full

    caplog.set_level(logging.DEBUG, logger="passweb_tui.engine.orders.push")
    with pytest.raises(sa.exc.OperationalError):
        Pusher(store, client, crash=crash).push()
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warned] == [
        "the claims of a stopped push could not be marked settling: database or disk is full"
    ]
    assert warned[0].exc_info is None
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.DEBUG)
    monkeypatch.setattr(store, "write", real_write)
    result = Pusher(store, client, settle=timedelta(0)).push()
    assert result.orders_failed == 0 and result.customers_failed == 0
    assert set(states_of(store).values()) == {states.STORED}
    assert erp_marker_counts(sim, ids) == {i: 1 for i in ids}


@pytest.mark.parametrize("step", CRASH_STEPS)
@pytest.mark.parametrize("victim", ["order", "customer"])
def test_crash_at_any_step_then_a_fresh_push_sends_everything_once(
    store: Store, client: MexalClient, sim: Any, base: int, step: str, victim: str
) -> None:
    ids = import_orders(store, base, 5, new_customers=2)
    seen: list[str] = []

    def crash(at: str, site_id: str) -> None:
        if at != step:
            return
        seen.append(site_id)
        is_customer = not site_id.startswith("W")
        if (victim == "order" and site_id == ids[2]) or (
            victim == "customer" and is_customer and len(seen) == 2
        ):
            raise SimulatedCrash(f"{at} {site_id}")

    with pytest.raises(SimulatedCrash):
        Pusher(store, client, crash=crash).push()
    # a fresh pusher (a restarted process) on the same store finishes the job
    result = Pusher(store, client).push()
    assert result.orders_failed == 0 and result.customers_failed == 0
    assert set(states_of(store).values()) == {states.STORED}
    assert erp_marker_counts(sim, ids) == {i: 1 for i in ids}
    for n in (1, 2):
        assert len(erp_customers_with_vat(client, vat(base + n))) == 1
    if step == "accepted" and victim == "order":
        # the lost answer was recovered by looking the order up, not by sending it again
        assert result.orders_recovered >= 1


def test_erp_faults_during_push_never_duplicate_or_lose(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    ids = import_orders(store, base, 24, new_customers=5)
    sim.admin(
        "PUT",
        "faults",
        json={
            "status": {"503": 0.1, "408": 0.1, "500": 0.05},
            "drop_after_commit": 0.25,
            "drop_before_commit": 0.05,
            "malformed": 0.2,
            "seed": 11,
        },
    )
    rounds = 0
    orders = WebOrders(store)
    while orders.waiting_count() and rounds < 30:
        # a lost answer's claim settles; the simulator has committed (or dropped) the
        # request by the time it answers, so no settling time is needed here
        orders.push(client, settle=timedelta(0))
        rounds += 1
    sim.admin("DELETE", "faults")
    assert orders.waiting_count() == 0, f"still waiting after {rounds} pushes"
    assert set(states_of(store).values()) == {states.STORED}
    assert erp_marker_counts(sim, ids) == {i: 1 for i in ids}
    for n in range(1, 6):
        assert len(erp_customers_with_vat(client, vat(base + n))) == 1
    keys = [o["erp_key"] for o in orders.list()]
    assert len(set(keys)) == len(ids)


def test_two_pushes_at_once_send_each_order_once(
    store: Store, db_url: str, sim: Any, base: int
) -> None:
    ids = import_orders(store, base, 30, new_customers=4)
    sim.admin("PUT", "faults", json={"latency_ms": 5})
    barrier = threading.Barrier(2)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            # like two processes: a store and a client each
            own = open_store(db_url)
            try:
                with MexalClient(erp_config(sim)) as c:
                    barrier.wait()
                    results.append(Pusher(own, c).push())
            finally:
                own.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert sum(r.orders_sent for r in results) == 30
    assert sum(r.customers_sent for r in results) == 4
    assert erp_marker_counts(sim, ids) == {i: 1 for i in ids}
    with store.read() as conn:
        attempts = conn.execute(sa.text("SELECT count(*) FROM web_push_attempt")).scalar_one()
    assert attempts == 34  # one attempt per record: neither push sent what the other held


def test_no_customer_code_left_is_said_plainly() -> None:
    from passweb_tui.engine.erp.errors import BusinessRuleError
    from passweb_tui.engine.orders.push import customer_error

    exhausted = BusinessRuleError(
        "ERP refused the request",
        code=6001,
        detail="6001 - errore gestionale [Codici conto esauriti nel mastro 501]",
    )
    message = customer_error("customer 'Rossi Srl' (site id 3)", "501", exhausted)
    assert message.startswith("customer 'Rossi Srl' (site id 3): no customer code left under ")
    assert "ledger 501" in message and "esauriti" in message
    other = BusinessRuleError(
        "ERP refused the request", code=6001, detail="6001 - errore gestionale [Cap errato]"
    )
    assert "the ERP did not create it" in customer_error("customer 'X'", "501", other)
    # a detail the ERP finds too long names a maximum, not a full ledger
    too_long = BusinessRuleError(
        "ERP refused the request",
        code=6001,
        detail="6001 - errore gestionale [Campo 'codice_fiscale': valore troppo lungo"
        " (18 caratteri, massimo 16)]",
    )
    message = customer_error("customer 'X'", "501", too_long)
    assert "the ERP did not create it" in message and "no customer code left" not in message
    # a request whose answer was lost: not called a refusal, since it may be there
    from passweb_tui.engine.erp.errors import ErpConnectionError

    lost = ErpConnectionError(
        "connection to the ERP was lost: reset; whether the change was applied is unknown",
        outcome_unknown=True,
    )
    assert customer_error("customer 'X'", "501", lost) == (
        "customer 'X': the ERP may have created it, its answer was lost: connection to the"
        " ERP was lost: reset; whether the change was applied is unknown; it is looked up"
        " there before it is sent again"
    )


@pytest.mark.parametrize("new_customers", [3, 0])
def test_rejected_credentials_stop_the_push_at_once(
    store: Store, sim: Any, base: int, new_customers: int
) -> None:
    """The ERP locks a user after a few failed logins: a push whose credentials the ERP
    now rejects stops at the first refusal (one per worker at most), and everything is
    sent, once, when the password is right again."""
    from passweb_tui.engine.erp.errors import AuthError

    ids = import_orders(store, base, 10, new_customers=new_customers)
    statuses: list[int] = []
    sim.admin("PUT", f"users/{sim.user}", json={"password": "changed-in-the-erp"})
    try:
        with MexalClient(
            erp_config(sim), on_response=lambda r, _t: statuses.append(r.status_code)
        ) as client:
            with pytest.raises(AuthError):
                WebOrders(store).push(client)
            workers = client.config.max_in_flight
    finally:
        sim.admin("PUT", f"users/{sim.user}", json={"password": sim.password})
    assert 1 <= statuses.count(401) <= workers
    assert set(states_of(store).values()) == {states.NEW}
    with MexalClient(erp_config(sim)) as client:
        again = WebOrders(store).push(client)
    assert (again.orders_sent, again.orders_failed) == (10, 0)
    assert again.customers_sent == new_customers
    assert erp_marker_counts(sim, ids) == dict.fromkeys(ids, 1)


def _die_after_claiming_customers(step: str, site_id: str) -> None:
    if step == "claimed" and not site_id.startswith("W"):  # a customer's claim, not an order's
        raise SimulatedCrash(f"died after claiming customer {site_id}, before any request")


def test_an_uncertain_customer_is_never_bound_to_another_company_sharing_its_email(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    page = client.search_page(
        "clienti", [Filter("codice", "=", "501.00003")], fields=["codice", "email"]
    )
    other = page.records[0]
    assert other.get("email")
    orders = WebOrders(store)
    mine = new_customer(base + 1, email=str(other["email"]).lower(), vat_number=vat(base + 1))
    oid = f"W{base + 1}"
    assert orders.import_lines(jsonl(order_line(oid, customer=mine)).splitlines()).complete
    with pytest.raises(SimulatedCrash):
        Pusher(store, client, crash=_die_after_claiming_customers).push()
    result = orders.push(client)
    assert (result.customers_sent, result.orders_sent) == (1, 1)
    code = orders.show(oid)["customer"]["erp_code"]
    assert code != other["codice"]
    assert erp_customers_with_vat(client, vat(base + 1)) == [code]


def test_a_lost_answer_binds_an_e_mail_only_customer_to_the_one_it_made(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """A new customer who gave only an e-mail, one the ERP's customer 501.00003 has too:
    the answer to its creation lost, the look-up took the lowest code with that e-mail,
    the customer the ERP had before; the order went in under that other company and
    the customer just made was left without it. The look-up takes only the record that
    is what was sent (the same name; no VAT number or tax code where none was sent)."""
    page = client.search_page(
        "clienti",
        [Filter("codice", "=", "501.00003")],
        fields=["codice", "email", "ragione_sociale"],
    )
    other = page.records[0]
    assert other.get("email")
    mine = new_customer(base + 1, email=str(other["email"]), name=f"Somebody Else {base}")
    mine.pop("vat_number")
    oid = f"W{base + 1}"
    orders = WebOrders(store)
    assert orders.import_lines(jsonl(order_line(oid, customer=mine)).splitlines()).complete
    sim.admin("PUT", "faults", json={"drop_after_commit": 1.0})
    try:
        result = orders.push(client)
    finally:
        sim.admin("DELETE", "faults")
    # both answers lost: the order found by its marker
    assert (result.customers_sent, result.orders_recovered) == (1, 1), result
    code = orders.show(oid)["customer"]["erp_code"]
    made = erp_customers_with(client, "ragione_sociale", f"Somebody Else {base}")
    assert code != other["codice"] and made == [code]


@pytest.mark.parametrize("retyped", ["name", "tax code"])
def test_a_customer_the_erp_staff_retyped_after_a_lost_answer_is_still_found(
    store: Store,
    client: MexalClient,
    sim: Any,
    base: int,
    retyped: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The answer to a new customer's creation lost, and the look-up after it too; the
    ERP's staff then retype its name ("ROSSI MARIO") or add its tax code: the next push
    finds the customer it made, and makes no second one."""
    from passweb_tui.engine.erp.errors import ErpConnectionError

    mine = new_customer(base + 1, email=f"mario{base}@example.it", name=f"Mario Rossi{base}")
    mine.pop("vat_number")
    oid = f"W{base + 1}"
    orders = WebOrders(store)
    assert orders.import_lines(jsonl(order_line(oid, customer=mine)).splitlines()).complete

    def lost(self: Any, row: Any) -> None:
        raise ErpConnectionError("cannot reach the ERP: the link went down")

    monkeypatch.setattr(Pusher, "_customer_lookup", lost)
    sim.admin("PUT", "faults", json={"drop_after_commit": 1.0})
    try:
        first = orders.push(client)
    finally:
        sim.admin("DELETE", "faults")
    assert first.customers_sent == 0 and first.orders_sent == 0, first
    monkeypatch.undo()
    made = erp_customers_with(client, "ragione_sociale", f"Mario Rossi{base}")
    assert len(made) == 1
    if retyped == "name":
        change = {"ragione_sociale": f"ROSSI{base}  MARIO"}
    else:
        change = {"codice_fiscale": "RSSMRA80A01F205X"}
    client.update("clienti", made[0], change)
    again = orders.push(client, settle=timedelta(0))
    assert (again.customers_sent, again.orders_sent) == (1, 1), again
    assert orders.show(oid)["customer"]["erp_code"] == made[0]
    assert erp_customers_with(client, "email", f"mario{base}@example.it") == made


def erp_customers_with(client: MexalClient, field: str, value: str) -> list[str]:
    """The codes of the ERP's customers whose `field` is `value`."""
    return [
        str(r["codice"])
        for p in client.iter_pages(
            "clienti", filters=[Filter(field, "=", value)], fields=["codice"]
        )
        for r in p.records
    ]


def test_a_customer_sharing_a_tax_code_with_a_bound_one_gets_its_own_erp_customer(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """A sole trader ordered with his VAT number, then privately (tax code only, another
    e-mail): two site customers. The second, left uncertain, must not be matched to the
    first's ERP customer (a unique binding every later push would trip over)."""
    orders = WebOrders(store)
    tax_code = f"RSSMRA80A01F{base % 1000:03d}"
    tax_code += check_char(tax_code)
    trader = new_customer(base + 1, vat_number=vat(base + 1), tax_code=tax_code)
    lines = [order_line(f"W{base + 1}", customer=trader)]
    assert orders.import_lines(jsonl(*lines).splitlines()).complete
    assert orders.push(client).customers_sent == 1
    private = new_customer(base + 2, tax_code=tax_code, email=f"private{base}@example.it")
    private.pop("vat_number")
    unrelated = f"W{base + 3}"
    lines = [order_line(f"W{base + 2}", customer=private), order_line(unrelated)]
    report = orders.import_lines(jsonl(*lines).splitlines())
    assert report.complete and report.new_customers == 1
    with pytest.raises(SimulatedCrash):
        Pusher(store, client, crash=_die_after_claiming_customers).push()
    result = orders.push(client)
    assert (result.customers_sent, result.customers_failed) == (1, 0)
    assert result.orders_sent == 2
    first = orders.show(f"W{base + 1}")["customer"]["erp_code"]
    second = orders.show(f"W{base + 2}")["customer"]["erp_code"]
    assert first and second and first != second
    assert orders.show(unrelated)["state"] == states.STORED


def test_look_ups_read_past_a_page_the_erp_cut_early(tmp_path: Any) -> None:
    """The ERP may end a search page early while it scans (no records yet, a `next`):
    the look-ups that decide whether to send an order or a customer again read on."""
    from types import SimpleNamespace

    import httpx

    from passweb_tui.engine.erp.settings import ErpConfig

    stamp = "20250903 101500"

    def erp(request: httpx.Request) -> httpx.Response:
        if "next" not in request.url.params:
            return httpx.Response(200, json={"next": "T1", "data_ric_elab": stamp})
        if request.url.path.endswith("ordini-clienti/ricerca"):
            rec: dict[str, Any] = {"sigla": "OC", "serie": 1, "numero": 541, "nota": "$W1$"}
        else:
            rec = {"codice": "501.00042", "ragione_sociale": "Bianchi  srl",
                   "partita_iva": "01234567890", "email": "a@b.it"}  # fmt: skip
        return httpx.Response(200, json={"dati": [rec], "data_ric_elab": stamp})

    config = ErpConfig(base_url="https://erp.example/webapi", user="u", password="p",
                       azienda="DEM", anno=2025)  # fmt: skip
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with MexalClient(config, transport=httpx.MockTransport(erp)) as client:
            pusher = Pusher(store, client)
            assert pusher.find_order("W1") == ["OC+1+541"]
            row = SimpleNamespace(
                id=1, name="Bianchi Srl", vat_number="01234567890", tax_code=None, email="A@b.it"
            )
            assert pusher._customer_lookup(row) == "501.00042"
    finally:
        store.close()


def test_an_order_whose_answer_was_lost_is_found_after_its_document_type_changed(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """The operator moves web orders from OC to OX between an attempt whose answer was
    lost and the next push: the look-up still finds the order under OC, and it is not
    sent a second time."""
    from passweb_tui.engine.orders.documents import DocumentSeries

    ids = import_orders(store, base, 2)

    def crash(at: str, site_id: str) -> None:
        if at == "accepted" and site_id == ids[0]:
            raise SimulatedCrash(site_id)

    with pytest.raises(SimulatedCrash):
        Pusher(store, client, crash=crash, series=DocumentSeries("OC", 1)).push()
    result = Pusher(store, client, series=DocumentSeries("OX", 1)).push()
    assert result.orders_failed == 0 and result.orders_recovered == 1
    assert erp_marker_counts(sim, ids) == {i: 1 for i in ids}
    keys = {o["id"]: o["erp_key"] for o in WebOrders(store).list()}
    assert keys[ids[0]].startswith("OC+") and keys[ids[1]].startswith("OX+")


@pytest.mark.parametrize("deleted", ["the other document", "the bound document"])
def test_an_order_the_erp_holds_twice_stays_to_check_until_one_document_is_left(
    store: Store, client: MexalClient, sim: Any, base: int, deleted: str
) -> None:
    """A look-up finds two ERP documents with the order's marker: the order is bound to
    the first and is to_check. Refreshes keep it to_check (before, the next refresh
    derived its state from the first document alone and the flag was gone) until the
    operator deletes one of the two in the ERP; the order then follows the one left."""
    from passweb_tui.engine.orders.documents import ORDERS_RESOURCE

    (oid,) = import_orders(store, base, 1)

    def crash(at: str, site_id: str) -> None:
        if at == "accepted":
            raise SimulatedCrash(site_id)

    with pytest.raises(SimulatedCrash):
        Pusher(store, client, crash=crash).push()
    # the same document a second time, as a faulty ERP-side tool might have made it
    client.create(ORDERS_RESOURCE, Pusher(store, client)._document(oid))
    assert erp_marker_counts(sim, [oid]) == {oid: 2}
    Pusher(store, client).push()
    orders = WebOrders(store)
    shown = orders.show(oid)
    first, second = shown["erp_duplicates"]
    assert (shown["state"], shown["erp_key"]) == (states.TO_CHECK, first)
    assert "2 documents" in shown["last_error"]

    for _ in range(2):
        orders.refresh(client)
        shown = orders.show(oid)
        assert shown["state"] == states.TO_CHECK, "the duplicate flag was lost at a refresh"
        assert shown["erp_duplicates"] == [first, second]

    gone, left = (second, first) if deleted == "the other document" else (first, second)
    client.delete(ORDERS_RESOURCE, gone)
    orders.refresh(client)
    shown = orders.show(oid)
    assert (shown["state"], shown["erp_key"], shown["erp_duplicates"]) == (
        states.STORED,
        left,
        None,
    )
    assert shown["last_error"] is None
    assert erp_marker_counts(sim, [oid]) == {oid: 1}


def test_an_order_taken_over_while_its_push_stalled_is_counted_once(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """A push on another machine stalls past its claim's lease after the ERP took an
    order; another push takes the order over, finds it in the ERP and records it.
    Between them the order counts as sent once, not once by each."""
    from datetime import timedelta

    ids = import_orders(store, base, 1)
    other: list[Any] = []

    def stall(at: str, site_id: str) -> None:
        if at == "accepted" and not other:
            other.append(Pusher(store, client, lease=timedelta(0)).push())

    first_pusher = Pusher(store, client, crash=stall)
    first_pusher.owner = "another-machine:4242:0123456789ab"  # alive or not: unknowable
    first = first_pusher.push()
    (second,) = other
    sent = first.to_json()["orders"]["sent"] + second.to_json()["orders"]["sent"]
    assert second.orders_recovered == 1 and first.orders_sent == 0
    assert sent == 1 and first.skipped_busy == 1
    assert erp_marker_counts(sim, ids) == {ids[0]: 1}
    assert states_of(store) == {ids[0]: states.STORED}


def test_a_customer_taken_over_while_its_push_stalled_is_counted_once(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """As for an order: a push on another machine stalls past its claim's lease after
    the ERP made a new customer; another push takes the customer over and finds it in
    the ERP. The customer counts as sent once between the two, and exists once."""
    from datetime import timedelta

    ids = import_orders(store, base, 1, new_customers=1)
    customer = WebOrders(store).show(ids[0])["customer"]
    other: list[Any] = []

    def stall(at: str, site_id: str) -> None:
        if at == "accepted" and site_id != ids[0] and not other:
            other.append(Pusher(store, client, lease=timedelta(0)).push())

    first_pusher = Pusher(store, client, crash=stall)
    first_pusher.owner = "another-machine:4242:0123456789ab"  # alive or not: unknowable
    first = first_pusher.push()
    (second,) = other
    assert second.customers_sent + first.customers_sent == 1, (first, second)
    assert first.customers_sent == 0 and first.skipped_busy >= 1
    assert len(erp_customers_with_vat(client, customer["vat_number"])) == 1
    assert erp_marker_counts(sim, ids) == {ids[0]: 1}


def test_a_batch_that_outlives_its_lease_is_never_sent_twice(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """A batch of orders sent one by one to a slow ERP outlives its claims' lease. A push
    that can see the batch's pusher alive (this machine) never takes its claims over,
    however old; one that cannot (the pusher is on another machine) takes the rest over,
    and the first pusher then does not send what it lost."""
    from datetime import timedelta

    ids = import_orders(store, base, 3)
    others: list[Any] = []

    def slow(at: str, site_id: str) -> None:
        if at == "claimed" and site_id == ids[1] and not others:
            # every claim of the batch is past its lease by now
            others.append(Pusher(store, client, lease=timedelta(0)).push())

    first = Pusher(store, client, lease=timedelta(0), crash=slow, workers=1).push()
    assert (others[0].orders_sent, others[0].orders_recovered) == (0, 0)
    assert first.orders_sent == 3

    more = import_orders(store, base + 100, 3)
    others.clear()

    def slower(at: str, site_id: str) -> None:
        if at == "claimed" and site_id == more[1] and not others:
            others.append(Pusher(store, client, lease=timedelta(0)).push())

    far = Pusher(store, client, lease=timedelta(0), crash=slower, workers=1)
    far.owner = "another-machine:4242:0123456789ab"  # alive or not: unknowable from here
    second = far.push()
    # the other push takes the batch over: it finds the first order (sent, not yet
    # recorded) in the ERP and sends the other two, which the far pusher, finding its
    # claims gone just before each request, does not send
    assert (others[0].orders_sent, others[0].orders_recovered) == (2, 1)
    assert (second.orders_sent, second.skipped_busy) == (0, 3)
    assert erp_marker_counts(sim, ids + more) == {i: 1 for i in ids + more}
    assert set(states_of(store).values()) == {states.STORED}


# a pusher in a process of its own that says when it is about to send its order, then
# slows the ERP down so that the request is still in the ERP's hands when it is killed
SENDER = """
import json, sys, httpx
from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.engine.orders.push import Pusher
from passweb_tui.engine.store import open_store
db, cfg, admin = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
def crash(step, site_id):
    if step == "claimed":
        httpx.put(admin + "/sim/faults", json={"latency_ms": 3000}).raise_for_status()
        print("sending", site_id, flush=True)
with MexalClient(ErpConfig(**cfg)) as client:
    Pusher(open_store(db), client, crash=crash).push()
"""


def kill_a_sender_mid_request(store: Store, sim: Any, base: int, db_url: str) -> tuple[str, int]:
    """An order whose sender (another process) is killed while its request sits in the
    slowed ERP; the ERP quick again afterwards. The order's id and the dead sender's pid."""
    import json
    import signal
    import subprocess
    import sys
    import time

    (oid,) = import_orders(store, base, 1)
    erp = erp_config(sim)
    cfg = {
        "base_url": erp.base_url,
        "user": erp.user,
        "password": erp.password,
        "azienda": erp.azienda,
        "anno": erp.anno,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", SENDER, db_url, json.dumps(cfg), sim.root],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline().split() == ["sending", oid]
        time.sleep(0.7)  # the order's request goes out and sits in the slowed ERP
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    # the ERP is quick again for everything new, while it still works on that request
    sim.admin("DELETE", "faults")
    return oid, child.pid


def settles_then_is_found_once(store: Store, client: MexalClient, sim: Any, oid: str) -> None:
    """A push right after the sender's death leaves the order settling (the ERP may still
    make it, so a look-up now could miss it); once settled, a push finds the ERP's
    document by the order's marker and binds it: one document, never a second."""
    import time

    from passweb_tui.engine.orders.push import SETTLING, orders_t

    early = Pusher(store, client, settle=timedelta(minutes=5)).push()
    assert (early.orders_sent, early.orders_recovered, early.orders_failed) == (0, 0, 0)
    assert [(e, i) for e, i, _ in early.settling] == [("order", oid)]
    deadline = time.monotonic() + 20
    while erp_marker_counts(sim, [oid])[oid] == 0:  # the dead process's request lands
        assert time.monotonic() < deadline, "the slowed request never reached the ERP"
        time.sleep(0.1)
    mine = orders_t.c.id == oid
    with store.write() as conn:
        owner, since = conn.execute(
            sa.select(orders_t.c.claim_owner, orders_t.c.claimed_at).where(mine)
        ).one()
        assert owner.startswith(SETTLING)
        # the settling time has passed (as if five minutes went by)
        conn.execute(
            sa.update(orders_t).where(mine).values(claimed_at=since - timedelta(minutes=6))
        )
    late = Pusher(store, client, settle=timedelta(minutes=5)).push()
    assert (late.orders_sent, late.orders_recovered, late.settling) == (0, 1, [])
    assert erp_marker_counts(sim, [oid]) == {oid: 1}
    assert states_of(store)[oid] == states.STORED


def test_an_order_whose_sender_died_mid_request_waits_for_the_erp_then_is_found_not_resent(
    store: Store, client: MexalClient, sim: Any, base: int, db_url: str
) -> None:
    oid, _ = kill_a_sender_mid_request(store, sim, base, db_url)
    settles_then_is_found_once(store, client, sim, oid)


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)], indirect=True
)
@pytest.mark.parametrize("reused_by", ["this process", "another live process"])
def test_a_dead_senders_process_id_taken_by_a_later_process_does_not_pass_for_it(
    store: Store, client: MexalClient, sim: Any, base: int, db_url: str, reused_by: str
) -> None:
    """The sender dies mid-request and its process id goes to a later process (PID 1
    in each new container; any id after a reboot). Its claim is still the dead
    sender's: taken over at once it would send the order a second time (the id is this
    process's), and held as alive it would never be sent (the id is another's). It
    settles, then is found in the ERP by its marker, once."""
    import os

    from passweb_tui.engine.orders.push import orders_t

    oid, sender = kill_a_sender_mid_request(store, sim, base, db_url)
    mine = orders_t.c.id == oid
    reuser = os.getpid() if reused_by == "this process" else os.getppid()
    with store.write() as conn:
        owner = conn.execute(sa.select(orders_t.c.claim_owner).where(mine)).scalar_one()
        host, who, rest = owner.rsplit(":", 2)
        pid, _, born = who.partition(".")
        assert int(pid) == sender and born, owner  # the sender's start time is in it
        # the dead sender's id now belongs to a live process, started at another time
        conn.execute(
            sa.update(orders_t).where(mine).values(claim_owner=f"{host}:{reuser}.{born}:{rest}")
        )
    settles_then_is_found_once(store, client, sim, oid)


def test_a_settling_record_is_told_in_utc_whatever_the_store_sessions_zone(
    db_url: str, client: MexalClient, base: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time a settling record may be sent again is said in UTC, as the message
    says, also where the database answers in its session's zone (PostgreSQL with a
    client that asks for Tokyo time)."""
    from datetime import UTC, datetime

    from passweb_tui.engine.orders.push import SETTLING, orders_t, settling_message

    monkeypatch.setenv("PGTZ", "Asia/Tokyo")  # read by libpq when the store connects
    store = open_store(db_url)
    try:
        (oid,) = import_orders(store, base, 1)
        since = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
        with store.write() as conn:
            conn.execute(
                sa.update(orders_t)
                .where(orders_t.c.id == oid)
                .values(claim_owner=SETTLING + "gone:1:abc", claimed_at=since)
            )
        # a settling time far ahead, so that the claim is still settling now
        result = Pusher(store, client, settle=timedelta(days=3650)).push()
    finally:
        store.close()
    ((entity, ident, until),) = result.settling
    assert (entity, ident) == ("order", oid)
    assert until.utcoffset() == timedelta(0) and until == since + timedelta(days=3650)
    assert f"until {until:%H:%M:%S} UTC" in settling_message(result.settling)
    assert "until 10:00:00 UTC" in settling_message(result.settling)


def test_an_erp_key_another_site_order_holds_sends_the_order_to_be_checked(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """An ERP restored from a backup gives its document numbers out again: the key it
    gives a new order is one a stored site order holds. The order goes to be checked by
    the operator, with both named, instead of the push failing on the store's unique
    key (and the order, made in the ERP, being sent again by every later push)."""
    first, second = import_orders(store, base, 2)
    Pusher(store, client).push(order_ids=[first])
    held = WebOrders(store).show(first)["erp_key"]
    series, number = held.rsplit("+", 1)
    reused = f"{series}+{int(number) + 1}"  # the number the ERP gives out next
    with store.write() as conn:
        conn.execute(sa.update(orders_t).where(orders_t.c.id == first).values(erp_key=reused))
    result = Pusher(store, client).push()
    assert (result.orders_sent, result.orders_failed) == (0, 1), result
    ((entity, ident, why),) = result.errors
    assert (entity, ident) == ("order", second)
    assert reused in why and first in why and "operator" in why
    order = WebOrders(store).show(second)
    assert order["state"] == states.TO_CHECK and order["erp_key"] is None
    again = Pusher(store, client).push()
    assert (again.orders_sent, again.orders_failed) == (0, 0)
    assert erp_marker_counts(sim, [second]) == {second: 1}


def test_a_malformed_erp_currency_fails_only_the_orders_in_that_currency(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """One currency record with a codice that is not a number: the orders in that
    currency fail with a reason naming the record; the others go out."""
    from passweb_tui.engine.erp.client import Page

    class BadCurrency(MexalClient):
        def iter_pages(self, resource: str, *args: Any, **kwargs: Any) -> Any:
            for page in super().iter_pages(resource, *args, **kwargs):
                if resource == "dati-generali/valute":
                    bad = {"codice": "X", "sigla_iso": "USD"}
                    page = Page([*page.records, bad], page.next_token, page.data_ric_elab)
                yield page

    orders = WebOrders(store)
    usd, eur = f"W{base + 1}", f"W{base + 2}"
    lines = [order_line(usd, currency="USD"), order_line(eur)]
    assert orders.import_lines(jsonl(*lines).splitlines()).complete
    with BadCurrency(client.config) as bad_client:
        result = Pusher(store, bad_client).push()
    assert (result.orders_sent, result.orders_failed) == (1, 1)
    assert states_of(store) == {usd: states.NEW, eur: states.STORED}
    error = orders.show(usd)["last_error"]
    assert "dati-generali/valute" in error and "'X'" in error


def test_a_customer_renewed_by_its_owner_is_not_taken_over(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """Another push reads a far pusher's customer claim as expired; the far pusher then
    renews it, right before its create request. The other push must not take the claim
    with what it read, or both would create the customer."""
    from datetime import timedelta

    import_orders(store, base, 1, new_customers=1)
    here = Pusher(store, client, lease=timedelta(0))  # every claim looks expired to it
    # a claim is renewed once it is a third of the lease old: at once with no lease
    far = Pusher(store, client, lease=timedelta(0))
    far.owner = "another-machine:4242:0123456789ab"  # cannot be seen alive from here
    read: list[Any] = []
    taken: list[Any] = []

    def claimed(step: str, site_id: str) -> None:
        if step == "claimed" and not read:
            read.extend(here._candidates(cust_t, here._customer_scope(None), PushResult()))

    renew = far._renew

    def renew_then_race(table: Any, site_id: Any) -> bool:
        ok = renew(table, site_id)
        if table is cust_t and read and not taken:
            taken.append(here._claim(cust_t, "customer", read[0], sa.true()))
        return ok

    far.crash = claimed
    far._renew = renew_then_race  # type: ignore[method-assign]
    result = far.push()
    assert len(read) == 1  # the expired claim read as free
    assert taken == [None]  # but not taken once renewed
    assert result.customers_sent == 1
    assert len(erp_customers_with_vat(client, vat(base + 1))) == 1


def test_an_order_whose_answer_was_lost_while_the_erp_worked_settles_before_a_look_up(
    store: Store, sim: Any, base: int
) -> None:
    """This side stopped waiting for the create (its read timeout) while the ERP was still
    working on it: the order is not looked up (and sent again) before the ERP is done."""
    import time
    from dataclasses import replace
    from datetime import timedelta

    from passweb_tui.engine.orders.push import SETTLING, orders_t

    (oid,) = import_orders(store, base, 1)
    impatient = replace(erp_config(sim), read_timeout_s=1.0, max_retries=0)
    sim.admin("PUT", "faults", json={"latency_ms": 3000})
    with MexalClient(impatient) as slow_client:
        first = Pusher(store, slow_client).push()
    sim.admin("DELETE", "faults")
    assert first.orders_failed == 1 and "unknown" in first.errors[0][2]
    with MexalClient(erp_config(sim)) as client:
        again = Pusher(store, client).push()  # at once: the ERP may still be at it
        assert (again.orders_sent, again.orders_recovered) == (0, 0)
        assert [i for _, i, _ in again.settling] == [oid]
        deadline = time.monotonic() + 20
        while erp_marker_counts(sim, [oid])[oid] == 0:
            assert time.monotonic() < deadline, "the slow create never landed"
            time.sleep(0.1)
        with store.write() as conn:  # as if the settling time had passed
            since = conn.execute(
                sa.select(orders_t.c.claimed_at).where(orders_t.c.id == oid)
            ).scalar_one()
            owner = conn.execute(
                sa.select(orders_t.c.claim_owner).where(orders_t.c.id == oid)
            ).scalar_one()
            assert owner.startswith(SETTLING)
            conn.execute(
                sa.update(orders_t)
                .where(orders_t.c.id == oid)
                .values(claimed_at=since - timedelta(minutes=7))
            )
        late = Pusher(store, client).push()
    assert (late.orders_sent, late.orders_recovered) == (0, 1)
    assert erp_marker_counts(sim, [oid]) == {oid: 1}


def test_a_push_stopped_by_its_own_error_leaves_no_claim_held_for_good(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """A push that stops on an error of its own (its store, say) while this process lives
    on: the order it was sending settles, the ones after it are free again at once, and
    none stays held by a pusher that will never release it."""
    from passweb_tui.engine.orders.push import SETTLING, orders_t

    ids = import_orders(store, base, 3)

    def store_fails(step: str, site_id: str) -> None:
        if step == "claimed" and site_id == ids[1]:
            raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError):
        Pusher(store, client, crash=store_fails, workers=1).push()
    with store.read() as conn:
        owners = dict(conn.execute(sa.select(orders_t.c.id, orders_t.c.claim_owner)).all())
    assert owners[ids[0]] is None  # sent and recorded
    assert owners[ids[1]].startswith(SETTLING)  # may have gone out: settles
    assert owners[ids[2]] is None  # never sent: free
    result = Pusher(store, client).push()
    assert result.orders_sent == 1 and [i for _, i, _ in result.settling] == [ids[1]]


def test_a_claim_with_this_process_id_but_no_start_time_is_not_taken_over_at_once() -> None:
    """A claim written before owners carried their start time, with the id this process
    has now (a container's PID 1 across an upgrade): it may be a dead earlier process's,
    whose request may still be in the ERP's hands, so it settles instead of being taken
    over at once. Where the system tells no start time, the id alone decides, as before."""
    import os
    import socket

    from passweb_tui.engine import owners
    from passweb_tui.engine.orders import push

    legacy = f"{socket.gethostname()[:40]}:{os.getpid()}:abcdef0123"
    assert push.owner_alive(legacy) is False  # no live pusher of this process holds it
    if owners.incarnation(os.getpid()) is None:
        pytest.skip("this system tells no process start time (no /proc)")
    assert not push._died_here(legacy)
    current = owners.new_token()  # this very process's, not running: freed at once
    assert push._died_here(current)


def test_a_pusher_in_another_pid_namespace_of_this_host_is_not_taken_for_dead() -> None:
    """Two containers may share a host name (host networking) and not see each other's
    processes: a pusher there is "pid 1" here, which is another process. Its claim is
    judged as one from another machine (taken once its lease is stale), not freed as the
    claim of a dead process of this host."""
    import shutil
    import socket
    import subprocess
    import sys

    from passweb_tui.engine import owners
    from passweb_tui.engine.orders import push

    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to start a process in a PID namespace of its own")
    code = (
        "import time; from passweb_tui.engine import owners;"
        "print(owners.new_token(), flush=True); time.sleep(60)"
    )
    pusher = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert pusher.stdout is not None
        token = pusher.stdout.readline().strip()
        if not token:
            pusher.wait(10)
            assert pusher.stderr is not None
            pytest.skip(f"no PID namespace could be made here: {pusher.stderr.read().strip()}")
        parts = owners.token_parts(token)
        assert parts is not None
        host, pid, born = parts
        assert pid == 1 and born is not None  # the first process of its namespace
        assert host.startswith(socket.gethostname()[:32] + "~") and host != owners.host_id()
        assert push.owner_alive(token) is None  # cannot be told from here: not "dead"
        now = push.utcnow()
        stale, settled = now - timedelta(minutes=10), now - timedelta(minutes=2)
        assert not push._claim_free(token, now - timedelta(minutes=1), stale, settled)
        assert push._claim_free(token, now - timedelta(minutes=11), stale, settled)
        # the same id and start time in this namespace would be judged here
        here = token.replace(host, owners.host_id(), 1)
        assert push.owner_alive(here) is False  # pid 1 here is another process
    finally:
        pusher.kill()
        pusher.wait(10)


def erp_customer(client: MexalClient, n: int, *, site: str = "N", **over: Any) -> str:
    """A customer made in the ERP directly (as an office would), off the site by default."""
    record = {
        "codice": "501.AUTO",
        "ragione_sociale": f"Cliente Gestionale {n} Spa",
        "partita_iva": vat(n),
        "trasf_sito": [[1, site]],
        **over,
    }
    return client.create("clienti", {k: v for k, v in record.items() if v is not None})


def test_a_new_customer_the_erp_has_by_vat_number_is_bound_to_it_not_created_again(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """A company that buys from the office (an ERP customer not published on the site)
    orders on the site as a new customer: its orders go under its ERP customer."""
    office = erp_customer(client, base + 1)
    orders = WebOrders(store)
    oid = f"W{base + 1}"
    who = new_customer(base + 1, email=f"web{base}@example.it")
    assert orders.import_lines(jsonl(order_line(oid, customer=who)).splitlines()).complete
    result = orders.push(client)
    assert (result.customers_sent, result.customers_failed, result.orders_sent) == (1, 0, 1)
    assert erp_customers_with_vat(client, vat(base + 1)) == [office]
    assert [m for _, m in result.matched] == [
        f"customer 'Cliente Web {base + 1} Srl' (site id"
        f" {orders.show(oid)['customer']['id']}) is the ERP's customer {office} already"
        f" (same VAT number {vat(base + 1)}): bound to it, not created again"
    ]
    shown = orders.show(oid)
    assert shown["customer"]["erp_code"] == office
    assert shown["customer"]["erp_bound_by"] == "matched"
    doc = client.get("documenti/ordini-clienti", shown["erp_key"])
    assert doc is not None and doc["cod_conto"] == office
    # a later order of the same customer goes to the same ERP customer, with no search
    later = f"W{base + 2}"
    assert orders.import_lines(jsonl(order_line(later, customer=who)).splitlines()).complete
    again = orders.push(client)
    assert (again.customers_sent, again.orders_sent) == (0, 1)
    assert orders.show(later)["customer"]["erp_code"] == office
    assert erp_customers_with_vat(client, vat(base + 1)) == [office]


def test_a_private_customer_is_matched_by_tax_code_and_never_by_e_mail(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    tax_code = f"VRDLGU75B02H{base // 1000 % 1000:03d}"  # this test's own
    tax_code += check_char(tax_code)
    person = erp_customer(client, base + 1, partita_iva=None, codice_fiscale=tax_code)
    shared = erp_customer(client, base + 2, email=f"family{base}@example.it")
    orders = WebOrders(store)
    by_tax = new_customer(base + 3, tax_code=tax_code, email=f"luigi{base}@example.it")
    by_tax.pop("vat_number")
    by_mail = new_customer(base + 4, email=f"family{base}@example.it")
    by_mail.pop("vat_number")
    lines = [
        order_line(f"W{base + 3}", customer=by_tax),
        order_line(f"W{base + 4}", customer=by_mail),
    ]
    assert orders.import_lines(jsonl(*lines).splitlines()).complete
    result = orders.push(client)
    assert (result.customers_sent, result.customers_failed, result.orders_sent) == (2, 0, 2)
    assert len(result.matched) == 1 and f"same tax code {tax_code}" in result.matched[0][1]
    assert orders.show(f"W{base + 3}")["customer"]["erp_code"] == person
    mailed = orders.show(f"W{base + 4}")["customer"]
    assert mailed["erp_code"] not in (shared, person)
    assert mailed["erp_bound_by"] == "created"


def test_of_several_erp_customers_with_the_vat_number_the_one_on_the_site_is_taken(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    off_site = erp_customer(client, base + 1)
    on_site = erp_customer(client, base + 1, site="S")
    assert off_site < on_site  # the lower code loses to the one flagged for the site
    orders = WebOrders(store)
    oid = f"W{base + 1}"
    line = order_line(oid, customer=new_customer(base + 1))
    assert orders.import_lines(jsonl(line).splitlines()).complete
    assert orders.push(client).customers_sent == 1
    assert orders.show(oid)["customer"]["erp_code"] == on_site
    assert sorted(erp_customers_with_vat(client, vat(base + 1))) == [off_site, on_site]


def test_matching_turned_off_creates_the_customer_again(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    office = erp_customer(client, base + 1)
    orders = WebOrders(store)
    oid = f"W{base + 1}"
    line = order_line(oid, customer=new_customer(base + 1))
    assert orders.import_lines(jsonl(line).splitlines()).complete
    result = orders.push(client, match_existing=False)
    assert (result.customers_sent, result.matched) == (1, [])
    code = orders.show(oid)["customer"]["erp_code"]
    assert code != office
    assert sorted(erp_customers_with_vat(client, vat(base + 1))) == sorted([office, code])


def test_a_failed_search_for_an_existing_customer_sends_nothing_and_the_next_push_binds_it(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    office = erp_customer(client, base + 1)
    orders = WebOrders(store)
    oid = f"W{base + 1}"
    line = order_line(oid, customer=new_customer(base + 1))
    assert orders.import_lines(jsonl(line).splitlines()).complete
    sim.admin("PUT", "faults", json={"status": {"500": 1.0}, "seed": 3})
    failed = orders.push(client)
    sim.admin("DELETE", "faults")
    assert (failed.customers_sent, failed.customers_failed, failed.orders_sent) == (0, 1, 0)
    why = orders.show(oid)["customer"]["last_error"]
    assert "looking for it among the ERP's customers failed" in why
    assert erp_customers_with_vat(client, vat(base + 1)) == [office]
    result = orders.push(client)
    assert (result.customers_sent, result.orders_sent) == (1, 1)
    assert orders.show(oid)["customer"]["erp_code"] == office


def test_a_customer_the_erp_refused_is_mended_and_goes_with_its_orders_at_the_next_push(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    from passweb_tui.engine.orders.api import CustomerNotChanged
    from passweb_tui.engine.orders.intake import OrderInvalid

    orders = WebOrders(store)
    # the ERP takes 16 characters for a tax code; the site took 18
    who = new_customer(base, tax_code="RSSMRA80A01F205XYZ")
    w1, w2, other = f"W{base + 1}", f"W{base + 2}", f"W{base + 3}"
    orders.place(order_line(w1, customer=who, rows=article_rows(1)))
    orders.place(order_line(w2, customer=who, rows=article_rows(2)))
    orders.place(order_line(other, customer=new_customer(base + 50)))
    first = orders.push(client)
    assert (first.customers_failed, first.orders_failed, first.customers_sent) == (1, 2, 1)
    assert "codice_fiscale" in orders.show(w1)["customer"]["last_error"]

    with pytest.raises(OrderInvalid, match="customer: no detail named colour"):
        orders.mend_customer(w1, {"colour": "red"})
    with pytest.raises(OrderInvalid, match=r"customer.email: not an e-mail address"):
        orders.mend_customer(w1, {"email": "nobody"})
    with pytest.raises(OrderInvalid, match=r"customer.name: required"):
        orders.mend_customer(w1, {"name": ""})
    # a tax code is checked as the ERP checks it: its shape, then its check character
    with pytest.raises(OrderInvalid, match=r"customer.tax_code: .* attese 16 lettere"):
        orders.mend_customer(w1, {"city": "Roma"})
    with pytest.raises(OrderInvalid, match=r"il carattere di controllo e' Y, dovrebbe essere X"):
        orders.mend_customer(w1, {"tax_code": "RSSMRA80A01F205Y"})
    right = "RSSMRA80A01F205X"
    with pytest.raises(CustomerNotChanged, match=r"customer.vat_number .* is the site customer"):
        orders.mend_customer(w1, {"vat_number": vat(base + 50), "tax_code": right})
    with pytest.raises(CustomerNotChanged, match=r"is in the ERP already as 501."):
        orders.mend_customer(other, {"city": "Roma"})
    assert orders.show(w1)["customer"]["tax_code"] == "RSSMRA80A01F205XYZ"  # all refused

    assert "its customer" in orders.show(w2)["last_error"]
    mended = orders.mend_customer(w1, {"tax_code": "rssmra80a01f205x", "zip": ""})
    # its orders no longer say it was refused; their history still does
    for w in (w1, w2):
        shown = orders.show(w)
        assert shown["last_error"] is None
        assert "codice_fiscale" in shown["push_attempts"][-1]["error"]
    assert (mended["tax_code"], mended["zip"], mended["last_error"]) == (
        "RSSMRA80A01F205X",
        None,
        None,
    )
    result = orders.push(client)
    assert (result.customers_sent, result.orders_sent, result.failed) == (1, 2, 0)
    code = orders.show(w1)["customer"]["erp_code"]
    assert erp_customers_with_vat(client, vat(base)) == [code]
    erp = client.get("clienti", code, fields=["codice_fiscale"])
    assert erp is not None and erp["codice_fiscale"] == "RSSMRA80A01F205X"
    assert {orders.show(w)["state"] for w in (w1, w2)} == {states.STORED}


def test_a_refused_customer_bound_by_the_operator_sends_its_orders_under_that_code(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    from passweb_tui.engine.orders.api import CustomerNotChanged
    from passweb_tui.engine.orders.intake import OrderInvalid

    orders = WebOrders(store)
    who = new_customer(base, tax_code="RSSMRA80A01F205XYZ")
    w1, w2 = f"W{base + 1}", f"W{base + 2}"
    orders.place(order_line(w1, customer=who))
    orders.place(order_line(w2, customer=new_customer(base + 50)))
    assert orders.push(client).customers_failed == 1
    held = orders.show(w2)["customer"]["erp_code"]

    with pytest.raises(OrderInvalid, match="not an ERP customer code"):
        orders.bind_customer(client, w1, "Rossi")
    with pytest.raises(CustomerNotChanged, match=r"the ERP has no customer 501.99999"):
        orders.bind_customer(client, w1, "501.99999")
    with pytest.raises(CustomerNotChanged, match=f"the ERP customer {held} is the site customer"):
        orders.bind_customer(client, w1, held)
    bound = orders.bind_customer(client, w1, "501.00007")
    assert (bound["erp_code"], bound["erp_bound_by"], bound["last_error"]) == (
        "501.00007",
        "operator",
        None,
    )
    with pytest.raises(CustomerNotChanged, match=r"is in the ERP already as 501.00007"):
        orders.bind_customer(client, w1, "501.00008")
    result = orders.push(client)
    assert (result.customers_sent, result.orders_sent, result.failed) == (0, 1, 0)
    shown = orders.show(w1)
    doc = client.get("documenti/ordini-clienti", shown["erp_key"])
    assert doc is not None and doc["cod_conto"] == "501.00007"
    assert erp_customers_with_vat(client, vat(base)) == []  # nothing created for it


def test_an_error_loses_its_subject_only_where_it_starts_with_it() -> None:
    """Views that name the order or the customer already show a push error without it;
    the wording of the subject lives with the code that writes the errors."""
    from passweb_tui.engine.orders.push import customer_subject, error_reason, order_subject

    subject = customer_subject("Rossi's Srl", 7)
    assert error_reason(f"{subject}: the ERP refused it", subject) == "the ERP refused it"
    assert error_reason(f"{order_subject('W1')}: no rows", order_subject("W1")) == "no rows"
    # another order's error, or one worded otherwise, is left whole
    assert error_reason("order W10: no rows", order_subject("W1")) == "order W10: no rows"
    assert error_reason("the ERP was not reached", subject) == "the ERP was not reached"


def test_a_push_s_failures_name_each_record_once_and_group_orders_held_by_their_customer() -> None:
    from passweb_tui.engine.orders.push import customer_subject, failure_notes, order_subject

    rossi, bianchi = customer_subject("Rossi Srl", 7), customer_subject("Bianchi", 8)
    result = PushResult(
        errors=[
            ("customer", "7", f"{rossi}: the ERP did not create it: cf errato"),
            ("customer", "8", f"{bianchi}: the ERP failed: timeout"),
            # a customer error worded without its subject is named by its site id
            ("customer", "9", "looking for it among the ERP's customers failed: 503"),
            *[
                ("order", f"W{i}", f"{order_subject(f'W{i}')}: its customer is not in the ERP")
                for i in range(1, 13)
            ],
            ("order", "W20", f"{order_subject('W20')}: the ERP did not take it: alq_iva 99"),
            # held by a customer that failed in an earlier push: its whole reason stays
            ("order", "W21", f"{order_subject('W21')}: its customer 'Verdi' is not in the ERP"),
        ],
        held={**{f"W{i}": "7" for i in range(1, 12)}, "W12": "8", "W21": "5"},
    )
    assert failure_notes(result) == [
        "customer 'Rossi Srl' (site id 7) not sent: the ERP did not create it: cf errato",
        "orders W1, W2, W3, W4, W5, W6, W7, W8, W9, W10 and 1 more not sent: held by"
        " customer 'Rossi Srl' (site id 7), not sent either",
        "customer 'Bianchi' (site id 8) not sent: the ERP failed: timeout",
        "order W12 not sent: held by customer 'Bianchi' (site id 8), not sent either",
        "customer 9 not sent: looking for it among the ERP's customers failed: 503",
        "order W20 not sent: the ERP did not take it: alq_iva 99",
        "order W21 not sent: its customer 'Verdi' is not in the ERP",
    ]


def test_a_failure_for_want_of_an_answer_is_told_from_a_refusal() -> None:
    """The orders list offers to mend a new customer the ERP refused, not one it could
    not create for want of an answer (busy, a timeout, no connection): the client's own
    errors, as a push stores them, tell which."""
    import httpx

    from passweb_tui.engine.erp.errors import ErpConnectionError
    from passweb_tui.engine.erp.settings import ErpConfig
    from passweb_tui.engine.orders.push import customer_error, no_answer

    def reply(status: int, detail: str | None = None) -> httpx.Response:
        body = {"error": {"response-detail": detail, "response-code": 6001}} if detail else None
        return httpx.Response(status, json=body) if body else httpx.Response(status)

    client = MexalClient(ErpConfig("http://127.0.0.1:9/webapi", "u", "p", azienda="DEM"))
    try:
        made = {
            "busy": client._error(reply(503), "POST", "/x", True, True),
            "timeout": client._error(reply(408), "POST", "/x", True, True),
            "down": client._error(reply(502), "POST", "/x", True, True),
            "refused": client._error(reply(400, "[Campo 'cap': errato]"), "POST", "/x", True, True),
        }
    finally:
        client.close()
    made["unreachable"] = ErpConnectionError("cannot reach the ERP at http://x: refused")
    stored = {k: f"{customer_error('customer (site id 1)', '501', e)}" for k, e in made.items()}
    assert {k: no_answer(v) for k, v in stored.items()} == {
        "busy": True,
        "timeout": True,
        "down": True,
        "refused": False,
        "unreachable": True,
    }, stored


def test_a_cancel_stops_the_push_between_the_orders_of_a_claimed_batch(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """A SIGTERM (the run's cancel) while a batch of orders is being sent: the push stops
    after the order on the wire, the rest of the batch is freed untried (not failed),
    and the next push sends them, each once. Before, the whole batch of up to 16 went
    out first: with a slow ERP, minutes after the signal."""
    from passweb_tui.engine.orders.push import CLAIM_BATCH, PushAborted

    n = CLAIM_BATCH - 1  # one claimed batch
    ids = import_orders(store, base, n)
    sim.admin("PUT", "faults", json={"latency_ms": 300})
    cancel = threading.Event()
    timer = threading.Timer(1.0, cancel.set)
    timer.start()
    try:
        with pytest.raises(PushAborted) as stopped:
            Pusher(store, client, workers=1).push(cancel=cancel)
    finally:
        timer.cancel()
    sim.admin("DELETE", "faults")
    done: PushResult = stopped.value.push_result  # type: ignore[attr-defined]
    assert 1 <= done.orders_sent < n - 3, done
    assert done.orders_failed == 0
    left = [i for i, state in states_of(store).items() if i in ids and state == states.NEW]
    assert len(left) == n - done.orders_sent
    with store.read() as conn:
        claimed = conn.execute(
            sa.select(orders_t.c.id).where(
                orders_t.c.id.in_(left), orders_t.c.claim_owner.is_not(None)
            )
        ).all()
    assert claimed == []  # free at once, for the next push
    again = WebOrders(store).push(client)
    assert again.orders_sent == len(left)
    assert erp_marker_counts(sim, ids) == {i: 1 for i in ids}


def test_a_cancel_that_comes_while_a_write_awaits_its_answer_still_cancels_the_run(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """A SIGTERM while the ERP takes its time over the last order's write: the write's
    answer is awaited (so that whether the order is in the ERP is known), and the run
    is then recorded cancelled, not ok (before, a PARTIAL ended "ok", exit 0)."""
    from passweb_tui.engine.sync import SyncOptions, SyncRunner

    ids = import_orders(store, base, 1)
    cancel = threading.Event()
    create = client.create

    def slow_create(resource: str, record: Any) -> str:
        key = create(resource, record)
        if resource == "documenti/ordini-clienti":
            cancel.set()  # the signal came while the answer was on its way
        return key

    client.create = slow_create  # type: ignore[method-assign]
    result = SyncRunner(store, client, SyncOptions(), cancel=cancel).run("partial")
    assert result.status == "cancelled", (result.status, result.error)
    assert result.orders["sent"] == 1  # what it did is kept
    assert states_of(store)[ids[0]] == states.STORED
    assert erp_marker_counts(sim, ids) == {ids[0]: 1}


@pytest.mark.parametrize(("zone", "day"), [("Europe/Rome", "20270101"), ("UTC", "20261231")])
def test_the_documents_date_is_the_day_the_order_was_placed_in_the_sites_zone(
    store: Store, client: MexalClient, sim: Any, base: int, zone: str, day: str
) -> None:
    """An order placed in Rome at half past midnight on New Year's day is stored in UTC
    (still 31 December there): its ERP document is dated in the site's time zone
    ([service] timezone), whatever the zone of the machine that pushes it."""
    oid = f"W{base + 1}"
    line = order_line(oid, created="2027-01-01T00:30:00+01:00")
    assert WebOrders(store).import_lines(jsonl(line).splitlines()).stored == [oid]
    result = WebOrders(store).push(client, zone=zone)
    assert result.orders_sent == 1, result.errors
    key = WebOrders(store).show(oid)["erp_key"]
    assert client.get("documenti/ordini-clienti", key)["data_documento"] == day


def test_a_customer_whose_sender_died_is_not_said_to_be_in_a_push(
    store: Store, client: MexalClient, sim: Any, base: int
) -> None:
    """A new customer claimed by a push whose process died mid-attempt: mending it is
    refused, saying that its sender stopped, that the ERP may hold it, and from when a
    push looks it up; not that a push has it right now (none has). One claimed by a live
    push is refused as in a push's hands."""
    from datetime import UTC, datetime

    from passweb_tui.engine.orders.api import CustomerNotChanged
    from passweb_tui.engine.orders.push import SETTLE, SETTLING

    orders = WebOrders(store)
    oid = f"W{base + 1}"
    orders.place(order_line(oid, customer=new_customer(base)))
    claimed = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    cid = orders.show(oid)["customer"]["id"]
    live = Pusher(store, client).owner
    for owner, said in (
        (
            f"{SETTLING}dead-owner",
            "was being sent by a process that stopped before its end (at"
            f" 2026-12-07T10:00:00+00:00): whether the ERP created it is unknown. The first"
            f" push after {(claimed + SETTLE).isoformat()} looks it up there",
        ),
        (live, "is in a push's hands right now"),
    ):
        from passweb_tui.engine.orders import push as push_mod

        push_mod._LIVE_OWNERS.add(live)
        try:
            with store.write() as conn:
                conn.execute(
                    sa.update(cust_t)
                    .where(cust_t.c.id == cid)
                    .values(claim_owner=owner, claimed_at=claimed)
                )
            with pytest.raises(CustomerNotChanged) as refused:
                orders.mend_customer(oid, {"city": "Roma"})
            assert said in str(refused.value), str(refused.value)
        finally:
            push_mod._LIVE_OWNERS.discard(live)
