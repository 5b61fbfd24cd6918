"""Shared tools of the tests/test_hard_*.py suites: engines on a simulator, the ERP read
straight over HTTP, and the checks that the store is whole and in step with it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import select, text

from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.engine.facade import Engine, EngineSettings
from passweb_tui.engine.models import metadata
from passweb_tui.engine.records import ENTITIES
from passweb_tui.engine.state import WATERMARK, get_state
from passweb_tui.engine.sync import SyncOptions

ERP_FIELDS = metadata.tables["erp_fields"]
RUNS = metadata.tables["sync_runs"]
PRICES = metadata.tables["article_prices"]


def erp_config(sim: Any, password: str | None = None, retries: int = 2) -> ErpConfig:
    """Few, quick retries: an injected fault must end or pass a run within seconds."""
    return ErpConfig(
        sim.url,
        sim.user,
        password if password is not None else sim.password,
        azienda=sim.azienda,
        anno=sim.anno,
        max_retries=retries,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
    )


def open_engine(
    db_url: str, sim: Any, *, password: str | None = None, retries: int = 2, **options: Any
) -> Engine:
    opts = SyncOptions(page_size=options.pop("page_size", 100), **options)
    return Engine.open(EngineSettings(db_url, erp_config(sim, password, retries), opts))


def watermark(engine: Engine) -> str | None:
    with engine.store.read() as conn:
        return get_state(conn, WATERMARK)


def counts_and_change_log(
    engine: Engine, run_id: int | None
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """A run's counts as its run record has them now (what `runs` shows, of a killed run
    too) and as its committed change log has them: records inserted, updated and deleted
    per entity (the article resources keep no change log)."""
    with engine.store.read() as conn:
        counts = conn.execute(
            text("SELECT counts FROM sync_runs WHERE id = :run"), {"run": run_id}
        ).scalar_one()
        logged = conn.execute(
            text(
                "SELECT entity, change, COUNT(DISTINCT key) FROM change_log"
                " WHERE run_id = :run GROUP BY entity, change"
            ),
            {"run": run_id},
        ).all()
    recorded = {
        (entity, change): n
        for entity, by_change in json.loads(counts or "{}").items()
        for change in ("inserted", "updated", "deleted")
        if entity != "resources" and (n := by_change.get(change, 0))
    }
    return recorded, {(entity, change): n for entity, change, n in logged}


def in_step(engine: Engine) -> dict[str, dict[str, int]]:
    """What a dry-run TOTAL would still change, per entity (empty when in step)."""
    result = engine.run("total", dry_run=True)
    assert result.status in ("ok", "ok_with_rejects"), result.error
    return {
        name: {k: c[k] for k in ("inserted", "updated", "deleted") if c[k]}
        for name, c in result.entities.items()
        if c["inserted"] or c["updated"] or c["deleted"]
    }


# --- the ERP as the simulator serves it, read without the engine's client ----------


def erp_records(
    sim: Any, resource: str, password: str | None = None, fields: Sequence[str] | None = None
) -> dict[str, dict]:
    """Every record of a resource by key (all its fields, or these), paging through
    `next` with plain httpx."""
    token = base64.b64encode(f"{sim.user}:{password or sim.password}".encode()).decode()
    headers = {
        "Authorization": f"Passepartout {token}",
        "Coordinate-Gestionale": f"Azienda={sim.azienda} Anno={sim.anno}",
    }
    out: dict[str, dict] = {}
    params: dict[str, Any] = {"max": 1000}
    if fields:
        params["fields"] = ",".join(sorted({"codice", *fields}))
    with httpx.Client(base_url=sim.url, headers=headers, timeout=60) as http:
        while True:
            reply = http.get(f"/risorse/{resource}", params=params)
            reply.raise_for_status()
            body = json.loads(reply.content, parse_float=Decimal)
            for record in body.get("dati", []):
                out[str(record["codice"])] = record
            if not body.get("next"):
                return out
            params = {**params, "next": body["next"]}


def _norm(value: Any) -> Any:
    """One spelling for a value on either side: numbers as Decimal, [[i, v]] as a mapping."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value)).normalize()
    if isinstance(value, list):
        if value and all(isinstance(p, list) and len(p) == 2 for p in value):
            return {str(i): _norm(v) for i, v in value}
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _norm(v) for k, v in value.items()}
    return value


def same(store_value: Any, erp_value: Any) -> bool:
    if type(store_value) is type(erp_value) and store_value == erp_value:
        return True  # equal values normalise alike (the usual case, decided at once)
    if (
        type(store_value) is dict
        and type(erp_value) is list
        and erp_value
        and all(type(p) is list and len(p) == 2 for p in erp_value)
    ):  # {"1": v} in the store against [[1, v], ...] from the ERP, pair by pair
        pairs = {str(i): v for i, v in erp_value}
        keys = {str(k) for k in store_value}
        return keys == pairs.keys() and all(same(v, pairs[str(k)]) for k, v in store_value.items())
    a, b = _norm(store_value), _norm(erp_value)
    if isinstance(a, str) and isinstance(b, Decimal):
        try:
            return Decimal(a).normalize() == b
        except ArithmeticError:
            return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def store_vs_erp(engine: Engine, sim: Any, password: str | None = None) -> list[str]:
    """Every used field of every stored record compared with the simulator's record.

    Returns the differences, one line each (empty when the store matches the ERP).
    """
    return [f"{entity} {code}: {what}" for entity, code, what in store_diffs(engine, sim, password)]


def store_diffs(
    engine: Engine, sim: Any, password: str | None = None
) -> list[tuple[str, str, str]]:
    """The differences between store and ERP as (entity, code, what) triples."""
    problems: list[tuple[str, str, str]] = []
    with engine.store.read() as conn:
        used_rows = conn.execute(
            select(ERP_FIELDS.c.entity, ERP_FIELDS.c.name).where(ERP_FIELDS.c.used.is_(True))
        ).all()
        used: dict[str, set[str]] = {}
        for entity, name in used_rows:
            used.setdefault(entity, set()).add(name)
        for name, spec in ENTITIES.items():
            table = spec.table
            q = select(table.c.code, table.c.data)
            for col, value in spec.partition:
                q = q.where(table.c[col] == value)
            stored = {code: orjson.loads(data) for code, data in conn.execute(q)}
            # only the fields stored and used are compared: only those are asked for
            names = set(used.get(name, set())).union(*stored.values()) if spec.main else None
            erp = erp_records(sim, spec.resource, password, sorted(names) if names else None)
            for code, data in stored.items():
                record = erp.get(code)
                if record is None:
                    problems.append((name, code, "in the store, not in the ERP"))
                    continue
                if spec.main:
                    missing = used.get(name, set()) - set(data)
                    if missing:
                        problems.append((name, code, f"used fields not stored {sorted(missing)}"))
                for fname, value in data.items():
                    if not same(value, record.get(fname)):
                        problems.append(
                            (name, code, f"{fname}: store {value!r} != ERP {record.get(fname)!r}")
                        )
            if name == "articles":
                problems += _prices_match_data(conn, stored)
    return problems


def _prices_match_data(conn: Any, stored: dict[str, dict]) -> list[tuple[str, str, str]]:
    """The price rows of each article are exactly its stored prz_listino (no half write)."""
    if not stored or "prz_listino" not in next(iter(stored.values())):
        return []
    rows: dict[str, dict[str, Decimal]] = {}
    for code, plist, price in conn.execute(
        select(PRICES.c.article_code, PRICES.c.price_list, PRICES.c.price)
    ):
        rows.setdefault(code, {})[str(plist)] = Decimal(price).normalize()
    out = []
    for code, data in stored.items():
        want = {
            k: Decimal(str(v)).normalize()
            for k, v in (data.get("prz_listino") or {}).items()
            if v is not None and v != ""
        }
        if rows.get(code, {}) != want:
            out.append(("articles", code, f"price rows {rows.get(code)} != data {want}"))
    return out


def unfinished_runs(engine: Engine) -> list[int]:
    """Runs still marked running: after a run has returned there must be none."""
    with engine.store.read() as conn:
        return [r for (r,) in conn.execute(select(RUNS.c.id).where(RUNS.c.status == "running"))]


# --- the program as a user runs it -------------------------------------------------


def cli_env(sim: Any, db: str | None = None, password: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PASSWEB_TUI_ERP_URL=sim.url,
        PASSWEB_TUI_ERP_USER=sim.user,
        PASSWEB_TUI_ERP_PASSWORD=password if password is not None else sim.password,
        PASSWEB_TUI_AZIENDA=sim.azienda,
        PASSWEB_TUI_ANNO=str(sim.anno),
    )
    if db:
        env["PASSWEB_TUI_DB"] = db
    return env


def cli_here(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command line's entry point run in this process, with exactly `env` as its
    environment: argv, stdout, stderr and exit status as `cli` gives them, without an
    interpreter start and the imports per call (for tests that run many commands)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout
    from unittest import mock

    from passweb_tui.cli import main

    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env, clear=True), redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def cli(
    *args: str, env: dict[str, str], timeout: float = 180, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "passweb_tui", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=cwd,
    )
