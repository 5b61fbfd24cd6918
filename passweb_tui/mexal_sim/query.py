"""Search filters of `POST .../ricerca`: validation, matching, and index hints.

Filters are ANDed; a list `valore` is an OR over its items. Conditions: =, <>,
>, <, >=, <=, contiene, inizia_per, each optionally case-insensitive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from passweb_tui.mexal_sim.schema import DATE, LIST, NUM, TIME, Schema

CONDITIONS = ("=", "<>", ">", "<", ">=", "<=", "contiene", "inizia_per")


class QueryError(Exception):
    """A bad filter or field list: reported as 6001 with this text."""


@dataclass(frozen=True)
class Filter:
    campo: str
    condizione: str
    valori: tuple[Any, ...]
    ci: bool
    is_list: bool
    test: Callable[[Any], bool]


def check_field(schema: Schema, name: Any) -> str:
    if not isinstance(name, str) or name not in schema.by_name:
        raise QueryError(f"Nome campo '{name}' non valido")
    return name


def parse_fields(schema: Schema, raw: str | None) -> list[str] | None:
    """The `fields` query parameter; the key fields always come back first."""
    if raw is None or not raw.strip():
        return None
    names = [check_field(schema, n.strip()) for n in raw.split(",") if n.strip()]
    out = [k for k in schema.key if k in schema.by_name]
    if schema.key_field in schema.by_name and schema.key_field not in out:
        out.insert(0, schema.key_field)
    for n in names:
        if n not in out:
            out.append(n)
    return out


def _coerce(schema: Schema, campo: str, value: Any) -> Any:
    f = schema.by_name[campo]
    if f.tipo == NUM:
        if isinstance(value, bool):
            raise QueryError(f"Valore {value!r} non valido per il campo '{campo}'")
        if isinstance(value, int | float):
            return value
        try:
            return float(str(value).replace(",", "."))
        except ValueError:
            raise QueryError(f"Valore {value!r} non valido per il campo '{campo}'") from None
    if value is None:
        return None
    if f.tipo == DATE and not (isinstance(value, str) and len(value) == 8 and value.isdigit()):
        raise QueryError(f"Data {value!r} non valida per il campo '{campo}' (atteso AAAAMMGG)")
    if f.tipo == TIME and not (isinstance(value, str) and len(value) == 6 and value.isdigit()):
        raise QueryError(f"Ora {value!r} non valida per il campo '{campo}' (atteso HHMMSS)")
    if isinstance(value, dict | list):
        raise QueryError(f"Valore non valido per il campo '{campo}'")
    return value if isinstance(value, str) else str(value)


def _compare(cond: str, a: Any, b: Any) -> bool:
    try:
        if cond == "=":
            return a == b
        if cond == "<>":
            return a != b
        if a is None or b is None:
            return False
        if cond == ">":
            return a > b
        if cond == "<":
            return a < b
        if cond == ">=":
            return a >= b
        if cond == "<=":
            return a <= b
        if cond == "contiene":
            return str(b) in str(a)
        if cond == "inizia_per":
            return str(a).startswith(str(b))
    except TypeError:
        return False
    return False


def compile_filters(schema: Schema, body: Any) -> list[Filter]:
    """Validate a `{"filtri": [...]}` body into matchers; raises QueryError."""
    if not isinstance(body, dict) or not isinstance(body.get("filtri"), list):
        raise QueryError('Corpo della ricerca non valido: atteso {"filtri": [...]}')
    out = []
    for n, raw in enumerate(body["filtri"], start=1):
        if not isinstance(raw, dict):
            raise QueryError(f"Filtro {n} non valido: atteso un oggetto")
        campo = check_field(schema, raw.get("campo"))
        cond = raw.get("condizione", "=")
        if cond not in CONDITIONS:
            raise QueryError(f"Condizione '{cond}' non valida nel filtro {n}")
        if "valore" not in raw:
            raise QueryError(f"Filtro {n}: valore mancante")
        value = raw["valore"]
        is_list = isinstance(value, list)
        items = value if is_list else [value]
        if is_list and not items:
            raise QueryError(f"Filtro {n}: lista di valori vuota")
        ci = raw.get("case_insensitive", False)
        if not isinstance(ci, bool):
            raise QueryError(f"Filtro {n}: case_insensitive {ci!r} non valido (true o false)")
        valori = tuple(_coerce(schema, campo, v) for v in items)
        out.append(
            Filter(campo, cond, valori, ci, is_list, _matcher(schema, campo, cond, valori, ci))
        )
    return out


def _matcher(
    schema: Schema, campo: str, cond: str, valori: tuple[Any, ...], ci: bool
) -> Callable[[Any], bool]:
    field = schema.by_name[campo]
    array = bool(field.dim_array) or field.tipo == LIST
    if ci:
        valori = tuple(v.lower() if isinstance(v, str) else v for v in valori)

    def one(v: Any) -> bool:
        if ci and isinstance(v, str):
            v = v.lower()
        return any(_compare(cond, v, b) for b in valori)

    if array:
        # an array field matches when any of its values does
        def test(value: Any) -> bool:
            if not isinstance(value, list):
                return False
            return any(one(p[1] if isinstance(p, list) and len(p) == 2 else p) for p in value)

        return test
    return one


def matches(filters: list[Filter], rec: dict[str, Any]) -> bool:
    return all(f.test(rec.get(f.campo)) for f in filters)


def key_bounds(schema: Schema, filters: list[Filter]) -> tuple[Any, bool, Any]:
    """From filters on a single-field key: (lower sort key, lower inclusive, upper)."""
    if len(schema.key) != 1:
        return None, False, None
    key = schema.key[0]
    lower: Any = None
    inclusive = False
    upper: Any = None
    for f in filters:
        if f.campo != key or f.ci or f.is_list or f.valori[0] is None:
            continue
        v = f.valori[0]
        if schema.int_key and not isinstance(v, int | float):
            continue
        if f.condizione in (">", ">=") and (lower is None or v >= lower):
            lower, inclusive = v, f.condizione == ">="
        elif f.condizione == "=":
            lower, inclusive, upper = v, True, v
        elif f.condizione == "inizia_per" and isinstance(v, str):
            lower, inclusive, upper = v, True, v + "\U0010ffff"
        elif f.condizione in ("<", "<=") and (upper is None or v < upper):
            upper = v
    return lower, inclusive, upper


def date_since(schema: Schema, filters: list[Filter]) -> str | None:
    """The earliest modification date a set of filters allows, if they bound it."""
    if not schema.date_field:
        return None
    best = None
    for f in filters:
        if f.campo != schema.date_field or f.is_list or f.ci or f.valori[0] is None:
            continue
        if f.condizione in (">=", ">", "="):
            v = f.valori[0]
            if best is None or v > best:
                best = v
    return best
