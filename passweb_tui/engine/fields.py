"""Attribute update (the ERP's field catalogue via `?info=true`) and the site's used fields."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, delete, select, update

from passweb_tui.engine.models import ErpField
from passweb_tui.engine.records import ENTITIES, KEY_FIELD, MAIN_ENTITIES, FieldSpec
from passweb_tui.engine.state import (
    ATTRIBUTES_DONE,
    REFILL_PREFIX,
    get_state,
    refill_token,
    set_state,
)
from passweb_tui.engine.store import Store

_T = ErpField.__table__  # type: ignore[attr-defined]


class FieldsError(Exception):
    """A field operation named an unknown entity or field; the message says which."""


class _InfoSource(Protocol):
    def info(self, resource: str) -> Sequence[Any]: ...


@dataclass(frozen=True)
class FieldRow:
    entity: str
    name: str
    type: str | None
    length: int | None
    key: bool
    array_size: int
    used: bool
    description: str | None


def check_entity(entity: str) -> None:
    if entity not in MAIN_ENTITIES:
        raise FieldsError(
            f"unknown entity {entity!r} for fields; choose one of: {', '.join(MAIN_ENTITIES)}"
        )


def attribute_update(store: Store, client: _InfoSource) -> dict[str, int]:
    """Copy the ERP's field catalogue into the store; returns the field count per entity.

    The first time an entity is seen, its default fields become the used ones; later
    updates keep the operator's choice and drop fields the ERP no longer has.
    """
    now = datetime.now(UTC)
    counts: dict[str, int] = {}
    catalogues = {e: list(client.info(ENTITIES[e].resource)) for e in MAIN_ENTITIES}
    with store.write() as conn:
        for entity, infos in catalogues.items():
            existing = {
                r.name: r.used for r in conn.execute(select(_T).where(_T.c.entity == entity))
            }
            first_time = not existing
            defaults = set(ENTITIES[entity].default_fields)
            names = set()
            rows = []
            for fi in infos:
                names.add(fi.name)
                used = (fi.name in defaults) if first_time else existing.get(fi.name, False)
                rows.append(
                    {
                        "entity": entity,
                        "name": fi.name,
                        "type": fi.type,
                        "length": fi.length,
                        "is_key": bool(fi.key),
                        "array_size": int(fi.array_size or 0),
                        "description": fi.description,
                        "used": bool(used) and not fi.key,
                        "seen_at": now,
                    }
                )
            conn.execute(delete(_T).where(_T.c.entity == entity))
            if rows:
                conn.execute(_T.insert(), rows)
            gone_used = [n for n, u in existing.items() if u and n not in names]
            if gone_used:
                set_state(conn, REFILL_PREFIX + entity, refill_token())
            counts[entity] = len(rows)
        set_state(conn, ATTRIBUTES_DONE, now.isoformat())
    return counts


def attributes_done(store: Store) -> bool:
    with store.read() as conn:
        return get_state(conn, ATTRIBUTES_DONE) is not None


def list_fields(store: Store, entity: str) -> list[FieldRow]:
    check_entity(entity)
    with store.read() as conn:
        rows = conn.execute(select(_T).where(_T.c.entity == entity).order_by(_T.c.name)).all()
    return [
        FieldRow(r.entity, r.name, r.type, r.length, r.is_key, r.array_size, r.used, r.description)
        for r in rows
    ]


def set_used(store: Store, entity: str, names: Iterable[str], used: bool) -> list[str]:
    """Mark fields used or not; returns the names whose state changed.

    A change makes the next sync refill the whole entity, so every record gets (or
    loses) the field, not only the records that happen to change.
    """
    check_entity(entity)
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise FieldsError("name at least one field")
    with store.write() as conn:
        known = {r.name: r for r in conn.execute(select(_T).where(_T.c.entity == entity))}
        if not known:
            raise FieldsError(
                f"no field catalogue for {entity} yet: run a sync or the attribute update first"
            )
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise FieldsError(f"{entity} has no field {', '.join(map(repr, unknown))} in the ERP")
        keys = [n for n in wanted if known[n].is_key or n == KEY_FIELD]
        if keys:
            raise FieldsError(f"{', '.join(keys)} is the key of {entity}; it is always synced")
        changed = [n for n in wanted if bool(known[n].used) != used]
        left = {n for n, r in known.items() if r.used} - set(changed)
        if not used and changed and not left:
            # (a sync asks the ERP for the used fields: none is no request it can make)
            raise FieldsError(
                f"{entity} would have no used field left: the site keeps at least one"
                " besides the key; use another one first"
            )
        if changed:
            conn.execute(
                update(_T).where(_T.c.entity == entity, _T.c.name.in_(changed)).values(used=used)
            )
            set_state(conn, REFILL_PREFIX + entity, refill_token())
    return changed


def load_catalogue(conn: Connection, entity: str) -> tuple[tuple[str, ...] | None, dict]:
    """(used field names, or None when no catalogue is stored; name -> FieldSpec)."""
    rows = conn.execute(select(_T).where(_T.c.entity == entity)).all()
    if not rows:
        return None, {}
    used = tuple(sorted(r.name for r in rows if r.used))
    specs = {r.name: FieldSpec(r.type, r.length, r.array_size or 0) for r in rows}
    return used, specs
