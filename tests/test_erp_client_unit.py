"""MexalClient against scripted replies (httpx.MockTransport): headers, decoding,
error mapping, retries and backoff, secrets. The simulator tests are in
test_erp_client_sim.py; these cover replies the simulator cannot be made to send.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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

PASSWORD = "s3cret-Pa55"
BASE = "https://erp.example:9004/webapi"

Handler = Callable[[httpx.Request], httpx.Response]


def make_config(**overrides: Any) -> ErpConfig:
    options: dict[str, Any] = {
        "base_url": BASE,
        "user": "mario",
        "password": PASSWORD,
        "azienda": "DEM",
        "anno": 2025,
        "max_retries": 3,
        "backoff_base_s": 0.5,
        "backoff_max_s": 4.0,
    }
    options.update(overrides)
    return ErpConfig(**options)


class Recorder:
    """Collects requests and the backoff sleeps a client asked for."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def client(self, **overrides: Any) -> MexalClient:
        return MexalClient(
            make_config(**overrides),
            transport=httpx.MockTransport(self),
            sleep=self.sleeps.append,
            jitter=lambda: 1.0,
        )


def erp_error(status: int, detail: str | None) -> httpx.Response:
    if detail is None:
        return httpx.Response(status)
    body = {
        "error": {
            "response-detail": detail,
            "request-id": "r1",
            "request-method": "GET",
            "request-uri": "/webapi/risorse/articoli",
            "timestamp": "03/09/2025 10:15:00",
        }
    }
    return httpx.Response(status, json=body)


def page(records: list[dict[str, Any]], next_token: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"data_ric_elab": "20250903 101500"}
    if records:
        body["dati"] = records
    if next_token:
        body["next"] = next_token
    return httpx.Response(200, json=body)


# --- headers and shapes ---------------------------------------------------------------


def test_headers_carry_credentials_and_company_context() -> None:
    rec = Recorder(lambda r: page([{"codice": "A"}]))
    with rec.client(dominio="CLOUD1", sottoazienda="2", magazzino=3) as client:
        client.list_page("articoli", fields=["codice", "descrizione"], max=50)
    request = rec.requests[0]
    token = base64.b64encode(f"mario:{PASSWORD}".encode()).decode()
    assert request.headers["Authorization"] == f"Passepartout {token} Dominio=CLOUD1"
    assert (
        request.headers["Coordinate-Gestionale"]
        == "Azienda=DEM SottoAzienda=2 Anno=2025 Magazzino=3"
    )
    assert request.url.path == "/webapi/risorse/articoli"
    assert dict(request.url.params) == {"fields": "codice,descrizione", "max": "50"}


def test_installation_is_asked_without_company_context() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={"versione": "2.9.17"}))
    with rec.client() as client:
        assert client.installation() == {"versione": "2.9.17"}
    request = rec.requests[0]
    assert request.url.path == "/webapi/risorse/dati-generali/installazione"
    assert "Coordinate-Gestionale" not in request.headers
    assert request.headers["Authorization"].startswith("Passepartout ")
    token = base64.b64encode(f"mario:{PASSWORD}".encode()).decode()
    assert request.headers["Authorization"] == f"Passepartout {token}"


def test_numbers_decode_to_decimal_and_int_and_page_fields() -> None:
    raw = (
        b'{"dati": [{"codice": "A1", "prz_listino": [[1, 12.5], [2, 0.1]], "qta": 3}],'
        b' "next": "tok-1", "data_ric_elab": "20250903 101500"}'
    )
    rec = Recorder(lambda r: httpx.Response(200, content=raw))
    with rec.client() as client:
        result = client.list_page("articoli")
    record = result.records[0]
    assert record["prz_listino"] == [[1, Decimal("12.5")], [2, Decimal("0.1")]]
    assert record["qta"] == 3 and isinstance(record["qta"], int)
    assert result.next_token == "tok-1"
    assert result.data_ric_elab == dt.datetime(2025, 9, 3, 10, 15)


def test_empty_last_page_has_no_records_and_no_token() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={"data_ric_elab": "20250903 101500"}))
    with rec.client() as client:
        result = client.list_page("articoli", next_token="t9")
    assert result.records == [] and result.next_token is None
    assert rec.requests[0].url.params["next"] == "t9"


def test_search_sends_filters_and_decimal_values_exactly() -> None:
    rec = Recorder(lambda r: page([]))
    filters = [
        Filter("descrizione", "contiene", "vite", case_insensitive=True),
        Filter("prezzo", ">=", Decimal("12.3456")),
        Filter("dt_mod_sistema", ">=", dt.date(2025, 9, 1)),
        Filter("numero", "=", [15, 16]),
    ]
    with rec.client() as client:
        client.search_page("articoli", filters, max=10)
    request = rec.requests[0]
    assert request.method == "POST"
    assert request.url.path == "/webapi/risorse/articoli/ricerca"
    assert b"12.3456" in request.content
    assert json.loads(request.content) == {
        "filtri": [
            {
                "campo": "descrizione",
                "condizione": "contiene",
                "valore": "vite",
                "case_insensitive": True,
            },
            {"campo": "prezzo", "condizione": ">=", "valore": 12.3456},
            {"campo": "dt_mod_sistema", "condizione": ">=", "valore": "20250901"},
            {"campo": "numero", "condizione": "=", "valore": [15, 16]},
        ]
    }


def test_unknown_condition_is_refused() -> None:
    with pytest.raises(ValueError, match="'like'"):
        Filter("codice", "like", "A")


def test_decimal_too_precise_for_json_is_refused_before_sending() -> None:
    rec = Recorder(lambda r: httpx.Response(204))
    with rec.client() as client, pytest.raises(ValueError, match="more digits"):
        client.update("articoli", "A1", {"prezzo": Decimal("1234567890.1234567891")})
    assert rec.requests == []


def test_keys_with_slash_travel_hex_encoded_others_as_they_are() -> None:
    rec = Recorder(lambda r: httpx.Response(200, json={"codice": "x"}))
    with rec.client() as client:
        client.get("articoli", "KIT/0001")
        client.get("documenti/ordini-clienti", "OC+1+15")
        client.get("articoli", "A B")
    hexed, composite, spaced = rec.requests
    assert hexed.url.path == "/webapi/risorse/articoli/4B49542F30303031"
    assert hexed.url.params["encoding"] == "hex"
    assert composite.url.raw_path == b"/webapi/risorse/documenti/ordini-clienti/OC+1+15"
    assert spaced.url.raw_path == b"/webapi/risorse/articoli/A%20B"


def test_get_returns_none_on_404_and_info_parses_fields() -> None:
    def handler(r: httpx.Request) -> httpx.Response:
        if r.url.params.get("info") == "true":
            return httpx.Response(
                200,
                json={
                    "dati": [
                        {"nome": "codice", "tipo": "C", "lunghezza": 20, "chiave": True},
                        {"nome": "prz_listino", "tipo": "N", "lunghezza": 15, "dim_array": 9},
                    ]
                },
            )
        return httpx.Response(404)

    rec = Recorder(handler)
    with rec.client() as client:
        assert client.get("articoli", "NOPE") is None
        fields = client.info("articoli")
    assert len(rec.requests) == 2  # a 404 is an answer, not retried
    assert [(f.name, f.key, f.is_array) for f in fields] == [
        ("codice", True, False),
        ("prz_listino", False, True),
    ]


# --- writes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "key"),
    [
        ("/webapi/risorse/documenti/ordini-clienti/OC+1+541", "OC+1+541"),
        ("https://erp.example:9004/webapi/risorse/documenti/ordini-clienti/OC+1+541", "OC+1+541"),
        ("/webapi/risorse/documenti/ordini-clienti/4F432B312B35?encoding=hex", "OC+1+5"),
        ("/webapi/risorse/documenti/ordini-clienti/OC%2B1%2B7", "OC+1+7"),
    ],
)
def test_create_returns_key_from_location(location: str, key: str) -> None:
    rec = Recorder(lambda r: httpx.Response(201, headers={"Location": location}))
    with rec.client() as client:
        assert client.create("documenti/ordini-clienti", {"sigla": "OC", "numero": 0}) == key
    assert json.loads(rec.requests[0].content) == {"sigla": "OC", "numero": 0}


@pytest.mark.parametrize(
    "location",
    [None, "", "/webapi/risorse/clienti/501.1", "/webapi/risorse/documenti/ordini-clienti/"],
)
def test_create_without_usable_location_says_outcome_unknown(location: str | None) -> None:
    headers = {"Location": location} if location is not None else {}
    rec = Recorder(lambda r: httpx.Response(201, headers=headers))
    with rec.client() as client, pytest.raises(MalformedResponseError) as err:
        client.create("documenti/ordini-clienti", {"sigla": "OC"})
    assert err.value.outcome_unknown
    assert "unknown" in str(err.value)
    assert len(rec.requests) == 1


def test_update_and_delete() -> None:
    rec = Recorder(lambda r: httpx.Response(204))
    with rec.client() as client:
        client.update("documenti/ordini-clienti", "OC+1+5", {"nota": "x"}, solo_testata=True)
        client.delete("articoli", "KIT/9")
    put, delete = rec.requests
    assert put.method == "PUT" and put.url.params["solo_testata"] == "true"
    assert delete.method == "DELETE" and delete.url.params["encoding"] == "hex"


def _write(client: MexalClient, method: str) -> None:
    if method == "create":
        client.create("articoli", {"codice": "X"})
    elif method == "update":
        client.update("articoli", "X", {"descrizione": "y"})
    else:
        client.delete("articoli", "X")


@pytest.mark.parametrize("method", ["create", "update", "delete"])
def test_writes_are_never_retried_after_an_answer_that_may_have_applied_them(
    method: str,
) -> None:
    rec = Recorder(lambda r: erp_error(500, "5001 - collegamento interrotto"))
    with rec.client() as client, pytest.raises(LinkDownError) as err:
        _write(client, method)
    assert err.value.outcome_unknown
    assert len(rec.requests) == 1 and rec.sleeps == []


@pytest.mark.parametrize("method", ["create", "update", "delete"])
def test_a_write_the_erp_refused_as_busy_is_sent_again_after_a_pause(method: str) -> None:
    """The ERP answers 503 to the request over its in-flight limit before doing anything
    with it: sending it again cannot apply it twice."""
    ok = (
        httpx.Response(201, headers={"Location": "/webapi/risorse/articoli/X"})
        if method == "create"
        else httpx.Response(204)
    )
    busy = erp_error(503, "3002 - numero massimo di richieste contemporanee raggiunto")
    rec = Recorder(sequence(busy, busy, ok))
    with rec.client(max_retries=3) as client:
        _write(client, method)
    assert len(rec.requests) == 3 and len(rec.sleeps) == 2
    rec = Recorder(lambda r: erp_error(503, None))
    with rec.client(max_retries=2) as client, pytest.raises(PoolExhaustedError):
        _write(client, method)
    assert len(rec.requests) == 3  # bounded, as reads are


def test_a_busy_3002_is_not_taken_for_rejected_credentials() -> None:
    rec = Recorder(
        sequence(erp_error(400, "3002 - pool di connessioni esaurito"), page([{"codice": "A"}]))
    )
    with rec.client() as client:
        assert [r["codice"] for r in client.list_page("articoli").records] == ["A"]
    rec = Recorder(lambda r: erp_error(400, "3002 - utente o password errati"))
    with rec.client() as client, pytest.raises(AuthError):
        client.list_page("articoli")
    assert len(rec.requests) == 1


def test_write_whose_answer_is_lost_reports_outcome_unknown() -> None:
    def handler(r: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset by peer", request=r)

    rec = Recorder(handler)
    with rec.client() as client, pytest.raises(ErpConnectionError) as err:
        client.create("articoli", {"codice": "X"})
    assert err.value.outcome_unknown and "unknown" in str(err.value)
    assert len(rec.requests) == 1


def test_write_that_could_not_connect_is_known_not_applied() -> None:
    def handler(r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=r)

    rec = Recorder(handler)
    with rec.client() as client, pytest.raises(ErpConnectionError) as err:
        client.update("articoli", "X", {"descrizione": "y"})
    assert not err.value.outcome_unknown


# --- error mapping ----------------------------------------------------------------------

ERRORS = [
    (401, None, AuthError, None),
    (401, "2002 - credenziali non valide", AuthError, 2002),
    (400, "3002 - utente o password errati", AuthError, 3002),
    (400, "1001 - coordinate gestionale mancanti", ContextMissingError, 1001),
    (400, "1003 - token next non valido", TokenRejectedError, 1003),
    (404, None, NotFoundError, None),
    (400, "6001 - errore gestionale [Nome campo 'xyz' non valido]", BusinessRuleError, 6001),
    (503, "3002 - troppe richieste contemporanee", PoolExhaustedError, 3002),
    (408, None, ErpTimeoutError, None),
    (500, "5001 - collegamento al gestionale interrotto", LinkDownError, 5001),
    (502, None, LinkDownError, None),
    (418, None, ErpError, None),
]


@pytest.mark.parametrize(("status", "detail", "kind", "code"), ERRORS)
def test_erp_errors_become_typed_exceptions(
    status: int, detail: str | None, kind: type[ErpError], code: int | None
) -> None:
    rec = Recorder(lambda r: erp_error(status, detail))
    with rec.client(max_retries=0) as client, pytest.raises(ErpError) as err:
        client.list_page("articoli")
    assert type(err.value) is kind
    assert err.value.status == status
    assert err.value.code == code
    assert err.value.detail == detail
    assert err.value.method == "GET"
    assert err.value.path == "/webapi/risorse/articoli"
    assert "GET /webapi/risorse/articoli" in str(err.value)
    if detail:
        assert detail in str(err.value)


def test_any_400_on_a_request_with_a_token_is_a_rejected_token() -> None:
    rec = Recorder(lambda r: erp_error(400, "9999 - qualcosa"))
    with rec.client() as client, pytest.raises(TokenRejectedError):
        client.list_page("articoli", next_token="t1")
    assert len(rec.requests) == 1


def test_business_error_detail_of_unknown_field_is_kept() -> None:
    rec = Recorder(
        lambda r: erp_error(400, "6001 - errore gestionale [Nome campo 'pippo' non valido]")
    )
    with rec.client() as client, pytest.raises(BusinessRuleError) as err:
        client.create("articoli", {"pippo": 1})
    assert "Nome campo 'pippo' non valido" in str(err.value)


# --- retries --------------------------------------------------------------------------


def sequence(*responses: httpx.Response | Exception) -> Handler:
    items = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        item = items.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handler


def test_reads_retry_with_growing_backoff_then_succeed() -> None:
    rec = Recorder(
        sequence(
            erp_error(503, "3002 - troppe richieste"),
            erp_error(500, "5001 - link"),
            httpx.Response(408),
            page([{"codice": "A"}]),
        )
    )
    with rec.client() as client:
        assert client.list_page("articoli").records == [{"codice": "A"}]
    assert len(rec.requests) == 4
    assert rec.sleeps == [0.5, 1.0, 2.0]


def test_backoff_is_capped_and_jittered() -> None:
    jitters = iter([0.0, 0.5, 1.0, 0.0, 1.0])
    sleeps: list[float] = []
    client = MexalClient(
        make_config(max_retries=5, backoff_base_s=1.0, backoff_max_s=3.0),
        transport=httpx.MockTransport(lambda r: erp_error(503, None)),
        sleep=sleeps.append,
        jitter=lambda: next(jitters),
    )
    with client, pytest.raises(PoolExhaustedError):
        client.list_page("articoli")
    assert sleeps == [0.5, 1.5, 3.0, 1.5, 3.0]


def test_retry_after_header_is_honoured_within_the_cap() -> None:
    rec = Recorder(
        sequence(httpx.Response(503, headers={"Retry-After": "3"}), page([{"codice": "A"}]))
    )
    with rec.client() as client:
        client.list_page("articoli")
    assert rec.sleeps == [3.0]


def test_retry_after_is_never_undercut_by_the_jitter() -> None:
    rec = Recorder(
        sequence(httpx.Response(503, headers={"Retry-After": "3"}), page([{"codice": "A"}]))
    )
    client = MexalClient(
        make_config(backoff_max_s=30),
        transport=httpx.MockTransport(rec),
        sleep=rec.sleeps.append,
        jitter=lambda: 0.0,
    )
    with client:
        client.list_page("articoli")
    assert rec.sleeps == [3.0]


class BusyErp:
    """An ERP that answers 503 asking for an hour (or serves, once `up`), and a clock
    that the client's backoff sleeps move on."""

    def __init__(self) -> None:
        self.up = False
        self.now = 1000.0
        self.requests = 0
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.up:
            return page([{"codice": "A"}])
        body = {"error": {"response-detail": "3002 - troppe richieste"}}
        return httpx.Response(503, json=body, headers={"Retry-After": "3600"})

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def client(self, **overrides: Any) -> MexalClient:
        options = {"max_retries": 1000, "backoff_max_s": 30.0, **overrides}
        return MexalClient(
            make_config(**options),
            transport=httpx.MockTransport(self),
            sleep=self.sleep,
            jitter=lambda: 1.0,
            clock=lambda: self.now,
        )


def test_a_busy_erp_asking_for_an_hour_holds_a_sync_for_minutes_not_hours() -> None:
    erp = BusyErp()
    with erp.client() as client:
        with pytest.raises(PoolExhaustedError) as err:
            client.list_page("articoli")
        # retried every 30 s (the longest backoff), for the 5 minutes of the limit
        assert erp.sleeps == [30.0] * 10
        said = str(err.value)
        assert "ERP is busy" in said and "stayed unavailable for 5 min 0 s" in said
        assert "retry in 3600 s" in said and "retries stop after 5 min 0 s" in said
        # the next requests of the same sync are not held again: one try each
        for _ in range(3):
            with pytest.raises(PoolExhaustedError, match="stayed unavailable for 5 min"):
                client.get("articoli", "A")
        assert erp.requests == 11 + 3 and len(erp.sleeps) == 10
        # once the ERP answers, a new busy spell is waited out again
        erp.up = True
        assert client.list_page("articoli").records == [{"codice": "A"}]
        erp.up = False
        with pytest.raises(PoolExhaustedError, match="stayed unavailable for 5 min 0 s"):
            client.list_page("articoli")
        assert len(erp.sleeps) == 20


def test_a_busy_spell_long_past_does_not_cut_the_retries_of_a_new_one() -> None:
    erp = BusyErp()
    with erp.client() as client:
        with pytest.raises(PoolExhaustedError):
            client.list_page("articoli")
        erp.now += 3600  # an idle hour (a long-lived client: the UI, the service)
        with pytest.raises(PoolExhaustedError, match="stayed unavailable for 5 min 0 s"):
            client.list_page("articoli")
        assert len(erp.sleeps) == 20


def test_attempts_still_bound_the_retries_and_the_error_says_how_long_it_was_busy() -> None:
    erp = BusyErp()
    client = erp.client(max_retries=3, backoff_max_s=4.0)
    with client, pytest.raises(PoolExhaustedError) as err:
        client.list_page("articoli")
    assert erp.sleeps == [4.0, 4.0, 4.0]
    assert "stayed unavailable for 12 s" in str(err.value)
    assert "retries stop" not in str(err.value)


def test_a_body_that_does_not_match_its_encoding_is_a_malformed_reply() -> None:
    """A proxy's error page labelled gzip but sent plain: a typed, retried error."""

    def bad(_request: Any = None) -> httpx.Response:
        body = httpx.ByteStream(b"<html>502 Bad Gateway</html>")
        return httpx.Response(502, headers={"Content-Encoding": "gzip"}, stream=body)

    rec = Recorder(sequence(bad(), page([{"codice": "A"}])))
    with rec.client() as client:
        assert len(client.list_page("articoli").records) == 1
    rec = Recorder(bad)
    with rec.client(max_retries=1) as client, pytest.raises(MalformedResponseError):
        client.list_page("articoli")
    rec = Recorder(bad)
    with rec.client() as client, pytest.raises(MalformedResponseError) as err:
        client.create("articoli", {"codice": "X"})
    assert err.value.outcome_unknown and len(rec.requests) == 1


def test_a_reply_in_another_declared_charset_is_read_as_written() -> None:
    """An ERP set up for windows-1252: its accented descriptions arrive intact, on
    every way a list page is read (decoded at once, lazily, record texts)."""
    body = (
        '{"dati": [{"codice": "A", "descrizione": "Caffè però 5€"}],'
        ' "data_ric_elab": "20250903 101500"}'
    ).encode("cp1252")
    ctype = {"Content-Type": "application/json; charset=windows-1252"}
    rec = Recorder(lambda r: httpx.Response(200, content=body, headers=ctype))
    with rec.client() as client:
        assert client.list_page("articoli").records[0]["descrizione"] == "Caffè però 5€"
        pages = list(client.iter_pages("articoli", decimals=False, lazy=True))
    assert pages[0].records == [{"codice": "A", "descrizione": "Caffè però 5€"}]
    assert "Caffè però 5€".encode() in pages[0].content  # the texts a sync digests
    # a byte-order mark before UTF-8 JSON is dropped
    bom = Recorder(lambda r: httpx.Response(200, content=b"\xef\xbb\xbf" + page_body("B")))
    with bom.client() as client:
        assert client.list_page("articoli").records[0]["codice"] == "B"


def page_body(key: str) -> bytes:
    return json.dumps({"dati": [{"codice": key}], "data_ric_elab": "20250903 101500"}).encode()


@pytest.mark.parametrize(
    ("ctype", "said"),
    [
        ("application/json; charset=klingon-8", "unknown charset 'klingon-8'"),
        ("application/json; charset=windows-1252", "not valid windows-1252"),
    ],
)
def test_a_reply_that_breaks_its_declared_charset_is_malformed(ctype: str, said: str) -> None:
    body = b'{"dati": [{"codice": "A", "descrizione": "\x81"}]}'  # 0x81: not in cp1252
    rec = Recorder(lambda r: httpx.Response(200, content=body, headers={"Content-Type": ctype}))
    with rec.client(max_retries=0) as client, pytest.raises(MalformedResponseError) as err:
        client.list_page("articoli")
    assert said in str(err.value)


def test_retries_are_bounded() -> None:
    rec = Recorder(lambda r: erp_error(503, "3002 - troppe richieste"))
    with rec.client(max_retries=2) as client, pytest.raises(PoolExhaustedError):
        client.search_page("articoli", [Filter("codice", "=", "A")])
    assert len(rec.requests) == 3


def test_connection_errors_and_timeouts_on_reads_are_retried() -> None:
    def boom(kind: type[httpx.TransportError]) -> Exception:
        return kind("boom", request=httpx.Request("GET", BASE))

    rec = Recorder(
        sequence(
            boom(httpx.ConnectError),
            boom(httpx.RemoteProtocolError),
            boom(httpx.ReadTimeout),
            httpx.Response(200, json={"codice": "A"}),
        )
    )
    with rec.client() as client:
        assert client.get("articoli", "A") == {"codice": "A"}
    assert len(rec.requests) == 4


def test_malformed_json_is_retried_then_reported_clearly() -> None:
    rec = Recorder(lambda r: httpx.Response(200, content=b'{"dati": [{"codice": "A"'))
    with rec.client(max_retries=1) as client, pytest.raises(MalformedResponseError) as err:
        client.list_page("articoli")
    assert len(rec.requests) == 2
    assert "not valid JSON" in str(err.value)
    assert '{"dati": [{"codice": "A"' in str(err.value)


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b'{"dati": {"codice": "A"}}',
        b'{"dati": ["A"]}',
        b'{"dati": [], "next": 5}',
        b'{"dati": [], "data_ric_elab": "2025-09-03"}',
        b'{"dati": [{"prezzo": NaN}]}',
    ],
)
def test_wrong_shapes_are_malformed_responses(body: bytes) -> None:
    rec = Recorder(lambda r: httpx.Response(200, content=body))
    with rec.client(max_retries=0) as client, pytest.raises(MalformedResponseError):
        client.list_page("articoli")


def test_401_is_never_retried() -> None:
    rec = Recorder(lambda r: erp_error(401, None))
    with rec.client() as client, pytest.raises(AuthError):
        client.list_page("articoli")
    assert len(rec.requests) == 1 and rec.sleeps == []


def test_request_with_a_token_is_not_retried() -> None:
    rec = Recorder(lambda r: erp_error(503, None))
    with rec.client() as client, pytest.raises(PoolExhaustedError):
        client.list_page("articoli", next_token="t")
    assert len(rec.requests) == 1


# --- iter_pages -----------------------------------------------------------------------


class FakeList:
    """A tiny list+search server with single-use tokens that can be told to fail."""

    def __init__(self, keys: list[str], fail_tokens: dict[int, httpx.Response | Exception]) -> None:
        self.keys = sorted(keys)
        self.fail_tokens = fail_tokens  # page number -> what to answer instead
        self.tokens: dict[str, tuple[list[str], int]] = {}
        self.page_no = 0
        self.searches: list[Any] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        size = int(request.url.params["max"])
        token = request.url.params.get("next")
        if token:
            self.page_no += 1
            failure = self.fail_tokens.pop(self.page_no, None)
            pending = self.tokens.pop(token, None)
            if failure is not None:
                if isinstance(failure, Exception):
                    raise failure
                return failure
            if pending is None:
                return erp_error(400, "1003 - token next non valido")
            keys, offset = pending
        else:
            keys = self.keys
            if request.method == "POST":
                filtri = json.loads(request.content)["filtri"]
                self.searches.append(filtri)
                for f in filtri:
                    if f["condizione"] == ">":
                        keys = [k for k in keys if k > f["valore"]]
                    elif f["condizione"] == "inizia_per":
                        keys = [k for k in keys if k.startswith(f["valore"])]
            offset = 0
        chunk = keys[offset : offset + size]
        nxt = None
        if offset + size < len(keys):
            nxt = f"tok{len(self.tokens)}-{offset}"
            self.tokens[nxt] = (keys, offset + size)
        return page([{"codice": k} for k in chunk], nxt)


def collect(client: MexalClient, **kwargs: Any) -> list[str]:
    return [r["codice"] for p in client.iter_pages("articoli", **kwargs) for r in p.records]


KEYS = [f"A{i:04d}" for i in range(95)]


@pytest.mark.parametrize(
    "failure",
    [
        erp_error(400, "1003 - token next non valido"),
        erp_error(503, "3002 - troppe richieste"),
        erp_error(500, None),
        httpx.Response(200, content=b"not json"),
        httpx.RemoteProtocolError("dropped", request=httpx.Request("GET", BASE)),
    ],
)
def test_iter_pages_resumes_after_a_failed_token_without_gaps_or_repeats(
    failure: httpx.Response | Exception,
) -> None:
    fake = FakeList(KEYS, {2: failure})
    with MexalClient(make_config(), transport=httpx.MockTransport(fake), sleep=lambda s: None) as c:
        assert collect(c, page_size=10) == KEYS
    assert fake.searches[0] == [{"campo": "codice", "condizione": ">", "valore": "A0019"}]


def test_iter_pages_resumed_search_keeps_the_original_filters() -> None:
    keys = KEYS + [f"B{i:04d}" for i in range(30)]
    fake = FakeList(keys, {1: erp_error(400, "1003 - token next non valido")})
    with MexalClient(make_config(), transport=httpx.MockTransport(fake)) as c:
        got = collect(c, page_size=10, filters=[Filter("codice", "inizia_per", "B")])
    assert got == [k for k in keys if k.startswith("B")]
    assert fake.searches[1] == [
        {"campo": "codice", "condizione": "inizia_per", "valore": "B"},
        {"campo": "codice", "condizione": ">", "valore": "B0009"},
    ]


def test_iter_pages_survives_every_token_failing() -> None:
    fake = FakeList(KEYS, {n: erp_error(400, "1003 - x") for n in range(1, 50)})
    with MexalClient(make_config(), transport=httpx.MockTransport(fake)) as c:
        assert collect(c, page_size=7) == KEYS


def test_iter_pages_does_not_hide_credential_errors() -> None:
    fake = FakeList(KEYS, {1: erp_error(401, None)})
    client = MexalClient(make_config(), transport=httpx.MockTransport(fake))
    with client, pytest.raises(AuthError):
        collect(client, page_size=10)
    assert fake.searches == []


def test_iter_pages_gives_up_when_resuming_keeps_failing() -> None:
    fake = FakeList(KEYS, {1: erp_error(400, "1003 - x")})
    calls = {"n": 0}

    def handler(r: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if r.method == "POST":
            return erp_error(503, None)
        return fake(r)

    client = MexalClient(
        make_config(max_retries=2), transport=httpx.MockTransport(handler), sleep=lambda s: None
    )
    with client, pytest.raises(PoolExhaustedError):
        collect(client, page_size=10)
    assert calls["n"] == 2 + 3  # two list pages, then the resuming search and its 2 retries


# --- concurrency and secrets ------------------------------------------------------------


def test_no_more_requests_in_flight_than_configured() -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def handler(r: httpx.Request) -> httpx.Response:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.01)  # stands for server work, so requests overlap
        with lock:
            state["now"] -= 1
        return page([{"codice": "A"}])

    client = MexalClient(make_config(max_in_flight=2), transport=httpx.MockTransport(handler))
    threads = [
        threading.Thread(target=lambda: [client.list_page("articoli") for _ in range(5)])
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert state["peak"] == 2


def test_in_flight_limit_above_five_is_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and 5"):
        make_config(max_in_flight=6)


def test_password_never_shows_in_errors_logs_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    encoded = base64.b64encode(f"mario:{PASSWORD}".encode()).decode()
    responses = [
        erp_error(401, None),
        erp_error(400, "1001 - manca"),
        erp_error(503, None),
        httpx.Response(200, content=b"garbage"),
    ]
    caplog.set_level(logging.DEBUG, logger="passweb_tui.erp")
    texts: list[str] = []
    for response in responses:
        rec = Recorder(lambda r, response=response: response)
        client = rec.client(max_retries=1)
        texts += [repr(client), repr(client.config), str(client.config)]
        with pytest.raises(ErpError) as err:
            client.list_page("articoli")
        texts += [str(err.value), repr(err.value), repr(err.value.args)]
        texts += [repr(vars(err.value)), repr(err.value.__cause__), repr(err.value.__context__)]
        client.close()

    def dropped(r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"failed for {r.headers.get('Authorization')!r}"[:6], request=r)

    with pytest.raises(ErpConnectionError) as err:
        Recorder(dropped).client(max_retries=0).list_page("articoli")
    texts += [str(err.value), repr(err.value)]
    texts += [r.getMessage() for r in caplog.records]
    assert any("/webapi/risorse/articoli" in r.getMessage() for r in caplog.records)
    blob = "\n".join(texts)
    assert PASSWORD not in blob
    assert encoded not in blob
    assert "Passepartout" not in blob


def test_each_request_is_logged_once_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="passweb_tui.erp")
    rec = Recorder(lambda r: page([{"codice": "A"}], "secret-token-xyz"))
    with rec.client() as client:
        client.list_page("articoli", next_token="tok-abc", fields=["codice"])
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(lines) == 1
    assert lines[0].startswith("GET /webapi/risorse/articoli")
    assert "200" in lines[0] and " ms" in lines[0]
    assert "tok-abc" not in lines[0]


FAILURES: list[httpx.Response | Exception] = [
    erp_error(400, "1003 - token next non valido"),
    erp_error(503, None),
    httpx.Response(200, content=b"{"),
    httpx.ReadError("dropped", request=httpx.Request("GET", BASE)),
]


@settings(max_examples=60, deadline=None)
@given(
    keys=st.sets(st.text(alphabet="ABC/01", min_size=1, max_size=4), max_size=60),
    size=st.integers(1, 9),
    failing=st.dictionaries(st.integers(1, 40), st.sampled_from(range(len(FAILURES)))),
    filtered=st.booleans(),
)
def test_iter_pages_never_repeats_or_skips_whatever_fails(
    keys: set[str], size: int, failing: dict[int, int], filtered: bool
) -> None:
    fake = FakeList(sorted(keys), {n: FAILURES[i] for n, i in failing.items()})
    filters = [Filter("codice", "inizia_per", "A")] if filtered else []
    with MexalClient(make_config(), transport=httpx.MockTransport(fake), sleep=lambda s: None) as c:
        got = collect(c, page_size=size, filters=filters)
    assert got == sorted(k for k in keys if k.startswith("A") or not filtered)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"base_url": "https://erp.example/api"}, "must end in /webapi"),
        ({"base_url": "erp.example/webapi"}, "http:// or https://"),
        ({"max_retries": -1}, "max_retries"),
        ({"read_timeout_s": 0}, "read_timeout_s"),
        ({"max_in_flight": 0}, "between 1 and 5"),
    ],
)
def test_bad_connection_settings_are_refused_by_name(overrides: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        make_config(**overrides)


def test_check_on_a_server_that_is_not_the_webapi_says_so() -> None:
    rec = Recorder(lambda r: httpx.Response(404, text="<html>not here</html>"))
    with rec.client() as client, pytest.raises(NotFoundError) as err:
        client.check()
    assert f"no Mexal WebAPI answers at {BASE}" in str(err.value)


def test_iter_pages_starts_over_when_a_token_fails_before_any_record() -> None:
    replies = iter(
        [
            page([], "t1"),  # the server cut the first page short, with nothing in it
            erp_error(400, "1003 - token next non valido"),
            page([{"codice": "A"}, {"codice": "B"}], "t2"),
            page([{"codice": "C"}]),
        ]
    )
    rec = Recorder(lambda r: next(replies))
    with rec.client() as client:
        got = [r["codice"] for p in client.iter_pages("articoli") for r in p.records]
    assert got == ["A", "B", "C"]
    assert [r.method for r in rec.requests] == ["GET"] * 4
    assert "next" not in rec.requests[2].url.params


def test_a_read_reply_is_freed_without_the_cycle_collector() -> None:
    """A sync makes the cycle collector run rarely; a page's reply (half a megabyte on a
    real list) must not wait for it: the client unlinks httpx's response/stream cycle."""
    import gc
    import weakref

    seen: list[weakref.ref[httpx.Response]] = []
    rec = Recorder(lambda r: page([{"codice": "A1", "prezzo": 1.5}]))
    client = MexalClient(
        make_config(),
        transport=httpx.MockTransport(rec),
        on_response=lambda response, _s: seen.append(weakref.ref(response)),
    )
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        got = client.list_page("articoli", decimals=False)
        assert got.records == [{"codice": "A1", "prezzo": 1.5}]
        assert got.content is not None and b'"A1"' in got.content
        assert len(seen) == 1 and seen[0]() is None
    finally:
        if was_enabled:
            gc.enable()


def test_a_retry_is_told_only_to_the_listener_of_the_context_that_asked() -> None:
    """A sync hears of its own requests' retries, also of those made by the threads it
    starts (in_context), never of another thread's sharing the client (the dashboard's
    check of the ERP while a run goes on)."""
    import threading

    from passweb_tui.engine.erp.client import RETRY_LISTENER, in_context

    heard: list[tuple[str, int]] = []
    rec = Recorder(lambda r: erp_error(503, "3002 - troppe richieste"))
    with rec.client(max_retries=1) as client:

        def ask(who: str) -> None:
            with pytest.raises(PoolExhaustedError):
                client.list_page(f"articoli-{who}")

        def run() -> None:
            RETRY_LISTENER.set(lambda exc, attempt, retries, delay: heard.append(("run", attempt)))
            ask("run")
            helper = threading.Thread(target=in_context(ask), args=("helper",))
            helper.start()
            helper.join()

        outsider = threading.Thread(target=ask, args=("outsider",))
        runner = threading.Thread(target=run)
        runner.start()
        outsider.start()
        runner.join()
        outsider.join()
    assert heard == [("run", 1), ("run", 1)]
    assert len(rec.requests) == 6  # each of the three asked twice
    assert RETRY_LISTENER.get() is None


def test_a_request_with_no_answer_in_the_read_timeout_is_sent_again_once() -> None:
    """Each wait took read_timeout_s (5 minutes by default, the ERP's own limit for a
    request): one more try, not max_retries more (half an hour before a sync failed,
    with nothing said). The error names the ERP, the wait and the tries."""

    def handler(r: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=r)

    rec = Recorder(handler)
    with (
        rec.client(max_retries=5, read_timeout_s=300.0) as client,
        pytest.raises(ErpTimeoutError) as err,
    ):
        client.list_page("articoli")
    assert len(rec.requests) == 2
    said = str(err.value)
    assert f"the ERP at {BASE} did not answer in 5 min 0 s (ReadTimeout)" in said, said
    assert "(2 tries)" in said, said


def test_a_connection_an_http_url_loses_hints_at_https() -> None:
    """A plain-HTTP request to a TLS port is dropped without an answer: the error says
    which ERP, and that the URL may want https://."""

    def handler(r: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=r
        )

    rec = Recorder(handler)
    plain = BASE.replace("https://", "http://")
    with (
        rec.client(base_url=plain, max_retries=0) as client,
        pytest.raises(ErpConnectionError) as err,
    ):
        client.list_page("articoli")
    said = str(err.value)
    assert f"connection to the ERP at {plain} was lost" in said, said
    assert "the URL should start with https://" in said, said


def test_a_connection_lost_after_the_erp_answered_gives_no_https_hint() -> None:
    """The ERP answered over plain HTTP, then went away mid-run (its process killed):
    the connection was dropped, and the URL is right; no hint at https://."""
    answered: list[str] = []

    def handler(r: httpx.Request) -> httpx.Response:
        if not answered:
            answered.append(r.url.path)
            return httpx.Response(
                200, json={"dati": [{"codice": "A1"}], "data_ric_elab": "20250903 101500"}
            )
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=r
        )

    rec = Recorder(handler)
    plain = BASE.replace("https://", "http://")
    with rec.client(base_url=plain, max_retries=0) as client:
        client.list_page("articoli")
        with pytest.raises(ErpConnectionError) as err:
            client.list_page("articoli")
    said = str(err.value)
    assert f"connection to the ERP at {plain} was lost" in said, said
    assert "https://" not in said, said


def test_a_reply_nested_past_what_can_be_read_is_a_malformed_reply() -> None:
    """A reply of arrays nested 100,000 deep stopped the run with Python's own
    RecursionError, as an unexpected fault; it is a reply that is not JSON as read here."""
    body = b'{"dati": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    rec = Recorder(lambda r: httpx.Response(200, content=body))
    with rec.client(max_retries=0) as client, pytest.raises(MalformedResponseError) as err:
        client.list_page("articoli")
    assert "nested deeper than can be read" in str(err.value)
