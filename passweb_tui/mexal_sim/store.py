"""The simulated ERP's tables: a generated base plus an overlay of changes.

A Table answers reads in key order by merging its generated base with the
records added, changed or deleted since; only the overlay is ever persisted.
"""

from __future__ import annotations

import copy
import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from passweb_tui.mexal_sim.dataset import EagerSource, Source
from passweb_tui.mexal_sim.schema import Schema

# One scanned candidate: (sort key, key, base index or -1 for an added record)
Item = tuple[Any, Any, int]


def lone_surrogate(value: Any) -> str | None:
    """Where a decoded JSON body holds a lone surrogate (`"\\ud800"`, which JSON lets
    through and which is no character), said for an error; None when it holds none. A
    record keeping one could never be sent again: every read of its table would fail."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"a lone surrogate (U+{ord(value[exc.start]):04X}) in {value[:40]!r}"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if (found := lone_surrogate(k)) is not None:
                return found
            if (found := lone_surrogate(v)) is not None:
                return f"{k}: {found}"
    elif isinstance(value, list):
        for item in value:
            found = lone_surrogate(item)
            if found is not None:
                return found
    return None


class Table:
    """One resource: base records by index, and the overlay on top of them."""

    def __init__(self, name: str, schema: Schema, source: Source) -> None:
        self.name = name
        self.schema = schema
        self.source = source
        self.changed: dict[Any, dict[str, Any]] = {}  # base or added key -> record
        self.deleted: set[Any] = set()  # base keys gone
        self.added_sks: list[Any] = []  # sort keys of added (non-base) records, sorted
        self.added_keys: dict[Any, Any] = {}  # sort key -> key

    # ------------------------------------------------------------------ reads
    def count(self) -> int:
        return self.source.n - len(self.deleted) + len(self.added_keys)

    def parse_key(self, raw: str) -> Any:
        # only 0-9: int() would also take other scripts' digits and surrounding blanks
        if self.schema.int_key and re.fullmatch(r"-?[0-9]+", raw):
            return int(raw)
        return raw

    def get(self, key: Any) -> dict[str, Any] | None:
        rec = self.changed.get(key)
        if rec is not None:
            return rec
        if key in self.deleted:
            return None
        i = self.source.index_of(key)
        return None if i is None else self.source.record(i)

    def exists(self, key: Any) -> bool:
        if key in self.changed:
            return True
        if key in self.deleted:
            return False
        return self.source.index_of(key) is not None

    def record_of(self, item: Item) -> dict[str, Any] | None:
        _sk, key, i = item
        rec = self.changed.get(key)
        if rec is not None:
            return rec
        if i < 0 or key in self.deleted:
            return None
        return self.source.record(i)

    def scan(self, after: Any = None, start: Any = None) -> Iterator[Item]:
        """Every key in order: strictly after sort key `after`, or from `start` inclusive."""
        src = self.source
        if after is not None:
            i = src.position(after, after=True)
            j = bisect_right(self.added_sks, after)
        elif start is not None:
            i = src.position(start, after=False)
            j = bisect_left(self.added_sks, start)
        else:
            i = j = 0
        n, added, keyf, sortf = src.n, self.added_sks, src.key, src.sort_key
        deleted = self.deleted
        identity = type(src).sort_key is Source.sort_key
        nxt = added[j] if j < len(added) else None
        while i < n:
            key = keyf(i)
            sk = key if identity else sortf(key)
            while nxt is not None and nxt < sk:
                yield nxt, self.added_keys[nxt], -1
                j += 1
                nxt = added[j] if j < len(added) else None
            i += 1
            if key in deleted:
                continue
            yield sk, key, i - 1
        while j < len(added):
            yield added[j], self.added_keys[added[j]], -1
            j += 1

    def candidates_since(self, day_offset: int) -> tuple[list[int], list[Item]] | None:
        """Records possibly modified within `day_offset` days of the base date: base
        indexes (ascending = key order; keys are computed only when paged) and the
        overlay's records as sorted items. None when that is most of the table (a
        plain scan is then cheaper)."""
        src = self.source
        if src.days is None:
            return None
        if src.count_since(day_offset) > max(src.n // 3, 5000):
            return None
        idx = src.indexes_since(day_offset) or []
        sortf = src.sort_key
        extra = []
        for key in self.changed:
            bi = src.index_of(key)
            extra.append((sortf(key), key, -1 if bi is None else bi))
        extra.sort(key=lambda it: it[0])
        return idx, extra

    # ----------------------------------------------------------------- writes
    def put(self, key: Any, record: dict[str, Any]) -> None:
        """Store a record (new or replacing); the overlay keeps its own copy."""
        record = copy.deepcopy(record)
        if self.source.index_of(key) is not None:
            self.deleted.discard(key)
        elif key not in self.changed:
            sk = self.source.sort_key(key)
            insort(self.added_sks, sk)
            self.added_keys[sk] = key
        self.changed[key] = record

    def delete(self, key: Any) -> bool:
        if not self.exists(key):
            return False
        self.changed.pop(key, None)
        if self.source.index_of(key) is not None:
            self.deleted.add(key)
        else:
            sk = self.source.sort_key(key)
            pos = bisect_left(self.added_sks, sk)
            if pos < len(self.added_sks) and self.added_sks[pos] == sk:
                del self.added_sks[pos]
            self.added_keys.pop(sk, None)
        return True

    def nth_key(self, k: int) -> Any:
        """The k-th existing key in a cheap, stable numbering (for picking at random)."""
        src = self.source
        if k < src.n:
            return src.key(k)
        extra = [key for key in self.added_keys.values()]
        return extra[(k - src.n) % len(extra)] if extra else src.key(k % max(src.n, 1))

    def snapshot(self) -> tuple[Any, ...]:
        """The overlay as it is now, for restore(); records are never changed in place
        (put stores a copy), so shallow copies keep it."""
        return dict(self.changed), set(self.deleted), list(self.added_sks), dict(self.added_keys)

    def restore(self, snapshot: tuple[Any, ...]) -> None:
        self.changed, self.deleted, self.added_sks, self.added_keys = snapshot

    # ------------------------------------------------------------ persistence
    def dump(self) -> dict[str, Any]:
        return {"changed": list(self.changed.items()), "deleted": sorted(self.deleted, key=str)}

    def load(self, data: dict[str, Any]) -> None:
        for key, rec in data.get("changed", []):
            self.put(key, rec)
        for key in data.get("deleted", []):
            if self.source.index_of(key) is not None:
                self.changed.pop(key, None)
                self.deleted.add(key)


@dataclass
class Cursor:
    """Server-side state behind one `next` token."""

    table: str
    fields: list[str] | None
    filters: list[Any] | None  # compiled filters, None for a plain list
    raw_filters: Any
    after: Any  # last scanned sort key
    candidates: list[Item] | None = None  # sorted items to consider (overlay, key lists)
    pos: int = 0  # position in candidates
    cand_idx: list[int] | None = None  # sorted base indexes to consider (date index)
    pos_idx: int = 0
    upper: Any = None  # stop once sort keys go past this
    max: int = 100
    start: Any = None  # first sort key to consider (from filters on the key)
    inclusive: bool = False
    rows: list[dict[str, Any]] | None = None  # precomputed results (document rows)


def empty_source() -> EagerSource:
    return EagerSource([], lambda r: r.get("codice"))
