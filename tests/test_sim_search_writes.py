"""Contract tests of the simulator's searches and writes, over a real socket.

Searches: every condition, AND of filters, OR of a list value, case_insensitive.
Writes: create (201 + Location, numero 0, 501.AUTO), PUT, DELETE, 6001 errors, and
the modification date every change bumps.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import SimProcess, start_sim


@pytest.fixture(scope="module")
def wsim() -> Iterator[SimProcess]:
    """One simulator for this module; each test writes only records of its own."""
    p = start_sim("--articles", "1500", "--customers", "200", "--orders", "25", "--seed", "11")
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def c(wsim: SimProcess) -> Iterator[httpx.Client]:
    secret = base64.b64encode(f"{wsim.user}:{wsim.password}".encode()).decode()
    headers = {
        "Authorization": f"Passepartout {secret}",
        "Coordinate-Gestionale": f"Azienda={wsim.azienda} Anno={wsim.anno}",
    }
    with httpx.Client(base_url=wsim.url, headers=headers, timeout=30) as client:
        yield client


def search(c: httpx.Client, res: str, *filters: dict[str, Any], **params: Any) -> list[dict]:
    """Every record of a search, following `next`."""
    out: list[dict] = []
    params = {"max": 1000, **params}
    r = c.post(f"/risorse/{res}/ricerca", params=params, json={"filtri": list(filters)})
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        assert "data_ric_elab" in body
        out += body.get("dati", [])
        if "next" not in body:
            return out
        r = c.post(
            f"/risorse/{res}/ricerca",
            params={**params, "next": body["next"]},
            json={"filtri": list(filters)},
        )


def all_articles(c: httpx.Client) -> list[dict]:
    return c.get("/risorse/articoli", params={"max": 5000}).json()["dati"]


def detail(r: httpx.Response) -> str:
    return r.json()["error"]["response-detail"]


def f(campo: str, condizione: str, valore: Any, ci: bool = False) -> dict[str, Any]:
    out = {"campo": campo, "condizione": condizione, "valore": valore}
    if ci:
        out["case_insensitive"] = True
    return out


# ------------------------------------------------------------------ searches
@pytest.mark.parametrize(
    ("cond", "check"),
    [
        ("=", lambda v, x: v == x),
        ("<>", lambda v, x: v != x),
        (">", lambda v, x: v > x),
        ("<", lambda v, x: v < x),
        (">=", lambda v, x: v >= x),
        ("<=", lambda v, x: v <= x),
    ],
)
def test_comparisons_on_a_date_field(c: httpx.Client, cond: str, check: Any) -> None:
    everything = all_articles(c)
    pivot = sorted(a["dt_mod_sistema"] for a in everything)[len(everything) // 2]
    got = search(c, "articoli", f("dt_mod_sistema", cond, pivot))
    expected = [a for a in everything if check(a["dt_mod_sistema"], pivot)]
    assert [a["codice"] for a in got] == [a["codice"] for a in expected]
    assert expected


def test_numeric_comparison(c: httpx.Client) -> None:
    everything = all_articles(c)
    got = search(c, "articoli", f("qta_inventario", ">=", 350))
    assert {a["codice"] for a in got} == {
        a["codice"] for a in everything if a["qta_inventario"] >= 350
    }


def test_contiene_and_inizia_per_with_case(c: httpx.Client) -> None:
    everything = all_articles(c)
    word = everything[0]["descrizione"].split()[0]  # capitalised noun, e.g. "Vite"
    lower = word.lower()
    sensitive = search(c, "articoli", f("descrizione", "contiene", lower))
    insensitive = search(c, "articoli", f("descrizione", "contiene", lower, ci=True))
    assert {a["codice"] for a in insensitive} == {
        a["codice"] for a in everything if lower in a["descrizione"].lower()
    }
    assert {a["codice"] for a in sensitive} == {
        a["codice"] for a in everything if lower in a["descrizione"]
    }
    assert len(insensitive) > len(sensitive)
    starts = search(c, "articoli", f("descrizione", "inizia_per", word))
    assert starts and all(a["descrizione"].startswith(word) for a in starts)
    assert {a["codice"] for a in starts} == {
        a["codice"] for a in everything if a["descrizione"].startswith(word)
    }
    starts_ci = search(c, "articoli", f("descrizione", "inizia_per", word.upper(), ci=True))
    assert {a["codice"] for a in starts_ci} == {a["codice"] for a in starts}


def test_filters_are_anded_and_lists_are_ored(c: httpx.Client) -> None:
    everything = all_articles(c)
    got = search(c, "articoli", f("alq_iva", "=", ["10", "4"]), f("um_principale", "=", "PZ"))
    expected = [a for a in everything if a["alq_iva"] in ("10", "4") and a["um_principale"] == "PZ"]
    assert [a["codice"] for a in got] == [a["codice"] for a in expected]
    assert 0 < len(expected) < len(everything)


def test_key_range_search_for_resuming(c: httpx.Client) -> None:
    got = search(c, "articoli", f("codice", ">", "ART0001400"))
    keys = [a["codice"] for a in got]
    assert keys[0] == "ART0001401"
    assert keys == sorted(keys)
    assert "KIT/0001" in keys


def test_documents_by_key_list(c: httpx.Client) -> None:
    got = search(
        c,
        "documenti/ordini-clienti",
        f("sigla", "=", "OC"),
        f("serie", "=", 1),
        f("numero", "=", [15, 16, 17]),
    )
    assert [d["numero"] for d in got] == [15, 16, 17]


def test_search_with_fields_and_paging(c: httpx.Client) -> None:
    got = search(c, "articoli", f("qta_inventario", ">=", 0), max=100, fields="alq_iva")
    assert len(got) == 1500
    assert set(got[0]) == {"codice", "alq_iva"}


def test_array_field_search(c: httpx.Client) -> None:
    everything = all_articles(c)
    got = search(c, "articoli", f("trasf_sito", "=", "N"))
    assert {a["codice"] for a in got} == {
        a["codice"] for a in everything if any(v == "N" for _, v in a["trasf_sito"])
    }


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"filtri": [f("colore", "=", "rosso")]}, "Nome campo 'colore' non valido"),
        ({"filtri": [f("codice", "circa", "X")]}, "Condizione 'circa' non valida"),
        ({"filtri": [f("dt_mod_sistema", ">=", "ieri")]}, "dt_mod_sistema"),
        ({"filtri": [f("qta_carico", ">", "molti")]}, "qta_carico"),
        ({"filtri": [{"campo": "codice", "condizione": "="}]}, "valore mancante"),
        ({"filters": []}, "filtri"),
        (
            {"filtri": [{**f("codice", "=", "X"), "case_insensitive": "no"}]},
            "case_insensitive 'no'",
        ),
        ({"filtri": [{**f("codice", "=", "X"), "case_insensitive": 1}]}, "case_insensitive 1"),
    ],
)
def test_bad_searches_are_6001(c: httpx.Client, body: dict, needle: str) -> None:
    r = c.post("/risorse/articoli/ricerca", json=body)
    assert r.status_code == 400
    assert detail(r).startswith("6001 - errore gestionale [")
    assert needle in detail(r)


def test_search_token_is_single_use(c: httpx.Client) -> None:
    body = {"filtri": [f("qta_inventario", ">=", 0)]}
    first = c.post("/risorse/articoli/ricerca", params={"max": 10}, json=body).json()
    ok = c.post("/risorse/articoli/ricerca", params={"max": 10, "next": first["next"]}, json=body)
    assert ok.status_code == 200
    again = c.post(
        "/risorse/articoli/ricerca", params={"max": 10, "next": first["next"]}, json=body
    )
    assert again.status_code == 400
    assert detail(again) == "1003 - token next non valido"


def test_order_rows_search(c: httpx.Client) -> None:
    rows = search(c, "documenti/ordini-clienti/righe", f("numero", "=", 2))
    doc = c.get("/risorse/documenti/ordini-clienti/OC+1+2").json()
    assert [r["id_riga"] for r in rows] == [i for i, _ in doc["id_riga"]]
    assert rows[0]["codice_articolo"] == doc["codice_articolo"][0][1]


# -------------------------------------------------------------------- writes
def new_article(code: str, **extra: Any) -> dict[str, Any]:
    return {
        "codice": code,
        "descrizione": "Articolo di prova",
        "alq_iva": "22",
        "prz_listino": [[1, 12.5], [2, 11.0]],
        **extra,
    }


def test_create_get_update_delete_article(c: httpx.Client, wsim: SimProcess) -> None:
    r = c.post("/risorse/articoli", json=new_article("TEST0001"))
    assert r.status_code == 201
    assert r.content == b""
    assert r.headers["location"] == "/webapi/risorse/articoli/TEST0001"
    rec = c.get("/risorse/articoli/TEST0001").json()
    assert rec["prz_listino"] == [[1, 12.5], [2, 11.0]]
    assert rec["dt_mod_sistema"] and rec["ora_mod_sistema"]
    assert rec["gest_precanc"] == ""  # defaults for fields not sent
    keys = [a["codice"] for a in all_articles(c)]
    assert "TEST0001" in keys and keys == sorted(keys)
    dup = c.post("/risorse/articoli", json=new_article("TEST0001"))
    assert dup.status_code == 400 and detail(dup).startswith("6001")
    put = c.put("/risorse/articoli/TEST0001", json={"descrizione": "Cambiato"})
    assert put.status_code == 204
    assert c.get("/risorse/articoli/TEST0001").json()["descrizione"] == "Cambiato"
    assert c.delete("/risorse/articoli/TEST0001").status_code == 204
    assert c.get("/risorse/articoli/TEST0001").status_code == 404
    assert c.delete("/risorse/articoli/TEST0001").status_code == 404
    assert c.put("/risorse/articoli/TEST0001", json={"descrizione": "x"}).status_code == 404


def test_create_with_slash_key_answers_hex_location(c: httpx.Client) -> None:
    r = c.post("/risorse/articoli", json=new_article("SET/77"))
    assert r.status_code == 201
    assert r.headers["location"] == f"/webapi/risorse/articoli/{b'SET/77'.hex()}?encoding=hex"
    got = c.get(f"/risorse/articoli/{b'SET/77'.hex()}", params={"encoding": "hex"})
    assert got.json()["codice"] == "SET/77"


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        ({"codice": "BAD1", "descrizione": "x"}, "Campo 'alq_iva' obbligatorio"),
        (new_article("BAD2", colore="rosso"), "Nome campo 'colore' non valido"),
        (new_article("BAD3", descrizione="x" * 81), "descrizione"),
        (new_article("BAD4", prz_listino=[[10, 1.0]]), "prz_listino"),
        (new_article("BAD5", qta_carico="tanti"), "qta_carico"),
    ],
)
def test_bad_writes_are_6001(c: httpx.Client, record: dict, needle: str) -> None:
    r = c.post("/risorse/articoli", json=record)
    assert r.status_code == 400
    assert detail(r).startswith("6001 - errore gestionale [")
    assert needle in detail(r)
    assert c.get(f"/risorse/articoli/{record['codice']}").status_code == 404


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"codice": "", "descrizione": "x", "alq_iva": "22"}', "Campo 'codice' obbligatorio"),
        ('{"codice": "   ", "descrizione": "x", "alq_iva": "22"}', "Campo 'codice' obbligatorio"),
        (
            '{"codice": "BADNAN", "descrizione": "x", "alq_iva": "22", "qta_carico": NaN}',
            "qta_carico",
        ),
        (
            '{"codice": "BADINF", "descrizione": "x", "alq_iva": "22",'
            ' "prz_listino": [[1, Infinity]]}',
            "prz_listino[1]",
        ),
    ],
)
def test_a_blank_key_or_a_number_json_cannot_carry_is_6001(
    c: httpx.Client, wsim: SimProcess, text: str, needle: str
) -> None:
    before = wsim.admin("GET", "stats").json()["articoli"]
    r = c.post("/risorse/articoli", content=text, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert detail(r).startswith("6001 - errore gestionale [") and needle in detail(r)
    assert wsim.admin("GET", "stats").json()["articoli"] == before


def test_update_with_unknown_field_is_6001_and_changes_nothing(c: httpx.Client) -> None:
    before = c.get("/risorse/articoli/ART0000010").json()
    r = c.put("/risorse/articoli/ART0000010", json={"descrizione": "y", "colore": "blu"})
    assert r.status_code == 400 and "colore" in detail(r)
    assert c.get("/risorse/articoli/ART0000010").json() == before


def test_update_bumps_modification_date_from_erp_clock(c: httpx.Client, wsim: SimProcess) -> None:
    wsim.admin("PUT", "clock", json={"now": "20300115 101500"})
    try:
        assert c.put("/risorse/articoli/ART0000011", json={"peso": 1.25}).status_code == 204
        rec = c.get("/risorse/articoli/ART0000011").json()
        assert rec["dt_mod_sistema"] == "20300115"
        assert "101500" <= rec["ora_mod_sistema"] <= "101600"
        assert c.put("/risorse/clienti/501.00011", json={"telefono": "02 123"}).status_code == 204
        assert c.get("/risorse/clienti/501.00011").json()["data_ult_mod"] == "20300115"
        since = search(c, "articoli", f("dt_mod_sistema", ">=", "20300115"))
        assert [a["codice"] for a in since] == ["ART0000011"]
    finally:
        wsim.admin("DELETE", "clock")


def test_customer_auto_code(c: httpx.Client) -> None:
    body = {
        "codice": "501.AUTO",
        "ragione_sociale": "Nuovo Cliente Srl",
        "partita_iva": "01234567890",
    }
    first = c.post("/risorse/clienti", json=body)
    second = c.post("/risorse/clienti", json=body)
    assert first.status_code == second.status_code == 201
    k1 = first.headers["location"].rsplit("/", 1)[1]
    k2 = second.headers["location"].rsplit("/", 1)[1]
    assert k1.startswith("501.") and k2.startswith("501.")
    assert int(k2[4:]) == int(k1[4:]) + 1
    assert int(k1[4:]) > 200  # after the existing customers
    assert c.get(f"/risorse/clienti/{k1}").json()["ragione_sociale"] == "Nuovo Cliente Srl"


def order(numero: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "sigla": "OC",
        "serie": 1,
        "numero": numero,
        "cod_conto": "501.00003",
        "nota": "$W9001$",
        "id_riga": [[1, 1], [2, 2]],
        "tp_riga": [[1, "R"], [2, "R"]],
        "codice_articolo": [[1, "ART0000001"], [2, "ART0000002"]],
        "quantita": [[1, 2], [2, 1.5]],
        "prezzo": [[1, 12.5], [2, 3.0]],
        "cod_iva": [[1, "22"], [2, "22"]],
        **extra,
    }


def test_order_create_assigns_next_number(c: httpx.Client, wsim: SimProcess) -> None:
    r = c.post("/risorse/documenti/ordini-clienti", json=order())
    assert r.status_code == 201
    loc = r.headers["location"]
    assert loc.startswith("/webapi/risorse/documenti/ordini-clienti/OC+1+")
    number = int(loc.rsplit("+", 1)[1])
    assert number >= 26
    nxt = c.post("/risorse/documenti/ordini-clienti", json=order())
    assert int(nxt.headers["location"].rsplit("+", 1)[1]) == number + 1
    doc = c.get(f"/risorse/documenti/ordini-clienti/OC+1+{number}").json()
    assert doc["numero"] == number
    assert doc["qta_evasa"] == [[1, 0], [2, 0]]
    assert doc["stato_riga"] == [[1, ""], [2, ""]]
    assert doc["data_ult_mod"]
    assert (
        f"OC+1+{number}" in wsim.admin("GET", "orders", params={"marker": "W9001"}).json()["keys"]
    )


def test_order_errors(c: httpx.Client) -> None:
    missing = order()
    del missing["cod_iva"]
    r = c.post("/risorse/documenti/ordini-clienti", json=missing)
    assert r.status_code == 400 and "cod_iva" in detail(r)
    r = c.post(
        "/risorse/documenti/ordini-clienti",
        json=order(codice_articolo=[[1, "NOPE"], [2, "ART0000002"]]),
    )
    assert r.status_code == 400 and "NOPE" in detail(r)
    r = c.post("/risorse/documenti/ordini-clienti", json=order(cod_conto="501.99999"))
    assert r.status_code == 400 and "501.99999" in detail(r)


def test_order_put_needs_rows_unless_solo_testata(c: httpx.Client) -> None:
    r = c.post("/risorse/documenti/ordini-clienti", json=order())
    key = r.headers["location"].rsplit("/", 1)[1]
    url = f"/risorse/documenti/ordini-clienti/{key}"
    header_only = c.put(url, json={"nota": "$W9002$ cambiata"})
    assert header_only.status_code == 400 and "solo_testata" in detail(header_only)
    ok = c.put(url, params={"solo_testata": "true"}, json={"nota": "$W9002$ cambiata"})
    assert ok.status_code == 204
    doc = c.get(url).json()
    assert doc["nota"] == "$W9002$ cambiata" and len(doc["id_riga"]) == 2
    full = order(
        id_riga=[[1, 1]],
        tp_riga=[[1, "R"]],
        codice_articolo=[[1, "ART0000005"]],
        quantita=[[1, 7]],
        prezzo=[[1, 1.0]],
        cod_iva=[[1, "10"]],
    )
    for k in ("sigla", "serie", "numero"):
        full.pop(k)
    assert c.put(url, json=full).status_code == 204
    doc = c.get(url).json()
    assert doc["codice_articolo"] == [[1, "ART0000005"]] and doc["quantita"] == [[1, 7]]


def test_servizi_unknown_command(c: httpx.Client) -> None:
    r = c.post("/servizi", json={"cmd": "boh", "dati": {}})
    assert r.status_code == 400
    assert detail(r).startswith("6001") and "boh" in detail(r)


def test_changed_since_search_agrees_with_a_full_read(c: httpx.Client, wsim: SimProcess) -> None:
    """The date index, the overlay of changes, additions and deletions give the same
    answer as filtering every record."""
    wsim.admin("POST", "mutate", json={"resource": "articoli", "count": 20, "seed": 77})
    everything = all_articles(c)
    today = max(a["dt_mod_sistema"] for a in everything)
    recent = sorted(
        (a for a in everything if a["dt_mod_sistema"] < today), key=lambda a: a["dt_mod_sistema"]
    )[-3:]
    for a in recent:
        key = a["codice"].encode().hex()
        assert c.delete(f"/risorse/articoli/{key}", params={"encoding": "hex"}).status_code == 204
    for code in ("AAA-NEW", "ZZZ-NEW"):
        assert c.post("/risorse/articoli", json=new_article(code)).status_code == 201
    everything = all_articles(c)
    dates = sorted({a["dt_mod_sistema"] for a in everything})
    for since in (dates[-1], dates[-2], dates[-5], dates[len(dates) // 2], dates[0]):
        got = search(c, "articoli", f("dt_mod_sistema", ">=", since), max=7)
        expected = [a for a in everything if a["dt_mod_sistema"] >= since]
        assert [a["codice"] for a in got] == [a["codice"] for a in expected], since
        assert got == expected


@pytest.mark.parametrize(
    ("tax_code", "refused"),
    [
        ("RSSMRA80A01F205X", None),  # a person's code, its check character right
        ("rssmra80a01f205x", None),  # read in capitals
        ("RSSMRA8LA01F205I", None),  # a digit replaced by its letter (omocodia)
        ("01234567890", None),  # a company's: its VAT number
        ("RSSMRA80A01F205Y", "il carattere di controllo e' Y, dovrebbe essere X"),
        ("RSSMRA80F01F205X", "non valido"),  # F is no month
        ("RSSMRA80A01F205", "non valido"),  # 15 characters
        ("0123456789", "non valido"),  # 10 digits
    ],
)
def test_a_customer_s_tax_code_is_checked(
    c: httpx.Client, tax_code: str, refused: str | None
) -> None:
    """Creating or changing a customer checks its codice fiscale's shape and check
    character, as the gestionale does; the dataset's own customers pass the check."""
    from passweb_tui.codice_fiscale import problem

    body = {"codice": "501.AUTO", "ragione_sociale": "Prova Cf", "codice_fiscale": tax_code}
    created = c.post("/risorse/clienti", json=body)
    if refused is None:
        assert created.status_code == 201, created.text
        key = created.headers["location"].rsplit("/", 1)[-1]
        changed = c.put(f"/risorse/clienti/{key}", json={"codice_fiscale": "RSSMRA80A01F205Y"})
        assert changed.status_code == 400 and "Campo 'codice_fiscale'" in detail(changed)
        assert c.delete(f"/risorse/clienti/{key}").status_code == 204
    else:
        assert created.status_code == 400
        assert detail(created).startswith("6001 - errore gestionale [Campo 'codice_fiscale': ")
        assert refused in detail(created)
    listed = search(c, "clienti", {"campo": "codice_fiscale", "condizione": "<>", "valore": ""})
    assert listed and all(problem(r["codice_fiscale"]) is None for r in listed)


# A value the ERP cannot hold is refused naming its field, before anything is stored: a
# number longer than the field's length (?info=true), a day no calendar has, a key with
# characters outside 0x20-0x7E or longer than its field once made.
BAD_RECORDS = [
    ("articoli", new_article("BIG1", qta_carico=10**20), "Campo 'qta_carico'"),
    ("articoli", new_article("BIG2", qta_carico=1e20), "Campo 'qta_carico'"),
    ("articoli", new_article("BIG3", prz_listino=[[1, 10**17]]), "Campo 'prz_listino[1]'"),
    ("articoli", new_article("\u20ac/1"), "Campo 'codice'"),
    ("articoli", new_article("CTRL\u00071"), "Campo 'codice'"),
    ("clienti", {"codice": "501.AUTO", "ragione_sociale": "x", "cod_listino": 123}, "cod_listino"),
    ("clienti", {"codice": "5011111.AUTO", "ragione_sociale": "x"}, "Campo 'codice'"),
    ("documenti/ordini-clienti", order(numero=123456789), "Campo 'numero'"),
    ("documenti/ordini-clienti", order(numero=10**20), "Campo 'numero'"),
    ("documenti/ordini-clienti", order(numero=1e20), "Campo 'numero'"),
    ("documenti/ordini-clienti", order(serie=100), "Campo 'serie'"),
    ("documenti/ordini-clienti", order(serie=-1), "Campo 'serie'"),
    ("documenti/ordini-clienti", order(data_documento="20261340"), "Campo 'data_documento'"),
    ("documenti/ordini-clienti", order(data_documento="20270229"), "Campo 'data_documento'"),
    ("documenti/ordini-clienti", order(quantita=[[1, 2], [2, 10**16]]), "Campo 'quantita[2]'"),
]


@pytest.mark.parametrize(("res", "record", "needle"), BAD_RECORDS)
def test_a_value_the_erp_cannot_hold_is_6001_and_stores_nothing(
    c: httpx.Client, wsim: SimProcess, res: str, record: dict, needle: str
) -> None:
    before = wsim.admin("GET", "stats").json()
    r = c.post(f"/risorse/{res}", json=record)
    assert r.status_code == 400, r.text
    assert detail(r).startswith("6001 - errore gestionale [") and needle in detail(r)
    assert wsim.admin("GET", "stats").json() == before
    # every record still reads, one by one and a page at a time
    listed = c.get(f"/risorse/{res}", params={"max": 10000})
    assert listed.status_code == 200
    # and the numbering goes on from where it was
    if res == "documenti/ordini-clienti":
        made = c.post(f"/risorse/{res}", json=order())
        assert made.status_code == 201
        numero = int(made.headers["location"].rsplit("+", 1)[1])
        assert numero <= max(d["numero"] for d in listed.json()["dati"]) + 1
        assert c.get(f"/risorse/{res}/OC+1+{numero}").status_code == 200


def test_an_update_the_erp_cannot_hold_is_6001_and_changes_nothing(c: httpx.Client) -> None:
    before = c.get("/risorse/clienti/501.00004").json()
    for body, needle in (
        ({"cod_listino": 123}, "cod_listino"),
        ({"valuta": 10**30}, "valuta"),
        ({"data_ult_mod": "20260231"}, "data_ult_mod"),
    ):
        r = c.put("/risorse/clienti/501.00004", json=body)
        assert r.status_code == 400 and f"Campo '{needle}'" in detail(r), r.text
    assert c.get("/risorse/clienti/501.00004").json() == before


@pytest.mark.parametrize("code", ["Z?Z", "Z#Z", "Z%Z", "Z Z"])
def test_a_key_with_url_signs_works_at_its_location(c: httpx.Client, code: str) -> None:
    """`?`, `#`, `%` and a space are legal in a key: the percent-encoded path the
    Location header gives reads, updates and deletes the record."""
    r = c.post("/risorse/articoli", json=new_article(code))
    assert r.status_code == 201, r.text
    where = r.headers["location"]
    assert where.isascii() and where.startswith("/webapi/risorse/articoli/")
    path = where[len("/webapi") :]
    assert c.get(path).json()["codice"] == code
    assert c.put(path, json={"descrizione": "Cambiata"}).status_code == 204
    assert c.get(path).json()["descrizione"] == "Cambiata"
    assert c.delete(path).status_code == 204
    assert c.get(path).status_code == 404


def test_the_location_of_any_key_is_plain_ascii() -> None:
    from passweb_tui.mexal_sim.webapi import location

    for key in ("\u20ac/1", "a\\\u0101", "\u20ac", "SET/77", "OC+1+5"):
        where = location("articoli", key)
        where.encode("ascii")
        assert where.startswith("/webapi/risorse/articoli/")
    assert (
        location("articoli", "SET/77") == f"/webapi/risorse/articoli/{b'SET/77'.hex()}?encoding=hex"
    )


@pytest.mark.parametrize(
    "path", ["/risorse/clienti/ricerca", "/risorse/articoli", "/risorse/documenti/ordini-clienti"]
)
def test_a_body_nested_too_deeply_is_6001_not_valid_json(c: httpx.Client, path: str) -> None:
    deep = c.post(path, content=b"[" * 100_000, headers={"content-type": "application/json"})
    bad = c.post(path, content=b"{bad", headers={"content-type": "application/json"})
    # a lone surrogate: JSON lets it through, but no UTF-8 text can hold it
    lone = c.post(
        path,
        content=b'{"descrizione": "bad \\ud800 x"}',
        headers={"content-type": "application/json"},
    )
    for r in (deep, bad, lone):
        assert r.status_code == 400
        assert detail(r).startswith("6001 - errore gestionale [corpo della richiesta non e' JSON")
    assert "U+D800" in detail(lone)
