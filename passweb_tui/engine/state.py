"""Named sync state in the store: the CHANGED watermark, entities waiting for a refill."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from passweb_tui.engine.models import SyncState

WATERMARK = "watermark"  # ERP local time "AAAA-MM-GGTHH:MM:SS", already minus the overlap
LAST_OK_RUN = "last_ok_run"
ATTRIBUTES_DONE = "attributes_updated"
REFILL_PREFIX = "refill:"  # refill:<entity> = a used field was added or removed

_T = SyncState.__table__  # type: ignore[attr-defined]


def get_state(conn: Connection, name: str) -> str | None:
    return conn.execute(select(_T.c.value).where(_T.c.name == name)).scalar_one_or_none()


def get_prefixed(conn: Connection, prefix: str) -> dict[str, str | None]:
    rows = conn.execute(select(_T.c.name, _T.c.value).where(_T.c.name.startswith(prefix)))
    return {name[len(prefix) :]: value for name, value in rows}


def set_state(conn: Connection, name: str, value: str | None) -> None:
    now = datetime.now(UTC)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(_T).values(name=name, value=value, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_T.c.name], set_={"value": value, "updated_at": now}
    )
    conn.execute(stmt)


def refill_token() -> str:
    """A new value for a refill request: a run clears only the request it read, so one
    made while it runs (a field used meanwhile) waits for the next run."""
    return uuid.uuid4().hex


def clear_state_if(conn: Connection, name: str, value: str | None) -> None:
    """Clear a state only while it still holds the value read earlier."""
    same = _T.c.value.is_(None) if value is None else _T.c.value == value
    conn.execute(delete(_T).where(_T.c.name == name, same))
