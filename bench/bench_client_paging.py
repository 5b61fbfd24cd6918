"""Benchmark: page through every article of a simulator with MexalClient.

Starts `passweb-tui erp-sim` as a subprocess (100,000 articles by default),
pages through all of them with page size 1000, first with a few fields and then
with all fields, and prints the total time, records per second and the
simulator's own work per page (its `Server-Timing: app;dur=<ms>` header). The
floor is the same paging with bare httpx and plain json.loads.

    .venv/bin/python bench/bench_client_paging.py [--articles 100000] [--page-size 1000]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.erp.settings import ErpConfig

READY = re.compile(r"serving (http\S+/webapi) user=(\S+) azienda=(\S+) anno=(\d+)")
TIMING = re.compile(r"app;dur=([0-9.]+)")
PASSWORD = "bench-pw"
SOME_FIELDS = ["codice", "descrizione", "prz_listino", "alq_iva", "dt_mod_sistema"]


@dataclass
class Run:
    label: str
    records: int = 0
    seconds: float = 0.0
    server_ms: list[float] = field(default_factory=list)
    client_ms: list[float] = field(default_factory=list)

    def note(self, response: httpx.Response, seconds: float) -> None:
        self.client_ms.append(seconds * 1000)
        m = TIMING.search(response.headers.get("Server-Timing", ""))
        if m:
            self.server_ms.append(float(m.group(1)))

    def line(self) -> str:
        rate = self.records / self.seconds if self.seconds else 0.0
        pages = len(self.client_ms)
        text = (
            f"{self.label:<34} {self.records:>8} records  {self.seconds:7.2f} s  "
            f"{rate:>9,.0f} rec/s  {pages} pages; wire median "
            f"{statistics.median(self.client_ms):5.1f} ms/page"
        )
        if self.server_ms:
            text += (
                f", server median {statistics.median(self.server_ms):.1f} ms/page "
                f"(max {max(self.server_ms):.1f}, total {sum(self.server_ms) / 1000:.2f} s)"
            )
        else:
            text += "; no Server-Timing header"
        return text


def start_sim(articles: int) -> tuple[subprocess.Popen[str], str, str, str, int]:
    args = [sys.executable, "-m", "passweb_tui", "erp-sim", "--port", "0"]
    args += ["--articles", str(articles), "--customers", "10", "--orders", "0"]
    args += ["--password", PASSWORD]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    started = time.perf_counter()
    for line in proc.stdout:
        m = READY.search(line)
        if m:
            print(f"simulator ready in {time.perf_counter() - started:.1f} s: {m.group(1)}")
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
            return proc, m.group(1), m.group(2), m.group(3), int(m.group(4))
    raise SystemExit("simulator did not start")


def with_client(config: ErpConfig, label: str, fields: list[str] | None, size: int) -> Run:
    run = Run(label)
    with MexalClient(config, on_response=run.note) as client:
        started = time.perf_counter()
        for page in client.iter_pages("articoli", fields=fields, page_size=size):
            run.records += len(page.records)
        run.seconds = time.perf_counter() - started
    return run


def bare_httpx(config: ErpConfig, label: str, fields: list[str] | None, size: int) -> Run:
    import base64

    run = Run(label)
    auth = base64.b64encode(f"{config.user}:{config.password}".encode()).decode()
    headers = {
        "Authorization": f"Passepartout {auth}",
        "Coordinate-Gestionale": f"Azienda={config.azienda} Anno={config.anno}",
    }
    url = config.base_url + "/risorse/articoli"
    with httpx.Client(headers=headers, timeout=60) as http:
        started = time.perf_counter()
        token: str | None = None
        while True:
            params = {"max": str(size)}
            if fields:
                params["fields"] = ",".join(fields)
            if token:
                params["next"] = token
            t0 = time.perf_counter()
            response = http.get(url, params=params)
            response.raise_for_status()
            run.note(response, time.perf_counter() - t0)  # the wire only, as for the client
            data = json.loads(response.content)
            run.records += len(data.get("dati", []))
            token = data.get("next")
            if not token:
                break
        run.seconds = time.perf_counter() - started
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    opts = parser.parse_args()
    proc, url, user, azienda, anno = start_sim(opts.articles)
    try:
        config = ErpConfig(base_url=url, user=user, password=PASSWORD, azienda=azienda, anno=anno)
        size = opts.page_size
        # one untimed pass so both sides start warm (imports, caches, lazily built data)
        with_client(config, "warm-up", None, size)
        runs: list[Callable[[], Run]] = [
            lambda: bare_httpx(config, "floor: bare httpx, some fields", SOME_FIELDS, size),
            lambda: with_client(config, "MexalClient, some fields", SOME_FIELDS, size),
            lambda: bare_httpx(config, "floor: bare httpx, all fields", None, size),
            lambda: with_client(config, "MexalClient, all fields", None, size),
        ]
        print(f"{opts.articles} articles, page size {size}; some fields = {','.join(SOME_FIELDS)}")
        for make in runs:
            # best of two: the figures are for comparing, and noise only ever adds time
            best = min((make() for _ in range(2)), key=lambda r: r.seconds)
            print(best.line(), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
