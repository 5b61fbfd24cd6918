"""Open-order refresh against the simulator: states derived per DOMAIN.md's table, each
real ERP-side change queued for review, the ERP winning conflicts, batches by key list."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from test_orders_helpers import article_rows, erp_config, jsonl, order_line

from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.api import WebOrders
from passweb_tui.engine.orders.documents import normalize
from passweb_tui.engine.orders.refresh import refresh_open_orders
from passweb_tui.engine.store import Store, open_store

DOCS = "documenti/ordini-clienti"
_bases = itertools.count(1)


@pytest.fixture(scope="module")
def erp() -> Iterator[Any]:
    from conftest import start_sim

    p = start_sim("--articles", "100", "--customers", "30", "--orders", "5", "--seed", "9")
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def client(erp: Any) -> Iterator[MexalClient]:
    with MexalClient(erp_config(erp)) as c:
        yield c


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    try:
        yield s
    finally:
        s.close()


def pushed(store: Store, client: MexalClient, n: int, rows: int = 3) -> list[str]:
    """n orders of `rows` rows each, pushed; their ids."""
    base = next(_bases) * 10000
    lines = [
        order_line(f"R{base + i}", rows=article_rows(rows, first=1 + i % 50)) for i in range(n)
    ]
    orders = WebOrders(store)
    assert orders.import_lines(jsonl(*lines).splitlines()).complete
    result = orders.push(client)
    assert result.orders_sent == n
    return [f"R{base + i}" for i in range(n)]


def key_of(store: Store, order_id: str) -> str:
    key = WebOrders(store).show(order_id)["erp_key"]
    assert key
    return str(key)


def test_untouched_orders_stay_stored_and_queue_nothing(store: Store, client: MexalClient) -> None:
    ids = pushed(store, client, 5)
    orders = WebOrders(store)
    first = orders.refresh(client)
    assert (first.read, first.updated, first.unchanged) == (5, 0, 5)
    second = orders.refresh(client)
    assert (second.read, second.updated) == (5, 0)
    assert orders.updates() == []
    assert {orders.show(i)["state"] for i in ids} == {states.STORED}


def test_erp_changes_become_states_and_reviewable_updates(
    store: Store, client: MexalClient, erp: Any
) -> None:
    ids = pushed(store, client, 7)
    partial, delivered, cancelled, some_cancelled, suspended, fulfilled, gone = ids
    orders = WebOrders(store)
    k = {i: key_of(store, i) for i in ids}
    erp.admin("POST", f"orders/{k[partial]}/fulfil", json={"rows": {"1": 1}, "delivery_note": True})
    erp.admin(
        "POST",
        f"orders/{k[delivered]}/fulfil",
        json={"rows": {"1": 1, "2": 2, "3": 3}, "delivery_note": True},
    )
    for row in (1, 2, 3):
        erp.admin("POST", f"orders/{k[cancelled]}/rows/{row}/state", json={"state": "N"})
    erp.admin("POST", f"orders/{k[some_cancelled]}/rows/2/state", json={"state": "N"})
    erp.admin("POST", f"orders/{k[suspended]}/rows/3/state", json={"state": "B"})
    erp.admin("POST", f"orders/{k[fulfilled]}/fulfil", json={"rows": {"1": 1, "2": 2, "3": 3}})
    erp.admin("DELETE", f"records/ordini-clienti/{k[gone]}")

    result = orders.refresh(client)
    assert (result.read, result.updated, result.missing) == (7, 7, 1)
    got = {i: orders.show(i)["state"] for i in ids}
    assert got == {
        partial: states.PARTIALLY_FULFILLED,
        delivered: states.DELIVERED,
        cancelled: states.CANCELLED,
        some_cancelled: states.MODIFIED_CANCELLED,
        suspended: states.SUSPENDED,
        fulfilled: states.FULFILLED,
        gone: states.TO_CHECK,
    }
    queue = orders.updates(unreviewed=True)
    assert len(queue) == 7
    by_order = {u["order_id"]: u for u in queue}
    u = by_order[partial]
    assert (u["state_before"], u["state_after"]) == (states.STORED, states.PARTIALLY_FULFILLED)
    assert u["before"]["rows"][0]["qta_evasa"] == "0" and u["after"]["rows"][0]["qta_evasa"] == "1"
    assert u["after"]["header"]["doc_collegati"][0].startswith("BC+")
    assert by_order[gone]["after"] is None and by_order[gone]["before"] is not None
    # the review queue searched as the order list is: by order id or by ERP key
    assert [u["order_id"] for u in orders.updates(unreviewed=True, search=partial)] == [partial]
    by_key = orders.updates(search=k[suspended].lower())  # "OC+1+5" finds "OC+1+51" too
    assert suspended in {u["order_id"] for u in by_key}
    assert all(k[suspended] in k[u["order_id"]] for u in by_key)
    assert orders.updates(search="no such order") == []

    # final orders left the open set; the lost one stays open, for an operator to decide
    again = orders.refresh(client)
    assert again.read == 4 and again.updated == 0
    assert len(orders.updates(unreviewed=True)) == 7

    acked, unknown = orders.ack([by_order[partial]["update_id"], 999999])
    assert acked == [by_order[partial]["update_id"]] and unknown == [999999]
    assert len(orders.updates(unreviewed=True)) == 6
    assert len(orders.updates()) == 7


def test_a_closed_order_re_read_by_name_keeps_its_final_state(
    store: Store, client: MexalClient, erp: Any
) -> None:
    """Final states are final: a named re-read of a delivered order whose ERP document
    is gone keeps the order delivered (it left the open set for good), and queues
    what the ERP changed for review."""
    (oid,) = pushed(store, client, 1)
    orders = WebOrders(store)
    key = key_of(store, oid)
    erp.admin(
        "POST",
        f"orders/{key}/fulfil",
        json={"rows": {"1": 1, "2": 2, "3": 3}, "delivery_note": True},
    )
    assert orders.refresh(client).updated == 1
    assert orders.show(oid)["state"] == states.DELIVERED
    erp.admin("DELETE", f"records/ordini-clienti/{key}")
    again = refresh_open_orders(store, client, order_ids=[oid])
    assert again.updated == 1
    assert orders.show(oid)["state"] == states.DELIVERED
    latest = orders.updates(unreviewed=True, search=oid)[0]
    assert latest["state_after"] == states.DELIVERED and latest["after"] is None


def test_erp_edits_make_modified_and_win_over_a_site_edit(
    store: Store, client: MexalClient
) -> None:
    (oid,) = pushed(store, client, 1)
    orders = WebOrders(store)
    orders.refresh(client)
    orders.edit(oid, {"note": "deliver after 5pm"})
    key = key_of(store, oid)
    doc = client.get(DOCS, key)
    assert doc is not None
    doc["quantita"] = [[i, q + 1] for i, q in doc["quantita"]]
    client.update(
        DOCS, key, {k: v for k, v in doc.items() if k not in ("sigla", "serie", "numero")}
    )
    result = orders.refresh(client)
    assert result.updated == 1
    shown = orders.show(oid)
    assert shown["state"] == states.MODIFIED
    assert shown["site_edit"] is None  # the ERP won ...
    (update,) = orders.updates(order_id=oid)
    assert update["site_edit"]["changes"] == {"note": "deliver after 5pm"}  # ... kept for review
    assert [r["quantita"] for r in update["after"]["rows"]] == ["2", "3", "4"]


def test_a_site_edit_saved_while_the_erp_is_read_is_kept_for_review(
    store: Store, client: MexalClient, erp: Any
) -> None:
    (oid,) = pushed(store, client, 1)
    orders = WebOrders(store)
    orders.refresh(client)
    erp.admin("POST", f"orders/{key_of(store, oid)}/rows/1/state", json={"state": "S"})
    real = client.search_page

    def answer_then_edit(*args: Any, **kw: Any) -> Any:
        page = real(*args, **kw)
        orders.edit(oid, {"note": "deliver after 5pm"})  # saved while the ERP answered
        return page

    client.search_page = answer_then_edit  # type: ignore[method-assign]
    try:
        assert orders.refresh(client).updated == 1
    finally:
        client.search_page = real  # type: ignore[method-assign]
    shown = orders.show(oid)
    assert shown["state"] == states.SUSPENDED and shown["site_edit"] is None  # the ERP won
    (update,) = orders.updates(order_id=oid)
    assert update["site_edit"]["changes"] == {"note": "deliver after 5pm"}


def test_linked_invoice_and_other_documents(store: Store, client: MexalClient) -> None:
    invoiced, transformed = pushed(store, client, 2)
    orders = WebOrders(store)
    for oid, links in ((invoiced, ["BC+1+900", "FT+1+77"]), (transformed, ["OX+1+5"])):
        key = key_of(store, oid)
        doc = client.get(DOCS, key)
        assert doc is not None
        client.update(DOCS, key, {"doc_collegati": links}, solo_testata=True)
        if oid == invoiced:
            doc["qta_evasa"] = [[i, q] for i, q in doc["quantita"]]
            doc["stato_riga"] = [[i, "E"] for i, _ in doc["quantita"]]
            doc["doc_collegati"] = links
            client.update(
                DOCS, key, {k: v for k, v in doc.items() if k not in ("sigla", "serie", "numero")}
            )
    orders.refresh(client)
    assert orders.show(invoiced)["state"] == states.INVOICED
    assert orders.show(transformed)["state"] == states.TRANSFORMED


def test_refresh_reads_in_batches_by_key_list(store: Store, client: MexalClient) -> None:
    ids = pushed(store, client, 25, rows=1)
    result = refresh_open_orders(store, client, batch_size=10)
    assert result.read == 25
    assert result.requests == 3  # 25 orders, 10 per search
    named = refresh_open_orders(store, client, order_ids=ids[:4], batch_size=10)
    assert (named.read, named.requests) == (4, 1)


def test_dry_run_writes_nothing(store: Store, client: MexalClient, erp: Any) -> None:
    (oid,) = pushed(store, client, 1)
    erp.admin("POST", f"orders/{key_of(store, oid)}/rows/1/state", json={"state": "S"})
    result = refresh_open_orders(store, client, dry_run=True)
    assert result.updated == 1
    assert WebOrders(store).show(oid)["state"] == states.STORED
    assert WebOrders(store).updates() == []


def sent_doc(rows: list[tuple[str, str, str]], **header: Any) -> dict[str, Any]:
    doc = {
        "sigla": "OC",
        "serie": 1,
        "numero": 1,
        "cod_conto": "501.00001",
        "nota": "$W1$",
        "doc_collegati": [],
        "id_riga": [[i, i] for i in range(1, len(rows) + 1)],
        "codice_articolo": [[i, "A"] for i in range(1, len(rows) + 1)],
        "quantita": [[i, 2] for i in range(1, len(rows) + 1)],
        "prezzo": [[i, "1.5"] for i in range(1, len(rows) + 1)],
        "qta_evasa": [[i, r[0]] for i, r in enumerate(rows, 1)],
        "stato_riga": [[i, r[1]] for i, r in enumerate(rows, 1)],
        "cod_iva": [[i, r[2]] for i, r in enumerate(rows, 1)],
    }
    doc.update(header)
    return doc


@pytest.mark.parametrize(
    ("rows", "header", "state"),
    [
        ([("0", "", "22")], {}, states.STORED),
        ([("0", "", "22")], {"nota": "someone else's order"}, states.TO_CHECK),
        ([("0", "", "22")], {"cod_conto": "501.00002"}, states.TO_CHECK),
        ([("0", "", "22")], {"doc_collegati": ["OX+1+1"]}, states.TRANSFORMED),
        ([("2", "", "22"), ("0", "N", "22")], {"doc_collegati": ["FT+1+1"]}, states.INVOICED),
        ([("1", "", "22")], {"doc_collegati": ["BC+1+1"]}, states.PARTIALLY_FULFILLED),
        ([("0", "N", "22"), ("0", "N", "22")], {}, states.CANCELLED),
        ([("2", "E", "22"), ("0", "N", "22")], {}, states.FULFILLED),
        ([("0", "", "22"), ("0", "N", "22")], {}, states.MODIFIED_CANCELLED),
        ([("1", "S", "22")], {}, states.SUSPENDED),
        ([("0", "", "22")], {"quantita": [[1, 3]]}, states.MODIFIED),
        ([("0", "", "22")], {"prezzo": [[1, "1.50"]]}, states.STORED),  # same money
    ],
)
def test_state_table_first_match_wins(
    rows: list[tuple[str, str, str]], header: dict[str, Any], state: str
) -> None:
    sent = normalize(sent_doc(rows))
    doc = normalize(sent_doc(rows, **header))
    assert states.derive_state(doc, sent, "$W1$") == state
    assert states.derive_state(None, sent, "$W1$") == states.TO_CHECK


def test_a_malformed_erp_document_is_rejected_and_the_order_kept() -> None:
    with pytest.raises(ValueError, match="quantita"):
        normalize(sent_doc([("0", "", "22")], quantita=[[1, "lots"]]))


def test_faulty_erp_replies_are_retried_and_lose_nothing(
    store: Store, client: MexalClient, erp: Any
) -> None:
    ids = pushed(store, client, 12, rows=1)
    orders = WebOrders(store)
    erp.admin("POST", f"orders/{key_of(store, ids[0])}/rows/1/state", json={"state": "S"})
    erp.admin("PUT", "faults", json={"status": {"503": 0.2}, "malformed": 0.3, "seed": 3})
    try:
        result = refresh_open_orders(store, client, batch_size=4)
    finally:
        erp.admin("DELETE", "faults")
    assert (result.read, result.updated, result.rejected) == (12, 1, [])
    assert orders.show(ids[0])["state"] == states.SUSPENDED
    assert len(orders.updates(order_id=ids[0])) == 1


def test_an_unreachable_erp_stops_the_refresh_and_keeps_what_was_done(
    store: Store, erp: Any
) -> None:
    from passweb_tui.engine.erp.errors import ErpError

    with MexalClient(erp_config(erp)) as good:
        ids = pushed(store, good, 6, rows=1)
        erp.admin("POST", f"orders/{key_of(store, ids[0])}/rows/1/state", json={"state": "B"})
        erp.admin("POST", f"orders/{key_of(store, ids[5])}/rows/1/state", json={"state": "B"})

    # a client whose every request after the first one finds the ERP gone
    class Flaky(httpx.HTTPTransport):
        calls = 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            Flaky.calls += 1
            if Flaky.calls > 1:
                raise httpx.ConnectError("connection refused", request=request)
            return super().handle_request(request)

    with (
        MexalClient(erp_config(erp, max_retries=1), transport=Flaky()) as flaky,
        pytest.raises(ErpError, match="cannot reach the ERP"),
    ):
        refresh_open_orders(store, flaky, batch_size=3)
    orders = WebOrders(store)
    assert orders.show(ids[0])["state"] == states.SUSPENDED  # the first batch was kept
    assert orders.show(ids[5])["state"] == states.STORED  # the second one waits for next time
    with MexalClient(erp_config(erp)) as good:
        assert refresh_open_orders(store, good).updated == 1
    assert orders.show(ids[5])["state"] == states.SUSPENDED


def test_two_refreshes_at_once_queue_a_change_once(
    store: Store, client: MexalClient, erp: Any
) -> None:
    import sqlalchemy as sa

    from passweb_tui.engine.orders.refresh import (
        PAGE_COLUMNS,
        RefreshResult,
        _refresh_page,
        orders_t,
    )

    (oid,) = pushed(store, client, 1, rows=1)
    orders = WebOrders(store)
    orders.refresh(client)
    erp.admin("POST", f"orders/{key_of(store, oid)}/rows/1/state", json={"state": "S"})
    # one refresh reads the order ...
    with store.read() as conn:
        page = conn.execute(sa.select(*PAGE_COLUMNS).where(orders_t.c.id == oid)).all()
    # ... another one refreshes it meanwhile and queues the change ...
    assert orders.refresh(client).updated == 1
    # ... and the first one, writing late, finds it already done
    late = RefreshResult()
    _refresh_page(store, client, page, late, run_id=None, dry_run=False)
    assert late.updated == 0
    assert len(orders.updates(order_id=oid)) == 1
    assert orders.show(oid)["state"] == states.SUSPENDED


def test_an_order_whose_erp_document_is_gone_can_be_sent_again_once(
    store: Store, client: MexalClient, erp: Any, db_url: str
) -> None:
    """`orders resend`: the operator's way out of to_check for an order the ERP lost.
    It is refused for an order in any other state, and while any ERP document carries
    the order's marker (so it can never make a second document); accepted, the next
    push sends the order, once."""
    from hard_support import cli_env, cli_here
    from test_orders_helpers import erp_marker_counts

    from passweb_tui.engine.orders.api import OrderNotResent

    lost, contradicted, fine = pushed(store, client, 3)
    orders = WebOrders(store)
    k = {i: key_of(store, i) for i in (lost, contradicted, fine)}
    erp.admin("DELETE", f"records/ordini-clienti/{k[lost]}")
    other = normalize(client.get(DOCS, k[contradicted]))["header"]["cod_conto"]
    client.update(DOCS, k[contradicted], {"cod_conto": "501.00029"}, solo_testata=True)
    assert other != "501.00029"
    orders.refresh(client)
    assert orders.show(lost)["state"] == orders.show(contradicted)["state"] == states.TO_CHECK

    env = cli_env(erp, db=db_url)
    refused = cli_here("orders", "resend", fine, env=env)
    assert refused.returncode == 3
    assert f"order {fine} is stored, not to_check" in refused.stderr
    held = cli_here("orders", "resend", contradicted, env=env)
    assert held.returncode == 3, held.stderr
    assert f"the ERP holds {k[contradicted]} with this order's marker" in held.stderr
    assert cli_here("orders", "resend", "NO-SUCH", env=env).returncode == 2

    done = cli_here("orders", "resend", lost, env=env)
    assert done.returncode == 0, done.stderr
    assert f"document {k[lost]} is gone from the ERP" in done.stdout
    shown = orders.show(lost)
    assert (shown["state"], shown["erp_key"]) == (states.NEW, None)
    with pytest.raises(OrderNotResent, match="is new, not to_check"):
        orders.resend(client, lost)
    result = orders.push(client)
    assert result.orders_sent == 1, result.errors
    assert orders.show(lost)["state"] == states.STORED
    assert key_of(store, lost) != k[lost]
    assert erp_marker_counts(erp, [lost, contradicted]) == {lost: 1, contradicted: 1}


def test_an_order_whose_document_lost_its_marker_is_not_sent_again(
    store: Store, client: MexalClient, erp: Any, db_url: str
) -> None:
    """Someone rewrites the note of an order's ERP document, marker and all: the order
    goes to_check, and `orders resend` is refused while that document is there (it
    would make a second delivery), saying how to mend it. Once the marker is back, the
    next refresh follows the document again."""
    from hard_support import cli_env, cli_here
    from test_orders_helpers import erp_marker_counts

    (oid,) = pushed(store, client, 1)
    orders = WebOrders(store)
    key = key_of(store, oid)
    note = client.get(DOCS, key)["nota"]
    client.update(DOCS, key, {"nota": "checked by Mario"}, solo_testata=True)
    orders.refresh(client)
    assert orders.show(oid)["state"] == states.TO_CHECK

    refused = cli_here("orders", "resend", oid, env=cli_env(erp, db=db_url))
    assert refused.returncode == 3, refused.stdout
    assert (
        f"order {oid}: its document {key} is still in the ERP, without the order's marker"
        in refused.stderr
    )
    assert orders.show(oid)["state"] == states.TO_CHECK
    assert orders.push(client).orders_sent == 0
    assert erp_marker_counts(erp, [oid]) == {oid: 0}  # no second document

    client.update(DOCS, key, {"nota": note}, solo_testata=True)
    orders.refresh(client)
    shown = orders.show(oid)
    assert (shown["state"], shown["erp_key"]) == (states.STORED, key)


def test_an_order_follows_its_document_copied_in_the_erp_once_the_first_is_deleted(
    store: Store, client: MexalClient, erp: Any
) -> None:
    """The ERP's users copy an order's document (its note, the order's marker, goes with
    it) and delete the first: the next refresh finds the copy by the marker and follows
    it. Two copies left: to_check with both keys, until one is deleted in the ERP."""
    from passweb_tui.engine.orders.push import Pusher

    one, two = pushed(store, client, 2)
    orders = WebOrders(store)
    first = {o: key_of(store, o) for o in (one, two)}

    def copy(order_id: str) -> str:
        return str(client.create(DOCS, Pusher(store, client)._document(order_id)))

    copied = copy(one)
    orders.refresh(client)
    assert (orders.show(one)["state"], key_of(store, one)) == (states.STORED, first[one])
    erp.admin("DELETE", f"records/ordini-clienti/{first[one]}")
    orders.refresh(client)
    shown = orders.show(one)
    assert (shown["state"], shown["erp_key"], shown["erp_duplicates"]) == (
        states.STORED,
        copied,
        None,
    )

    twins = sorted([copy(two), copy(two)], key=lambda k: int(k.rsplit("+", 1)[1]))
    erp.admin("DELETE", f"records/ordini-clienti/{first[two]}")
    orders.refresh(client)
    shown = orders.show(two)
    assert (shown["state"], shown["erp_duplicates"]) == (states.TO_CHECK, twins)
    erp.admin("DELETE", f"records/ordini-clienti/{twins[0]}")
    orders.refresh(client)
    shown = orders.show(two)
    assert (shown["state"], shown["erp_key"], shown["erp_duplicates"]) == (
        states.STORED,
        twins[1],
        None,
    )


def test_an_order_the_erp_refuses_for_what_it_holds_can_be_cancelled_on_the_site(
    store: Store, client: MexalClient, erp: Any, db_url: str
) -> None:
    """`orders cancel`: an order the ERP refuses at every push (an article it does not
    have) is set aside for good: cancelled, not sent again, no longer needing the
    operator. An order in the ERP, or one a push may have sent, is refused (checked in
    the ERP first), and an unknown id is a usage error."""
    from hard_support import cli_env, cli_here
    from test_orders_helpers import erp_marker_counts, jsonl, order_line

    orders = WebOrders(store)
    bad = "CX1"
    row = {"article": "NOSUCHART", "qty": 1, "price": 1, "vat_code": "22"}
    assert orders.import_lines(jsonl(order_line(bad, rows=[row])).splitlines()).stored == [bad]
    assert orders.push(client).orders_failed == 1
    assert orders.show(bad)["state"] == states.NEW
    (stored,) = pushed(store, client, 1)

    env = cli_env(erp, db=db_url)
    done = cli_here("orders", "cancel", bad, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"order {bad}: cancelled; it will not be sent\n"
    assert orders.show(bad)["state"] == states.CANCELLED
    assert orders.push(client).orders_failed == 0  # not tried again
    assert orders.summary().failed == 0
    assert erp_marker_counts(erp, [bad]) == {bad: 0}

    refused = cli_here("orders", "cancel", stored, env=env)
    assert refused.returncode == 3
    assert f"order {stored} is stored, in the ERP: cancel it there" in refused.stderr
    again = cli_here("orders", "cancel", bad, env=env)
    assert again.returncode == 3 and f"order {bad} is cancelled, final" in again.stderr
    assert cli_here("orders", "cancel", "NO-SUCH", env=env).returncode == 2

    # a push that lost its answer: the order is uncertain, and its document is there
    from passweb_tui.engine.orders.api import orders_t

    with store.write() as conn:
        conn.execute(
            sa.update(orders_t)
            .where(orders_t.c.id == stored)
            .values(state=states.NEW, uncertain=True)
        )
    held = cli_here("orders", "cancel", stored, env=env)
    assert held.returncode == 3, held.stdout
    assert f"the ERP holds {key_of(store, stored)} for it: cancel it there" in held.stderr


def test_an_update_for_a_document_the_erp_deleted_says_so_in_one_line(
    store: Store, client: MexalClient, erp: Any, db_url: str
) -> None:
    """The ERP deletes an order's document: the update the refresh records has no
    `after`, and the list says the document is gone, in one line, rather than listing
    each header field as changed from nothing to nothing."""
    from hard_support import cli_env, cli_here

    from passweb_tui.engine.orders.api import update_changes

    (oid,) = pushed(store, client, 1)
    orders = WebOrders(store)
    erp.admin("DELETE", f"records/ordini-clienti/{key_of(store, oid)}")
    orders.refresh(client)
    (update,) = orders.updates(order_id=oid)
    assert update["after"] is None and update["before"] is not None
    assert update_changes(update).gone
    listed = cli_here("orders", "updates", env=cli_env(erp, db=db_url))
    assert listed.returncode == 0, listed.stderr
    under = [line.strip() for line in listed.stdout.splitlines()[2:]]
    assert under == ["the whole document: the ERP no longer has it"], listed.stdout
