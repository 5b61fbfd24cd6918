"""Benchmark of the ERP simulator: start-up time and server work per 1,000-record page.

Run: .venv/bin/python bench/bench_sim.py [--sizes 100000,1000000] [--pages 100]
The simulator runs in its own process (`passweb-tui erp-sim`), so the figures
are its own (read from the Server-Timing header), not shared with the client.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import re
import statistics
import subprocess
import sys
import time

import httpx

READY = re.compile(r"serving (http\S+/webapi) user=(\S+) azienda=(\S+) anno=(\d+)")


def start(articles: int) -> tuple[subprocess.Popen[str], str, float]:
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "passweb_tui", "erp-sim", "--port", "0",
         "--articles", str(articles), "--customers", "20000", "--password", "bench"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        m = READY.search(line)
        if m:
            return proc, m.group(1), time.perf_counter() - began
    raise RuntimeError("simulator did not start")


def server_ms(r: httpx.Response) -> float:
    return float(r.headers["server-timing"].split("dur=")[1])


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(len(values) * q), len(values) - 1)]


def bench(articles: int, pages: int) -> None:
    proc, url, startup = start(articles)
    try:
        secret = base64.b64encode(b"demo:bench").decode()
        headers = {
            "Authorization": f"Passepartout {secret}",
            "Coordinate-Gestionale": f"Azienda=DEM Anno={dt.date.today().year}",
        }
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            for label, params in (
                ("all fields", {"max": 1000}),
                ("6 fields", {"max": 1000, "fields": "descrizione,prz_listino,alq_iva,"
                              "trasf_sito,dt_mod_sistema,ora_mod_sistema"}),
            ):  # fmt: skip
                times: list[float] = []
                began = time.perf_counter()
                r = c.get("/risorse/articoli", params=params)
                while True:
                    times.append(server_ms(r))
                    token = r.json().get("next")
                    if not token or len(times) >= pages:
                        break
                    r = c.get("/risorse/articoli", params={**params, "next": token})
                wall = time.perf_counter() - began
                print(
                    f"{articles:>9,} articles, list {label:<10}: server per 1000-record page "
                    f"median {statistics.median(times):.2f} ms, p90 {pct(times, 0.9):.2f} ms "
                    f"({len(times)} pages, {wall / len(times) * 1000:.1f} ms wall per page)"
                )
            today = dt.date.today()
            for days in (0, 7):
                since = (today - dt.timedelta(days=days)).strftime("%Y%m%d")
                body = {
                    "filtri": [{"campo": "dt_mod_sistema", "condizione": ">=", "valore": since}]
                }
                r = c.post("/risorse/articoli/ricerca", params={"max": 1000}, json=body)
                print(
                    f"{articles:>9,} articles, changed since {days} day(s): first page "
                    f"{server_ms(r):.2f} ms server, {len(r.json().get('dati', []))} records"
                )
        print(f"{articles:>9,} articles, start-up to ready line: {startup:.2f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--pages", type=int, default=100)
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        bench(size, args.pages)


if __name__ == "__main__":
    main()
