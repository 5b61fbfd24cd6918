"""What each synced entity is: its ERP resource, its table, its default fields, and how an
ERP record becomes a validated, canonical store row (with a digest for cheap comparing)."""

from __future__ import annotations

import calendar
import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

import orjson
from sqlalchemy import Integer, Numeric, String, Table

from passweb_tui.engine import models

KEY_FIELD = "codice"


@dataclass(frozen=True)
class SiteRules:
    """Settings that change how ERP records map onto the site."""

    site_no: int = 1
    publish_predeleted: bool = False
    category_mode: str = "primaria"  # or "secondaria"


@dataclass(frozen=True)
class FieldSpec:
    """What the ERP's catalogue says about one field (for validation)."""

    type: str | None
    length: int | None
    array_size: int = 0
    # "C" text, "N" number, "D" date, "T" time, "A" array of [index, value] pairs,
    # "" anything else (checked the slow way)
    quick_kind: str = field(init=False, compare=False, repr=False, default="")

    def __post_init__(self) -> None:
        if self.is_array:
            kind = "A"
        elif self.type in ("C", "N", "D", "T"):
            kind = self.type or ""
        else:
            kind = ""
        object.__setattr__(self, "quick_kind", kind)

    @property
    def is_array(self) -> bool:
        return self.type == "A" or self.array_size > 0


Derive = Callable[[Mapping[str, Any], SiteRules], dict[str, Any]]


@dataclass(frozen=True)
class EntitySpec:
    name: str  # the entity's name in the CLI, the change log and the run counts
    resource: str  # path under /webapi/risorse
    table: Table
    lookup: bool  # lookup tables are always pulled whole, with every field
    derive: Derive
    default_fields: tuple[str, ...] = ()
    control_fields: tuple[str, ...] = ()  # always requested, never stored as data
    partition: tuple[tuple[str, str], ...] = ()  # constant columns (lookup_records.entity)
    site_fields: tuple[str, ...] = ()  # derived columns logged as changes of their own
    mod_date: str | None = None
    mod_time: str | None = None
    site_flag: str | None = None  # per-site "transfer to the site" array

    @property
    def main(self) -> bool:
        return not self.lookup


# --- canonical values ---------------------------------------------------------------


_NONE = type(None)
_PLAIN = frozenset({str, int, bool, _NONE})


def canon(value: Any) -> Any:
    """One spelling per value: equal values from two reads are equal here, never floats."""
    t = type(value)
    if t is str or t is int or t is _NONE or t is bool:
        return value
    if t is float:
        # the shortest repr is already the canonical spelling, unless it has an exponent
        if value.is_integer():
            return int(value)
        text = repr(value)
        if "e" not in text and "n" not in text:  # not 1e-07, inf or nan
            return text
    if t is Decimal or t is float:
        d = value if t is Decimal else Decimal(repr(value))
        if not d.is_finite():
            return str(d)
        if d == d.to_integral_value():
            return int(d)
        return format(d.normalize(), "f")
    if t is list:
        if value and all(type(p) is list and len(p) == 2 for p in value):
            return {str(i): v if type(v) in _PLAIN else canon(v) for i, v in value}
        return [canon(v) for v in value]
    if t is dict:
        return {str(k): canon(v) for k, v in value.items()}
    if isinstance(value, int):
        return int(value)
    return str(value)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def dumps(data: Any) -> str:
    """Compact JSON with sorted keys: the stored form of a record's used fields."""
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # what orjson does not take (integers beyond 64 bits): the same text
        return _ENCODER.encode(data)


def plain_money(value: Decimal) -> Decimal:
    """A stored price without the zeros its column's scale pads it with (63.140000 is
    63.14, 100.000000 is 100), never in exponent form."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def as_text(value: Any) -> str | None:
    """A value as the change log shows it."""
    if value is None or isinstance(value, str):
        return value
    return dumps(value)


def value_text(value: Any, yes: str = "yes", no: str = "no", point: str = ".") -> str:
    """A stored ERP value as an operator reads it: per-list or per-site pairs such as
    `prz_listino` as "1: 12.50 · 2: 11.00", other lists joined, nothing as "-"; a
    number with a fraction written with `point` (a comma in Italian)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, dict):  # an array keyed by its index
        # (its numbers with a fraction are kept as text, "12.5": a price, a quantity)
        return " · ".join(f"{k}: {entry_text(v, yes, no, point)}" for k, v in value.items())
    if isinstance(value, list):
        if value and all(isinstance(v, list) and len(v) == 2 for v in value):
            return " · ".join(f"{k}: {value_text(v, yes, no, point)}" for k, v in value)
        return ", ".join(value_text(v, yes, no, point) for v in value)
    if isinstance(value, bool):
        return yes if value else no
    if isinstance(value, float | Decimal):
        return str(value).replace(".", point)
    return str(value)


_FRACTION = re.compile(r"-?\d+\.\d+")


def number_text(text: str, point: str) -> str:
    """A number with a fraction kept as text, written with `point`; other text as it is."""
    return text.replace(".", point) if point != "." and _FRACTION.fullmatch(text) else text


def entry_text(value: Any, yes: str = "yes", no: str = "no", point: str = ".") -> str:
    """An entry of a per-list or per-site field: its numbers with a fraction are kept as
    text ("12.5": a price, a quantity), written with `point`."""
    return number_text(value, point) if type(value) is str else value_text(value, yes, no, point)


#: an entry on one side only (see changed_parts)
_GONE = object()


#: of two long texts alike at their start, a narrow cell shows them from a few characters
#: before where they differ
LEAD = 4


def from_difference(old: Any, new: Any) -> tuple[Any, Any]:
    """Two texts that begin alike (a description with a word changed near its end) as a
    narrow cell shows them: from just before where they differ, after an ellipsis, so
    that cutting both to the cell does not leave the same words. Short texts stay
    whole."""
    if not (isinstance(old, str) and isinstance(new, str)) or max(len(old), len(new)) <= 12:
        return old, new
    same = 0
    for a, b in zip(old, new, strict=False):
        if a != b:
            break
        same += 1
    if same <= LEAD + 2:
        return old, new
    start = same - LEAD
    return "…" + old[start:], "…" + new[start:]


def changed_parts(
    old: str | None, new: str | None, point: str = "."
) -> tuple[str | None, str | None]:
    """A change-log entry's old and new values as an operator compares them: for a
    per-list or per-site field (its values JSON objects such as `prz_listino`'s
    {"1": "12.5", "2": "11"}), only the entries that differ, "1: 12.5" against
    "1: 13.9" ("-" for an entry on one side only; numbers with a fraction written with
    `point`); any other value as it is."""
    if not (old and new and old.startswith("{") and new.startswith("{")):
        return old, new
    try:
        before, after = json.loads(old), json.loads(new)
    except ValueError:
        return old, new
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return old, new
    keys = [
        k for k in dict.fromkeys([*before, *after]) if before.get(k, _GONE) != after.get(k, _GONE)
    ]
    if not keys:
        return old, new

    def side(values: dict[str, Any]) -> str:
        return " · ".join(
            f"{k}: {entry_text(values[k], point=point) if k in values else '-'}" for k in keys
        )

    return side(before), side(after)


def money_text(value: Any) -> str:
    """An amount as a price list shows it: at least two decimals ("87.3" reads "87.30"),
    more only where the ERP keeps more ("0.1234" stays); anything else as it is."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not amount.is_finite():
        return str(value)
    amount = amount.normalize()  # "171.610000" as a numeric column gives it: 171.61
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        amount = amount.quantize(Decimal("0.01"))
    return f"{amount:f}"


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _int(value: Any) -> int | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def site_flag(value: Any, site_no: int) -> str | None:
    """The value of a per-site array (canonical dict form) for this site."""
    if isinstance(value, dict):
        v = value.get(str(site_no))
        return v if isinstance(v, str) else None
    return None


# --- derived columns per entity -------------------------------------------------------


def _article(r: Mapping[str, Any], rules: SiteRules) -> dict[str, Any]:
    predeleted = r.get("gest_precanc") == "S" or r.get("gest_annullato") == "S"
    flagged_off = site_flag(r.get("pubblica"), rules.site_no) == "N"
    category = r.get("cat_web") if rules.category_mode == "secondaria" else r.get("cod_grp_merc")
    return {
        "description": _str(r.get("descrizione")),
        "category": _str(category) or None,
        "vat": _str(r.get("alq_iva")),
        "unit": _str(r.get("um_principale")),
        "published": not flagged_off and (not predeleted or rules.publish_predeleted),
    }


def _customer(r: Mapping[str, Any], rules: SiteRules) -> dict[str, Any]:
    return {
        "name": _str(r.get("ragione_sociale")),
        "vat_number": _str(r.get("partita_iva")),
        "tax_code": _str(r.get("codice_fiscale")),
        "email": _str(r.get("email")),
        "city": _str(r.get("localita")),
        "price_list": _int(r.get("cod_listino")),
        "payment": _str(r.get("cod_pagamento")),
    }


def _condition(r: Mapping[str, Any], rules: SiteRules) -> dict[str, Any]:
    return {
        "customer": _str(r.get("cod_conto")),
        "kind": _str(r.get("tipo")),
        "article": _str(r.get("cod_articolo")),
        "article_group": _str(r.get("cod_grp_merc")),
        "price": _dec(r.get("prezzo")),
        "discount": _str(r.get("sconto")),
    }


def _category(r: Mapping[str, Any], rules: SiteRules) -> dict[str, Any]:
    return {
        "description": _str(r.get("descrizione")),
        "parent": _str(r.get("cod_grp_padre")) or None,
        "web": r.get("web") == "S",
    }


def _price_list(r: Mapping[str, Any], rules: SiteRules) -> dict[str, Any]:
    return {"description": _str(r.get("descrizione")), "vat_included": r.get("iva_inclusa") == "S"}


def _currency(r: Mapping[str, Any], rules: SiteRules) -> dict[str, Any]:
    return {
        "iso_code": _str(r.get("sigla_iso")),
        "description": _str(r.get("descrizione")),
        "rate": _dec(r.get("cambio")),
    }


def _described(r: Mapping[str, Any], rules: SiteRules) -> dict[str, Any]:
    return {"description": _str(r.get("descrizione"))}


ARTICLE_FIELDS = (
    "descrizione",
    "descr_agg",
    "prz_listino",
    "cod_grp_merc",
    "cat_web",
    "alq_iva",
    "um_principale",
    "qta_inventario",
    "qta_carico",
    "qta_scarico",
    "ord_cli_e",
    "offerta",
    "novita",
    "peso",
    "cod_barre",
)
CUSTOMER_FIELDS = (
    "ragione_sociale",
    "partita_iva",
    "codice_fiscale",
    "indirizzo",
    "cap",
    "localita",
    "provincia",
    "nazione",
    "email",
    "telefono",
    "cod_pagamento",
    "cod_listino",
    "valuta",
    "sconto",
    "cat_sconto",
)
CONDITION_FIELDS = (
    "cod_conto",
    "tipo",
    "cod_articolo",
    "cod_grp_merc",
    "prezzo",
    "sconto",
    "dt_inizio",
    "dt_fine",
)

_T = models.SQLModel.metadata.tables


def _lookup(name: str, resource: str, table: str, derive: Derive) -> EntitySpec:
    partition = (("entity", name),) if table == "lookup_records" else ()
    return EntitySpec(name, resource, _T[table], True, derive, partition=partition)


# Lookup tables come first: articles are checked against the categories just read.
ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        _lookup("categories", "dati-generali/gruppi-merceologici", "categories", _category),
        _lookup("price_lists", "dati-generali/listini", "price_lists", _price_list),
        _lookup("currencies", "dati-generali/valute", "currencies", _currency),
        _lookup("payments", "dati-generali/pagamenti", "payments", _described),
        _lookup("warehouses", "dati-generali/magazzini", "lookup_records", _described),
        _lookup(
            "discount_categories", "dati-generali/categorie-sconti", "lookup_records", _described
        ),
        _lookup(
            "article_statistic_categories",
            "dati-generali/categorie-statistiche-articoli",
            "lookup_records",
            _described,
        ),
        EntitySpec(
            "articles",
            "articoli",
            _T["articles"],
            False,
            _article,
            default_fields=ARTICLE_FIELDS,
            control_fields=(
                "trasf_sito",
                "pubblica",
                "gest_precanc",
                "gest_annullato",
                "cod_grp_merc",
                "cat_web",
                "dt_mod_sistema",
                "ora_mod_sistema",
            ),
            site_fields=("published", "category"),
            mod_date="dt_mod_sistema",
            mod_time="ora_mod_sistema",
            site_flag="trasf_sito",
        ),
        EntitySpec(
            "customers",
            "clienti",
            _T["customers"],
            False,
            _customer,
            default_fields=CUSTOMER_FIELDS,
            control_fields=("trasf_sito", "data_ult_mod"),
            mod_date="data_ult_mod",
            site_flag="trasf_sito",
        ),
        EntitySpec(
            "conditions",
            "particolarita",
            _T["conditions"],
            False,
            _condition,
            default_fields=CONDITION_FIELDS,
            control_fields=("dt_mod_sistema", "ora_mod_sistema"),
            mod_date="dt_mod_sistema",
            mod_time="ora_mod_sistema",
        ),
    )
}
MAIN_ENTITIES = tuple(n for n, s in ENTITIES.items() if s.main)
LOOKUP_ENTITIES = tuple(n for n, s in ENTITIES.items() if s.lookup)


# --- one ERP record -> one store row --------------------------------------------------

_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{6}$")


#: the entities whose records record_problem looks at
CHECKED_TOGETHER = frozenset({"customers", "conditions"})


@functools.lru_cache(maxsize=4096)
def real_date(text: str) -> bool:
    """Whether eight digits AAAAMMGG are a day of the calendar ("00000000": no date)."""
    if text == "00000000":
        return True
    year, month, day = int(text[:4]), int(text[4:6]), int(text[6:])
    return year >= 1 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]


def record_problem(entity: str, full: Mapping[str, Any], derived: Mapping[str, Any]) -> str | None:
    """What makes a well-typed record unusable all the same, for the entities whose
    values must make sense together: a customer's price list that is no price list
    number, a commercial condition with a negative price or one that ends before it
    begins. None when there is nothing."""
    if entity == "customers":
        given = full.get("cod_listino")
        number = derived.get("price_list")
        if given not in (None, "") and (number is None or number < 0):
            # (0, what the ERP fills in when none was given, is no price list of its own)
            return f"cod_listino: {given} is not a price list number (a whole number, 0 for none)"
    elif entity == "conditions":
        price = derived.get("price")
        if price is not None and price < 0:
            return f"prezzo: {price} is negative"
        start, end = full.get("dt_inizio"), full.get("dt_fine")
        if start and end and start != "00000000" and end != "00000000" and end < start:
            return f"dt_fine {end} is before dt_inizio {start}: the condition would never apply"
    return None


#: Known = the keys of the lookup tables a record may link to, by lookup entity
Known = Mapping[str, AbstractSet[str]]


@dataclass(frozen=True)
class Link:
    """A customer's field that names a record of a lookup table."""

    source: str  # the ERP field
    target: str  # the lookup entity it names a record of
    label: str  # what the reason calls it


#: the links checked for each entity, besides an article's category (see link_problem)
LINKS: dict[str, tuple[Link, ...]] = {
    "customers": (
        Link("cod_pagamento", "payments", "payment"),
        Link("cod_listino", "price_lists", "price list"),
        Link("valuta", "currencies", "currency"),
    ),
}
#: the lookup entities whose keys the sync gathers for the links, by entity
LINK_TARGETS: dict[str, tuple[str, ...]] = {
    "articles": ("categories",),
    **{e: tuple(link.target for link in links) for e, links in LINKS.items()},
}


def link_code(value: Any) -> str | None:
    """The key a link's value names, None for no link (empty, or the ERP's 0)."""
    if value is None or value == "" or value == 0:
        return None
    if type(value) is float and value.is_integer():
        value = int(value)
    return str(value)


def link_problem(
    entity: str,
    full: Mapping[str, Any],
    derived: Mapping[str, Any],
    known: Known | None,
    rules: SiteRules,
) -> str | None:
    """The first link of the record to a lookup record the store does not have, as a
    reject's reason; None when every link holds. A lookup table the store holds none of
    is not checked (a Parziale of customers into a store no TOTAL has filled yet), except
    the categories, without which no article can be placed."""
    if known is None:
        return None
    if entity == "articles":
        categories = known.get("categories")
        cat = derived.get("category")
        if categories is None or not cat or cat in categories:
            return None
        source = "cat_web" if rules.category_mode == "secondaria" else "cod_grp_merc"
        hint = (
            ""
            if categories
            else " (the store has no categories yet: a TOTAL or a Parziale of categories"
            " brings them)"
        )
        return f"unknown category {cat!r} in {source}{hint}"
    for link in LINKS.get(entity, ()):
        keys = known.get(link.target)
        code = link_code(full.get(link.source))
        if keys and code is not None and code not in keys:
            return f"unknown {link.label} {code!r} in {link.source}"
    return None


@dataclass
class Row:
    key: str
    data: dict[str, Any]  # used fields, canonical
    data_json: str
    derived: dict[str, Any]
    digest: str
    prices: dict[int, Decimal] = field(default_factory=dict)


class Rejected(Exception):
    def __init__(self, key: str | None, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason


def _check_type(name: str, value: Any, spec: FieldSpec) -> str | None:
    if value is None:
        return None
    if spec.is_array:
        if type(value) is not list:
            return f"field {name}: expected an array of [index, value] pairs, got {value!r:.60}"
        seen: set[int] = set()
        for p in value:
            if type(p) is not list or len(p) != 2 or type(p[0]) is not int:
                return f"field {name}: expected an array of [index, value] pairs, got {value!r:.60}"
            if p[0] in seen:  # which value would be the ERP's? neither is kept
                return f"field {name}: index {p[0]} appears twice, in {value!r:.60}"
            seen.add(p[0])
        return None
    t = spec.type
    if t == "C":
        if type(value) is not str:
            return f"field {name}: expected text, got {value!r:.60}"
        if spec.length and len(value) > spec.length:
            return f"field {name}: text of {len(value)} characters, longer than {spec.length}"
    elif t == "N":
        if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
            return f"field {name}: expected a number, got {value!r:.60}"
    elif t == "D":
        if not (isinstance(value, str) and (value == "" or _DATE.match(value))):
            return f"field {name}: expected a date AAAAMMGG, got {value!r:.60}"
        if value and not real_date(value):
            return f"field {name}: {value!r} is not a date of the calendar (AAAAMMGG)"
    elif t == "T" and not (isinstance(value, str) and (value == "" or _TIME.match(value))):
        return f"field {name}: expected a time HHMMSS, got {value!r:.60}"
    return None


def _column_limits(table: Table) -> dict[str, int]:
    out = {}
    for col in table.columns:
        length = getattr(col.type, "length", None)
        if isinstance(length, int):
            out[col.name] = length
    return out


_LIMITS = {name: _column_limits(spec.table) for name, spec in ENTITIES.items()}
# the text columns a record's derived values go to, with their limits
_DERIVED_LIMITS = {
    name: [
        (col, length)
        for col, length in _LIMITS[name].items()
        if col in spec.derive({}, SiteRules())
    ]
    for name, spec in ENTITIES.items()
}


#: why a text holding a NUL character is refused: PostgreSQL keeps none in a text, and a
#: record is refused alike whatever the store
NUL_TEXT = "text with a NUL character (0x00), which the store cannot keep"


#: the significant digits a number column keeps exactly in every store: SQLite turns a
#: NUMERIC value into an 8-byte float, which holds 15 (PostgreSQL would keep more, but
#: a record is refused alike whatever the store)
EXACT_DIGITS = 15


@dataclass(frozen=True)
class NumberLimit:
    """What a number column keeps: NUMERIC(precision, scale) (rounded to `scale`
    places, then less than 10^(precision - scale) either way, and exactly only to
    `significant` digits), or, with `precision` None, a 4-byte INTEGER (what
    PostgreSQL's INTEGER holds; SQLite would take more)."""

    precision: int | None
    scale: int = 0
    significant: int = EXACT_DIGITS

    @property
    def fast(self) -> tuple[int, int]:
        """Bounds a page's values may be compared with at once: a value strictly between
        them is certainly kept (one near them is decided by `problem`)."""
        if self.precision is None:
            return -(2**31) - 1, 2**31
        # (a float here has at most 15 digits; a whole number's are all before the point)
        top = 10 ** min(self.precision - self.scale, self.significant) - 1
        return -top, top

    def problem(self, value: Any) -> str | None:
        """Why the column cannot keep this number (None when it can)."""
        if self.precision is None:
            if type(value) is int and -(2**31) <= value < 2**31:
                return None
            return (
                f"{value} is beyond what the store keeps (a whole number from {-(2**31)}"
                f" to {2**31 - 1})"
            )
        digits = self.precision - self.scale
        if not isinstance(value, Decimal):
            value = _dec(value)
            if value is None:
                return None
        if not value.is_finite():
            return f"{value} is not a number the store keeps"
        bound = Decimal(10) ** digits
        if abs(value) < bound:
            # rounded to the column's places, as the database rounds it (half away from 0)
            context = Context(prec=self.precision + 2)
            step = Decimal(1).scaleb(-self.scale)
            kept = value.quantize(step, ROUND_HALF_UP, context)
            if abs(kept) < bound:
                digits_kept = len(kept.normalize().as_tuple().digits) if kept else 0
                if digits_kept <= self.significant:
                    return None
                return (
                    f"{format(value.normalize(), 'f')} has more significant digits than the"
                    f" store keeps exactly ({self.significant})"
                )
        # a huge one in short (1e+300): a float's exact value has hundreds of digits
        shown = format(value, "f") if value.adjusted() < 40 else f"{float(value):g}"
        return f"{shown} is beyond what the store keeps (less than 10^{digits})"


def _number_limit(column: Any) -> NumberLimit | None:
    kind = column.type
    if isinstance(kind, models.ExactNumeric):
        return NumberLimit(kind.precision, kind.scale)
    if isinstance(kind, Numeric) and kind.precision is not None:
        return NumberLimit(kind.precision, kind.scale or 0)
    if isinstance(kind, Integer):
        return NumberLimit(None)
    return None


#: what article_prices keeps: the price list's number, and its price
PRICE_LIST_LIMIT = NumberLimit(None)
PRICE_LIMIT = NumberLimit(models.MONEY.precision or 0, models.MONEY.scale or 0)

# the ERP field a derived number comes from, for a reject's reason
_NUMBER_SOURCES = {
    ("conditions", "price"): "prezzo",
    ("currencies", "rate"): "cambio",
    ("customers", "price_list"): "cod_listino",
}


def _derived_columns(spec: EntitySpec) -> list[Any]:
    names = spec.derive({}, SiteRules())
    return [col for col in spec.table.columns if col.name in names]


# the number columns a record's derived values go to: (column, ERP field, what it keeps)
_DERIVED_NUMBERS = {
    name: [
        (col.name, _NUMBER_SOURCES.get((name, col.name), col.name), limit)
        for col in _derived_columns(spec)
        if (limit := _number_limit(col)) is not None
    ]
    for name, spec in ENTITIES.items()
}
# the text columns a record's derived values go to, with their limits (None: any length)
_DERIVED_TEXTS = {
    name: [
        (col.name, getattr(col.type, "length", None))
        for col in _derived_columns(spec)
        if isinstance(getattr(col.type, "impl", col.type), String)
    ]
    for name, spec in ENTITIES.items()
}


def key_limit(spec: EntitySpec) -> int:
    """The longest key the entity's table takes."""
    return _LIMITS[spec.name].get("code", 256)


def record_key(spec: EntitySpec, record: Mapping[str, Any]) -> str:
    """The record's key as text; raises Rejected when it is missing or unusable."""
    raw_key = record.get(KEY_FIELD)
    if raw_key is None or isinstance(raw_key, bool) or raw_key == "":
        raise Rejected(None, f"missing key {KEY_FIELD}")
    if not isinstance(raw_key, str | int):
        raise Rejected(str(raw_key)[:60], f"key {KEY_FIELD} has the wrong type: {raw_key!r:.60}")
    key = str(raw_key)
    if "\x00" in key:
        # kept without its key (first: a long one too): the store could not keep that
        raise Rejected(None, f"key {KEY_FIELD} {key!r:.60}: {NUL_TEXT}")
    limit = key_limit(spec)
    if len(key) > limit:
        raise Rejected(key[:60], f"key {KEY_FIELD} longer than {limit} characters")
    return key


# bump when what goes into a digest changes, so old digests simply stop matching
DIGEST_VERSION = b"4"


def digest_salt(
    spec: EntitySpec,
    rules: SiteRules,
    used: tuple[str, ...] | None = None,
    keep_descriptions: bool = False,
) -> bytes:
    """Everything besides the record that decides its row: entity, used fields, settings
    (`keep_descriptions`: a lookup table whose site descriptions the ERP's do not
    overwrite, so that turning the setting back on brings the ERP's descriptions)."""
    parts = [
        DIGEST_VERSION,
        spec.name.encode(),
        ",".join(used or ()).encode(),
        str(rules.site_no).encode(),
        b"1" if rules.publish_predeleted else b"0",
        rules.category_mode.encode(),
    ]
    if keep_descriptions:
        parts.append(b"keep-descriptions")
    return b"|".join(parts)


def record_digest(record: Mapping[str, Any], salt: bytes) -> str:
    """A digest of a record exactly as received, so an unchanged record is recognised
    without canonicalising or validating it again.

    The same value spelled differently (12.5 / 12.50) gives another digest; that only
    costs a field-by-field comparison, which finds no change (values are compared in
    canonical form), so it is never reported as one."""
    try:
        text = orjson.dumps(record, default=_digest_default)
    except TypeError:  # integers beyond 64 bits: the slower spelling
        text = repr(record).encode()
    return hashlib.blake2b(text, key=hash_key(salt), digest_size=16).hexdigest()


@functools.lru_cache(maxsize=64)
def hash_key(salt: bytes) -> bytes:
    """The salt as a blake2b key (a record's digest is keyed by what decides its row)."""
    return hashlib.blake2b(salt, digest_size=32).digest()


def _digest_default(value: Any) -> Any:
    if type(value) is Decimal:
        return str(value)
    raise TypeError(type(value).__name__)


@dataclass(slots=True)
class Quick:
    """What a page needs of a record before knowing whether it changed."""

    key: str
    digest: str
    record: Mapping[str, Any]
    on_site: bool = True
    mod_stamp: str | None = None


def on_site(flags: Any, site_no: int) -> bool:
    """Whether a per-site array ([[site, "S" or "N"], ...], as received) flags the record
    for this site. An array naming the site twice says nothing for sure: the record is
    taken as on the site, where decoding it makes it a reject naming the field."""
    found: list[bool] = []
    if type(flags) is list:
        for pair in flags:
            if type(pair) is list and len(pair) == 2 and pair[0] == site_no:
                found.append(pair[1] == "S")
    return found[0] if len(found) == 1 else len(found) > 1


def quick(spec: EntitySpec, record: Mapping[str, Any], salt: bytes, rules: SiteRules) -> Quick:
    key = record_key(spec, record)
    q = Quick(key, record_digest(record, salt), record)
    if spec.site_flag:
        q.on_site = on_site(record.get(spec.site_flag), rules.site_no)
    if spec.mod_date:
        date = record.get(spec.mod_date)
        if isinstance(date, str) and date:
            tm = record.get(spec.mod_time) if spec.mod_time else None
            q.mod_stamp = f"{date} {tm}" if isinstance(tm, str) and tm else date
    return q


def build_row(
    spec: EntitySpec,
    record: Mapping[str, Any],
    used: tuple[str, ...] | None,
    catalogue: Mapping[str, FieldSpec],
    rules: SiteRules,
    known: Known | None = None,
    digest: str | None = None,
) -> Row:
    """Validate an ERP record and turn it into a row; raises Rejected with the reason."""
    key = record_key(spec, record)
    full: dict[str, Any] = {}
    # the common cases are checked and canonicalised inline (this loop runs for every
    # field of every record); anything unusual goes through _check_type for the exact
    # reason, and through canon
    for name, value in record.items():
        t = type(value)
        fs = catalogue.get(name)
        if fs is None or value is None:
            full[name] = value if t in _PLAIN else canon(value)
            continue
        kind = fs.quick_kind
        if t is str:
            if kind == "C":
                ok = not fs.length or len(value) <= fs.length
            elif kind == "D":
                ok = (len(value) == 8 and value.isdecimal() and real_date(value)) or value == ""
            elif kind == "T":
                ok = (len(value) == 6 and value.isdecimal()) or value == ""
            else:
                ok = False
            if not ok and (problem := _check_type(name, value, fs)):
                raise Rejected(key, problem)
            full[name] = value
        elif t is list and kind == "A":
            pairs: dict[str, Any] = {}
            for p in value:
                if type(p) is not list or len(p) != 2 or type(p[0]) is not int:
                    raise Rejected(key, _check_type(name, value, fs) or "bad array")
                v = p[1]
                pairs[str(p[0])] = v if type(v) in _PLAIN else canon(v)
            if len(pairs) != len(value):
                raise Rejected(key, _check_type(name, value, fs) or "repeated index")
            full[name] = pairs if value else []
        else:
            ok = kind == "N" and (t is int or t is float or t is Decimal)
            if not ok and (problem := _check_type(name, value, fs)):
                raise Rejected(key, problem)
            full[name] = value if t in _PLAIN else canon(value)
    derived = spec.derive(full, rules)
    for col, length in _DERIVED_LIMITS[spec.name]:
        v = derived[col]
        if type(v) is str and len(v) > length:
            raise Rejected(key, f"{col} {v[:20]!r}... longer than the site allows ({length})")
    for col, source, limit in _DERIVED_NUMBERS[spec.name]:
        v = derived[col]
        if v is not None and (problem := limit.problem(v)):
            raise Rejected(key, f"{source}: {problem}")
    if spec.name == "currencies" and not derived.get("iso_code"):
        raise Rejected(key, "currency without ISO code (sigla_iso)")
    if spec.name in CHECKED_TOGETHER and (problem := record_problem(spec.name, full, derived)):
        raise Rejected(key, problem)
    if spec.name in LINK_TARGETS and (
        problem := link_problem(spec.name, full, derived, known, rules)
    ):
        raise Rejected(key, problem)
    if used is None:
        data = {k: v for k, v in full.items() if k != KEY_FIELD}
    else:
        data = {k: full.get(k) for k in used}
    data_json = dumps(data)
    # JSON spells a NUL \u0000 (so does a text holding a backslash and "u0000", which
    # the exact look then clears)
    if "\\u0000" in data_json or any(type(v) is str and "\x00" in v for v in derived.values()):
        culprit = _nul_field(data, full)
        if culprit is not None:
            raise Rejected(key, f"field {culprit}: {NUL_TEXT}")
    if digest is None:
        digest = record_digest(record, digest_salt(spec, rules, used))
    row = Row(key, data, data_json, derived, digest)
    if spec.name == "articles" and (used is None or "prz_listino" in used):
        row.prices = record_prices(full.get("prz_listino"))
        for number, price in row.prices.items():
            if problem := PRICE_LIST_LIMIT.problem(number):
                raise Rejected(key, f"prz_listino: price list number {problem}")
            if problem := PRICE_LIMIT.problem(price):
                raise Rejected(key, f"prz_listino: price list {number}: {problem}")
    return row


def _nul_field(data: Mapping[str, Any], full: Mapping[str, Any]) -> str | None:
    """The first field whose value holds a NUL character: of the stored fields, else
    of the texts the derived columns are taken from."""
    for name, value in data.items():
        if _has_nul(value):
            return name
    for name, value in full.items():
        if type(value) is str and "\x00" in value:
            return name
    return None


def _has_nul(value: Any) -> bool:
    t = type(value)
    if t is str:
        return "\x00" in value
    if t is dict:
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if t is list:
        return any(map(_has_nul, value))
    return False


def record_prices(prices: Any) -> dict[int, Decimal]:
    """Price per price list from the canonical form of prz_listino ({"1": "12.5"})."""
    out: dict[int, Decimal] = {}
    if isinstance(prices, dict):
        for i, p in prices.items():
            d = _dec(p)
            if d is not None:
                out[int(i)] = d
    return out
