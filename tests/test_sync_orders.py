"""Web orders ride along with syncs: PARTIAL pushes what waits, TOTAL/CHANGED also re-read
the orders still open in the ERP (the work itself is engine/orders'; here, when it runs)."""

from __future__ import annotations

import json
import re
from typing import Any

from passweb_tui.engine.facade import Engine, Scope
from passweb_tui.engine.orders.api import WebOrders


def _order(order_id: str, engine: Engine) -> str:
    customer = engine.customers(limit=1)[0]["code"]
    article = engine.articles(limit=1)[0]["code"]
    return json.dumps(
        {
            "id": order_id,
            "created": "2026-11-27T10:15:00",
            "payment": "confirmed",
            "customer": {"code": customer},
            "rows": [{"article": article, "qty": 2, "price": 12.5, "vat_code": "22"}],
        }
    )


def test_partial_pushes_waiting_orders_and_changed_reads_their_erp_updates(
    sim: Any, db_url: str
) -> None:
    from test_sync_rules import open_engine

    engine = open_engine(db_url, sim)
    try:
        engine.run("total")
        orders = WebOrders(engine.store)
        report = orders.import_lines([_order("W9001", engine), _order("W9002", engine)])
        assert not getattr(report, "errors", None)
        # a dry run sends nothing, and says what waits instead of "nothing to do"
        for dry in (engine.run("partial", dry_run=True), engine.run("changed", dry_run=True)):
            assert dry.orders["sent"] == 0 and "nothing to do" not in (dry.message or "")
            assert "2 web orders waiting to be sent" in (dry.message or ""), dry.message
        named = engine.run("partial", scope=Scope(("orders",), ("W9002",)), dry_run=True)
        assert "1 web order waiting to be sent" in (named.message or ""), named.message
        assert orders.waiting_count() == 2
        pushed = engine.run("partial", scope=Scope(("orders",), ("W9001",)))
        assert pushed.orders["sent"] == 1 and pushed.status == "ok"
        rest = engine.run("partial")
        assert rest.orders["sent"] == 1 and rest.customers == {"sent": 0, "failed": 0}
        idle = engine.run("partial")
        assert idle.orders["sent"] == 0 and "nothing to do" in (idle.message or "")
        # an order that waits, but settles (an earlier sender of it died): not "nothing"
        import sqlalchemy as sa

        from passweb_tui.engine.orders.models import utcnow
        from passweb_tui.engine.orders.push import SETTLING, orders_t

        orders.import_lines([_order("W9003", engine)])
        with engine.store.write() as conn:
            conn.execute(
                sa.update(orders_t)
                .where(orders_t.c.id == "W9003")
                .values(claim_owner=SETTLING + "gone:1:abc", claimed_at=utcnow())
            )
        held = engine.run("partial")
        assert held.orders["sent"] == 0, held
        assert "nothing was waiting" not in (held.message or ""), held.message
        assert "1 web order waiting, none could be sent now" in (held.message or "")
        assert "order W9003 wait until" in (held.message or "")
        with engine.store.write() as conn:
            conn.execute(
                sa.update(orders_t)
                .where(orders_t.c.id == "W9003")
                .values(claim_owner=None, claimed_at=None)
            )
        assert engine.run("partial").orders["sent"] == 1
        stored = {o["id"]: o for o in orders.list()}
        key = stored["W9001"]["erp_key"]
        assert key
        sim.admin("POST", f"orders/{key}/fulfil", json={"rows": {"1": 1.0}})
        changed = engine.run("changed")
        assert changed.orders["updated"] == 1
        again = engine.runs(limit=1)[0]
        assert again.orders == changed.orders  # kept with the run record
    finally:
        engine.close()


def test_pushed_customers_and_orders_go_where_the_settings_say(sim: Any, db_url: str) -> None:
    """[orders] ledger, document and series: a new customer is created under that ledger
    and the order becomes a document of that type and series."""
    from test_sync_rules import open_engine

    engine = open_engine(db_url, sim, customer_ledger="502", order_document="OX", order_series=3)
    try:
        engine.run("total")
        article = engine.articles(limit=1)[0]["code"]
        line = {
            "id": "W9101",
            "created": "2026-11-27T10:15:00",
            "payment": "confirmed",
            "customer": {"name": "Bottega Nuova", "email": "ordini@bottega.example"},
            "rows": [{"article": article, "qty": 1, "price": 9.5, "vat_code": "22"}],
        }
        orders = WebOrders(engine.store)
        assert not getattr(orders.import_lines([json.dumps(line)]), "errors", None)
        pushed = engine.run("partial")
        assert pushed.status == "ok", (pushed.error, pushed.message)
        assert pushed.orders["sent"] == 1 and pushed.customers["sent"] == 1
        stored = orders.list()[0]
        assert stored["erp_key"].startswith("OX+3+")
        assert stored["customer_code"].startswith("502.")  # the new customer's ERP code
        from test_sync_rules import erp_config

        from passweb_tui.engine.erp.client import MexalClient

        with MexalClient(erp_config(sim)) as client:
            doc = client.get("documenti/ordini-clienti", stored["erp_key"])
        assert doc["cod_conto"] == stored["customer_code"]
    finally:
        engine.close()


def test_a_new_web_customer_the_erp_has_goes_under_its_erp_code_and_the_run_says_so(
    sim: Any, db_url: str
) -> None:
    """A company already in the ERP (and on the site) orders as a new web customer: the
    push binds it to its ERP customer, the run's message names both; with
    `[orders] match_erp_customers = false` a second ERP customer is created."""
    from test_sync_rules import erp_config, open_engine

    from passweb_tui.engine.erp.client import Filter, MexalClient

    for match in (True, False):
        engine = open_engine(db_url, sim, match_erp_customers=match)
        try:
            engine.run("total")
            # a customer of its own each time (the store keeps the first one's binding)
            known = [c for c in engine.customers(limit=50) if c.get("vat_number")][int(match)]
            article = engine.articles(limit=1)[0]["code"]
            oid = f"W92{int(match)}"
            line = {
                "id": oid,
                "created": "2026-11-27T10:15:00",
                "payment": "confirmed",
                "customer": {
                    "name": "Ordini Web",
                    "email": f"web{int(match)}@shop.example",
                    "vat_number": known["vat_number"],
                },
                "rows": [{"article": article, "qty": 1, "price": 9.5, "vat_code": "22"}],
            }
            orders = WebOrders(engine.store)
            assert orders.import_lines([json.dumps(line)]).complete
            pushed = engine.run("partial")
            assert pushed.status == "ok", (pushed.error, pushed.message)
            assert pushed.customers["sent"] == 1 and pushed.orders["sent"] == 1
            code = orders.show(oid)["customer"]["erp_code"]
            said = (
                f"is the ERP's customer {known['code']} already (same VAT number"
                f" {known['vat_number']}): bound to it, not created again"
            )
            with MexalClient(erp_config(sim)) as client:
                page = client.search_page(
                    "clienti", [Filter("partita_iva", "=", known["vat_number"])], fields=["codice"]
                )
            holders = sorted(r["codice"] for r in page.records)
            if match:
                assert code == known["code"] and said in (pushed.message or "")
                assert holders == [known["code"]]
            else:
                assert code != known["code"] and "bound to it" not in (pushed.message or "")
                assert holders == sorted([known["code"], code])
        finally:
            engine.close()


def test_an_open_order_whose_erp_document_cannot_be_read_is_a_reject_of_the_run(
    sim: Any, db_url: str, monkeypatch: Any
) -> None:
    from test_sync_rules import open_engine

    from passweb_tui.engine.erp.client import MexalClient

    engine = open_engine(db_url, sim)
    try:
        engine.run("total")
        orders = WebOrders(engine.store)
        assert orders.import_lines([_order("W9101", engine)]).complete
        assert engine.run("partial").orders["sent"] == 1
        real = MexalClient.search_page

        def odd_answer(self: MexalClient, resource: str, *args: Any, **kw: Any) -> Any:
            # stands for an ERP answering with a value the site cannot read
            page = real(self, resource, *args, **kw)
            if resource == "documenti/ordini-clienti":
                for rec in page.records:
                    if "$W9101$" in str(rec.get("nota")):
                        rec["quantita"] = [[1, "n/a"]]
            return page

        monkeypatch.setattr(MexalClient, "search_page", odd_answer)
        run = engine.run("changed")
        assert run.status == "ok_with_rejects"
        assert "1 open order(s) not updated" in (run.message or "")
        detail = engine.run_detail(run.run_id)
        assert [(r.entity, r.key) for r in detail.rejects] == [("orders", "W9101")]
        assert "quantita" in detail.rejects[0].reason
    finally:
        engine.close()


def test_an_order_that_could_not_be_sent_is_named_with_its_reason_in_the_run(
    sim: Any, db_url: str
) -> None:
    from test_sync_rules import open_engine

    engine = open_engine(db_url, sim)
    try:
        engine.run("total")
        bad = json.loads(_order("W9101", engine))
        bad["rows"][0]["article"] = "NOPEART"
        WebOrders(engine.store).import_lines([json.dumps(bad)])
        run = engine.run("partial")
        assert run.status == "ok_with_rejects" and run.orders["failed"] == 1
        (reject,) = [r for r in engine.run_detail(run.run_id).rejects if r.entity == "web_orders"]
        assert reject.key == "W9101" and "NOPEART" in reject.reason
        # the run's notes and the reject read in Italian in the Italian UI, the ERP's own
        # words kept
        from passweb_tui import i18n

        i18n.set_language("it")
        try:
            notes = [i18n.engine_text(part) for part in (run.message or "").split("; ")]
            reason = i18n.engine_text(reject.reason)
        finally:
            i18n.set_language("en")
        assert any(n.startswith("ordine W9101 non inviato: ") for n in notes), notes
        english = re.compile(r"\b(order|not|sent|the|ERP|did|take)\b")
        assert not english.search(reason) and "NOPEART" in reason, reason
    finally:
        engine.close()


def test_a_customer_refusal_is_told_once_in_the_run_and_its_orders_point_to_it(
    sim: Any, db_url: str
) -> None:
    """Two orders of a new customer the ERP refuses (a wrong check character in its tax
    code), and one order the ERP refuses on its own: the run's notes tell the refusal
    once, the held orders in one line after it, each record named once."""
    from test_orders_helpers import new_customer
    from test_sync_rules import open_engine

    engine = open_engine(db_url, sim)
    try:
        engine.run("total")
        lines = []
        for oid in ("W9300", "W9301"):
            held = json.loads(_order(oid, engine))
            held["customer"] = new_customer(9300, tax_code="RSSMRA80A01F205A")
            lines.append(json.dumps(held))
        bad = json.loads(_order("W9302", engine))
        bad["rows"][0]["article"] = "NOPEART"
        lines.append(json.dumps(bad))
        assert WebOrders(engine.store).import_lines(lines).stored == ["W9300", "W9301", "W9302"]
        run = engine.run("partial")
        assert run.status == "ok_with_rejects"
        assert (run.customers["failed"], run.orders["failed"]) == (1, 3)
        notes = (run.message or "").split("; ")
        assert (run.message or "").count("codice_fiscale") == 1, notes
        who = r"customer 'Cliente Web 9300 Srl' \(site id (\d+)\)"
        refused = [n for n in notes if re.match(who + " not sent: the ERP did not create it: ", n)]
        assert len(refused) == 1 and "codice_fiscale" in refused[0], notes
        site_id = re.match(who, refused[0]).group(1)  # type: ignore[union-attr]
        # the held orders come right after their customer
        assert notes[notes.index(refused[0]) + 1] == (
            f"orders W9300, W9301 not sent: held by customer 'Cliente Web 9300 Srl'"
            f" (site id {site_id}), not sent either"
        )
        (alone,) = [n for n in notes if "W9302" in n]
        assert alone.startswith("order W9302 not sent: ") and alone.count("W9302") == 1
        assert "NOPEART" in alone
        # each reject is whole on its own, without its key said again
        rejects = {r.key: r.reason for r in engine.run_detail(run.run_id).rejects}
        for oid in ("W9300", "W9301"):
            assert rejects[oid].startswith("not sent: its customer 'Cliente Web 9300 Srl' is")
            assert "codice_fiscale" in rejects[oid]
        assert rejects["W9302"].startswith("not sent: ") and "W9302" not in rejects["W9302"]
        # in the Italian UI too
        from passweb_tui import i18n

        i18n.set_language("it")
        try:
            said = [i18n.engine_text(n) for n in notes]
        finally:
            i18n.set_language("en")
        assert (
            f"ordini W9300, W9301 non inviati: fermi per il cliente 'Cliente Web 9300 Srl'"
            f" (id sul sito {site_id}), non inviato neanch'esso"
        ) in said, said
        assert any(
            n.startswith(f"cliente 'Cliente Web 9300 Srl' (id sul sito {site_id}) non inviato: il")
            for n in said
        ), said
    finally:
        engine.close()


def test_a_push_none_of_whose_records_got_an_answer_fails_the_run(sim: Any, db_url: str) -> None:
    """A busy ERP past its retries for the only new customer, whose order then waits for
    it: nothing got an answer, so the run failed (as with an ERP that cannot be reached),
    not "ok with rejects"; the records' failures are kept with the run all the same."""
    from test_orders_helpers import new_customer
    from test_sync_rules import open_engine

    engine = open_engine(db_url, sim)
    try:
        engine.run("total")
        order = json.loads(_order("W9400", engine))
        order["customer"] = new_customer(9400)
        assert WebOrders(engine.store).import_lines([json.dumps(order)]).stored == ["W9400"]
        sim.admin("PUT", "/faults", json={"status": {"503": 1.0}})
        try:
            run = engine.run("partial")
        finally:
            sim.admin("DELETE", "/faults")
        assert run.status == "failed", run
        assert "nothing was sent, the ERP did not answer: customer 'Cliente Web 9400 Srl'" in (
            run.error or ""
        )
        assert (run.customers["failed"], run.orders["failed"]) == (1, 1)
        assert {r.key for r in engine.run_detail(run.run_id).rejects} >= {"W9400"}
        from passweb_tui import i18n

        i18n.set_language("it")
        try:
            said = i18n.engine_text(run.error or "")
        finally:
            i18n.set_language("en")
        assert said.startswith("nulla è stato inviato, il gestionale non ha risposto: cliente"), (
            said
        )
        # the ERP answers again: the next run sends both
        again = engine.run("partial")
        assert again.status == "ok" and (again.customers["sent"], again.orders["sent"]) == (1, 1)
    finally:
        engine.close()


def test_a_push_fails_the_run_only_when_no_record_got_an_answer() -> None:
    from passweb_tui.engine.orders.push import PushResult
    from passweb_tui.engine.sync import _unanswered

    busy = "customer 'A' (site id 1): the ERP failed: ERP is busy"
    held = "order W1: its customer 'A' is not in the ERP yet: ..."
    refused = "order W2: the ERP did not take it: alq_iva 99"
    base = {
        "errors": [("customer", "1", busy), ("order", "W1", held)],
        "unreachable": [("customer", "1")],
        "held": {"W1": "1"},
    }
    assert _unanswered(PushResult(**base)) == busy  # type: ignore[arg-type]
    # one answer of the ERP's, a refusal or a record sent, and the run is not failed
    with_refusal = {**base, "errors": [*base["errors"], ("order", "W2", refused)]}
    assert _unanswered(PushResult(**with_refusal)) is None  # type: ignore[arg-type]
    assert _unanswered(PushResult(orders_sent=1, **base)) is None  # type: ignore[arg-type]
    assert _unanswered(PushResult(errors=[("order", "W2", refused)])) is None
    # an order held by a customer that was refused (an answer) is no unanswered one
    assert _unanswered(PushResult(errors=base["errors"], held={"W1": "1"})) is None  # type: ignore[arg-type]


def test_a_push_against_an_unreachable_erp_fails_the_run_and_stops_at_the_first_order(
    sim: Any, db_url: str
) -> None:
    """CONTRACTS: an unreachable ERP is a failed run (exit 1), not a run done with
    rejects; and the push stops at once instead of failing each order in turn."""
    import socket
    from dataclasses import replace

    from test_sync_rules import erp_config, open_engine

    from passweb_tui.engine.facade import EngineSettings

    engine = open_engine(db_url, sim)
    try:
        engine.run("total")
        orders = WebOrders(engine.store)
        lines = [_order(f"W95{i:02d}", engine) for i in range(3)]
        assert orders.import_lines(lines).complete
    finally:
        engine.close()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gone = replace(erp_config(sim), base_url=f"http://127.0.0.1:{port}/webapi")
    engine = Engine.open(EngineSettings(db_url, gone))
    try:
        result = engine.run("partial")
        assert result.status == "failed"
        assert "cannot reach the ERP" in (result.error or "")
        assert result.orders["failed"] == 1  # the first; the others were not tried
        assert {o["state"] for o in WebOrders(engine.store).list()} == {"new"}
    finally:
        engine.close()


def test_a_push_stopped_by_refused_credentials_keeps_what_it_sent_in_the_run(
    sim: Any, db_url: str, monkeypatch: Any
) -> None:
    """The ERP's password changes mid-push: the run fails, and the order the ERP had
    already taken is counted in it (and stored as sent), not lost from the record."""
    from test_sync_rules import open_engine

    from passweb_tui.engine.orders.push import Pusher

    engine = open_engine(db_url, sim)
    changed: list[str] = []

    def change_password(self: Any, step: str, site_id: str) -> None:
        if step == "accepted" and not changed:
            changed.append(site_id)
            sim.admin("PUT", f"users/{sim.user}", json={"password": "changed-meanwhile"})

    try:
        engine.run("total")
        orders = WebOrders(engine.store)
        assert orders.import_lines([_order(f"W96{i:02d}", engine) for i in range(3)]).complete
        monkeypatch.setattr(Pusher, "_crash", change_password)
        result = engine.run("partial")
        assert result.status == "failed"
        assert result.orders["sent"] == 1
        assert engine.runs(limit=1)[0].orders["sent"] == 1  # in the stored run record too
        states = {o["id"]: o["state"] for o in orders.list()}
        assert states[changed[0]] == "stored"
    finally:
        sim.admin("PUT", f"users/{sim.user}", json={"password": sim.password})
        engine.close()


def test_a_new_customer_the_erp_could_not_take_is_refused_at_import(sim: Any, db_url: str) -> None:
    """Once the store knows the ERP's customer fields, a new customer with a detail longer
    than the ERP takes is refused at import, with the field and its limit, instead of
    waiting unsendable after the shopper has gone."""
    from test_sync_rules import open_engine

    engine = open_engine(db_url, sim)
    try:
        order = {
            "id": "W9700",
            "created": "2026-11-27T10:15:00",
            "payment": "confirmed",
            "customer": {"name": "Ferramenta " + "x" * 90, "email": "long@example.it"},
            "rows": [{"article": "ART0000001", "qty": 1, "price": 2.5, "vat_code": "22"}],
        }
        orders = WebOrders(engine.store)
        # before the first sync the ERP's limits are unknown: the intake's own hold
        assert orders.import_lines([json.dumps(order)]).complete
        engine.run("total")
        # an order of the customer the site already has (same e-mail) is its customer's
        order["id"] = "W9702"
        assert orders.import_lines([json.dumps(order)]).complete
        order["id"] = "W9701"
        order["customer"]["email"] = "another@example.it"
        report = orders.import_lines([json.dumps(order)])
        assert report.stored == [] and len(report.skipped) == 1
        reason = report.skipped[0].reason
        assert "customer.name" in reason and "80" in reason and "ragione_sociale" in reason
    finally:
        engine.close()


def test_a_partial_naming_unknown_or_unpaid_orders_says_so(sim: Any, db_url: str) -> None:
    """An order id the store does not have is a reject of the run (exit 4), and an order
    still waiting for its payment is named in the message; neither ends a silent ok."""
    from test_sync_rules import open_engine

    engine = open_engine(db_url, sim)
    try:
        engine.run("total")
        unpaid = json.loads(_order("W9801", engine))
        unpaid["payment"] = "unconfirmed"
        assert WebOrders(engine.store).import_lines([json.dumps(unpaid)]).complete
        result = engine.run("partial", scope=Scope(("orders",), ("W9801", "NOSUCH9")))
        assert result.status == "ok_with_rejects"
        rejects = engine.run_detail(result.run_id).rejects  # type: ignore[arg-type]
        assert [(r.entity, r.key) for r in rejects] == [("orders", "NOSUCH9")]
        assert "payment" in (result.message or "") and "W9801" in (result.message or "")
    finally:
        engine.close()
