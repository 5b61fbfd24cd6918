"""Contract tests of the simulator's life cycle: --state across restarts, a damaged
state file, seed determinism, clean stop on SIGTERM/SIGINT, TLS, in-process start.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SimProcess, start_sim

from passweb_tui.mexal_sim.server import SimOptions, start_background


def headers(user: str, password: str, anno: int) -> dict[str, str]:
    secret = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {
        "Authorization": f"Passepartout {secret}",
        "Coordinate-Gestionale": f"Azienda=DEM Anno={anno}",
    }


def client(sim: SimProcess, password: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=sim.url, headers=headers(sim.user, password or sim.password, sim.anno), timeout=30
    )


ORDER = {
    "sigla": "OC",
    "serie": 1,
    "numero": 0,
    "cod_conto": "501.00001",
    "id_riga": [[1, 1]],
    "tp_riga": [[1, "R"]],
    "codice_articolo": [[1, "ART0000001"]],
    "quantita": [[1, 1]],
    "cod_iva": [[1, "22"]],
}


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "erp" / "state.json"
    small = ("--articles", "300", "--customers", "50", "--orders", "5", "--seed", "4")
    first = start_sim(*small, "--state", str(state))
    try:
        with client(first) as c:
            new = {"codice": "KEEP1", "descrizione": "Resta", "alq_iva": "22"}
            assert c.post("/risorse/articoli", json=new).status_code == 201
            assert c.delete("/risorse/articoli/ART0000002").status_code == 204
            assert (
                c.put("/risorse/articoli/ART0000003", json={"descrizione": "Nuova"}).status_code
                == 204
            )
            loc = c.post("/risorse/documenti/ordini-clienti", json=ORDER).headers["location"]
            assert loc.endswith("/OC+1+6")
            mutated = first.admin(
                "POST", "mutate", json={"resource": "clienti", "count": 2, "seed": 1}
            ).json()["changed"]
            after_mutate = {k: c.get(f"/risorse/clienti/{k}").json() for k in mutated}
        first.admin("PUT", "clock", json={"offset_s": 7200})
        first.admin("PUT", "users/demo", json={"password": "cambiata"})
        assert state.is_file()
    finally:
        first.stop()
    assert first.process.returncode == 0  # SIGTERM stops it cleanly

    # other generation flags are ignored: the ERP's data is what the state file says;
    # without --password the one changed through /sim/users stays
    second = start_sim("--articles", "900", "--state", str(state), password=None)
    try:
        assert (
            httpx.get(
                f"{second.url}/risorse/articoli", headers=headers("demo", "secret-pw", second.anno)
            ).status_code
            == 401
        )
        with client(second, password="cambiata") as c:
            assert c.get("/risorse/articoli/KEEP1").json()["descrizione"] == "Resta"
            assert c.get("/risorse/articoli/ART0000002").status_code == 404
            assert c.get("/risorse/articoli/ART0000003").json()["descrizione"] == "Nuova"
            for key, rec in after_mutate.items():
                assert c.get(f"/risorse/clienti/{key}").json() == rec
            loc = c.post("/risorse/documenti/ordini-clienti", json=ORDER).headers["location"]
            assert loc.endswith("/OC+1+7")
            stamp = c.get("/risorse/articoli", params={"max": 1}).json()["data_ric_elab"]
        erp_now = dt.datetime.strptime(stamp, "%Y%m%d %H%M%S")
        assert abs((erp_now - dt.datetime.now()).total_seconds() - 7200) < 60
        assert second.admin("GET", "stats").json()["articoli"] == 300
    finally:
        second.stop()


def test_a_given_password_wins_over_the_state_files_and_is_kept(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    small = ("--articles", "20", "--customers", "3", "--orders", "0", "--state", str(state))

    def status(sim: SimProcess, password: str) -> int:
        with client(sim, password=password) as c:
            return c.get("/risorse/articoli", params={"max": 1}).status_code

    for password, refused in ((None, "old-pw"), ("old-pw", "demo"), ("new-pw", "old-pw")):
        sim = start_sim(*small, password=password)
        try:
            # the first start, with no password given and no state file: demo
            assert status(sim, password or "demo") == 200
            assert status(sim, refused) == 401
        finally:
            sim.stop()
    # the password given last is the one kept: a start without --password still takes it
    sim = start_sim(*small, password=None)
    try:
        assert status(sim, "new-pw") == 200
        assert status(sim, "old-pw") == 401
        assert status(sim, "demo") == 401
    finally:
        sim.stop()


@pytest.mark.parametrize("content", ["{not json", '{"version": 1, "params": {"seed": 1}}', "[]"])
def test_damaged_state_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    state = tmp_path / "state.json"
    state.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "passweb_tui", "erp-sim", "--port", "0", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert str(state) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert state.read_text() == content  # nothing overwritten


def _article(**changes: Any) -> dict[str, Any]:
    """An article as the simulator stores it: every field."""
    return {
        "codice": "K1",
        "descrizione": "Resta",
        "descr_agg": "",
        "prz_listino": [[1, 12.5]],
        "cod_grp_merc": "",
        "cat_web": "",
        "alq_iva": "22",
        "um_principale": "PZ",
        "qta_inventario": 0,
        "qta_carico": 5,
        "qta_scarico": 0,
        "ord_cli_e": 0,
        "gest_precanc": "",
        "gest_annullato": "",
        "trasf_sito": [],
        "pubblica": [],
        "offerta": [],
        "novita": [],
        "peso": 0,
        "cod_barre": "",
        "dt_mod_sistema": "20260105",
        "ora_mod_sistema": "101500",
        **changes,
    }


def _state(**changes: Any) -> dict[str, Any]:
    """A state file as the simulator writes it, with the parts named `a__b` replaced."""
    data: dict[str, Any] = {
        "version": 1,
        "params": {
            "articles": 20,
            "customers": 3,
            "orders": 1,
            "seed": 1,
            "gen_now": "20260105 101500",
        },
        "tables": {"articoli": {"changed": [["K1", _article()]], "deleted": []}},
        "counters": {"doc:OC:1": 2},
        "users": {"demo": "demo"},
        "clock_offset_s": 0.0,
    }
    for path, value in changes.items():
        where = data
        *parents, last = path.split("__")
        for name in parents:
            where = where[name]
        where[last] = value
    return data


def _start_with(state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passweb_tui", "erp-sim", "--port", "0", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_whole_state_file_as_written_loads(tmp_path: Path) -> None:
    """The state file the damages below start from is good."""
    state = tmp_path / "state.json"
    state.write_text(json.dumps(_state()))
    sim = start_sim("--state", str(state), password=None)
    try:
        with client(sim, password="demo") as c:
            assert c.get("/risorse/articoli/K1").json() == _article()
    finally:
        sim.stop()


def _changed(**changes: Any) -> dict[str, Any]:
    return {"tables__articoli__changed": [["K1", _article(**changes)]]}


DAMAGED = [
    ('"articles": "x"', {"params__articles": "x"}),
    ("a negative count", {"params__customers": -3}),
    ("a count that is true", {"params__orders": True}),
    ("a count past what a simulator is made with", {"params__articles": 10**9}),
    ("a garbage gen_now", {"params__gen_now": "yesterday"}),
    ("a gen_now of no calendar", {"params__gen_now": "20261340 101500"}),
    ("a record that is no object", {"tables__articoli__changed": [["K1", "notadict"]]}),
    ("a record under another key", {"tables__articoli__changed": [["K2", _article()]]}),
    ("a record of an unknown field", _changed(colore="blu")),
    ("a record lacking a field", {"tables__articoli__changed": [["K1", {"codice": "K1"}]]}),
    ("a number past its field", _changed(qta_carico=10**20)),
    ("a text past its field", _changed(um_principale="PEZZI")),
    # (a day the calendar lacks is kept: /sim/records may put one in, as an ERP may hold)
    ("a date not of the form AAAAMMGG", _changed(dt_mod_sistema="2026-12-01")),
    (
        "a key of other characters",
        {"tables__articoli__changed": [["\u20ac1", _article(codice="\u20ac1")]]},
    ),
    ("an unknown table", {"tables__colori": {"changed": [], "deleted": []}}),
    ("a deleted key that is no key", {"tables__articoli__deleted": [[1]]}),
    ("a null password", {"users": {"demo": None}}),
    ("an empty password", {"users": {"demo": ""}}),
    ("a counter that is text", {"counters": {"doc:OC:1": "2"}}),
    ("a clock that is text", {"clock_offset_s": "soon"}),
]


@pytest.mark.parametrize(("what", "changes"), DAMAGED, ids=[d[0] for d in DAMAGED])
def test_a_state_file_damaged_anywhere_is_refused_at_start(
    tmp_path: Path, what: str, changes: dict[str, Any]
) -> None:
    state = tmp_path / "state.json"
    text = json.dumps(_state(**changes))
    state.write_text(text)
    result = _start_with(state)
    assert result.returncode == 2, result.stderr
    assert f"state file {state} is damaged" in result.stderr
    assert "unexpected error" not in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "serving" not in result.stdout
    assert state.read_text() == text  # nothing overwritten


def test_a_state_file_not_in_utf8_is_refused_at_start(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    raw = json.dumps(_state()).encode().replace(b"Resta", b"R\xe8sta")
    state.write_bytes(raw)
    result = _start_with(state)
    assert result.returncode == 2
    assert f"state file {state} is damaged" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert state.read_bytes() == raw


def test_a_change_the_state_file_cannot_keep_is_not_made(tmp_path: Path) -> None:
    """When the state file cannot be written, a write is refused whole with a 5xx error
    body (so a retry cannot make it twice), reads go on, and nothing changes."""
    folder = tmp_path / "erp"
    state = folder / "state.json"
    small = ("--articles", "30", "--customers", "5", "--orders", "2", "--seed", "4")
    sim = start_sim(*small, "--state", str(state))
    moved = tmp_path / "erp.moved"
    try:
        with client(sim) as c:
            before = sim.admin("GET", "stats").json()
            folder.rename(moved)
            folder.write_text("x")  # a file where the state file's folder was
            customer = {"codice": "501.AUTO", "ragione_sociale": "Nuovo Srl"}
            for _attempt in range(2):  # a client's retry
                r = c.post("/risorse/clienti", json=customer)
                assert r.status_code == 500, r.text
                assert r.headers["content-type"] == "application/json"
                assert r.json()["error"]["response-detail"]
            article = c.put("/risorse/articoli/ART0000001", json={"descrizione": "Nuova"})
            assert article.status_code == 500 and article.json()["error"]["response-detail"]
            assert c.delete("/risorse/articoli/ART0000002").status_code == 500
            # reads go on, and need not write the state file
            assert c.get("/risorse/clienti", params={"max": 100}).status_code == 200
            assert httpx.get(f"{sim.root}/sim/clock").status_code == 200
            assert sim.admin("GET", "stats").json() == before
            assert c.get("/risorse/articoli/ART0000001").json()["descrizione"] != "Nuova"
            for method, path, body in (
                ("POST", "records/clienti", customer),
                ("POST", "mutate", {"resource": "articoli", "count": 2}),
                ("PUT", "clock", {"offset_s": 3600}),
                ("PUT", f"users/{sim.user}", {"password": "other-pw"}),
            ):
                r = httpx.request(method, f"{sim.root}/sim/{path}", json=body)
                assert r.status_code == 500, r.text
                assert "state file" in r.json()["error"]
            assert sim.admin("GET", "stats").json() == before
            assert sim.admin("GET", "clock").json()["offset_s"] == 0
            assert c.get("/risorse/articoli", params={"max": 1}).status_code == 200  # password
            # once the file can be written again, the same request is made once
            folder.unlink()
            moved.rename(folder)
            assert c.post("/risorse/clienti", json=customer).status_code == 201
            assert sim.admin("GET", "stats").json()["clienti"] == before["clienti"] + 1
    finally:
        sim.stop()
    saved = json.loads(state.read_text())
    assert [k for k, _ in saved["tables"]["clienti"]["changed"]] == ["501.00006"]
    assert "articoli" not in saved["tables"]


def _dump(url: str, anno: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, headers=headers("demo", "demo", anno), timeout=30) as c:
        for res in ("articoli", "clienti", "particolarita", "documenti/ordini-clienti"):
            out[res] = c.get(f"/risorse/{res}", params={"max": 10000}).json()["dati"]
        out["blob"] = c.get("/risorse/articoli/ART0000004/allegati").json().get("dati")
    return out


def test_same_seed_same_data_other_seed_other_data() -> None:
    # the data is dated from the moment it is generated ("today", and nothing later than
    # now): the three start from the same moment, however long each takes to start
    from unittest import mock

    from passweb_tui.mexal_sim import erp as erp_mod

    moment = erp_mod.ErpClock().stamp()
    with mock.patch.object(erp_mod.ErpClock, "stamp", lambda self: moment):
        handles = [
            start_background(SimOptions(port=0, articles=400, customers=60, orders=8, seed=s))
            for s in (5, 5, 6)
        ]
    try:
        anno = dt.date.today().year
        a, b, other = (_dump(h.url, anno) for h in handles)
        assert a == b
        assert a["articoli"] != other["articoli"] and a["clienti"] != other["clienti"]
        changes = [
            httpx.post(
                f"{h.root}/sim/mutate", json={"resource": "articoli", "count": 4, "seed": 2}
            ).json()
            for h in handles[:2]
        ]
        assert changes[0] == changes[1]
        key = changes[0]["changed"][0]
        recs = [
            httpx.get(
                f"{h.url}/risorse/articoli/{key.encode().hex()}",
                params={"encoding": "hex"},
                headers=headers("demo", "demo", anno),
            ).json()
            for h in handles[:2]
        ]
        assert recs[0]["descrizione"] == recs[1]["descrizione"]
        assert recs[0]["prz_listino"] == recs[1]["prz_listino"]
    finally:
        for h in handles:
            h.stop()


def test_background_handle_stops() -> None:
    handle = start_background(SimOptions(port=0, articles=50, customers=10, orders=2))
    assert handle.url.startswith("http://127.0.0.1:") and handle.url.endswith("/webapi")
    assert httpx.get(f"{handle.root}/sim/stats").json()["articoli"] == 50
    handle.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{handle.root}/sim/stats", timeout=2)


def test_sigint_stops_cleanly() -> None:
    p = start_sim("--articles", "50", "--customers", "10", "--orders", "2")
    p.process.send_signal(signal.SIGINT)
    assert p.process.wait(timeout=20) == 0


def test_a_request_held_open_does_not_hold_up_a_stop() -> None:
    """A request held by injected latency is answered 503 (not worked on) as soon as the
    simulator is told to stop: before, the process waited out the latency (a minute here)
    before it exited."""
    import threading
    import time

    from passweb_tui.mexal_sim.server import STOP_GRACE_S

    p = start_sim("--articles", "20", "--customers", "5", "--orders", "1")
    try:
        p.admin("PUT", "faults", json={"latency_ms": 60_000})
        outcome: list[object] = []

        def held() -> None:
            try:
                with client(p) as c:
                    outcome.append(c.get("risorse/articoli", params={"max": 1}, timeout=90))
            except httpx.HTTPError as exc:
                outcome.append(exc)

        asking = threading.Thread(target=held, daemon=True)
        asking.start()
        time.sleep(1.0)  # the request is in, sleeping its latency
        assert not outcome
        started = time.monotonic()
        p.process.send_signal(signal.SIGTERM)
        assert p.process.wait(timeout=30) == 0
        took = time.monotonic() - started
        assert took < STOP_GRACE_S, took
        asking.join(timeout=10)
        assert outcome and isinstance(outcome[0], httpx.Response), outcome
        assert outcome[0].status_code == 503
        assert outcome[0].json()["error"]["response-detail"].startswith("5001 ")
        assert p.process.stdout is not None
        said = p.process.stdout.read()
        assert "Traceback" not in said and "Cancel" not in said, said
    finally:
        p.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    p = start_sim("--articles", "50", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert p.url.startswith("https://127.0.0.1:")
        r = httpx.get(
            f"{p.url}/risorse/dati-generali/installazione",
            headers=headers(p.user, p.password, p.anno),
            verify=False,
        )
        assert r.status_code == 200 and r.json()["versione"]
    finally:
        p.stop()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--articles", "-5"], "--articles"),
        # past what the simulator can make in a sensible time (10**9 overflowed before)
        (["--articles", "1000000000"], "--articles must be at most 10,000,000"),
        (["--orders", "100001"], "--orders must be at most 100,000"),
        (["--customers", "0", "--orders", "3"], "--orders"),
        (["--tls-cert", "cert.pem"], "--tls-key"),
        (["--tls-cert", "pyproject.toml", "--tls-key", "pyproject.toml"], "--tls-cert"),
        (["--port", "99999"], "--port must be 0-65535"),
        (["--password", ""], "--password must not be empty"),
        (["--user", ""], "--user must not be empty"),
        (["--azienda", " "], "--azienda must not be empty"),
        # the context header is split at spaces, and the user ends at the first ':'
        (["--azienda", "A B"], "--azienda must be one word"),
        (["--user", "a:b"], "--user must not contain ':'"),
        (["--anno", "99999"], "--anno must be a year like 2026, got 99999"),
        # a folder where the state file cannot be made
        (
            ["--state", "/proc/no-such-folder/state.json"],
            "--state /proc/no-such-folder/state.json: cannot write",
        ),
    ],
)
def test_impossible_options_are_a_clear_error(args: list[str], needle: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "passweb_tui", "erp-sim", "--articles", "20", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2  # a usage error, as every command's
    assert needle in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "serving" not in result.stdout  # no ready line before a failure
