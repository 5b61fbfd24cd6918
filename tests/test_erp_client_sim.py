"""MexalClient against the simulator on a real loopback socket.

Paging through 12,000 articles, every search condition, hex keys, writes,
every error code, retries under injected faults, token rejection.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from conftest import SimProcess, start_sim

from passweb_tui.engine.erp import values
from passweb_tui.engine.erp.client import Filter, MexalClient
from passweb_tui.engine.erp.errors import (
    AuthError,
    BusinessRuleError,
    ContextMissingError,
    ErpConnectionError,
    ErpError,
    ErpTimeoutError,
    LinkDownError,
    MalformedResponseError,
    NotFoundError,
    PoolExhaustedError,
    TokenRejectedError,
)
from passweb_tui.engine.erp.settings import ErpConfig

FIELDS = ["codice", "descrizione", "alq_iva", "peso", "cod_grp_merc", "dt_mod_sistema"]


def config_for(s: SimProcess, **overrides: Any) -> ErpConfig:
    options: dict[str, Any] = {
        "base_url": s.url,
        "user": s.user,
        "password": s.password,
        "azienda": s.azienda,
        "anno": s.anno,
        "max_retries": 8,
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
        "read_timeout_s": 30.0,
    }
    options.update(overrides)
    return ErpConfig(**options)


class Counter:
    """Counts replies by status, through the client's on_response hook."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, response: httpx.Response, seconds: float) -> None:
        with self._lock:
            self.statuses.append(response.status_code)


def client_for(s: SimProcess, counter: Counter | None = None, **overrides: Any) -> MexalClient:
    return MexalClient(config_for(s, **overrides), on_response=counter)


@pytest.fixture(scope="module")
def big_sim() -> Iterator[SimProcess]:
    """12,000 articles; the tests that fault it reset the faults when done."""
    p = start_sim("--articles", "12000", "--customers", "50", "--orders", "5", "--seed", "11")
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def writable_sim() -> Iterator[SimProcess]:
    """A small simulator the write tests of this module share (each writes its own records)."""
    p = start_sim("--articles", "200", "--customers", "30", "--orders", "5", "--seed", "5")
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def faults(big_sim: SimProcess) -> Iterator[Callable[..., None]]:
    def set_faults(**spec: Any) -> None:
        big_sim.admin("PUT", "/faults", json=spec)

    try:
        yield set_faults
    finally:
        big_sim.admin("DELETE", "/faults")


@pytest.fixture(scope="module")
def big_keys(big_sim: SimProcess) -> list[str]:
    """Every article code of big_sim, paged without faults."""
    with client_for(big_sim) as client:
        return [
            r["codice"]
            for p in client.iter_pages("articoli", fields=["codice"], page_size=1000)
            for r in p.records
        ]


@pytest.fixture(scope="module")
def catalogue(shared_sim: SimProcess) -> list[dict[str, Any]]:
    with client_for(shared_sim) as client:
        return [r for p in client.iter_pages("articoli", fields=FIELDS) for r in p.records]


# --- paging -----------------------------------------------------------------------------


def test_paging_through_12000_articles_yields_each_once_in_key_order(
    big_sim: SimProcess, big_keys: list[str]
) -> None:
    count = big_sim.admin("GET", "/stats").json()["articoli"]
    assert count >= 12000
    assert len(big_keys) == count
    assert len(set(big_keys)) == count
    assert big_keys == sorted(big_keys)


def test_pages_respect_max_and_carry_the_erp_clock(big_sim: SimProcess) -> None:
    with client_for(big_sim) as client:
        first = client.list_page("articoli", fields=["codice"], max=250)
        second = client.list_page(
            "articoli", fields=["codice"], max=250, next_token=first.next_token
        )
    assert len(first.records) == 250 and first.next_token
    assert first.records[-1]["codice"] < second.records[0]["codice"]
    assert isinstance(first.data_ric_elab, dt.datetime)


def test_used_or_unknown_token_is_rejected_with_1003(big_sim: SimProcess) -> None:
    counter = Counter()
    with client_for(big_sim, counter) as client:
        first = client.list_page("articoli", fields=["codice"], max=10)
        assert first.next_token
        client.list_page("articoli", fields=["codice"], max=10, next_token=first.next_token)
        for token in (first.next_token, "no-such-token"):  # single use; made up
            with pytest.raises(TokenRejectedError) as err:
                client.list_page("articoli", fields=["codice"], max=10, next_token=token)
            assert err.value.status == 400 and err.value.code == 1003
    assert counter.statuses == [200, 200, 400, 400]  # never retried


def test_rejected_tokens_continue_by_search_without_gaps_or_repeats(
    big_sim: SimProcess, big_keys: list[str], faults: Callable[..., None]
) -> None:
    faults(reject_next=1.0)
    counter = Counter()
    with client_for(big_sim, counter) as client:
        got = [
            r["codice"]
            for p in client.iter_pages("articoli", fields=["codice"], page_size=1000)
            for r in p.records
        ]
    assert got == big_keys
    assert 400 in counter.statuses  # the tokens really were rejected


def test_paging_survives_503s_drops_and_garbage(
    big_sim: SimProcess, big_keys: list[str], faults: Callable[..., None]
) -> None:
    faults(
        status={"503": 0.15, "500": 0.05, "408": 0.05},
        drop_before_commit=0.05,
        malformed=0.05,
        reject_next=0.1,
    )
    counter = Counter()
    with client_for(big_sim, counter, max_retries=20) as client:
        got = [
            r["codice"]
            for p in client.iter_pages("articoli", fields=["codice"], page_size=500)
            for r in p.records
        ]
    assert got == big_keys
    assert {503, 500} & set(counter.statuses)


def test_search_pages_follow_tokens(
    shared_sim: SimProcess, catalogue: list[dict[str, Any]]
) -> None:
    wanted = [r["codice"] for r in catalogue if r["alq_iva"] == "22"]
    assert len(wanted) > 100
    with client_for(shared_sim) as client:
        pages = list(
            client.iter_pages(
                "articoli", filters=[Filter("alq_iva", "=", "22")], fields=["codice"], page_size=100
            )
        )
    assert len(pages) > 1
    assert [r["codice"] for p in pages for r in p.records] == wanted


# --- search conditions ---------------------------------------------------------------


def search(s: SimProcess, *filters: Filter, resource: str = "articoli") -> list[str]:
    with client_for(s) as client:
        return [
            r["codice"]
            for p in client.iter_pages(resource, filters=filters, fields=["codice"])
            for r in p.records
        ]


def test_every_search_condition(shared_sim: SimProcess, catalogue: list[dict[str, Any]]) -> None:
    mid = catalogue[len(catalogue) // 2]
    key, weight = mid["codice"], mid["peso"]
    word = max(mid["descrizione"].split(), key=len)
    day = mid["dt_mod_sistema"]
    cases: list[tuple[Filter, Callable[[dict[str, Any]], bool]]] = [
        (Filter("codice", "=", key), lambda r: r["codice"] == key),
        (Filter("alq_iva", "<>", "22"), lambda r: r["alq_iva"] != "22"),
        (Filter("codice", ">", key), lambda r: r["codice"] > key),
        (Filter("codice", "<", key), lambda r: r["codice"] < key),
        (Filter("peso", ">=", weight), lambda r: r["peso"] >= weight),
        (Filter("peso", "<=", weight), lambda r: r["peso"] <= weight),
        (Filter("dt_mod_sistema", ">=", day), lambda r: r["dt_mod_sistema"] >= day),
        (Filter("descrizione", "contiene", word), lambda r: word in r["descrizione"]),
        (Filter("codice", "inizia_per", key[:-2]), lambda r: r["codice"].startswith(key[:-2])),
    ]
    for flt, pred in cases:
        expected = [r["codice"] for r in catalogue if pred(r)]
        assert expected, flt
        assert search(shared_sim, flt) == expected, flt


def test_case_insensitive_or_lists_and_and(
    shared_sim: SimProcess, catalogue: list[dict[str, Any]]
) -> None:
    word = max(catalogue[7]["descrizione"].split(), key=len)
    expected = [r["codice"] for r in catalogue if word.lower() in r["descrizione"].lower()]
    assert search(shared_sim, Filter("descrizione", "contiene", word.swapcase(), True)) == expected
    assert search(shared_sim, Filter("descrizione", "contiene", word.swapcase())) != expected

    some = [catalogue[3]["codice"], catalogue[30]["codice"], catalogue[300]["codice"]]
    assert search(shared_sim, Filter("codice", "=", some)) == sorted(some)

    prefix = catalogue[100]["codice"][:-2]
    both = [
        r["codice"] for r in catalogue if r["codice"].startswith(prefix) and r["alq_iva"] == "22"
    ]
    got = search(shared_sim, Filter("codice", "inizia_per", prefix), Filter("alq_iva", "=", "22"))
    assert got == both


def test_orders_by_key_list_and_marker(shared_sim: SimProcess) -> None:
    with client_for(shared_sim) as client:
        orders = client.list_page("documenti/ordini-clienti", max=5).records
        numbers = [o["numero"] for o in orders[:3]]
        found = client.search_page(
            "documenti/ordini-clienti",
            [Filter("sigla", "=", "OC"), Filter("serie", "=", 1), Filter("numero", "=", numbers)],
        ).records
    assert sorted(o["numero"] for o in found) == sorted(numbers)


# --- reads -------------------------------------------------------------------------------


def test_get_decodes_decimals_and_arrays(
    shared_sim: SimProcess, catalogue: list[dict[str, Any]]
) -> None:
    code = catalogue[5]["codice"]
    with client_for(shared_sim) as client:
        record = client.get("articoli", code)
        assert client.get("articoli", "NO-SUCH-CODE") is None
    assert record is not None and record["codice"] == code
    prices = values.parse_indexed(record["prz_listino"], field="prz_listino")
    assert prices and all(isinstance(v, Decimal | int) for v in prices.values())
    flags = values.parse_indexed(record["trasf_sito"], field="trasf_sito")
    assert set(flags.values()) <= {"S", "N"}
    values.parse_date(record["dt_mod_sistema"])
    values.parse_time(record["ora_mod_sistema"])


def test_keys_with_slash_are_read_hex_encoded(
    shared_sim: SimProcess, catalogue: list[dict[str, Any]]
) -> None:
    slashed = [r for r in catalogue if "/" in r["codice"]]
    assert slashed, "the simulator's catalogue has codes with '/'"
    with client_for(shared_sim) as client:
        for listed in slashed[:3]:
            record = client.get("articoli", listed["codice"], fields=FIELDS)
            assert record is not None
            assert {k: record[k] for k in FIELDS} == listed


def test_lookup_tables_installation_and_check(shared_sim: SimProcess) -> None:
    with client_for(shared_sim) as client:
        valute = client.list_page("dati-generali/valute").records
        groups = list(client.iter_pages("dati-generali/gruppi-merceologici", page_size=10))
        info = client.installation()
        result = client.check()
    assert {v["sigla_iso"] for v in valute} >= {"EUR"}
    assert sum(len(p.records) for p in groups) > 10
    assert result == {
        "version": str(info["versione"]),
        "anno": shared_sim.anno,
        "azienda": shared_sim.azienda,
    }


def test_info_describes_fields(shared_sim: SimProcess) -> None:
    with client_for(shared_sim) as client:
        fields = {f.name: f for f in client.info("articoli")}
    assert fields["codice"].key and not fields["codice"].is_array
    assert fields["prz_listino"].is_array
    assert fields["dt_mod_sistema"].type == "D"


def test_attachments_are_bytes(shared_sim: SimProcess, catalogue: list[dict[str, Any]]) -> None:
    with client_for(shared_sim) as client:
        # not every article has pictures; the demo data gives most of them some
        code, listed = next(
            (r["codice"], found)
            for r in catalogue[:50]
            if (found := client.attachments(r["codice"]))
        )
        assert {item["tipo"] for item in listed} <= {"immagine", "scheda"}
        for item in listed:
            data = client.get_attachment(code, item["nome"])
            assert len(data) == item["dimensione"]
            assert data == client.get_bytes(f"articoli/{code}/allegati/{item['nome']}")


def test_a_reply_past_the_clients_limit_fails_naming_the_url_and_the_limit(
    shared_sim: SimProcess,
) -> None:
    """A page, a search or a look-up whose reply is bigger than the client takes
    (max_reply_bytes) fails at once, not retried, naming the address (no credentials)
    and the limit: refused unread when it announces its length, stopped as it goes
    past when it does not (a proxy passing it on without Content-Length). The
    client goes on serving the next request."""
    from lying_proxy import LyingProxy

    from passweb_tui.engine.erp.client import ReplyTooLargeError

    with LyingProxy(shared_sim) as proxy:
        proxy.no_length = True
        for target, announced in ((shared_sim, True), (proxy, False)):
            with client_for(target, max_reply_bytes=50_000) as client:  # type: ignore[arg-type]
                for read in (
                    lambda: client.list_page("articoli", max=1000),
                    lambda: client.search_page("articoli", [Filter("codice", ">=", "")], max=1000),
                ):
                    before = sum(proxy.hits.values())
                    with pytest.raises(ReplyTooLargeError) as err:
                        read()
                    text = str(err.value)
                    assert text.startswith(f"the ERP at {target.url} ")
                    assert "the client's limit of 50,000 bytes for one reply" in text
                    assert "/risorse/articoli" in text
                    assert (target.password or "@") not in text
                    assert ("refused unread" in text) == announced
                    assert ("stopped as it went past" in text) == (not announced)
                    assert err.value.limit == 50_000 and not err.value.retryable
                    if not announced:
                        assert sum(proxy.hits.values()) == before + 1  # not retried
                assert [r["codice"] for r in client.list_page("articoli", max=3).records]
                assert client.get("articoli", "ART0000001") is not None


# --- writes ------------------------------------------------------------------------------

ORDER = {
    "sigla": "OC",
    "serie": 1,
    "numero": 0,
    "data_documento": "20250903",
    "nota": "web order $W9001$",
    "id_riga": [[1, 1], [2, 2]],
    "tp_riga": [[1, "R"], [2, "R"]],
    "quantita": [[1, 2], [2, Decimal("1.5")]],
    "prezzo": [[1, Decimal("12.5")], [2, Decimal("3.3333")]],
    "cod_iva": [[1, "22"], [2, "22"]],
}


def first_customer_and_articles(client: MexalClient) -> tuple[str, list[str]]:
    customer = client.list_page("clienti", fields=["codice"], max=1).records[0]["codice"]
    arts = [r["codice"] for r in client.list_page("articoli", fields=["codice"], max=2).records]
    return customer, arts


def test_create_update_delete_an_order(writable_sim: SimProcess) -> None:
    with client_for(writable_sim) as client:
        customer, arts = first_customer_and_articles(client)
        order = dict(ORDER, cod_conto=customer, codice_articolo=[[1, arts[0]], [2, arts[1]]])
        key = client.create("documenti/ordini-clienti", order)
        sigla, serie, numero = key.split("+")
        assert (sigla, serie) == ("OC", "1") and int(numero) > 0
        assert writable_sim.admin("GET", "/orders", params={"marker": "W9001"}).json()["keys"] == [
            key
        ]
        stored = client.get("documenti/ordini-clienti", key)
        assert stored is not None
        assert values.parse_indexed(stored["prezzo"]) == {1: Decimal("12.5"), 2: Decimal("3.3333")}
        client.update(
            "documenti/ordini-clienti", key, {"nota": "changed $W9001$"}, solo_testata=True
        )
        changed = client.get("documenti/ordini-clienti", key)
        assert changed is not None and changed["nota"] == "changed $W9001$"
        assert values.parse_indexed(changed["prezzo"]) == {1: Decimal("12.5"), 2: Decimal("3.3333")}
        client.delete("documenti/ordini-clienti", key)
        assert client.get("documenti/ordini-clienti", key) is None
        with pytest.raises(NotFoundError):
            client.delete("documenti/ordini-clienti", key)


def test_customer_auto_code_and_article_with_slash(writable_sim: SimProcess) -> None:
    with client_for(writable_sim) as client:
        key = client.create(
            "clienti", {"codice": "501.AUTO", "ragione_sociale": "Rossi Srl", "nazione": "IT"}
        )
        assert key.startswith("501.") and key != "501.AUTO"
        assert client.get("clienti", key)["ragione_sociale"] == "Rossi Srl"  # type: ignore[index]

        code = "SET/ABC\\1"
        created = client.create(
            "articoli",
            {"codice": code, "descrizione": "Set", "alq_iva": "22", "peso": Decimal("0.125")},
        )
        assert created == code
        client.update("articoli", code, {"descrizione": "Set nuovo"})
        record = client.get("articoli", code)
        assert record is not None and record["descrizione"] == "Set nuovo"
        assert record["peso"] == Decimal("0.125")
        client.delete("articoli", code)
        assert client.get("articoli", code) is None


def test_business_rule_errors_name_the_field(writable_sim: SimProcess) -> None:
    with client_for(writable_sim) as client:
        with pytest.raises(BusinessRuleError) as err:
            client.create(
                "articoli", {"codice": "NEW1", "descrizione": "x", "alq_iva": "22", "bogus": 1}
            )
        assert err.value.code == 6001 and "bogus" in str(err.value)
        with pytest.raises(BusinessRuleError) as err:
            client.create("articoli", {"codice": "NEW2", "descrizione": "x"})
        assert "alq_iva" in str(err.value).lower() or "iva" in str(err.value).lower()
        with pytest.raises(BusinessRuleError):
            client.list_page("articoli", fields=["codice", "bogus"])
        with pytest.raises(BusinessRuleError):
            client.search_page("articoli", [Filter("bogus", "=", 1)])


def test_writes_are_not_retried_and_lost_answers_say_outcome_unknown(
    writable_sim: SimProcess,
) -> None:
    before = writable_sim.admin("GET", "/stats").json()["clienti"]
    with client_for(writable_sim) as client:
        try:
            writable_sim.admin("PUT", "/faults", json={"status": {"503": 1.0}})
            with pytest.raises(PoolExhaustedError):
                client.create("clienti", {"codice": "501.AUTO", "ragione_sociale": "A"})
            writable_sim.admin("DELETE", "/faults")  # PUT merges into the current faults
            writable_sim.admin("PUT", "/faults", json={"drop_after_commit": 1.0})
            with pytest.raises(ErpConnectionError) as err:
                client.create("clienti", {"codice": "501.AUTO", "ragione_sociale": "B"})
            assert err.value.outcome_unknown
        finally:
            writable_sim.admin("DELETE", "/faults")
    # the 503 did nothing; the dropped answer came after the commit: one new customer
    assert writable_sim.admin("GET", "/stats").json()["clienti"] == before + 1


# --- errors -------------------------------------------------------------------------------


def test_wrong_password_is_401_and_never_retried(shared_sim: SimProcess) -> None:
    counter = Counter()
    with client_for(shared_sim, counter, password="wrong-one") as client:
        with pytest.raises(AuthError) as err:
            client.list_page("articoli")
        with pytest.raises(AuthError):
            client.installation()
    assert err.value.status == 401 and err.value.code == 2002
    assert counter.statuses == [401, 401]
    assert "wrong-one" not in repr(err.value) + str(err.value)


def test_changed_password_gives_auth_error(writable_sim: SimProcess) -> None:
    with client_for(writable_sim) as client:
        client.list_page("articoli", max=1)
        writable_sim.admin("PUT", f"/users/{writable_sim.user}", json={"password": "another-pw"})
        try:
            with pytest.raises(AuthError):
                client.list_page("articoli", max=1)
        finally:
            password = {"password": writable_sim.password}
            writable_sim.admin("PUT", f"/users/{writable_sim.user}", json=password)
        assert client.list_page("articoli", max=1).records


@pytest.mark.parametrize("azienda", ["", "NOPE"])
def test_missing_or_wrong_company_is_context_error(shared_sim: SimProcess, azienda: str) -> None:
    with client_for(shared_sim, azienda=azienda) as client:
        with pytest.raises(ContextMissingError) as err:
            client.list_page("articoli", max=1)
        assert client.installation()["versione"]  # needs no company
    assert err.value.code == 1001


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ({"status": {"503": 1.0}}, PoolExhaustedError),
        ({"status": {"500": 1.0}}, LinkDownError),
        ({"status": {"408": 1.0}}, ErpTimeoutError),
        ({"malformed": 1.0}, MalformedResponseError),
        ({"drop_before_commit": 1.0}, ErpConnectionError),
    ],
)
def test_persistent_faults_raise_typed_errors_after_bounded_retries(
    big_sim: SimProcess, faults: Callable[..., None], spec: dict[str, Any], kind: type[ErpError]
) -> None:
    faults(**spec)
    counter = Counter()
    with client_for(big_sim, counter, max_retries=2) as client, pytest.raises(kind) as err:
        client.list_page("articoli", max=10)
    assert err.value.path == "/webapi/risorse/articoli"
    if kind is MalformedResponseError:
        assert "not valid JSON" in str(err.value)
    if kind is not ErpConnectionError:
        assert len(counter.statuses) == 3  # the first try and two retries


def test_transient_faults_are_retried_away(
    big_sim: SimProcess, big_keys: list[str], faults: Callable[..., None]
) -> None:
    faults(status={"503": 0.3, "500": 0.1}, drop_before_commit=0.1, malformed=0.1)
    counter = Counter()
    with client_for(big_sim, counter, max_retries=30) as client:
        for key in big_keys[:40]:
            record = client.get("articoli", key, fields=["codice"])
            assert record is not None and record["codice"] == key
            found = client.search_page("articoli", [Filter("codice", "=", key)])
            assert [r["codice"] for r in found.records] == [key]
    assert {503, 500} <= set(counter.statuses)


def test_sixth_request_in_flight_gets_503(big_sim: SimProcess, faults: Callable[..., None]) -> None:
    faults(latency_ms=300, pool_size=1)
    errors: list[ErpError] = []

    def call() -> None:
        try:
            with client_for(big_sim, max_retries=0) as client:
                client.list_page("articoli", max=1)
        except ErpError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors and all(isinstance(e, PoolExhaustedError) for e in errors)
    assert any(e.code == 3002 for e in errors)


def test_one_client_pages_two_resources_from_two_threads(
    big_sim: SimProcess, big_keys: list[str]
) -> None:
    results: dict[str, list[str]] = {}
    with client_for(big_sim) as client:

        def page_all(resource: str) -> None:
            results[resource] = [
                r["codice"]
                for p in client.iter_pages(resource, fields=["codice"], page_size=300)
                for r in p.records
            ]

        threads = [
            threading.Thread(target=page_all, args=(name,)) for name in ("articoli", "clienti")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        customers = big_sim.admin("GET", "/stats").json()["clienti"]
    assert results["articoli"] == big_keys
    assert len(set(results["clienti"])) == customers


def test_unreachable_erp_is_a_connection_error() -> None:
    config = ErpConfig(base_url="http://127.0.0.1:9/webapi", user="u", password="p", azienda="A")
    config = dataclasses.replace(config, max_retries=1, backoff_base_s=0.001)
    with MexalClient(config) as client, pytest.raises(ErpConnectionError) as err:
        client.check()
    assert "cannot reach the ERP" in str(err.value)


def test_an_erp_asking_to_come_back_in_an_hour_is_given_up_on_within_the_limit() -> None:
    """A server that stays busy and asks (Retry-After) for an hour: the client retries
    only within max_unavailable_s of its first busy answer, then says so."""
    answered: list[str] = []

    class Busy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answered.append(self.path)
            body = json.dumps({"error": {"response-detail": "3002 - troppe richieste"}}).encode()
            self.send_response(503)
            self.send_header("Retry-After", "3600")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/webapi"
    config = ErpConfig(
        base_url=url,
        user="u",
        password="p",
        azienda="A",
        max_retries=1000,
        backoff_max_s=0.2,
        max_unavailable_s=1.0,
    )
    try:
        with MexalClient(config) as client:
            began = time.monotonic()
            with pytest.raises(PoolExhaustedError) as err:
                client.list_page("articoli")
            took = time.monotonic() - began
            assert 0.8 <= took < 5
            assert "stayed unavailable for" in str(err.value)
            assert "retry in 3600 s" in str(err.value)
            tries = len(answered)
            assert 3 <= tries < 50
            began = time.monotonic()
            with pytest.raises(PoolExhaustedError, match="stayed unavailable"):
                client.get("articoli", "A")
            assert time.monotonic() - began < 1 and len(answered) == tries + 1
    finally:
        server.shutdown()
        server.server_close()


def test_a_request_that_cannot_be_written_repeats_no_header_and_is_not_retried() -> None:
    """A header value HTTP cannot carry (a line break that got past the settings): the
    error quoted the Authorization header, user and password in base64, and was
    retried as a lost connection. It says no header value, and is not retried."""
    import base64

    from stub_http import answer_json, answering

    asked: list[str] = []
    reply = answer_json(b"{}")

    def answer(handler: Any) -> None:
        asked.append(handler.path)
        reply(handler)

    with answering(answer) as url:
        config = ErpConfig(
            base_url=url, user="demo", password="S3cret!pw", azienda="A", dominio="C"
        )
        object.__setattr__(config, "dominio", "CLOUD\n")  # past the settings' own check
        with MexalClient(config) as client, pytest.raises(ErpConnectionError) as err:
            client.check()
    said = str(err.value)
    secret = base64.b64encode(b"demo:S3cret!pw").decode()
    assert secret not in said and "S3cret" not in said and "Passepartout" not in said, said
    assert "could not be written as HTTP" in said, said
    assert not err.value.retryable and asked == []
