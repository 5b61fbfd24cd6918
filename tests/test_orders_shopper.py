"""The demo shopper: after a real TOTAL sync from the simulator, it places plausible
orders from the site's own catalogue, and the push takes them into the ERP."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from test_orders_helpers import erp_config, erp_marker_counts

from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.orders import states
from passweb_tui.engine.orders.api import WebOrders
from passweb_tui.engine.orders.shopper import Catalogue, Shopper, place_orders, plausible_order
from passweb_tui.engine.store import open_store
from passweb_tui.engine.sync import SyncOptions, SyncRunner


def test_shopper_orders_come_from_the_catalogue_and_go_to_the_erp(sim: Any, tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with MexalClient(erp_config(sim)) as client:
            run = SyncRunner(store, client, SyncOptions()).run("total")
            assert run.status in ("ok", "ok_with_rejects"), run.error
            placed = place_orders(store, 30, rng=random.Random(4))
            assert len(placed) == 30 and len(set(placed)) == 30
            orders = WebOrders(store)
            listed = {o["id"]: o for o in orders.list()}
            assert set(listed) == set(placed)
            assert any(o["new_customer"] for o in listed.values())
            # every row is an article of the site, at its list-1 price
            for oid in placed:
                for line in orders.show(oid)["lines"]:
                    assert line["article"].startswith(("ART", "KIT"))
                    assert float(line["price"]) > 0
            result = orders.push(client)
            assert result.orders_failed == 0, result.errors
            confirmed = [i for i in placed if listed[i]["state"] == states.NEW]
            assert result.orders_sent == len(confirmed)
            assert erp_marker_counts(sim, placed) == {i: 1 if i in confirmed else 0 for i in placed}
            # ids continue after the last one placed
            more = place_orders(store, 2, rng=random.Random(5))
            assert more == [f"D{len(placed) + 1:06d}", f"D{len(placed) + 2:06d}"]
    finally:
        store.close()


def test_an_empty_catalogue_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no published articles"):
        plausible_order("D1", Catalogue([], []), random.Random(1))


def test_a_tax_code_typo_is_refused_by_the_erp_until_mended(sim: Any, tmp_path: Any) -> None:
    """The demo's shoppers mistype a tax code now and then (its check character): the ERP
    refuses the customer, its orders wait, and once mended they all go."""
    from passweb_tui.engine.orders.shopper import tax_code

    rng = random.Random(8)
    from passweb_tui.codice_fiscale import problem

    assert problem(tax_code(rng)) is None
    assert "carattere di controllo" in str(problem(tax_code(rng, typo=True)))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with MexalClient(erp_config(sim)) as client:
            assert SyncRunner(store, client, SyncOptions()).run("total").status == "ok"
            # the demo's shopper shows a mistake with its first order
            shopper = Shopper(store, every_s=(0.01, 0.02), seed=2, prefix="S", mistakes=0.25)
            shopper.start()
            deadline = time.monotonic() + 20
            while len(shopper.placed) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            shopper.stop()
            assert len(shopper.placed) >= 3
            first = WebOrders(store).show(shopper.placed[0])["customer"]
            assert first is not None and first["vat_number"] is None
            assert problem(first["tax_code"]) and shopper.showed_mistake
            # a shopper started again (the demo opened once more) does not add a second
            # forced mistake while the first still waits to be mended
            restarted = Shopper(store, every_s=(0.01, 0.02), seed=2, prefix="T", mistakes=0.25)
            assert restarted.mistake_waits()
            restarted.start()
            deadline = time.monotonic() + 20
            while not restarted.placed and time.monotonic() < deadline:
                time.sleep(0.02)
            restarted.stop()
            assert restarted.placed and not restarted.showed_mistake
            placed = place_orders(store, 40, rng=random.Random(9), mistakes=1.0)
            orders = WebOrders(store)
            details = [orders.show(i) for i in [*placed, *shopper.placed, *restarted.placed]]
            typos = [
                d
                for d in details
                if (d.get("customer") or {}).get("tax_code") and d["state"] == states.NEW
            ]
            assert typos and all(problem(d["customer"]["tax_code"]) for d in typos)
            first = orders.push(client)
            assert first.customers_failed == len({d["customer"]["id"] for d in typos})
            for d in typos:
                why = orders.show(d["id"])["customer"]["last_error"]
                assert "codice_fiscale" in why and "no customer code left" not in why
                assert orders.show(d["id"])["state"] == states.NEW
            for d in typos:
                if orders.show(d["id"])["customer"]["last_error"]:
                    orders.mend_customer(d["id"], {"tax_code": tax_code(rng)})
            again = orders.push(client)
            assert (again.customers_failed, again.orders_failed) == (0, 0), again.errors
            assert {orders.show(d["id"])["state"] for d in typos} == {states.STORED}
    finally:
        store.close()


def test_the_demo_checkout_sends_each_order_as_it_is_placed(sim: Any, tmp_path: Any) -> None:
    """With a checkout, the shopper's orders go to the ERP as they are placed (the site's
    checkout path: no run recorded), once each; an order whose payment is not confirmed
    waits on the site, and one that the ERP refuses waits with its error."""
    from test_sync_rules import open_engine

    engine = open_engine(f"sqlite:///{tmp_path / 'store.db'}", sim)
    try:
        assert engine.run("total").status in ("ok", "ok_with_rejects")
        runs_before = len(engine.runs())
        shopper = Shopper(
            engine.store, every_s=(0.01, 0.02), seed=5, mistakes=0.25, checkout=engine.push_orders
        )
        shopper.start()
        deadline = time.monotonic() + 30
        while len(shopper.placed) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        shopper.stop()
        placed = list(shopper.placed)
        assert len(placed) >= 6
        orders = WebOrders(engine.store)
        details = {oid: orders.show(oid) for oid in placed}
        # the first one's customer was mistyped: refused, its order waits with the error
        first = details[placed[0]]
        assert first["state"] == states.NEW and "codice_fiscale" in first["customer"]["last_error"]
        checked_out = [oid for oid, d in details.items() if d["state"] == states.STORED]
        assert checked_out, {oid: d["state"] for oid, d in details.items()}
        counts = erp_marker_counts(sim, placed)
        assert all(counts[oid] == 1 for oid in checked_out)
        unconfirmed = [
            oid for oid, d in details.items() if d["state"] == states.PAYMENT_UNCONFIRMED
        ]
        assert all(counts[oid] == 0 for oid in unconfirmed)
        assert len(engine.runs()) == runs_before  # no run: the checkout path
    finally:
        engine.close()
