"""The simulated ERP itself: tables, business rules for writes, clock, users, state file.

The HTTP layers (webapi.py, admin.py) only translate requests into calls here.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
import secrets
import string
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from passweb_tui.codice_fiscale import problem as tax_code_problem
from passweb_tui.mexal_sim import dataset
from passweb_tui.mexal_sim.dataset import EagerSource, fmt_date, fmt_time
from passweb_tui.mexal_sim.query import Filter, key_bounds, matches
from passweb_tui.mexal_sim.schema import (
    ARTICOLI,
    CLIENTI,
    DATE,
    LIST,
    LOOKUPS,
    NUM,
    ORDINI_CLIENTI,
    PARTICOLARITA,
    TEXT,
    TIME,
    Field,
    Schema,
)
from passweb_tui.mexal_sim.store import Cursor, Item, Table

STATE_VERSION = 1
MAX_CURSORS = 2000
CURSOR_TTL_S = 15 * 60  # ASSUMED: how long an unused `next` token stays valid
SCAN_BUDGET_S = 2.0  # a real server cuts a page after a while; so do we
DOCS = "documenti/ordini-clienti"


#: a user's password when none is given and no state file keeps one
DEFAULT_PASSWORD = "demo"


class BusinessError(Exception):
    """A write the ERP refuses: 6001 with this text."""


class StateFileError(Exception):
    """The --state file cannot be read or is not a state file."""


class StateSaveError(OSError):
    """The --state file cannot be written: the change that needed it is not made."""

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


# The most of each generated table a simulator is made with: articles and customers are
# computed on demand (10,000,000 of them start in about 8 s), orders are held in memory
# (100,000 take about 25 s and 600 MB to make)
MOST_GENERATED = {"articles": 10_000_000, "customers": 10_000_000, "orders": 100_000}


@dataclass
class GenParams:
    """What the generated base depends on; persisted so a restart sees the same data."""

    articles: int
    customers: int
    orders: int
    seed: int
    gen_now: str  # "AAAAMMGG HHMMSS", the ERP clock when the data was generated


@dataclass
class Faults:
    """Faults injected into /webapi replies (never into /sim)."""

    status: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    drop_before_commit: float = 0.0
    drop_after_commit: float = 0.0
    malformed: float = 0.0
    reject_next: float = 0.0
    pool_size: int = 5


class ErpClock:
    """The ERP's own clock: the local time plus an offset that tests can set."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s

    def now(self) -> dt.datetime:
        return (dt.datetime.now() + dt.timedelta(seconds=self.offset_s)).replace(microsecond=0)

    def set_now(self, when: dt.datetime) -> None:
        self.offset_s = (when - dt.datetime.now()).total_seconds()

    def stamp(self) -> str:
        n = self.now()
        return f"{fmt_date(n)} {fmt_time(n.hour * 3600 + n.minute * 60 + n.second)}"


#: the years the ERP's clock may be set within (its stamps have four-digit years)
CLOCK_YEARS = (1901, 9998)


def clock_ok(offset_s: float) -> bool:
    if not math.isfinite(offset_s):
        return False
    try:
        year = (dt.datetime.now() + dt.timedelta(seconds=offset_s)).year
    except OverflowError:
        return False
    return CLOCK_YEARS[0] <= year <= CLOCK_YEARS[1]


def parse_stamp(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y%m%d %H%M%S")


#: failed logins in a row after which the ERP locks a user (0: never); the count is an
#: assumption, public sources say only that repeated failures lock the user
DEFAULT_LOCK_AFTER = 10


class Erp:
    """All ERP data and rules of one simulator instance."""

    def __init__(
        self,
        params: GenParams,
        *,
        users: dict[str, str],
        azienda: str,
        anno: int,
        state: Path | None = None,
    ) -> None:
        self.params = params
        self.users = dict(users)
        # failed logins in a row per user; a user at lock_after is locked until its
        # password is set again through /sim/users (or the simulator restarts)
        self.lock_after = DEFAULT_LOCK_AFTER
        self.failed_logins: dict[str, int] = {}
        self.locked: set[str] = set()
        self.azienda = azienda
        self.anno = anno
        self.state_path = state
        self.clock = ErpClock()
        self.faults = Faults()
        self.fault_rng = random.Random(params.seed * 7 + 1)
        self.cursors: OrderedDict[str, tuple[float, Cursor]] = OrderedDict()
        self.counters: dict[str, int] = {}
        cat = dataset.Catalogue(params.seed, parse_stamp(params.gen_now))
        self.catalogue = cat
        self.articles_src = dataset.ArticleSource(params.articles, cat)
        customers = dataset.CustomerSource(params.customers, cat)
        self.tables: dict[str, Table] = {
            "articoli": Table("articoli", ARTICOLI, self.articles_src),
            "clienti": Table("clienti", CLIENTI, customers),
            "particolarita": Table(
                "particolarita",
                PARTICOLARITA,
                dataset.conditions(cat, customers, self.articles_src),
            ),
            DOCS: Table(
                DOCS,
                ORDINI_CLIENTI,
                dataset.orders(cat, params.orders, customers, self.articles_src),
            ),
        }
        for name, schema in LOOKUPS.items():
            self.tables[schema.resource] = Table(
                schema.resource, schema, EagerSource(cat.lookups[name], lambda r: r["codice"])
            )
        for table in self.tables.values():
            # build the modification-day index now, not on the first changed-since search
            table.source.indexes_since(0)
        # the names the /sim/ API uses
        self.admin_names = {
            "articoli": "articoli",
            "clienti": "clienti",
            "particolarita": "particolarita",
            "ordini-clienti": DOCS,
            **{name: s.resource for name, s in LOOKUPS.items()},
        }
        self.counters["doc:OC:1"] = params.orders + 1
        self.counters["doc:BC:1"] = params.orders + 1

    # ------------------------------------------------------------ resources
    def table(self, resource: str) -> Table | None:
        if resource == "dati-generali/particolarita":
            resource = "particolarita"
        return self.tables.get(resource)

    def stats(self) -> dict[str, int]:
        return {admin: self.tables[res].count() for admin, res in self.admin_names.items()}

    # --------------------------------------------------------------- paging
    def new_cursor(
        self,
        table: Table,
        fields: list[str] | None,
        filters: list[Filter] | None,
        raw_filters: Any = None,
        limit: int = 100,
    ) -> Cursor:
        cur = Cursor(table.name, fields, filters, raw_filters, None, max=limit)
        if filters:
            cur.candidates = _key_candidates(table, filters)
            if cur.candidates is not None:
                return cur
            since = _date_bound(table.schema, filters)
            if since is not None:
                offset = _day_offset(self.catalogue.gen_now.date(), since)
                found = table.candidates_since(offset) if offset is not None else None
                if found is not None:
                    cur.cand_idx, cur.candidates = found
            if cur.candidates is None:
                lower, inclusive, upper = key_bounds(table.schema, filters)
                cur.upper = upper
                if lower is not None:
                    cur.start, cur.inclusive = lower, inclusive
        return cur

    def run_page(self, cur: Cursor, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Fill one page from a cursor (advancing it); also says whether more may follow."""
        table = self.tables[cur.table]
        fields, filters = cur.fields, cur.filters
        out: list[dict[str, Any]] = []
        if cur.candidates is not None:
            return self._candidates_page(table, cur, limit)
        if not filters and cur.upper is None and not table.added_sks:
            return self._plain_page(table, cur, limit)
        if cur.after is not None:
            items = table.scan(after=cur.after)
        elif cur.start is not None:
            items = (
                table.scan(after=cur.start) if not cur.inclusive else table.scan(start=cur.start)
            )
        else:
            items = table.scan()
        upper = cur.upper
        more = False
        deadline = time.perf_counter() + SCAN_BUDGET_S
        scanned = 0
        item: Item
        for item in items:
            if upper is not None and _gt(item[0], upper):
                break
            rec = table.record_of(item)
            if rec is None:
                continue
            if filters:
                scanned += 1
                if not matches(filters, rec):
                    cur.after = item[0]
                    if scanned & 1023 == 0 and time.perf_counter() > deadline:
                        more = True
                        break
                    continue
            if len(out) >= limit:
                more = True
                break
            out.append(_project(rec, fields))
            cur.after = item[0]
        return out, more

    def _candidates_page(
        self, table: Table, cur: Cursor, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        # merge the base indexes (their keys made only now) with the overlay items
        assert cur.candidates is not None
        fields, filters = cur.fields, cur.filters
        extra, pe = cur.candidates, cur.pos
        idx, pi = cur.cand_idx or [], cur.pos_idx
        src = table.source
        keyf, sortf = src.key, src.sort_key
        changed, deleted = table.changed, table.deleted
        out: list[dict[str, Any]] = []
        while len(out) < limit and (pi < len(idx) or pe < len(extra)):
            if pi < len(idx):
                i = idx[pi]
                key = keyf(i)
                sk = sortf(key)
                if pe < len(extra) and extra[pe][0] <= sk:
                    item = extra[pe]
                    pe += 1
                    if item[0] == sk:
                        pi += 1  # the same record, changed since: the overlay wins
                else:
                    pi += 1
                    if key in changed or key in deleted:
                        continue
                    item = (sk, key, i)
            else:
                item = extra[pe]
                pe += 1
            rec = table.record_of(item)
            if rec is None or (filters and not matches(filters, rec)):
                continue
            out.append(_project(rec, fields))
        cur.pos, cur.pos_idx = pe, pi
        return out, pi < len(idx) or pe < len(extra)

    def _plain_page(
        self, table: Table, cur: Cursor, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        # the hot path of a TOTAL sync: a plain list over generated records
        src = table.source
        if cur.after is not None:
            i = src.position(cur.after, after=True)
        elif cur.start is not None:
            i = src.position(cur.start, after=not cur.inclusive)
        else:
            i = 0
        n, keyf, record = src.n, src.key, src.record
        changed, deleted, fields = table.changed, table.deleted, cur.fields
        encoder = getattr(src, "encoder", None)
        encode = encoder(fields) if encoder is not None else None
        out: list[dict[str, Any]] = []
        last = None
        while i < n:
            if len(out) >= limit:
                break
            key = keyf(i)
            if deleted and key in deleted:
                i += 1
                continue
            rec = changed.get(key) if changed else None
            if rec is None:
                if encode is not None:
                    out.append(encode(i))
                    last = key
                    i += 1
                    continue
                rec = record(i)
            out.append(rec if fields is None else {f: rec.get(f) for f in fields})
            last = key
            i += 1
        if last is not None:
            cur.after = src.sort_key(last)
        more = i < n and (not deleted or any(keyf(j) not in deleted for j in range(i, n)))
        return out, more

    def store_cursor(self, cur: Cursor) -> str:
        token = secrets.token_urlsafe(18)
        now = time.monotonic()
        self.cursors[token] = (now, cur)
        # abandoned cursors expire, oldest first, so memory stays bounded
        while self.cursors:
            oldest, (born, _c) = next(iter(self.cursors.items()))
            if len(self.cursors) <= MAX_CURSORS and now - born < CURSOR_TTL_S:
                break
            del self.cursors[oldest]
        return token

    def take_cursor(self, token: str) -> Cursor | None:
        """A token is single-use: taking it consumes it."""
        entry = self.cursors.pop(token, None)
        if entry is None or time.monotonic() - entry[0] >= CURSOR_TTL_S:
            return None
        return entry[1]

    # ---------------------------------------------------------------- writes
    def stamp_record(self, table: Table, rec: dict[str, Any]) -> None:
        now = self.clock.now()
        s = table.schema
        if s.date_field:
            rec[s.date_field] = fmt_date(now)
        if s.time_field:
            rec[s.time_field] = fmt_time(now.hour * 3600 + now.minute * 60 + now.second)

    def create(self, table: Table, body: Any, *, business_rules: bool = True) -> Any:
        """Add a record; its key. `business_rules` False (a record put in from inside
        the ERP, through /sim/) checks its shapes and lengths only, not what the
        WebAPI's writes also refuse (a tax code's check character, a day the calendar
        does not have): so that tests can give the sync the odd record an ERP holds."""
        schema = table.schema
        if not isinstance(body, dict):
            raise BusinessError("Corpo della richiesta non valido: atteso un oggetto JSON")
        check_values(schema, body, business_rules=business_rules)
        rec: dict[str, Any] = {}
        for f in schema.fields:
            given = body.get(f.name)
            # a key made of blanks could never be read back, updated or deleted
            blank_key = f.name in schema.key and isinstance(given, str) and not given.strip()
            if given is not None and not blank_key:
                rec[f.name] = given
            elif f.required and not (f.name == "codice" and table.name == "particolarita"):
                raise BusinessError(f"Campo '{f.name}' obbligatorio")
            else:
                rec[f.name] = body.get(f.name, f.default())
        for name in (*schema.key, *KEY_PARTS.get(table.name, ())):
            if isinstance(rec.get(name), str):
                check_key_text(name, rec[name])
        if table.name == DOCS:
            key = self._new_document(table, rec)
        elif table.name == "particolarita":
            key = self._condition_key(rec)
            rec["codice"] = key
        elif table.name == "clienti" and str(rec["codice"]).upper().endswith(".AUTO"):
            key = self._next_customer(table, str(rec["codice"])[:-5])
            rec["codice"] = key
        else:
            key = rec[schema.key[0]]
        if table.exists(key):
            raise BusinessError(f"Codice '{key}' gia' esistente")
        self.stamp_record(table, rec)
        table.put(key, rec)
        return key

    def _next_customer(self, table: Table, prefix: str) -> str:
        src = table.source
        width = getattr(src, "width", 5)
        n = self.counters.get(f"cli:{prefix}", src.n + 1 if prefix == "501" else 1)
        while table.exists(f"{prefix}.{n:0{width}d}"):
            n += 1
        key = f"{prefix}.{n:0{width}d}"
        most = table.schema.by_name["codice"].lunghezza
        if len(key) > most:
            raise BusinessError(
                f"Campo 'codice': il codice assegnato '{key}' e' troppo lungo"
                f" ({len(key)} caratteri, massimo {most})"
            )
        self.counters[f"cli:{prefix}"] = n + 1
        return key

    def _condition_key(self, rec: dict[str, Any]) -> str:
        tipo = rec["tipo"]
        if tipo not in ("A", "G"):
            raise BusinessError(f"Tipo particolarita '{tipo}' non valido (A o G)")
        code = rec["cod_articolo"] if tipo == "A" else rec["cod_grp_merc"]
        if not code:
            missing = "cod_articolo" if tipo == "A" else "cod_grp_merc"
            raise BusinessError(f"Campo '{missing}' obbligatorio")
        if not self.tables["clienti"].exists(rec["cod_conto"]):
            raise BusinessError(f"Conto '{rec['cod_conto']}' inesistente")
        return f"{rec['cod_conto']}+{tipo}+{code}"

    def _check_rows(self, rec: dict[str, Any]) -> None:
        rows = ORDINI_CLIENTI.row_fields()
        ids = [p[0] for p in rec["id_riga"]]
        if not ids:
            raise BusinessError("Il documento deve avere almeno una riga")
        for f in rows:
            got = [p[0] for p in rec.get(f.name) or []]
            if got and got != ids:
                raise BusinessError(f"Campo '{f.name}': indici di riga diversi da id_riga")
            if not got:
                if f.required:
                    raise BusinessError(f"Campo '{f.name}' obbligatorio")
                default = {"stato_riga": "", "sconto": "", "descr_riga": ""}.get(f.name, 0)
                if f.name == "id_mag_riga":
                    default = 1
                rec[f.name] = [[i, default] for i in ids]
        articles = self.tables["articoli"]
        for _i, code in rec["codice_articolo"]:
            if not articles.exists(code):
                raise BusinessError(f"Articolo '{code}' inesistente")

    def _new_document(self, table: Table, rec: dict[str, Any]) -> str:
        sigla, serie, numero = rec["sigla"], rec["serie"], rec["numero"]
        if not isinstance(serie, int) or serie < 1:
            raise BusinessError(f"Campo 'serie': atteso un intero da 1 in su, ricevuto {serie!r}")
        if not isinstance(numero, int) or numero < 0:
            raise BusinessError(
                f"Campo 'numero': atteso un intero (0 = assegna il prossimo), ricevuto {numero!r}"
            )
        if not self.tables["clienti"].exists(rec["cod_conto"]):
            raise BusinessError(f"Conto '{rec['cod_conto']}' inesistente")
        self._check_rows(rec)
        counter = f"doc:{sigla}:{serie}"
        if numero == 0:
            numero = self.counters.get(counter, 1)
            while table.exists(f"{sigla}+{serie}+{numero}"):
                numero += 1
            most = ORDINI_CLIENTI.by_name["numero"].lunghezza
            if numero >= 10**most:
                raise BusinessError(f"Campo 'numero': numerazione esaurita per {sigla}+{serie}")
            rec["numero"] = numero
        self.counters[counter] = max(self.counters.get(counter, 1), numero + 1)
        for name, default in (("attivo", "S"), ("variato", "N")):
            if not rec.get(name):
                rec[name] = default
        if not rec.get("data_documento"):
            rec["data_documento"] = fmt_date(self.clock.now())
        return f"{sigla}+{serie}+{numero}"

    def update(self, table: Table, key: Any, body: Any, *, solo_testata: bool = False) -> bool:
        old = table.get(key)
        if old is None:
            return False
        schema = table.schema
        if not isinstance(body, dict):
            raise BusinessError("Corpo della richiesta non valido: atteso un oggetto JSON")
        check_values(schema, body)
        for k in schema.key:
            if k in body and body[k] != old.get(k):
                raise BusinessError(f"Il campo chiave '{k}' non puo' essere modificato")
        rec = dict(old)
        row_names = {f.name for f in schema.row_fields()}
        if row_names and not solo_testata:
            missing = sorted(n for n in row_names if n not in body and schema.by_name[n].required)
            if missing:
                raise BusinessError(
                    "Un documento va reinviato con tutte le righe (o con solo_testata=true): "
                    f"mancano {', '.join(missing)}"
                )
            for n in row_names:
                rec[n] = []
        for name, value in body.items():
            if solo_testata and name in row_names:
                continue
            rec[name] = value
        if row_names and not solo_testata:
            self._check_rows(rec)
        if table.name == DOCS and not self.tables["clienti"].exists(rec["cod_conto"]):
            raise BusinessError(f"Conto '{rec['cod_conto']}' inesistente")
        self.stamp_record(table, rec)
        table.put(key, rec)
        return True

    def delete(self, table: Table, key: Any) -> bool:
        return table.delete(key)

    # ----------------------------------------------------------- /sim/ work
    MUTATE_DEFAULTS = {
        "articoli": ["descrizione", "prz_listino", "qta_carico"],
        "clienti": ["ragione_sociale", "telefono", "sconto"],
        "particolarita": ["prezzo", "sconto"],
    }

    def mutate(self, resource: str, count: int, seed: int, names: list[str] | None) -> list[Any]:
        table = self.tables[resource]
        schema = table.schema
        names = names or self.MUTATE_DEFAULTS[resource]
        for n in names:
            f = schema.by_name.get(n)
            if f is None or n in schema.key or n in (schema.date_field, schema.time_field):
                raise BusinessError(f"Campo '{n}' non modificabile in {resource}")
        rng = random.Random(seed)
        total = table.source.n + len(table.added_keys)
        chosen: list[Any] = []
        seen: set[Any] = set()
        attempts = 0
        while len(chosen) < min(count, table.count()) and attempts < count * 20 + 100:
            attempts += 1
            key = table.nth_key(rng.randrange(total)) if total else None
            if key is None or key in seen or not table.exists(key):
                continue
            seen.add(key)
            chosen.append(key)
        for key in chosen:
            rec = dict(table.get(key) or {})
            for n in names:
                rec[n] = self._changed_value(schema.by_name[n], rec.get(n), rng)
            self.stamp_record(table, rec)
            table.put(key, rec)
        return chosen

    def _changed_value(self, f: Field, old: Any, rng: random.Random) -> Any:
        """A deterministic new value, always different from the old one."""
        if f.dim_array:
            pairs = [list(p) for p in old] if isinstance(old, list) and old else [[1, None]]
            idx = 0
            pairs[idx][1] = self._changed_value(
                Field(f.name, f.tipo, f.lunghezza, f.descrizione), pairs[idx][1], rng
            )
            return pairs
        if f.tipo == NUM:
            base = old if isinstance(old, int | float) else 0
            if isinstance(base, int) and not isinstance(base, bool) and f.name != "prezzo":
                new_num: float = base + rng.randint(1, 25)
            else:
                new_num = round(max(base, 1.0) * rng.uniform(1.02, 1.3), 2)
            if abs(new_num) >= 10**f.lunghezza:
                # past the field's length the ERP would refuse it: start low again
                new_num = rng.randint(1, min(25, 10**f.lunghezza - 1))
                if new_num == old:
                    new_num = 1 if old != 1 else 2
            return new_num
        if f.tipo == DATE:
            d = self.clock.now().date() + dt.timedelta(days=rng.randint(1, 90))
            return fmt_date(d)
        if f.tipo == TIME:
            return fmt_time(rng.randrange(86400))
        if f.tipo == LIST:
            return [*(old or []), f"X+1+{rng.randint(1, 9999)}"]
        text = old if isinstance(old, str) else ""
        if f.lunghezza == 1 and text in ("S", "N", ""):
            return "N" if text == "S" else "S"
        if f.name == "sconto":
            options = ["5", "10", "15", "10+5", "20", "3+2"]
            return rng.choice([o for o in options if o != text])
        suffix = f" #{rng.randint(100, 999)}"
        if f.lunghezza <= len(suffix):
            # no room for a stem and the suffix (a unit of measure, a province: the
            # suffix cut to the length read " #" every time): other letters and digits
            alphabet = string.ascii_uppercase + string.digits
            size = min(f.lunghezza, len(text) or f.lunghezza)
            while True:
                short = "".join(rng.choice(alphabet) for _ in range(size))
                if short != text:
                    return short
        stem = text.split(" #")[0]
        new = (stem[: max(f.lunghezza - len(suffix), 0)] + suffix)[: f.lunghezza]
        if new == text:
            new = (stem[: max(f.lunghezza - 5, 0)] + " #000")[: f.lunghezza]
        return new

    def orders_with_marker(self, marker: str) -> list[str]:
        table = self.tables[DOCS]
        needle = f"${marker}$"
        out = []
        for item in table.scan():
            rec = table.record_of(item)
            if rec is not None and needle in (rec.get("nota") or ""):
                out.append(item[1])
        return out

    def fulfil(self, key: str, rows: dict[int, float], delivery_note: bool) -> dict[str, Any]:
        """Set rows' fulfilled quantities (id_riga -> a finite quantity >= 0, as the
        admin API checked them); LookupError for no such order, BusinessError for a row
        it does not have (then nothing changes)."""
        table = self.tables[DOCS]
        old = table.get(key)
        if old is None:
            raise LookupError(key)
        rec = dict(old)
        qta = {p[0]: p[1] for p in rec["quantita"]}
        evasa = {p[0]: p[1] for p in rec["qta_evasa"]}
        for r, v in rows.items():
            if r not in qta:
                raise BusinessError(f"Riga {r} inesistente nel documento {key}")
            evasa[r] = int(v) if v == int(v) else v
        rec["qta_evasa"] = [[r, evasa[r]] for r in qta]
        if delivery_note:
            n = self.counters.get("doc:BC:1", 1)
            self.counters["doc:BC:1"] = n + 1
            rec["doc_collegati"] = [*rec.get("doc_collegati", []), f"BC+1+{n}"]
        states = {p[0]: p[1] for p in rec["stato_riga"]}
        if all(evasa[r] >= qta[r] or states.get(r) == "N" for r in qta):
            rec["stato_riga"] = [[r, "N" if states.get(r) == "N" else "E"] for r in qta]
        self.stamp_record(table, rec)
        table.put(key, rec)
        return rec

    def set_row_state(self, key: str, row: int, state: str) -> dict[str, Any]:
        table = self.tables[DOCS]
        old = table.get(key)
        if old is None:
            raise LookupError(key)
        if state not in ("", "E", "S", "B", "N"):
            raise BusinessError(f"Stato riga '{state}' non valido (E, S, B, N)")
        rec = dict(old)
        if row not in {p[0] for p in rec["stato_riga"]}:
            raise BusinessError(f"Riga {row} inesistente nel documento {key}")
        rec["stato_riga"] = [[r, state if r == row else s] for r, s in rec["stato_riga"]]
        self.stamp_record(table, rec)
        table.put(key, rec)
        return rec

    def login(self, user: str, password: str) -> str | None:
        """None when `user` may go on; else why not, for the 401's detail. Each wrong
        password of a known user counts; lock_after of them in a row lock it."""
        if user in self.locked:
            return f"utente {user} bloccato dopo {self.lock_after} accessi falliti"
        expected = self.users.get(user)
        if expected is not None and expected == password:
            self.failed_logins.pop(user, None)
            return None
        if expected is not None:
            failed = self.failed_logins.get(user, 0) + 1
            self.failed_logins[user] = failed
            if self.lock_after and failed >= self.lock_after:
                self.locked.add(user)
        return ""

    def set_password(self, user: str, password: str) -> bool:
        """A new password for `user`, which also unlocks it; True if it was locked."""
        self.users[user] = password
        self.failed_logins.pop(user, None)
        if user in self.locked:
            self.locked.discard(user)
            return True
        return False

    # ------------------------------------------------------------ state file
    @contextmanager
    def change(self) -> Iterator[None]:
        """One change to the ERP's data, made whole or not at all: it counts once the
        state file (if any) holds it. If the change is refused midway, or the file cannot
        be written (StateSaveError), everything is put back as it was before."""
        before = self._snapshot()
        try:
            yield
            self.save()
        except BaseException:
            self._restore(before)
            raise

    def _snapshot(self) -> dict[str, Any]:
        # records are never changed in place (a change puts a new dict), so shallow
        # copies of the overlays are enough. Without a state file the tables need none:
        # every refusal comes before a record is put, and there is no file to fail.
        tables = {}
        if self.state_path is not None:
            tables = {name: t.snapshot() for name, t in self.tables.items()}
        return {
            "tables": tables,
            "counters": dict(self.counters),
            "users": dict(self.users),
            "failed_logins": dict(self.failed_logins),
            "locked": set(self.locked),
            "clock_offset_s": self.clock.offset_s,
        }

    def _restore(self, before: dict[str, Any]) -> None:
        for name, snapshot in before["tables"].items():
            self.tables[name].restore(snapshot)
        self.counters = before["counters"]
        self.users = before["users"]
        self.failed_logins = before["failed_logins"]
        self.locked = before["locked"]
        self.clock.offset_s = before["clock_offset_s"]

    def save(self) -> None:
        """Write the state file (if any); StateSaveError when it cannot be written."""
        if self.state_path is None:
            return
        try:
            self._write_state(self.state_path)
        except (OSError, TypeError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
            where = getattr(exc, "filename", None) or self.state_path
            raise StateSaveError(getattr(exc, "errno", None) or 0, why, str(where)) from exc

    def _write_state(self, path: Path) -> None:
        data = {
            "version": STATE_VERSION,
            "params": asdict(self.params),
            "tables": {name: t.dump() for name, t in self.tables.items() if t.changed or t.deleted},
            "counters": self.counters,
            "users": self.users,
            "clock_offset_s": self.clock.offset_s,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_overlay(self, data: dict[str, Any]) -> None:
        for name, tdata in data.get("tables", {}).items():
            table = self.tables.get(name)
            if table is None:
                raise StateFileError(f"unknown table {name!r}")
            table.load(tdata)
        self.counters.update({str(k): int(v) for k, v in data.get("counters", {}).items()})
        self.users.update({str(k): str(v) for k, v in data.get("users", {}).items()})
        offset = data.get("clock_offset_s", 0.0)
        # a clock the ERP cannot show (a state file from before this was checked) is reset
        ok = isinstance(offset, int | float) and clock_ok(float(offset))
        self.clock.offset_s = float(offset) if ok else 0.0


def read_state(path: Path) -> dict[str, Any] | None:
    """The parsed state file, None if it does not exist; StateFileError if unusable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read state file {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StateFileError(f"state file {path} is damaged: not UTF-8 text ({exc})") from None
    except (ValueError, RecursionError) as exc:
        raise StateFileError(f"state file {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise StateFileError(f"state file {path} is not a simulator state file (version missing)")
    params = data.get("params")
    try:
        if not isinstance(params, dict):
            raise TypeError("no params")
        GenParams(**params)
    except TypeError:
        raise StateFileError(f"state file {path} has no valid generation parameters") from None
    try:
        check_state(data)
    except StateFileError as exc:
        raise StateFileError(f"state file {path} is damaged: {exc}") from None
    return data


def _whole(value: Any, where: str, least: int | None = 0) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (least is not None and value < least)
    ):
        floor = "" if least is None else f" >= {least}"
        raise StateFileError(f"{where} must be a whole number{floor}, not {value!r}"[:300])
    return value


def check_state(data: dict[str, Any]) -> None:
    """Everything a state file holds, of the shape the ERP itself writes: the generation
    parameters, every stored record (as a write would have to be), the deleted keys, the
    counters, the users and the clock. StateFileError naming the first thing wrong."""
    params = data["params"]
    for f in dataclass_fields(GenParams):
        if f.name != "gen_now":
            _whole(params[f.name], f"params.{f.name}", least=None if f.name == "seed" else 0)
        most = MOST_GENERATED.get(f.name)
        if most is not None and params[f.name] > most:
            raise StateFileError(
                f"params.{f.name} must be at most {most:,}, not {params[f.name]:,}"
            )
    if params["orders"] and not params["customers"]:
        raise StateFileError("params.orders needs params.customers")
    gen_now = params["gen_now"]
    try:
        if not isinstance(gen_now, str):
            raise ValueError(gen_now)
        year = parse_stamp(gen_now).year
    except ValueError:
        raise StateFileError(f"params.gen_now must be 'AAAAMMGG HHMMSS', not {gen_now!r}") from None
    if not CLOCK_YEARS[0] <= year <= CLOCK_YEARS[1]:
        raise StateFileError(f"params.gen_now {gen_now!r} is out of the years the ERP shows")
    tables = data.get("tables", {})
    if not isinstance(tables, dict):
        raise StateFileError("tables must be an object")
    schemas = {s.resource: s for s in (ARTICOLI, CLIENTI, PARTICOLARITA, ORDINI_CLIENTI)}
    schemas.update({s.resource: s for s in LOOKUPS.values()})
    for name, tdata in tables.items():
        schema = schemas.get(name)
        if schema is None:
            raise StateFileError(f"unknown table {name!r}")
        if not isinstance(tdata, dict) or set(tdata) - {"changed", "deleted"}:
            raise StateFileError(f"tables.{name} must be {{'changed': [...], 'deleted': [...]}}")
        changed, deleted = tdata.get("changed", []), tdata.get("deleted", [])
        if not isinstance(changed, list) or not isinstance(deleted, list):
            raise StateFileError(f"tables.{name}: changed and deleted must be lists")
        for entry in changed:
            if not isinstance(entry, list) or len(entry) != 2:
                raise StateFileError(f"tables.{name}.changed: {entry!r} is not [key, record]"[:300])
            _check_stored(name, schema, entry[0], entry[1])
        for key in deleted:
            if not _key_type_ok(schema, key):
                raise StateFileError(f"tables.{name}.deleted: {key!r} is not a key"[:300])
    counters = data.get("counters", {})
    if not isinstance(counters, dict):
        raise StateFileError("counters must be an object")
    for name, value in counters.items():
        _whole(value, f"counters.{name}")
    users = data.get("users", {})
    if not isinstance(users, dict):
        raise StateFileError("users must be an object")
    for user, password in users.items():
        if not user or ":" in user:
            raise StateFileError(f"users: {user!r} is not a user name")
        if not isinstance(password, str) or not password:
            raise StateFileError(f"users.{user}: the password must be a non-empty text")
    offset = data.get("clock_offset_s", 0.0)
    if isinstance(offset, bool) or not isinstance(offset, int | float):
        raise StateFileError(f"clock_offset_s must be a number, not {offset!r}"[:300])


def _key_type_ok(schema: Schema, key: Any) -> bool:
    if schema.int_key:
        return isinstance(key, int) and not isinstance(key, bool)
    return isinstance(key, str) and bool(key.strip())


def _check_stored(name: str, schema: Schema, key: Any, rec: Any) -> None:
    where = f"tables.{name} record {key!r}"[:200]
    if not _key_type_ok(schema, key):
        raise StateFileError(f"tables.{name}.changed: {key!r} is not a key"[:300])
    if not isinstance(rec, dict):
        raise StateFileError(f"{where} is not an object")
    missing = [f.name for f in schema.fields if f.name not in rec]
    if missing:
        raise StateFileError(f"{where} lacks {', '.join(missing)}")
    try:
        check_values(schema, rec, business_rules=False)
        if isinstance(key, str):
            check_key_text("chiave", key)
    except BusinessError as exc:
        raise StateFileError(f"{where}: {exc}") from None
    if name == DOCS:
        if not all(isinstance(rec[k], int) for k in ("serie", "numero")):
            raise StateFileError(f"{where}: serie and numero must be whole numbers")
        own = f"{rec['sigla']}+{rec['serie']}+{rec['numero']}"
        ids = [p[0] for p in rec["id_riga"]]
        for f in schema.row_fields():
            if [p[0] for p in rec[f.name]] != ids:
                raise StateFileError(f"{where}: {f.name} has other rows than id_riga")
    else:
        own = rec[schema.key[0]]
    if own != key:
        raise StateFileError(f"{where} holds the key {own!r}"[:300])


def open_erp(
    *,
    articles: int,
    customers: int,
    orders: int,
    seed: int,
    user: str,
    password: str | None,
    azienda: str,
    anno: int,
    state: Path | None,
) -> Erp:
    """The ERP of a new simulator: from the state file when there is one, else fresh.

    `password` is the one `user` must give from now on; None keeps the one the state
    file holds (a password changed through /sim/users survives a restart), else
    DEFAULT_PASSWORD."""
    data = read_state(state) if state else None
    if data is not None:
        params = GenParams(**data["params"])
    else:
        params = GenParams(articles, customers, orders, seed, ErpClock().stamp())
    users = {user: DEFAULT_PASSWORD if password is None else password}
    erp = Erp(params, users=users, azienda=azienda, anno=anno, state=state)
    if data is not None:
        try:
            erp.load_overlay(data)
        except (StateFileError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise StateFileError(f"state file {state} is damaged: {exc}") from None
        if password is not None and erp.users.get(user) != password:
            # asked for on the command line: it wins over the stored one, and is kept
            # for the next start without --password
            erp.users[user] = password
            erp.save()
    elif state is not None:
        erp.save()
    return erp


# ------------------------------------------------------------------- helpers
def _project(rec: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    if fields is None:
        return rec
    return {f: rec.get(f) for f in fields}


def _key_candidates(table: Table, filters: list[Filter]) -> list[Item] | None:
    """Records named by `=` filters on every key field (a list of codes, a document
    number list): looked up directly instead of scanning the table."""
    schema = table.schema
    values: dict[str, tuple[Any, ...]] = {}
    for f in filters:
        if f.campo in schema.key and f.condizione == "=" and not f.ci:
            values[f.campo] = f.valori
    if set(values) != set(schema.key):
        return None
    if len(schema.key) == 1:
        keys: list[Any] = [
            int(v) if schema.int_key and isinstance(v, float) and v.is_integer() else v
            for v in values[schema.key[0]]
        ]
    else:
        parts = [[_plain(v) for v in values[k]] for k in schema.key]
        if len(parts[0]) * len(parts[1]) * len(parts[2]) > 100_000:
            return None
        keys = [f"{a}+{b}+{c}" for a in parts[0] for b in parts[1] for c in parts[2]]
    src = table.source
    items = {}
    for key in keys:
        if key is not None and key not in items and table.exists(key):
            bi = src.index_of(key)
            items[key] = (src.sort_key(key), key, -1 if bi is None else bi)
    return sorted(items.values(), key=lambda it: it[0])


def _plain(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _gt(a: Any, b: Any) -> bool:
    try:
        return bool(a > b)
    except TypeError:
        return False


def _date_bound(schema: Schema, filters: list[Filter]) -> str | None:
    from passweb_tui.mexal_sim.query import date_since

    return date_since(schema, filters)


def _day_offset(gen_date: dt.date, since: str) -> int | None:
    try:
        d = dt.datetime.strptime(since, "%Y%m%d").date()
    except ValueError:
        return None
    return max((gen_date - d).days, 0)


#: the fields, besides the key's own, a created record's key is made of
KEY_PARTS = {"particolarita": ("cod_conto", "cod_articolo", "cod_grp_merc")}


def check_key_text(name: str, value: str) -> None:
    """A key travels in a URL path, and the WebAPI's keys use the characters 0x20-0x7E
    alone: BusinessError naming the field for any other."""
    for ch in value:
        if not " " <= ch <= "~":
            raise BusinessError(
                f"Campo '{name}': carattere {ch!r} non ammesso in una chiave"
                " (solo caratteri da 0x20 a 0x7E)"
            )


def check_values(schema: Schema, body: dict[str, Any], *, business_rules: bool = True) -> None:
    """Every field known and of the right shape; raises BusinessError naming the field.
    `business_rules` False checks the shapes alone (not a tax code's check character,
    nor that a date is a day of the calendar, which a record put in or changed through
    /sim/ need not have)."""
    for name, value in body.items():
        f = schema.by_name.get(name)
        if f is None:
            raise BusinessError(f"Nome campo '{name}' non valido")
        if f.dim_array:
            if not isinstance(value, list):
                raise BusinessError(f"Campo '{name}': atteso un array [[indice, valore], ...]")
            for p in value:
                if (
                    not isinstance(p, list)
                    or len(p) != 2
                    or not isinstance(p[0], int)
                    or isinstance(p[0], bool)
                    or not 1 <= p[0] <= f.dim_array
                ):
                    raise BusinessError(
                        f"Campo '{name}': elemento {p!r} non valido (atteso [indice 1..{f.dim_array}, valore])"
                    )
                _check_scalar(f, p[1], f"{name}[{p[0]}]", business_rules)
        elif f.tipo == LIST:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise BusinessError(f"Campo '{name}': attesa una lista di testi")
        else:
            _check_scalar(f, value, name, business_rules)
            if (
                business_rules
                and name == "codice_fiscale"
                and isinstance(value, str)
                and value.strip()
            ):
                wrong = tax_code_problem(value)
                if wrong:
                    raise BusinessError(f"Campo '{name}': {wrong}")


def _check_scalar(f: Field, value: Any, where: str, business_rules: bool = True) -> None:
    if value is None:
        return
    if f.tipo == NUM:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BusinessError(f"Campo '{where}': atteso un numero, ricevuto {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            # Python's JSON reads NaN and Infinity; no ERP stores them
            raise BusinessError(f"Campo '{where}': numero {value!r} non valido")
        if abs(value) >= 10**f.lunghezza:
            digits = len(str(abs(value)) if isinstance(value, int) else f"{abs(value):.0f}")
            raise BusinessError(
                f"Campo '{where}': numero troppo lungo ({digits} cifre, massimo {f.lunghezza})"
            )
    elif f.tipo == DATE:
        # the shape always; a day of the calendar, as the WebAPI's writes check it
        shaped = isinstance(value, str) and len(value) == 8 and value.isascii() and value.isdigit()
        if not (
            isinstance(value, str)
            and (value == "" or (shaped and (not business_rules or _calendar_date(value))))
        ):
            raise BusinessError(f"Campo '{where}': data {value!r} non valida (AAAAMMGG)")
    elif f.tipo == TIME:
        if not (
            isinstance(value, str)
            and len(value) == 6
            and value.isascii()
            and value.isdigit()
            and int(value[:2]) < 24
            and int(value[2:4]) < 60
            and int(value[4:]) < 60
        ):
            raise BusinessError(f"Campo '{where}': ora {value!r} non valida (HHMMSS)")
    elif f.tipo == TEXT:
        if not isinstance(value, str):
            raise BusinessError(f"Campo '{where}': atteso un testo, ricevuto {value!r}")
        if len(value) > f.lunghezza:
            raise BusinessError(
                f"Campo '{where}': valore troppo lungo ({len(value)} caratteri, massimo {f.lunghezza})"
            )


def _calendar_date(text: str) -> bool:
    """AAAAMMGG naming a day of the calendar (not 20261340)."""
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        return False
    try:
        dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True
