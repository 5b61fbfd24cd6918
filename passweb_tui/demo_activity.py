"""A gentle stream of ERP-side activity for the demo: every few seconds the simulated ERP
changes some prices and stock, a customer, and fulfils a row of a web order.

It talks to the simulator's /sim/ admin API (and reads web orders through the WebAPI),
so that every screen of `passweb-tui --demo` shows life within a minute.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from typing import Any

import httpx

log = logging.getLogger(__name__)

#: what every web order's note carries (its id between dollars, `$D000001$`); the
#: simulator's own orders have none
WEB_ORDER_MARK = "$"
_MARKER = re.compile(r"\$[A-Za-z0-9_.-]+\$")


class DemoActivity:
    """A daemon thread that nudges the simulator until stopped."""

    def __init__(
        self,
        webapi_url: str,
        *,
        user: str = "demo",
        password: str = "demo",
        azienda: str = "DEM",
        anno: int | None = None,
        interval_s: float = 6.0,
        seed: int = 1,
    ) -> None:
        self.root = webapi_url.rstrip("/")[: -len("/webapi")]
        self.webapi_url = webapi_url
        self.credentials = (user, password, azienda, anno)
        self.interval_s = interval_s
        self.random = random.Random(seed)
        self.ticks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> DemoActivity:
        self._thread = threading.Thread(target=self._loop, name="demo-activity", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        with httpx.Client(base_url=self.root, timeout=30) as http:
            while not self._stop.wait(self.interval_s):
                try:
                    self.tick(http)
                except Exception as exc:  # the demo must go on if one nudge fails
                    log.info("demo activity: %s", exc)

    def tick(self, http: httpx.Client) -> None:
        """One round of ERP-side changes."""
        self.ticks += 1
        seed = self.random.randrange(1_000_000)
        http.post(
            "/sim/mutate",
            json={"resource": "articoli", "count": self.random.randint(1, 4), "seed": seed},
        ).raise_for_status()
        if self.ticks % 3 == 0:
            http.post(
                "/sim/mutate", json={"resource": "clienti", "count": 1, "seed": seed + 1}
            ).raise_for_status()
        if self.ticks % 4 == 0:
            self.fulfil_one(http)

    def fulfil_one(self, http: httpx.Client) -> None:
        """Fulfil one open row of one web order, as the warehouse would."""
        from passweb_tui.engine.erp.client import Filter, MexalClient
        from passweb_tui.engine.erp.settings import ErpConfig
        from passweb_tui.engine.erp.values import parse_indexed

        user, password, azienda, anno = self.credentials
        config = ErpConfig(
            base_url=self.webapi_url,
            user=user,
            password=password,
            azienda=azienda,
            anno=anno,
            max_in_flight=1,
            max_retries=1,
        )
        with MexalClient(config) as client:
            page = client.search_page(
                "documenti/ordini-clienti",
                [Filter("nota", "contiene", WEB_ORDER_MARK)],
                max=50,
            )
        candidates: list[tuple[str, dict[str, Any]]] = []
        for order in page.records:
            if not _MARKER.search(str(order.get("nota") or "")):
                continue
            quantities = parse_indexed(order.get("quantita") or [])
            fulfilled = parse_indexed(order.get("qta_evasa") or [])
            states = parse_indexed(order.get("stato_riga") or [])
            ids = parse_indexed(order.get("id_riga") or [])
            for index, qty in quantities.items():
                if states.get(index, "") == "" and (fulfilled.get(index) or 0) < qty:
                    row_id = str(ids.get(index, index))
                    key = f"{order['sigla']}+{order['serie']}+{order['numero']}"
                    candidates.append((key, {row_id: float(qty)}))
                    break
        if not candidates:
            return
        key, rows = self.random.choice(candidates)
        http.post(
            f"/sim/orders/{key}/fulfil", json={"rows": rows, "delivery_note": False}
        ).raise_for_status()
