"""The simulator at the catalogue size it promises: 1,000,000 articles.

Slow (marked): run it with `.venv/bin/pytest -m slow tests/test_sim_scale.py`.
"""

from __future__ import annotations

import base64
import datetime as dt
import time

import httpx
import pytest
from conftest import start_sim


@pytest.mark.slow
def test_a_million_articles_start_fast_and_page_cheaply() -> None:
    began = time.monotonic()
    sim = start_sim("--articles", "1000000", "--customers", "20000", "--orders", "50")
    startup = time.monotonic() - began
    try:
        assert startup < 30
        secret = base64.b64encode(f"{sim.user}:{sim.password}".encode()).decode()
        headers = {
            "Authorization": f"Passepartout {secret}",
            "Coordinate-Gestionale": f"Azienda={sim.azienda} Anno={sim.anno}",
        }
        with httpx.Client(base_url=sim.url, headers=headers, timeout=60) as c:
            costs = []
            r = c.get("/risorse/articoli", params={"max": 1000})
            for _ in range(20):
                costs.append(float(r.headers["server-timing"].split("dur=")[1]))
                assert len(r.json()["dati"]) == 1000
                r = c.get("/risorse/articoli", params={"max": 1000, "next": r.json()["next"]})
            assert sorted(costs)[len(costs) // 2] < 50  # a few ms on an idle machine
            # the tail of the catalogue, reached by a key search, then changed-since
            tail = c.post(
                "/risorse/articoli/ricerca",
                params={"max": 1000},
                json={"filtri": [{"campo": "codice", "condizione": ">", "valore": "ART0995000"}]},
            ).json()["dati"]
            assert tail[0]["codice"] == "ART0995001"
            today = dt.date.today().strftime("%Y%m%d")
            body = {"filtri": [{"campo": "dt_mod_sistema", "condizione": ">=", "valore": today}]}
            r = c.post("/risorse/articoli/ricerca", params={"max": 1000}, json=body)
            assert float(r.headers["server-timing"].split("dur=")[1]) < 500
            assert all(a["dt_mod_sistema"] == today for a in r.json()["dati"])
    finally:
        sim.stop()
