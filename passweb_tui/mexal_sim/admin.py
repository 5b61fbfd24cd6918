"""The simulator's own `/sim/` admin API: script what happens "inside the ERP".

JSON in, JSON out, no auth, never faulted. Errors: `{"error": "..."}` with 400/404.
A bad input is refused whole, with a message naming the field and the value given,
before anything changes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import random
import re
from collections.abc import Iterable
from dataclasses import asdict, fields
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from passweb_tui.mexal_sim.erp import (
    CLOCK_YEARS,
    DOCS,
    BusinessError,
    Erp,
    Faults,
    StateSaveError,
    parse_stamp,
)
from passweb_tui.mexal_sim.erp import (
    clock_ok as _clock_ok,
)
from passweb_tui.mexal_sim.schema import ORDINI_CLIENTI
from passweb_tui.mexal_sim.store import lone_surrogate

log = logging.getLogger(__name__)


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
        body = json.loads(raw)
    except ValueError as exc:
        raise AdminError(400, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise AdminError(400, "body is not valid JSON: nested too deeply") from None
    bad = lone_surrogate(body)
    if bad is not None:
        # kept, it could never be sent again: every read of its table would fail
        raise AdminError(400, f"body is not valid JSON text: {bad}")
    return body


def _obj(body: Any, known: Iterable[str], shape: str) -> dict[str, Any]:
    """The body as an object holding only `known` fields (`shape` shows the whole)."""
    if not isinstance(body, dict):
        raise AdminError(400, f"body must be a JSON object: {shape}")
    unknown = sorted(set(body) - set(known))
    if unknown:
        # a mistyped name would otherwise be ignored and its default used in silence
        raise AdminError(400, f"unknown field(s) {unknown}; expected {shape}")
    return body


def _shown(value: Any) -> str:
    """A value as the JSON that carried it (true, NaN, "text")."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return repr(value)


def _number(
    value: Any,
    where: str,
    *,
    least: float | None = 0,
    most: float | None = None,
    whole: bool = False,
) -> float:
    """A JSON number within least..most (None: no bound): 400 naming `where` otherwise.
    JSON true and false are not numbers here (Python would take them as 1 and 0), nor
    NaN or an infinity (Python's JSON reads them)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        ok = False
    elif whole:
        ok = isinstance(value, int)
    else:
        try:
            ok = math.isfinite(value)
        except OverflowError:  # an integer past the largest float
            ok = False
    if ok and (least is None or value >= least) and (most is None or value <= most):
        return value
    kind = "a whole number" if whole else "a number"
    if least is not None and most is not None:
        kind += f" {least:g}..{most:g}"
    elif least is not None:
        kind += f" >= {least:g}"
    raise AdminError(400, f"{where}: must be {kind}, got {_shown(value)}")


def _whole(value: Any, where: str, *, least: float | None = 0) -> int:
    return int(_number(value, where, least=least, whole=True))


def _probability(value: Any, where: str) -> float:
    return _number(value, where, least=0, most=1)


#: the largest fulfilled quantity: past it the field (qta_evasa) cannot hold it
_QTA_MOST = 10 ** ORDINI_CLIENTI.by_name["qta_evasa"].lunghezza - 1

#: the longest latency /sim/faults injects: past the 5 minutes the ERP allows one request
MAX_LATENCY_MS = 600_000

_MUTATE = (
    '{"resource": "articoli" | "clienti" | "particolarita", "count": N, "seed": S, "fields": [...]}'
)
_FULFIL = '{"rows": {"id_riga": quantity}, "delivery_note": true | false}'
_ROW_STATE = '{"state": "E" | "S" | "B" | "N"}'
_USER = '{"password": "..."}'
_CLOCK = '{"now": "AAAAMMGG HHMMSS"} or {"offset_s": N}'
_TRIGGER = '{"url": "http(s)://...", "token": "...", "kind": "total" | "changed"}'


def build_admin(erp: Erp) -> Starlette:
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
            except StateSaveError as exc:
                # nothing changed (Erp.change put it back): a retry cannot apply it twice
                why = f"the change was not made: the state file cannot be saved ({exc})"
                log.warning("%s %s: %s", request.method, request.url.path, why)
                return JSONResponse({"error": why}, status_code=500)
            if isinstance(result, Response):
                return result
            return JSONResponse(result)

        return endpoint

    async def stats(request: Request) -> Any:
        return erp.stats()

    async def mutate(request: Request) -> Any:
        body = _obj(await _body(request), ("resource", "count", "seed", "fields"), _MUTATE)
        resource = body.get("resource")
        if resource not in erp.MUTATE_DEFAULTS:
            raise AdminError(
                400,
                f"resource: must be one of {', '.join(erp.MUTATE_DEFAULTS)},"
                f" got {_shown(resource)}",
            )
        count = _whole(body.get("count", 1), "count")
        seed = _whole(body.get("seed", 0), "seed", least=None)
        names = body.get("fields")
        if names is not None and (
            not isinstance(names, list)
            or not names
            or not all(isinstance(n, str) and n for n in names)
        ):
            raise AdminError(
                400,
                "fields: must be a list of one or more field names (leave it out for the"
                f" defaults), got {_shown(names)}",
            )
        with erp.change():
            changed = erp.mutate(resource, count, seed, names)
        return {"changed": changed}

    async def add_record(request: Request) -> Any:
        table = table_of(request.path_params["resource"])
        body = await _body(request)
        with erp.change():
            key = erp.create(table, body, business_rules=False)
        return {"key": key}

    async def delete_record(request: Request) -> Any:
        table = table_of(request.path_params["resource"])
        raw = request.path_params["key"]
        if request.query_params.get("encoding") == "hex":
            try:
                raw = bytes.fromhex(raw).decode("latin-1")
            except ValueError:
                raise AdminError(400, f"key: not hexadecimal (encoding=hex), got {raw!r}") from None
        key = table.parse_key(raw)
        with erp.change():
            if not erp.delete(table, key):
                raise AdminError(404, f"no record {key!r} in {table.name}")
        return {"deleted": key}

    async def orders(request: Request) -> Any:
        marker = request.query_params.get("marker")
        if not marker:
            raise AdminError(400, "query parameter marker is required")
        return {"keys": erp.orders_with_marker(marker)}

    async def fulfil(request: Request) -> Any:
        body = _obj(await _body(request), ("rows", "delivery_note"), _FULFIL)
        given = body.get("rows", {})
        if not isinstance(given, dict):
            raise AdminError(
                400, f'rows: must be an object {{"id_riga": quantity}}, got {_shown(given)}'
            )
        rows: dict[int, float] = {}
        for rid, quantity in given.items():
            if not re.fullmatch(r"[0-9]{1,6}", rid):
                raise AdminError(400, f"rows: {rid!r} is not a row number (id_riga)")
            rows[int(rid)] = _number(quantity, f"rows[{rid!r}]")
            if quantity > _QTA_MOST:  # longer than the field that keeps it
                raise AdminError(
                    400,
                    f"rows[{rid!r}]: must be at most {_QTA_MOST} (the length of qta_evasa),"
                    f" got {_shown(quantity)}",
                )
        delivery_note = body.get("delivery_note", False)
        if not isinstance(delivery_note, bool):
            raise AdminError(
                400, f"delivery_note: must be true or false, got {_shown(delivery_note)}"
            )
        key = request.path_params["key"]
        try:
            with erp.change():
                rec = erp.fulfil(key, rows, delivery_note)
        except LookupError:
            raise AdminError(404, f"no order {key!r}") from None
        return {"key": key, "record": rec}

    async def row_state(request: Request) -> Any:
        body = _obj(await _body(request), ("state",), _ROW_STATE)
        state = body.get("state")
        if not isinstance(state, str):
            raise AdminError(400, f'state: must be E, S, B, N or "", got {_shown(state)}')
        key = request.path_params["key"]
        try:
            with erp.change():
                rec = erp.set_row_state(key, request.path_params["row"], state)
        except LookupError:
            raise AdminError(404, f"no order {key!r}") from None
        return {"key": key, "record": rec}

    async def faults(request: Request) -> Any:
        if request.method == "DELETE":
            erp.faults = Faults()
            return asdict(erp.faults)
        if request.method == "GET":
            return asdict(erp.faults)
        known = [f.name for f in fields(Faults)]
        settings = [*known, "seed"]
        body = dict(_obj(await _body(request), settings, f"some of {', '.join(settings)}"))
        seed = body.pop("seed", None)  # optional: reseed the fault dice
        if seed is not None:
            seed = _whole(seed, "seed", least=None)
        status = body.get("status", erp.faults.status)
        if not isinstance(status, dict):
            raise AdminError(
                400, f'status: must be an object like {{"503": 0.2}}, got {_shown(status)}'
            )
        for code, p in status.items():
            # the WebAPI answers a faulted request with this status: an error one
            if not re.fullmatch(r"[0-9]{3}", code) or not 400 <= int(code) <= 599:
                raise AdminError(
                    400, f"status: {code!r} is not an HTTP error status code (400-599)"
                )
            _probability(p, f"status[{code!r}]")
        for name in ("drop_before_commit", "drop_after_commit", "malformed", "reject_next"):
            if name in body:
                _probability(body[name], name)
        if "pool_size" in body:
            _whole(body["pool_size"], "pool_size", least=1)
        if "latency_ms" in body:
            _number(body["latency_ms"], "latency_ms", most=MAX_LATENCY_MS)
        erp.faults = Faults(**{**asdict(erp.faults), **body})
        erp.fault_rng = random.Random(seed if seed is not None else erp.params.seed * 7 + 1)
        return asdict(erp.faults)

    async def users(request: Request) -> Any:
        body = _obj(await _body(request), ("password",), _USER)
        password = body.get("password")
        if not isinstance(password, str) or not password:
            raise AdminError(400, f"password: must be a non-empty text, got {_shown(password)}")
        user = request.path_params["user"]
        if ":" in user:
            # the WebAPI reads a user up to the first ':' of user:password
            raise AdminError(400, f"user: must not contain ':', got {_shown(user)}")
        with erp.change():
            unlocked = erp.set_password(user, password)
        return {"user": user, "unlocked": unlocked}

    async def clock(request: Request) -> Any:
        if request.method == "DELETE":
            with erp.change():
                erp.clock.offset_s = 0.0
        elif request.method == "PUT":
            body = _obj(await _body(request), ("now", "offset_s"), _CLOCK)
            if len(body) != 1:
                raise AdminError(400, f"give exactly one of now and offset_s: {_CLOCK}")
            if "now" in body:
                now = body["now"]
                try:
                    if not isinstance(now, str):
                        raise ValueError(now)
                    when = parse_stamp(now)
                except ValueError:
                    raise AdminError(
                        400, f"now: must be 'AAAAMMGG HHMMSS', got {_shown(now)}"
                    ) from None
                offset = (when - dt.datetime.now()).total_seconds()
            else:
                offset = float(_number(body["offset_s"], "offset_s", least=None))
            if not _clock_ok(offset):
                raise AdminError(
                    400, f"the ERP's clock must stay within the years {CLOCK_YEARS[0]}-"
                    f"{CLOCK_YEARS[1]}; an offset of {offset!r} s leaves them"
                )  # fmt: skip
            with erp.change():
                erp.clock.offset_s = offset
        return {"now": erp.clock.stamp(), "offset_s": erp.clock.offset_s}

    async def trigger(request: Request) -> Any:
        body = _obj(await _body(request), ("url", "token", "kind"), _TRIGGER)
        url, token, kind = body.get("url"), body.get("token"), body.get("kind")
        bad_url = AdminError(400, f"url: must be an http:// or https:// URL, got {_shown(url)}")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise bad_url
        if token is not None and not isinstance(token, str):
            raise AdminError(400, f"token: must be a text, got {_shown(token)}")
        if kind not in ("total", "changed"):
            raise AdminError(400, f"kind: must be total or changed, got {_shown(kind)}")
        import httpx  # only this call needs a client (not every start of the simulator)

        try:
            parsed = httpx.URL(url)
            port = parsed.port
            if not parsed.host or (port is not None and not 0 < port <= 65535):
                raise httpx.InvalidURL(url)
        except (httpx.InvalidURL, ValueError, UnicodeError):
            raise bad_url from None
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                reply = await client.post(parsed, json={"kind": kind, "token": token})
        except (httpx.InvalidURL, ValueError, UnicodeError):
            # a URL httpx parses but cannot send to (a host it cannot encode, say)
            raise bad_url from None
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

    async def not_routed(request: Request, exc: Exception) -> Response:
        # JSON in and out, a path or a method the admin API does not have included
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            allowed = sorted({m for r in routes if r.path_regex.match(request.url.path)
                              for m in (r.methods or ()) if m != "HEAD"})  # fmt: skip
            why = f"{request.method} {request.url.path}: use {', '.join(allowed)}"
            return JSONResponse({"error": why}, 405, headers={"allow": ", ".join(allowed)})
        if status == 404:
            return JSONResponse({"error": f"no admin request {request.url.path}"}, 404)
        return JSONResponse({"error": str(getattr(exc, "detail", exc))}, status)

    return Starlette(routes=routes, exception_handlers={HTTPException: not_routed})
