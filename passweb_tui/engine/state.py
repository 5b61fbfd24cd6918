"""Named sync state in the store: the CHANGED watermark, entities waiting for a refill."""

from __future__ import annotations

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


def clear_state(conn: Connection, name: str) -> None:
    conn.execute(delete(_T).where(_T.c.name == name))
