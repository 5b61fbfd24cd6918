"""Contract tests of the simulator's read side: auth, context, paging, get, hex keys, info.

They talk to `passweb-tui erp-sim` in its own process over a real loopback socket.
"""

from __future__ import annotations

import base64
import datetime as dt

import httpx
import pytest
from conftest import SimProcess


def client(sim: SimProcess, *, password: str | None = None, context: bool = True) -> httpx.Client:
    secret = base64.b64encode(f"{sim.user}:{password or sim.password}".encode()).decode()
    headers = {"Authorization": f"Passepartout {secret}"}
    if context:
        headers["Coordinate-Gestionale"] = f"Azienda={sim.azienda} Anno={sim.anno}"
    return httpx.Client(base_url=sim.url, headers=headers, timeout=30)


def detail(response: httpx.Response) -> str:
    return response.json()["error"]["response-detail"]


def test_ready_line_names_the_webapi_url(shared_sim: SimProcess) -> None:
    assert shared_sim.url.startswith("http://127.0.0.1:")
    assert shared_sim.url.endswith("/webapi")
    assert shared_sim.user == "demo"
    assert shared_sim.azienda == "DEM"
    assert shared_sim.anno == dt.date.today().year


def test_wrong_password_is_401_with_error_body(shared_sim: SimProcess) -> None:
    with client(shared_sim, password="wrong") as c:
        r = c.get("/risorse/articoli")
    assert r.status_code == 401
    body = r.json()["error"]
    assert body["response-detail"].startswith("2002")
    assert body["request-method"] == "GET"
    assert body["request-uri"].startswith("/webapi/risorse/articoli")
    assert body["request-id"] and body["timestamp"]


def test_missing_authorization_is_401(shared_sim: SimProcess) -> None:
    r = httpx.get(f"{shared_sim.url}/risorse/dati-generali/installazione")
    assert r.status_code == 401


def test_dominio_suffix_is_accepted(shared_sim: SimProcess) -> None:
    secret = base64.b64encode(f"{shared_sim.user}:{shared_sim.password}".encode()).decode()
    r = httpx.get(
        f"{shared_sim.url}/risorse/dati-generali/installazione",
        headers={"Authorization": f"Passepartout {secret} Dominio=CLOUD1"},
    )
    assert r.status_code == 200


def test_installation_needs_no_context_and_gives_version(shared_sim: SimProcess) -> None:
    with client(shared_sim, context=False) as c:
        r = c.get("/risorse/dati-generali/installazione")
    assert r.status_code == 200
    assert r.json()["versione"] == "2.9.17"
    assert r.json()["aziende"][0]["codice"] == "DEM"


def test_companies_and_users_need_no_context(shared_sim: SimProcess) -> None:
    with client(shared_sim, context=False) as c:
        assert c.get("/risorse/aziende").json()["dati"][0]["codice"] == "DEM"
        assert {"nome": "demo"} in c.get("/risorse/dati-generali/utenti").json()["dati"]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Azienda=DEM",
        "Azienda=XXX Anno=2020",
        "Azienda=DEM Anno=1999",
        "Azienda=DEM Anno={anno} Magazzino=77",
    ],
)
def test_missing_or_wrong_context_is_1001(shared_sim: SimProcess, header: str | None) -> None:
    with client(shared_sim, context=False) as c:
        headers = {}
        if header:
            headers["Coordinate-Gestionale"] = header.format(anno=shared_sim.anno)
        r = c.get("/risorse/articoli", headers=headers)
    assert r.status_code == 400
    assert detail(r).startswith("1001")


def test_context_with_magazzino_is_accepted(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        r = c.get(
            "/risorse/articoli",
            params={"max": 1},
            headers={"Coordinate-Gestionale": f"Azienda=DEM Anno={shared_sim.anno} Magazzino=1"},
        )
    assert r.status_code == 200


def test_paging_all_articles_with_single_use_tokens(shared_sim: SimProcess) -> None:
    keys: list[str] = []
    with client(shared_sim) as c:
        r = c.get("/risorse/articoli", params={"max": 300, "fields": "descrizione"})
        pages = 0
        while True:
            assert r.status_code == 200, r.text
            body = r.json()
            assert len(body["data_ric_elab"]) == 15
            assert len(body["dati"]) <= 300
            assert set(body["dati"][0]) == {"codice", "descrizione"}
            keys += [d["codice"] for d in body["dati"]]
            pages += 1
            token = body.get("next")
            if token is None:
                break
            r = c.get("/risorse/articoli", params={"max": 300, "next": token})
            again = c.get("/risorse/articoli", params={"max": 300, "next": token})
            assert again.status_code == 400
            assert detail(again) == "1003 - token next non valido"
    assert len(keys) == 2000 == len(set(keys))
    assert keys == sorted(keys)
    assert pages == 7
    assert any("/" in k for k in keys)


def test_unknown_token_is_1003(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        r = c.get("/risorse/articoli", params={"next": "no-such-token"})
    assert r.status_code == 400
    assert detail(r).startswith("1003")


def test_default_page_size_and_cap(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        assert len(c.get("/risorse/articoli").json()["dati"]) == 100
        assert len(c.get("/risorse/articoli", params={"max": 5000}).json()["dati"]) == 2000


def test_bad_max_is_6001(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        r = c.get("/risorse/articoli", params={"max": "ten"})
    assert r.status_code == 400
    assert detail(r).startswith("6001")


@pytest.mark.parametrize("value", ["\u00b2", "\u0661\u0662", "1\u00b2"])
def test_a_max_of_other_digits_is_6001_as_any_bad_max(shared_sim: SimProcess, value: str) -> None:
    """`²` or Arabic-Indic digits pass str.isdigit but are no number of the WebAPI."""
    with client(shared_sim) as c:
        r = c.get("/risorse/articoli", params={"max": value})
        abc = c.get("/risorse/articoli", params={"max": "abc"})
    assert r.status_code == abc.status_code == 400
    assert detail(r).startswith("6001") and "max" in detail(r)


@pytest.mark.parametrize("magazzino", ["\u00b2", "\u0661", "77"])
def test_a_warehouse_of_other_digits_is_1001_as_an_unknown_one(
    shared_sim: SimProcess, magazzino: str
) -> None:
    header = f"Azienda=DEM Anno={shared_sim.anno} Magazzino={magazzino}".encode()
    with client(shared_sim, context=False) as c:
        r = c.get("/risorse/articoli", headers={"Coordinate-Gestionale": header})
    assert r.status_code == 400
    assert detail(r).startswith("1001") and "magazzino" in detail(r)


def test_head_answers_where_get_does(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        for path, params in (
            ("/risorse/articoli", {"max": "3"}),
            ("/risorse/articoli", {"info": "true"}),
            ("/risorse/articoli/ART0000001", {}),
            ("/risorse/articoli/ART0000004/allegati", {}),
            ("/risorse/documenti/ordini-clienti/OC+1+3", {}),
            ("/risorse/dati-generali/installazione", {}),
        ):
            got, head = c.get(path, params=params), c.head(path, params=params)
            assert got.status_code == 200, path
            assert head.status_code == 200, (path, head.status_code)
            assert head.content == b""
            assert head.headers["content-type"] == got.headers["content-type"]
        assert c.head("/risorse/articoli/NOPE0001").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/risorse/articoli", "GET, HEAD, POST"),
        ("PUT", "/risorse/articoli", "GET, HEAD, POST"),
        ("PATCH", "/risorse/articoli/ART0000001", "GET, HEAD, PUT, DELETE"),
        ("POST", "/risorse/articoli/ART0000001", "GET, HEAD, PUT, DELETE"),
        ("POST", "/risorse/dati-generali/installazione", "GET, HEAD"),
        ("GET", "/servizi", "POST"),
    ],
)
def test_every_405_says_the_methods_allowed(
    shared_sim: SimProcess, method: str, path: str, allowed: str
) -> None:
    with client(shared_sim) as c:
        r = c.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allowed
    assert detail(r).startswith("6001")


def test_unknown_field_in_fields_is_6001(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        r = c.get("/risorse/articoli", params={"fields": "descrizione,colore"})
    assert r.status_code == 400
    assert detail(r) == "6001 - errore gestionale [Nome campo 'colore' non valido]"


def test_get_by_key_and_404(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        first = c.get("/risorse/articoli", params={"max": 1}).json()["dati"][0]
        r = c.get(f"/risorse/articoli/{first['codice']}")
        assert r.status_code == 200
        assert r.json() == first
        missing = c.get("/risorse/articoli/NOPE0001")
        assert missing.status_code == 404
        assert missing.content == b""


def test_hex_key(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        r = c.get("/risorse/articoli/" + b"KIT/0001".hex(), params={"encoding": "hex"})
        assert r.status_code == 200
        assert r.json()["codice"] == "KIT/0001"
        plain = c.get("/risorse/articoli/KIT/0001")
        assert plain.status_code == 404


def test_composite_document_key(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        r = c.get("/risorse/documenti/ordini-clienti/OC+1+3")
        assert r.status_code == 200
        doc = r.json()
        assert (doc["sigla"], doc["serie"], doc["numero"]) == ("OC", 1, 3)
        ids = [i for i, _ in doc["id_riga"]]
        for name in ("codice_articolo", "quantita", "prezzo", "qta_evasa", "stato_riga"):
            assert [i for i, _ in doc[name]] == ids


def test_documents_list_in_numeric_order(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        body = c.get("/risorse/documenti/ordini-clienti", params={"max": 1000}).json()
    numbers = [d["numero"] for d in body["dati"]]
    assert numbers == list(range(1, 31))


def test_info_describes_fields(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        info = c.get("/risorse/articoli", params={"info": "true"}).json()["dati"]
    by_name = {f["nome"]: f for f in info}
    assert by_name["codice"]["chiave"] is True
    assert by_name["descrizione"]["tipo"] == "C"
    assert by_name["descrizione"]["lunghezza"] == 80
    assert by_name["prz_listino"]["dim_array"] == 9
    assert by_name["dt_mod_sistema"]["tipo"] == "D"


def test_help_lists_endpoints(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        rows = c.get("/risorse/help", params={"extended": "true"}).json()["dati"]
    uris = {(r["metodo"], r["uri"]) for r in rows}
    assert ("POST", "/webapi/risorse/articoli/ricerca") in uris
    assert ("PUT", "/webapi/risorse/clienti/{chiave}") in uris


def test_help_answers_reads_only(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        for method in ("POST", "PUT", "DELETE"):
            r = c.request(method, "/risorse/help")
            assert r.status_code == 405, (method, r.status_code)
            assert r.headers["allow"] == "GET, HEAD"
        assert c.head("/risorse/help").status_code == 200


def test_server_timing_on_every_reply(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        for r in (c.get("/risorse/articoli"), c.get("/risorse/articoli/NOPE")):
            name, _, value = r.headers["server-timing"].partition(";dur=")
            assert name == "app" and float(value) >= 0


def test_lookup_tables(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:

        def all_of(res: str) -> list[dict]:
            return c.get(f"/risorse/dati-generali/{res}", params={"max": 1000}).json()["dati"]

        groups = all_of("gruppi-merceologici")
        codes = {g["codice"] for g in groups}
        assert 50 <= len(groups) <= 100
        assert all(g["cod_grp_padre"] in codes for g in groups if g["cod_grp_padre"])
        assert {g["web"] for g in groups} == {"S", "N"}
        assert [v["sigla_iso"] for v in all_of("valute")] == ["EUR", "USD", "GBP", "CHF"]
        assert [p["codice"] for p in all_of("listini")] == list(range(1, 10))
        assert {"BB30", "RD", "CC"} <= {p["codice"] for p in all_of("pagamenti")}
        for res in (
            "categorie-statistiche-articoli",
            "magazzini",
            "sconti-listini",
            "sconti-quantita",
            "categorie-sconti",
            "particolarita",
        ):
            assert all_of(res), res


def test_attachments(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        seen = set()
        for n in range(1, 40):
            code = f"ART{n:07d}"
            items = c.get(f"/risorse/articoli/{code}/allegati").json().get("dati", [])
            for item in items:
                blob = c.get(f"/risorse/articoli/{code}/allegati/{item['nome']}")
                assert blob.headers["content-type"] == "application/octet-stream"
                assert len(blob.content) == item["dimensione"]
                assert blob.content.startswith(
                    b"\x89PNG" if item["tipo"] == "immagine" else b"%PDF"
                )
                seen.add(item["tipo"])
            # the image's renditions at the WebAPI's fixed names, smaller than the image;
            # none for an article without an image, and no other names
            image = [item for item in items if item["tipo"] == "immagine"]
            for rendition in ("icona", "immagine-catalogo"):
                blob = c.get(f"/risorse/articoli/{code}/allegati/{rendition}")
                if not image:
                    assert blob.status_code == 404, (code, rendition)
                    continue
                assert blob.status_code == 200 and blob.content.startswith(b"\x89PNG")
                assert len(blob.content) < image[0]["dimensione"], (code, rendition)
                seen.add(rendition)
            assert c.get(f"/risorse/articoli/{code}/allegati/foto").status_code == 404
    assert seen == {"immagine", "scheda", "icona", "immagine-catalogo"}


def test_dataset_shape(shared_sim: SimProcess) -> None:
    with client(shared_sim) as c:
        arts = c.get("/risorse/articoli", params={"max": 2000}).json()["dati"]
        custs = c.get("/risorse/clienti", params={"max": 1000}).json()["dati"]
    today = dt.date.today().strftime("%Y%m%d")
    dates = [a["dt_mod_sistema"] for a in arts]
    assert 0 < dates.count(today) < len(arts) // 10
    assert len({d[:6] for d in dates}) >= 6  # spread over many months
    assert 0 < sum(a["gest_precanc"] == "S" or a["gest_annullato"] == "S" for a in arts) < 200
    site1 = [dict(a["trasf_sito"]).get(1) for a in arts]
    assert site1.count("N") > 0 and site1.count("S") > len(arts) * 0.7
    assert any(2 in dict(a["trasf_sito"]) for a in arts)
    assert max(len(a["prz_listino"]) for a in arts) == 9
    assert len(custs) == 300
    assert {c_["cod_listino"] for c_ in custs} >= {1, 2}
    assert any(c_["sconto"] for c_ in custs)
    assert all(c_["codice"].startswith("501.") for c_ in custs)


@pytest.mark.parametrize(
    "fields",
    [
        None,
        "descrizione,prz_listino,qta_carico,qta_inventario,qta_scarico,ord_cli_e,gest_precanc,"
        "gest_annullato,cod_barre,dt_mod_sistema,ora_mod_sistema",
        "descrizione,alq_iva",
    ],
)
def test_list_and_search_and_get_agree(shared_sim: SimProcess, fields: str | None) -> None:
    params = {"max": 5000, **({"fields": fields} if fields else {})}
    with client(shared_sim) as c:
        listed = c.get("/risorse/articoli", params=params).json()["dati"]
        body = {"filtri": [{"campo": "codice", "condizione": ">=", "valore": ""}]}
        searched = c.post("/risorse/articoli/ricerca", params=params, json=body).json()["dati"]
        assert listed == searched
        for rec in listed[::97]:
            one = c.get(
                f"/risorse/articoli/{rec['codice'].encode().hex()}",
                params={"encoding": "hex", **({"fields": fields} if fields else {})},
            ).json()
            assert one == rec
    if fields:
        assert set(listed[0]) == {"codice", *fields.split(",")}


def test_search_by_key_list(shared_sim: SimProcess) -> None:
    wanted = ["ART0000500", "KIT/0002", "ART0000007", "NOPE", "ART0000007"]
    body = {"filtri": [{"campo": "codice", "condizione": "=", "valore": wanted}]}
    with client(shared_sim) as c:
        got = c.post("/risorse/articoli/ricerca", params={"max": 2}, json=body).json()
        assert [d["codice"] for d in got["dati"]] == ["ART0000007", "ART0000500"]
        rest = c.post(
            "/risorse/articoli/ricerca", params={"max": 2, "next": got["next"]}, json=body
        ).json()
        assert [d["codice"] for d in rest["dati"]] == ["KIT/0002"]
        assert "next" not in rest


def test_failed_logins_in_a_row_lock_the_user_until_its_password_is_set_again(
    shared_sim: SimProcess,
) -> None:
    """The ERP locks a user after repeated failed logins (MEXAL_WEBAPI.md): the right
    password is refused too, saying why, until an administrator sets the password
    again. A good login in between starts the count afresh; other users go on."""
    from passweb_tui.mexal_sim.erp import DEFAULT_LOCK_AFTER

    user = "locktest"
    assert shared_sim.admin("PUT", f"users/{user}", json={"password": "right"}).json() == {
        "user": user,
        "unlocked": False,
    }

    def get(password: str) -> httpx.Response:
        secret = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers = {
            "Authorization": f"Passepartout {secret}",
            "Coordinate-Gestionale": f"Azienda={shared_sim.azienda} Anno={shared_sim.anno}",
        }
        return httpx.get(
            f"{shared_sim.url}/risorse/dati-generali/installazione", headers=headers, timeout=30
        )

    for _ in range(DEFAULT_LOCK_AFTER - 1):
        assert get("wrong").status_code == 401
    assert get("right").status_code == 200  # the count starts again
    for _ in range(DEFAULT_LOCK_AFTER - 1):
        assert get("wrong").status_code == 401
    assert get("right").status_code == 200
    for _ in range(DEFAULT_LOCK_AFTER):
        assert get("wrong").status_code == 401
    locked = get("right")
    assert locked.status_code == 401
    assert f"utente {user} bloccato dopo {DEFAULT_LOCK_AFTER} accessi falliti" in detail(locked)
    with client(shared_sim) as c:  # another user is not locked with it
        assert c.get("/risorse/dati-generali/installazione").status_code == 200
    unlocked = shared_sim.admin("PUT", f"users/{user}", json={"password": "right"})
    assert unlocked.json() == {"user": user, "unlocked": True}
    assert get("right").status_code == 200


def test_the_help_gives_the_simulators_lock_count() -> None:
    import argparse

    from passweb_tui.commands import erp_sim
    from passweb_tui.mexal_sim.erp import DEFAULT_LOCK_AFTER

    parser = argparse.ArgumentParser()
    erp_sim.add_parser(parser.add_subparsers())
    help_text = parser._subparsers._group_actions[0].choices["erp-sim"].format_help()  # type: ignore[union-attr]
    assert f"(default {DEFAULT_LOCK_AFTER})" in " ".join(help_text.split())
