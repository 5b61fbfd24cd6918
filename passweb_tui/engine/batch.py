"""A page of ERP records at a time: the same results as records.py's per-record
functions, computed column by column where the page allows it.

A sync spends most of its own time here, once per record, so the common case (every
record of the page well formed, with the same fields) is checked with set and map
operations over whole columns, which run in C. Anything unusual in a page, even one
value, sends that page through the per-record functions, which give each bad record
its exact reason: the fast way never decides what the careful way would not.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import operator
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from passweb_tui.engine.erp.client import record_pieces
from passweb_tui.engine.records import (
    _DERIVED_NUMBERS,
    _DERIVED_TEXTS,
    _PLAIN,
    CHECKED_TOGETHER,
    KEY_FIELD,
    LINKS,
    PRICE_LIMIT,
    PRICE_LIST_LIMIT,
    EntitySpec,
    FieldSpec,
    Known,
    NumberLimit,
    Quick,
    Rejected,
    Row,
    SiteRules,
    build_row,
    canon,
    dumps,
    hash_key,
    key_limit,
    link_code,
    on_site,
    quick,
    real_date,
    record_prices,
    record_problem,
)

_NONE = type(None)
_TEXT = frozenset({str, _NONE})
_NUMBER = frozenset({int, float, Decimal, _NONE})
_ARRAY = frozenset({list, _NONE})

Rejects = list[tuple[str | None, str]]


def scan_page(
    spec: EntitySpec,
    records: Sequence[Mapping[str, Any]],
    salt: bytes,
    rules: SiteRules,
    content: bytes | None = None,
    stamps: bool = True,
) -> tuple[list[Quick], Rejects]:
    """Key, digest, site flag and change stamp of every record (see records.quick);
    records without a usable key are rejected. `content`, the reply the records were
    decoded from, lets the digests be taken of each record's text as received;
    `stamps=False` leaves out the change stamps (a TOTAL does not look at them)."""
    if not records:
        return [], []
    keys: list[Any] = [r.get(KEY_FIELD) for r in records]
    limit = key_limit(spec)
    lengths = list(map(len, keys)) if set(map(type, keys)) == {str} else None
    if not lengths or min(lengths) == 0 or max(lengths) > limit or "\x00" in "".join(keys):
        return _scan_each(spec, records, salt, rules)
    texts = record_texts(content, keys) if content else None
    if texts is None:
        try:
            texts = list(map(orjson.dumps, records))
        except TypeError:  # a Decimal or a huge integer: the per-record digest spells it
            return _scan_each(spec, records, salt, rules)
    digests = text_digests(texts, salt)
    if spec.site_flag:
        site_no = rules.site_no
        # the usual array is this site's pair alone: decided inline, else by on_site
        flagged = [
            f[0][1] == "S"
            if type(f) is list
            and len(f) == 1
            and type(f[0]) is list
            and len(f[0]) == 2
            and f[0][0] == site_no
            else on_site(f, site_no)
            for f in map(_getter(spec.site_flag), records)
        ]
    else:
        flagged = [True] * len(records)
    when: Any = itertools.repeat(None)
    if stamps and spec.mod_date:
        dates = map(_getter(spec.mod_date), records)
        times = map(_getter(spec.mod_time), records) if spec.mod_time else itertools.repeat(None)
        when = [_stamp(d, t) for d, t in zip(dates, times, strict=False)]
    return list(map(Quick, keys, digests, records, flagged, when)), []


def record_texts(content: bytes, keys: Sequence[str]) -> list[bytes] | None:
    """Each record's own text in a list reply (see client.record_pieces), or None when
    the reply does not cut into one piece per record, each holding its own key (then
    the records are spelled again by orjson)."""
    pieces = record_pieces(content)
    if pieces is None or len(pieces) != len(keys):
        return None
    dumps = orjson.dumps
    name = KEY_FIELD.encode() + b'":'
    for piece, key in zip(pieces, keys, strict=True):
        if name + dumps(key) not in piece:
            return None
    return pieces


def text_digests(texts: Sequence[bytes], salt: bytes) -> list[str]:
    """The digest of each record text (keyed by what decides the record's row)."""
    hkey = hash_key(salt)
    b2 = hashlib.blake2b
    return [b2(t, key=hkey, digest_size=16).hexdigest() for t in texts]


def _getter(name: str) -> Any:
    return operator.methodcaller("get", name)


def site_flag_of(flags: Any, site_no: int) -> bool:
    """Whether a per-site array ([[site, "S" or "N"], ...]) flags the record for this
    site (records.on_site)."""
    return on_site(flags, site_no)


def _stamp(date: Any, tm: Any) -> str | None:
    if isinstance(date, str) and date:
        return f"{date} {tm}" if isinstance(tm, str) and tm else date
    return None


def _scan_each(
    spec: EntitySpec, records: Sequence[Mapping[str, Any]], salt: bytes, rules: SiteRules
) -> tuple[list[Quick], Rejects]:
    out: list[Quick] = []
    rejects: Rejects = []
    for record in records:
        try:
            out.append(quick(spec, record, salt, rules))
        except Rejected as exc:
            rejects.append((exc.key, exc.reason))
    return out, rejects


def build_rows(
    spec: EntitySpec,
    items: Sequence[Quick],
    used: tuple[str, ...] | None,
    catalogue: Mapping[str, FieldSpec],
    rules: SiteRules,
    known: Known | None = None,
    nul_free: bool = False,
) -> tuple[list[Row], Rejects]:
    """Validated, canonical rows for these records (see records.build_row), and the
    records rejected with their reasons. `nul_free`: the caller knows that no text of
    these records holds a NUL character (see `nul_free`), which spares looking."""
    if used is not None and len(items) > 1:
        rows = _build_columns(spec, items, used, catalogue, rules, known, nul_free)
        if rows is not None:
            return rows, []
    out: list[Row] = []
    rejects: Rejects = []
    for q in items:
        try:
            out.append(build_row(spec, q.record, used, catalogue, rules, known, q.digest))
        except Rejected as exc:
            rejects.append((exc.key or q.key, exc.reason))
    return out, rejects


def _build_columns(
    spec: EntitySpec,
    items: Sequence[Quick],
    used: tuple[str, ...],
    catalogue: Mapping[str, FieldSpec],
    rules: SiteRules,
    known: Known | None,
    nul_free: bool = False,
) -> list[Row] | None:
    """The rows, or None when the page needs the per-record way."""
    records = [q.record for q in items]
    n = len(records)
    names = list(dict.fromkeys(itertools.chain.from_iterable(records)))
    if len(names) < 2:
        return None
    try:
        columns = list(zip(*map(operator.itemgetter(*names), records), strict=True))
    except KeyError:  # records with different fields
        return None
    canonical: list[Sequence[Any]] = []
    for name, column in zip(names, columns, strict=True):
        fs = catalogue.get(name)
        types = set(map(type, column))
        kind = fs.quick_kind if fs is not None else None
        if fs is not None and not _column_ok(kind, fs, column, types):
            return None
        if types <= _PLAIN:
            canonical.append(column)
        elif kind == "A":
            pairs = _pairs_column(column)
            if pairs is None:
                return None
            canonical.append(pairs)
        else:
            canonical.append([v if type(v) in _PLAIN else canon(v) for v in column])
    fulls = [dict(zip(names, values, strict=True)) for values in zip(*canonical, strict=True)]
    derive = spec.derive
    derived = [derive(f, rules) for f in fulls]
    for col, length in _DERIVED_TEXTS[spec.name]:
        if length is None and nul_free:
            continue  # nothing to check
        values = list(map(operator.itemgetter(col), derived))
        if not set(map(type, values)) <= _TEXT:
            return None
        texts = list(filter(None, values))
        if texts and length is not None and max(map(len, texts)) > length:
            return None
        if texts and not nul_free and "\x00" in "".join(texts):
            return None
    for col, _, limit in _DERIVED_NUMBERS[spec.name]:
        # (zeros and Nones left out: both are kept)
        if not _within(filter(None, map(operator.itemgetter(col), derived)), limit):
            return None
    if spec.name in CHECKED_TOGETHER and any(
        map(functools.partial(record_problem, spec.name), fulls, derived)
    ):
        return None
    if known is not None and not _links_hold(spec.name, fulls, derived, known):
        return None
    where = {name: i for i, name in enumerate(names)}
    nothing = (None,) * n
    data_columns = [canonical[where[k]] if k in where else nothing for k in used]
    datas = [dict(zip(used, values, strict=True)) for values in zip(*data_columns, strict=True)]
    texts_json = list(map(dumps, datas))
    if not nul_free and "\\u0000" in "".join(texts_json):  # JSON's spelling of a NUL
        return None
    rows = list(
        map(Row, [q.key for q in items], datas, texts_json, derived, [q.digest for q in items])
    )
    if spec.name == "articles" and "prz_listino" in used and "prz_listino" in where:
        raw = columns[where["prz_listino"]]
        for row, pairs, full in zip(rows, raw, fulls, strict=True):
            if pairs:
                prices: dict[int, Any] = {
                    i: v for i, v in pairs if type(v) is float or type(v) is int
                }
                if len(prices) != len(pairs):  # text or decimals: the slow way
                    prices = record_prices(full["prz_listino"])
                row.prices = prices
        # what the price table keeps, for the whole page at once
        price_maps = list(map(operator.attrgetter("prices"), rows))
        if not _within(set().union(*price_maps), PRICE_LIST_LIMIT):  # a few numbers
            return None
        amounts = list(itertools.chain.from_iterable(map(dict.values, price_maps)))
        if not _within(amounts, PRICE_LIMIT):
            return None
    return rows


def nul_free(content: bytes | None) -> bool:
    """Whether a reply certainly holds no NUL character in any text: JSON spells one
    `\\u0000` (a raw one is not JSON), so a reply without that spelling has none."""
    return content is not None and b"\\u0000" not in content


def _links_hold(
    entity: str,
    fulls: Sequence[Mapping[str, Any]],
    derived: Sequence[Mapping[str, Any]],
    known: Known,
) -> bool:
    """Whether every link of the page's records names a lookup record the store has (as
    records.link_problem sees it); a False sends the page the per-record way, for the
    exact rejects."""
    if entity == "articles":
        categories = known.get("categories")
        if categories is None:
            return True
        wanted = set(map(operator.itemgetter("category"), derived))
        wanted.discard(None)
        wanted.discard("")
        return wanted <= categories
    for link in LINKS.get(entity, ()):
        keys = known.get(link.target)
        if keys:
            codes = set(map(link_code, [f.get(link.source) for f in fulls]))
            codes.discard(None)
            if not codes <= keys:
                return False
    return True


def _within(numbers: Iterable[Any], limit: NumberLimit) -> bool:
    """Whether every value (numbers of one page's column) is certainly kept: strictly
    between the limit's bounds, and a Decimal no longer than the digits kept exactly (a
    float here came from a reply whose numbers all have at most 15); a False may be
    wrong (a value that does not compare, a NaN, a long Decimal that rounds short),
    never a True."""
    low, high = limit.fast
    try:
        values = list(numbers)
        if not values:
            return True
        total = sum(values)  # a NaN anywhere makes the sum one, which max() might miss
        if type(total) is Decimal and limit.precision is not None:  # a page of decimals
            # beside its Decimals, a page decoded the exact way holds its whole numbers
            # as ints, whose digits are counted as written
            significant = limit.significant
            if any(
                len(v.as_tuple().digits if type(v) is Decimal else str(abs(v))) > significant
                for v in values
            ):
                return False
        return bool(total == total and low < min(values) and max(values) < high)
    except (TypeError, ValueError, ArithmeticError):  # ValueError: bool() of a signalling NaN
        return False


def _column_ok(kind: str | None, fs: FieldSpec, column: Sequence[Any], types: set[type]) -> bool:
    """Whether every value of a column passes records._check_type (a False may be wrong,
    never a True: the per-record way decides then)."""
    if kind == "C":
        if not types <= _TEXT:
            return False
        if fs.length:
            texts = [v for v in column if v] if _NONE in types else column
            return not texts or max(map(len, texts)) <= fs.length
        return True
    if kind == "N":
        return types <= _NUMBER
    if kind in ("D", "T"):
        if not types <= _TEXT:
            return False
        width = 8 if kind == "D" else 6
        texts = [v for v in column if v]
        if not texts:
            return True
        if set(map(len, texts)) != {width} or not "".join(texts).isdecimal():
            return False
        return kind == "T" or all(map(real_date, set(texts)))  # a page's few distinct days
    if kind == "A":
        return types <= _ARRAY  # the pairs themselves are checked while converting
    return True  # other types: nothing to check (as _check_type)


def _pairs_column(column: Sequence[Any]) -> list[Any] | None:
    """[[index, value], ...] arrays in canonical form ({"index": value}), or None when
    one is not a list of [int, value] pairs or repeats an index."""
    out: list[Any] = []
    for value in column:
        if not value:
            out.append(value if value is None else [])
            continue
        pairs: dict[str, Any] = {}
        for p in value:
            if type(p) is not list or len(p) != 2 or type(p[0]) is not int:
                return None
            v = p[1]
            if type(v) is float:  # canon's float branch, inline: most prices come here
                if v.is_integer():
                    v = int(v)
                else:
                    text = repr(v)
                    v = text if "e" not in text and "n" not in text else canon(v)
            elif type(v) not in _PLAIN:
                v = canon(v)
            pairs[str(p[0])] = v
        if len(pairs) != len(value):  # a repeated index: the per-record way rejects it
            return None
        out.append(pairs)
    return out
