"""The `/webapi` HTTP surface: auth, context header, paging, search, writes, faults.

Every answer follows the shapes of the real WebAPI (errors as
`{"error": {"response-detail": "NNNN - ..."}}`, 404 with an empty body).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from passweb_tui.mexal_sim.erp import DOCS, BusinessError, Erp, StateSaveError
from passweb_tui.mexal_sim.query import QueryError, compile_filters, matches, parse_fields
from passweb_tui.mexal_sim.schema import LOOKUPS, RIGHE_ORDINI
from passweb_tui.mexal_sim.store import Cursor, Table, lone_surrogate

log = logging.getLogger(__name__)

VERSION = "2.9.17"
DEFAULT_MAX = 100
MAX_MAX = 10000
ROWS = "documenti/ordini-clienti/righe"
NO_CONTEXT = ("dati-generali/installazione", "aziende", "dati-generali/utenti")

# Response details; the texts after the codes are ours (ASSUMED).
E_CONTEXT = "1001 - coordinate gestionali mancanti o non valide"
E_AUTH = "2002 - credenziali non valide"
E_POOL = "3002 - numero massimo di richieste contemporanee raggiunto per l'utente"
E_NEXT = "1003 - token next non valido"
E_LINK = "5001 - collegamento tra WebAPI e gestionale interrotto"
E_TIMEOUT = "5002 - tempo massimo di elaborazione superato"
E_SAVE = "5003 - archivi del gestionale non scrivibili, modifica non eseguita"
E_METHOD = "6001 - errore gestionale [metodo non ammesso]"

# The methods each kind of path takes (the Allow header of a 405). HEAD goes wherever
# GET does.
ALLOW_READ = ("GET", "HEAD")
ALLOW_LIST = ("GET", "HEAD", "POST")
ALLOW_RECORD = ("GET", "HEAD", "PUT", "DELETE")


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


#: an article image's other renditions: name -> (divisor of the image's size, least size)
IMAGE_RENDITIONS = {"icona": (8, 120), "immagine-catalogo": (2, 400)}


class Reply(Exception):
    """Raised to answer at once with an error."""

    def __init__(
        self, status: int, detail: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail or str(status))
        self.status = status
        self.detail = detail
        self.headers = headers


def not_allowed(methods: tuple[str, ...], detail: str = E_METHOD) -> Reply:
    return Reply(405, detail, {"Allow": ", ".join(methods)})


def business(text: str) -> Reply:
    return Reply(400, f"6001 - errore gestionale [{text}]")


class DroppedResponse(Response):
    """Headers promising a body that never fully arrives: the client sees the
    connection cut mid-reply (a transport error), as when a proxy or the ERP dies."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"dati": [', "more_body": True})
        # returning without finishing makes the server close the connection


class WebApi:
    """The ASGI handler of everything under /webapi."""

    def __init__(self, erp: Erp) -> None:
        self.erp = erp
        self.inflight: dict[str, int] = defaultdict(int)
        # whether the server is stopping (set by the server that serves this): a request
        # held by injected latency is then answered at once rather than holding up the stop
        self.stopping: Callable[[], bool] = lambda: False

    async def _hold(self, seconds: float) -> bool:
        """Wait `seconds` of injected latency; False if the server began to stop meanwhile."""
        end = asyncio.get_running_loop().time() + seconds
        while not self.stopping():
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                return True
            await asyncio.sleep(min(left, 0.1))
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    # ------------------------------------------------------------- helpers
    def error(
        self,
        request: Request,
        status: int,
        detail: str | None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if status == 404 or detail is None:
            return Response(status_code=status, headers=headers)
        now = self.erp.clock.now()
        body = {
            "error": {
                "response-detail": detail,
                "request-id": uuid.uuid4().hex,
                "request-method": request.method,
                "request-uri": request.url.path
                + (f"?{request.url.query}" if request.url.query else ""),
                "timestamp": now.strftime("%d/%m/%Y %H:%M:%S"),
            }
        }
        if status == 503:
            headers = {**(headers or {}), "Retry-After": "1"}
        return Response(
            dumps(body), status_code=status, media_type="application/json", headers=headers
        )

    def authenticate(self, request: Request) -> str:
        raw = request.headers.get("authorization", "")
        parts = raw.split()
        if len(parts) < 2 or parts[0] != "Passepartout":
            raise Reply(401, E_AUTH + " (intestazione Authorization Passepartout mancante)")
        try:
            user, sep, password = base64.b64decode(parts[1], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Reply(401, E_AUTH + " (Authorization non in base64)") from None
        refused = self.erp.login(user, password) if sep else ""
        if refused is not None:
            raise Reply(401, f"{E_AUTH} ({refused})" if refused else E_AUTH)
        return user

    def check_context(self, request: Request) -> None:
        raw = request.headers.get("coordinate-gestionale")
        if not raw:
            raise Reply(400, E_CONTEXT + " (intestazione Coordinate-Gestionale mancante)")
        values: dict[str, str] = {}
        for token in raw.split():
            k, sep, v = token.partition("=")
            if not sep:
                raise Reply(400, E_CONTEXT + f" (elemento '{token}' non valido)")
            values[k.lower()] = v
        azienda, anno = values.get("azienda"), values.get("anno")
        if azienda is None or anno is None:
            raise Reply(400, E_CONTEXT + " (servono Azienda e Anno)")
        if azienda != self.erp.azienda:
            raise Reply(400, E_CONTEXT + f" (azienda '{azienda}' inesistente)")
        if anno != str(self.erp.anno):
            raise Reply(400, E_CONTEXT + f" (anno {anno} non gestito)")
        mag = values.get("magazzino")
        if mag is not None:
            mags = self.erp.tables[LOOKUPS["magazzini"].resource]
            if not _digits(mag) or not mags.exists(int(mag)):
                raise Reply(400, E_CONTEXT + f" (magazzino {mag} inesistente)")

    # --------------------------------------------------------------- entry
    async def handle(self, request: Request) -> Response:
        erp = self.erp
        try:
            user = self.authenticate(request)
        except Reply as r:
            return self.error(request, r.status, r.detail)
        faults = erp.faults
        if self.inflight[user] >= faults.pool_size:
            return self.error(request, 503, E_POOL)
        self.inflight[user] += 1
        try:
            # the whole request is in before the ERP works on it: a client that goes away
            # meanwhile (killed, timed out) does not stop a write it had sent, as with the
            # real server, which finishes what it was given
            await request.body()
            if faults.latency_ms > 0 and not await self._hold(faults.latency_ms / 1000):
                # not worked on: the client may send it again to the next server
                return self.error(request, 503, E_LINK, {"Connection": "close"})
            rng = erp.fault_rng
            if faults.status:
                draw, acc = rng.random(), 0.0
                for code, p in faults.status.items():
                    acc += float(p)
                    if draw < acc:
                        status = int(code)
                        detail = {503: E_POOL, 408: E_TIMEOUT}.get(status, E_LINK)
                        return self.error(request, status, detail)
            if faults.drop_before_commit and rng.random() < faults.drop_before_commit:
                return DroppedResponse()
            writes = request.method in ("POST", "PUT", "DELETE") and not _path(request).endswith(
                "/ricerca"
            )
            try:
                response = await self.route(request)
            except Reply as r:
                return self.error(request, r.status, r.detail, r.headers)
            except StateSaveError as exc:
                # the change was put back (Erp.change): the client may safely send it again
                log.warning(
                    "%s %s not made: the state file %s", request.method, _path(request), exc
                )
                return self.error(request, 500, E_SAVE)
            if writes and faults.drop_after_commit and rng.random() < faults.drop_after_commit:
                return DroppedResponse()
            if (
                not writes
                and faults.malformed
                and response.status_code == 200
                and response.media_type == "application/json"
                and rng.random() < faults.malformed
            ):
                body = bytes(response.body)
                return Response(body[: max(len(body) // 2, 1)], media_type="application/json")
            return response
        finally:
            self.inflight[user] -= 1

    async def route(self, request: Request) -> Response:
        path = _path(request)
        method = request.method
        if path.rstrip("/") == "/webapi/servizi":
            if method != "POST":
                raise not_allowed(("POST",), "6001 - errore gestionale [usare POST per i servizi]")
            body = await self.json_body(request)
            cmd = body.get("cmd") if isinstance(body, dict) else None
            raise business(f"Comando '{cmd}' non supportato")
        if not path.startswith("/webapi/risorse/"):
            raise Reply(404)
        rest = path[len("/webapi/risorse/") :].strip("/")
        if rest in NO_CONTEXT:
            if method not in ALLOW_READ:
                raise not_allowed(ALLOW_READ)
            return self.json(self.no_context_resource(rest))
        if rest == "help":  # the endpoint listing, like installazione, needs no context
            if method not in ALLOW_READ:
                raise not_allowed(ALLOW_READ)
            return self.json(self.help(request.query_params.get("extended") == "true"))
        self.check_context(request)
        segs = rest.split("/")
        for n in range(min(len(segs), 4), 0, -1):
            name = "/".join(segs[:n])
            if name == ROWS or self.erp.table(name) is not None:
                return await self.resource(request, name, segs[n:])
        raise Reply(404)

    async def json_body(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            raise business(f"corpo della richiesta non e' JSON valido: {exc}") from None
        except RecursionError:
            raise business("corpo della richiesta non e' JSON valido: troppo annidato") from None
        bad = lone_surrogate(body)
        if bad is not None:
            raise business(f"corpo della richiesta non e' JSON valido: {bad}")
        return body

    def json(self, obj: Any, status: int = 200) -> Response:
        return Response(dumps(obj), status_code=status, media_type="application/json")

    def no_context_resource(self, name: str) -> Any:
        erp = self.erp
        company = {
            "codice": erp.azienda,
            "ragione_sociale": "Demo Ferramenta S.r.l.",
            "anni": [erp.anno],
        }
        if name == "dati-generali/installazione":
            return {"versione": VERSION, "prodotto": "Mexal", "aziende": [company]}
        if name == "aziende":
            return {"dati": [company]}
        return {"dati": [{"nome": u} for u in sorted(erp.users)]}

    def help(self, extended: bool) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        for name in self.erp.tables:
            base = f"/webapi/risorse/{name}"
            out += [
                {"metodo": "GET", "uri": base, "descrizione": "elenco (fields, max, next, info)"},
                {"metodo": "POST", "uri": f"{base}/ricerca", "descrizione": "ricerca con filtri"},
                {"metodo": "GET", "uri": f"{base}/{{chiave}}", "descrizione": "lettura"},
            ]
            if extended:
                out += [
                    {"metodo": "POST", "uri": base, "descrizione": "inserimento"},
                    {"metodo": "PUT", "uri": f"{base}/{{chiave}}", "descrizione": "modifica"},
                    {
                        "metodo": "DELETE",
                        "uri": f"{base}/{{chiave}}",
                        "descrizione": "cancellazione",
                    },
                ]
            if name == "articoli":
                out += [
                    {"metodo": "GET", "uri": f"{base}/{{chiave}}/allegati", "descrizione": "allegati"},
                    {"metodo": "GET", "uri": f"{base}/{{chiave}}/allegati/{{nome}}", "descrizione": "contenuto allegato"},
                ]  # fmt: skip
        out.append(
            {
                "metodo": "POST",
                "uri": f"/webapi/risorse/{ROWS}/ricerca",
                "descrizione": "righe ordini",
            }
        )
        for name in NO_CONTEXT:
            out.append(
                {
                    "metodo": "GET",
                    "uri": f"/webapi/risorse/{name}",
                    "descrizione": "senza coordinate",
                }
            )
        out.append({"metodo": "POST", "uri": "/webapi/servizi", "descrizione": "comandi"})
        return {"dati": out}

    # ------------------------------------------------------------ resources
    async def resource(self, request: Request, name: str, rest: list[str]) -> Response:
        method = request.method
        params = request.query_params
        if name == ROWS:
            if rest == ["ricerca"] and method == "POST":
                return await self.search_rows(request)
            if not rest and method in ALLOW_READ and params.get("info") == "true":
                return self.json({"dati": RIGHE_ORDINI.info()})
            raise Reply(404)
        table = self.erp.table(name)
        assert table is not None
        if not rest:
            if method in ALLOW_READ:
                if params.get("info") == "true":
                    return self.json({"dati": table.schema.info()})
                return self.page(request, table, None)
            if method == "POST":
                body = await self.json_body(request)
                try:
                    with self.erp.change():
                        key = self.erp.create(table, body)
                except BusinessError as exc:
                    raise business(str(exc)) from None
                return Response(status_code=201, headers={"Location": location(name, key)})
            raise not_allowed(ALLOW_LIST)
        if rest == ["ricerca"] and method == "POST":
            body = await self.json_body(request)
            return self.page(request, table, body)
        hexed = params.get("encoding") == "hex"
        raw_key = rest[0]
        if hexed:
            try:
                raw_key = bytes.fromhex(raw_key).decode("latin-1")
            except ValueError:
                raise business(f"chiave esadecimale '{rest[0]}' non valida") from None
        key = table.parse_key(raw_key)
        if len(rest) > 1:
            if (
                name == "articoli"
                and rest[1] == "allegati"
                and len(rest) <= 3
                and method in ALLOW_READ
            ):
                return self.attachments(key, rest[2] if len(rest) == 3 else None)
            raise Reply(404)
        if method in ALLOW_READ:
            rec = table.get(key)
            if rec is None:
                raise Reply(404)
            try:
                fields = parse_fields(table.schema, params.get("fields"))
            except QueryError as exc:
                raise business(str(exc)) from None
            return self.json(rec if fields is None else {f: rec.get(f) for f in fields})
        if method == "PUT":
            body = await self.json_body(request)
            try:
                with self.erp.change():
                    found = self.erp.update(
                        table, key, body, solo_testata=params.get("solo_testata") == "true"
                    )
            except BusinessError as exc:
                raise business(str(exc)) from None
            if not found:
                raise Reply(404)
            return Response(status_code=204)
        if method == "DELETE":
            with self.erp.change():
                found = self.erp.delete(table, key)
            if not found:
                raise Reply(404)
            return Response(status_code=204)
        raise not_allowed(ALLOW_RECORD)

    def attachments(self, key: Any, nome: str | None) -> Response:
        src = self.erp.articles_src
        table = self.erp.tables["articoli"]
        i = src.index_of(key)
        if not table.exists(key):
            raise Reply(404)
        items = src.attachments(i) if i is not None else []
        if nome is None:
            out: dict[str, Any] = {}
            if items:
                out["dati"] = [
                    {"tipo": t, "nome": n, "dt_mod": d, "dimensione": s} for t, n, s, d in items
                ]
            out["data_ric_elab"] = self.erp.clock.stamp()
            return self.json(out)
        for _t, n, s, _d in items:
            if n == nome:
                assert i is not None
                return Response(
                    src.attachment_bytes(i, n, s), media_type="application/octet-stream"
                )
            if n == "immagine" and nome in IMAGE_RENDITIONS:
                # the image's smaller renditions, at the fixed names of the WebAPI; not
                # listed, since the listing gives an article's resources, not their forms
                assert i is not None
                size = max(IMAGE_RENDITIONS[nome][1], s // IMAGE_RENDITIONS[nome][0])
                return Response(
                    src.attachment_bytes(i, nome, size), media_type="application/octet-stream"
                )
        raise Reply(404)

    def limit(self, request: Request) -> int | None:
        raw = request.query_params.get("max")
        if raw is None:
            return None
        if not _digits(raw) or int(raw) < 1:
            raise business(f"parametro max '{raw}' non valido")
        return min(int(raw), MAX_MAX)

    def page(self, request: Request, table: Table, body: Any) -> Response:
        erp = self.erp
        params = request.query_params
        limit = self.limit(request)
        token = params.get("next")
        if token is not None:
            cur = erp.take_cursor(token)
            if (
                cur is not None
                and erp.faults.reject_next
                and erp.fault_rng.random() < erp.faults.reject_next
            ):
                cur = None
            if cur is None or cur.table != table.name:
                raise Reply(400, E_NEXT)
        else:
            try:
                fields = parse_fields(table.schema, params.get("fields"))
                filters = compile_filters(table.schema, body) if body is not None else None
            except QueryError as exc:
                raise business(str(exc)) from None
            cur = erp.new_cursor(table, fields, filters, limit=limit or DEFAULT_MAX)
        size = limit or cur.max
        records, more = erp.run_page(cur, size)
        out: dict[str, Any] = {}
        if records:
            out["dati"] = records
        if more:
            out["next"] = erp.store_cursor(cur)
        out["data_ric_elab"] = erp.clock.stamp()
        return self.json(out)

    async def search_rows(self, request: Request) -> Response:
        erp = self.erp
        params = request.query_params
        limit = self.limit(request) or DEFAULT_MAX
        token = params.get("next")
        if token is not None:
            cur = erp.take_cursor(token)
            if cur is None or cur.rows is None:
                raise Reply(400, E_NEXT)
        else:
            body = await self.json_body(request)
            try:
                fields = parse_fields(RIGHE_ORDINI, params.get("fields"))
                filters = compile_filters(RIGHE_ORDINI, body) if body is not None else []
            except QueryError as exc:
                raise business(str(exc)) from None
            rows: list[dict[str, Any]] = []
            table = erp.tables[DOCS]
            row_names = [f.name for f in table.schema.row_fields()]
            for item in table.scan():
                doc = table.record_of(item)
                if doc is None:
                    continue
                cols = {n: dict(map(tuple, doc.get(n) or [])) for n in row_names}
                for rid in cols["id_riga"]:
                    row = {"sigla": doc["sigla"], "serie": doc["serie"], "numero": doc["numero"]}
                    row.update({n: cols[n].get(rid) for n in row_names})
                    if matches(filters, row):
                        rows.append(row if fields is None else {f: row.get(f) for f in fields})
            cur = Cursor(ROWS, fields, None, None, None, rows=rows)
        assert cur.rows is not None
        chunk, cur.rows = cur.rows[:limit], cur.rows[limit:]
        out: dict[str, Any] = {}
        if chunk:
            out["dati"] = chunk
        if cur.rows:
            out["next"] = erp.store_cursor(cur)
        out["data_ric_elab"] = erp.clock.stamp()
        return self.json(out)


def location(resource: str, key: Any) -> str:
    """The path naming a record, always plain ASCII: a key with `/` or `\\` in its
    hexadecimal form (as the WebAPI takes it), any other percent-encoded."""
    text = str(key)
    if "/" in text or "\\" in text:
        try:
            return f"/webapi/risorse/{resource}/{text.encode('latin-1').hex()}?encoding=hex"
        except UnicodeEncodeError:
            pass  # (the ERP refuses such keys; the percent-encoded form still names it)
    return f"/webapi/risorse/{resource}/{quote(text, safe='+.-_~')}"


def _path(request: Request) -> str:
    """The request's path, percent-decoded: a key's `?` or `#` (%3F, %23) stays in it
    (starlette's request.url.path would give them back encoded)."""
    path: str = request.scope["path"]
    return path


def _digits(text: str) -> bool:
    """Only the digits 0-9 (str.isdigit also takes other scripts' digits and `²`)."""
    return text.isascii() and text.isdigit()
