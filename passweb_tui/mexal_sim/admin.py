"""The simulator's own `/sim/` admin API: script what happens "inside the ERP".

JSON in, JSON out, no auth, never faulted. Errors: `{"error": "..."}` with 400/404.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import asdict, fields
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from passweb_tui.mexal_sim.erp import (
    CLOCK_YEARS,
    DOCS,
    BusinessError,
    Erp,
    Faults,
    parse_stamp,
)
from passweb_tui.mexal_sim.erp import (
    clock_ok as _clock_ok,
)


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise AdminError(400, f"body is not valid JSON: {exc}") from None


def _obj(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AdminError(400, "body must be a JSON object")
    return body


def build_admin(erp: Erp) -> Router:
    """The /sim/ routes bound to one ERP."""

    def table_of(resource: str) -> Any:
        name = erp.admin_names.get(resource)
        if name is None:
            raise AdminError(
                404, f"unknown resource {resource!r}; known: {sorted(erp.admin_names)}"
            )
        return erp.tables[name]

    def wrap(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                result = await handler(request)
            except AdminError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status)
            except BusinessError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            if isinstance(result, Response):
                return result
            return JSONResponse(result)

        return endpoint

    async def stats(request: Request) -> Any:
        return erp.stats()

    async def mutate(request: Request) -> Any:
        body = _obj(await _body(request))
        resource = body.get("resource")
        if resource not in erp.MUTATE_DEFAULTS:
            raise AdminError(400, "resource must be one of articoli, clienti, particolarita")
        count, seed = body.get("count", 1), body.get("seed", 0)
        if not isinstance(count, int) or count < 0 or not isinstance(seed, int):
            raise AdminError(400, "count and seed must be integers (count >= 0)")
        names = body.get("fields")
        if names is not None and (
            not isinstance(names, list) or not all(isinstance(n, str) for n in names)
        ):
            raise AdminError(400, "fields must be a list of field names")
        changed = erp.mutate(resource, count, seed, names)
        erp.save()
        return {"changed": changed}

    async def add_record(request: Request) -> Any:
        table = table_of(request.path_params["resource"])
        key = erp.create(table, await _body(request))
        erp.save()
        return {"key": key}

    async def delete_record(request: Request) -> Any:
        table = table_of(request.path_params["resource"])
        raw = request.path_params["key"]
        if request.query_params.get("encoding") == "hex":
            try:
                raw = bytes.fromhex(raw).decode("latin-1")
            except ValueError:
                raise AdminError(400, f"bad hex key {raw!r}") from None
        key = table.parse_key(raw)
        if not erp.delete(table, key):
            raise AdminError(404, f"no record {key!r} in {table.name}")
        erp.save()
        return {"deleted": key}

    async def orders(request: Request) -> Any:
        marker = request.query_params.get("marker")
        if not marker:
            raise AdminError(400, "query parameter marker is required")
        return {"keys": erp.orders_with_marker(marker)}

    async def fulfil(request: Request) -> Any:
        body = _obj(await _body(request))
        rows = body.get("rows", {})
        if not isinstance(rows, dict):
            raise AdminError(400, 'rows must be an object {"id_riga": quantity}')
        key = request.path_params["key"]
        try:
            rec = erp.fulfil(key, rows, bool(body.get("delivery_note", False)))
        except LookupError:
            raise AdminError(404, f"no order {key!r}") from None
        erp.save()
        return {"key": key, "record": rec}

    async def row_state(request: Request) -> Any:
        body = _obj(await _body(request))
        state = body.get("state")
        if not isinstance(state, str):
            raise AdminError(400, 'body must be {"state": "E" | "S" | "B" | "N"}')
        key = request.path_params["key"]
        try:
            rec = erp.set_row_state(key, request.path_params["row"], state)
        except LookupError:
            raise AdminError(404, f"no order {key!r}") from None
        erp.save()
        return {"key": key, "record": rec}

    async def faults(request: Request) -> Any:
        if request.method == "DELETE":
            erp.faults = Faults()
            return asdict(erp.faults)
        if request.method == "GET":
            return asdict(erp.faults)
        body = _obj(await _body(request))
        known = {f.name for f in fields(Faults)}
        seed = body.pop("seed", None)  # optional: reseed the fault dice
        unknown = sorted(set(body) - known)
        if unknown:
            raise AdminError(400, f"unknown fault setting(s) {unknown}; known: {sorted(known)}")
        new = Faults(**{**asdict(erp.faults), **body})
        if not isinstance(new.status, dict):
            raise AdminError(400, 'status must be an object like {"503": 0.2}')
        for code, p in new.status.items():
            if not str(code).isdigit() or not isinstance(p, int | float) or not 0 <= p <= 1:
                raise AdminError(400, f"status {code!r}: probability {p!r} must be within 0..1")
        for name in ("drop_before_commit", "drop_after_commit", "malformed", "reject_next"):
            p = getattr(new, name)
            if not isinstance(p, int | float) or not 0 <= p <= 1:
                raise AdminError(400, f"{name} must be a probability within 0..1")
        if not isinstance(new.pool_size, int) or new.pool_size < 1:
            raise AdminError(400, "pool_size must be an integer >= 1")
        if not isinstance(new.latency_ms, int | float) or new.latency_ms < 0:
            raise AdminError(400, "latency_ms must be a number >= 0")
        erp.faults = new
        erp.fault_rng = random.Random(seed if isinstance(seed, int) else erp.params.seed * 7 + 1)
        return asdict(erp.faults)

    async def users(request: Request) -> Any:
        body = _obj(await _body(request))
        password = body.get("password")
        if not isinstance(password, str) or not password:
            raise AdminError(400, 'body must be {"password": "..."}')
        user = request.path_params["user"]
        erp.users[user] = password
        erp.save()
        return {"user": user}

    async def clock(request: Request) -> Any:
        if request.method == "DELETE":
            erp.clock.offset_s = 0.0
        elif request.method == "PUT":
            body = _obj(await _body(request))
            if "now" in body:
                try:
                    when = parse_stamp(str(body["now"]))
                except ValueError:
                    raise AdminError(400, "now must be 'AAAAMMGG HHMMSS'") from None
                offset = (when - dt.datetime.now()).total_seconds()
            elif (
                "offset_s" in body
                and isinstance(body["offset_s"], int | float)
                and not isinstance(body["offset_s"], bool)
            ):
                offset = float(body["offset_s"])
            else:
                raise AdminError(400, 'body must be {"now": "AAAAMMGG HHMMSS"} or {"offset_s": N}')
            if not _clock_ok(offset):
                raise AdminError(
                    400, f"the ERP's clock must stay within the years {CLOCK_YEARS[0]}-"
                    f"{CLOCK_YEARS[1]}; an offset of {offset!r} s leaves them"
                )  # fmt: skip
            erp.clock.offset_s = offset
        erp.save()
        return {"now": erp.clock.stamp(), "offset_s": erp.clock.offset_s}

    async def trigger(request: Request) -> Any:
        body = _obj(await _body(request))
        url, kind = body.get("url"), body.get("kind")
        if not isinstance(url, str) or kind not in ("total", "changed"):
            raise AdminError(
                400, 'body must be {"url": "...", "token": "...", "kind": "total" | "changed"}'
            )
        import httpx  # only this call needs a client (not every start of the simulator)

        try:
            async with httpx.AsyncClient(timeout=30) as client:
                reply = await client.post(url, json={"kind": kind, "token": body.get("token")})
        except httpx.HTTPError as exc:
            raise AdminError(502, f"cannot reach {url}: {exc}") from None
        try:
            answer: Any = reply.json()
        except ValueError:
            answer = reply.text
        return {"status": reply.status_code, "body": answer}

    routes = [
        Route("/sim/stats", wrap(stats), methods=["GET"]),
        Route("/sim/mutate", wrap(mutate), methods=["POST"]),
        Route("/sim/records/{resource}", wrap(add_record), methods=["POST"]),
        Route("/sim/records/{resource}/{key:path}", wrap(delete_record), methods=["DELETE"]),
        Route("/sim/orders", wrap(orders), methods=["GET"]),
        Route("/sim/orders/{key}/fulfil", wrap(fulfil), methods=["POST"]),
        Route("/sim/orders/{key}/rows/{row:int}/state", wrap(row_state), methods=["POST"]),
        Route("/sim/faults", wrap(faults), methods=["GET", "PUT", "DELETE"]),
        Route("/sim/users/{user}", wrap(users), methods=["PUT"]),
        Route("/sim/clock", wrap(clock), methods=["GET", "PUT", "DELETE"]),
        Route("/sim/trigger", wrap(trigger), methods=["POST"]),
    ]
    assert DOCS
    return Router(routes=routes)
