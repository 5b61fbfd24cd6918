"""Claims of scheduled slots: one row per (site, slot), so several `serve` processes
sharing a store run each scheduled sync once. The primary key does the deciding.

The table is made by the store's migrations (revision w003_service_slot_claims)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from passweb_tui.engine.store import Store

_META = sa.MetaData()
claims_t = sa.Table(
    "service_slot_claims",
    _META,
    sa.Column("site", sa.String(64), primary_key=True),
    sa.Column("slot", sa.String(32), primary_key=True),  # naive local wall time, ISO
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.Integer, nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),
)


def holder_name() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


def slot_key(slot: datetime) -> str:
    return slot.replace(tzinfo=None).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Claim:
    site: str
    slot: str
    holder: str
    claimed_at: datetime
    run_id: int | None
    outcome: str | None


def claim(store: Store, site: str, slot: datetime, holder: str) -> bool:
    """True if this process won `slot` for `site`; False if another claimed it first."""
    return claim_key(store, site, slot_key(slot), holder)


def claim_key(store: Store, site: str, key: str, holder: str) -> bool:
    """Claim any one-off piece of service work by a key of its own (e.g. "mail:12")."""
    try:
        with store.write() as conn:
            conn.execute(
                claims_t.insert().values(
                    site=site,
                    slot=key,
                    holder=holder,
                    claimed_at=datetime.now(UTC),
                )
            )
    except IntegrityError:
        return False
    return True


def record(store: Store, site: str, slot: datetime, *, run_id: int | None, outcome: str) -> None:
    with store.write() as conn:
        conn.execute(
            claims_t.update()
            .where(claims_t.c.site == site, claims_t.c.slot == slot_key(slot))
            .values(run_id=run_id, outcome=outcome)
        )


def release(store: Store, site: str, slot: datetime, holder: str) -> None:
    """Give a slot back (the run could not start yet) so that a later tick may retry it."""
    with store.write() as conn:
        conn.execute(
            claims_t.delete().where(
                claims_t.c.site == site,
                claims_t.c.slot == slot_key(slot),
                claims_t.c.holder == holder,
            )
        )


def claims(store: Store, site: str | None = None, *, prefix: str | None = None) -> list[Claim]:
    """Claims of scheduled slots (or, with `prefix`, of other work such as "mail:")."""
    q = sa.select(claims_t).order_by(claims_t.c.slot)
    if prefix is None:
        q = q.where(~claims_t.c.slot.startswith("mail:"))
    else:
        q = q.where(claims_t.c.slot.startswith(prefix))
    if site is not None:
        q = q.where(claims_t.c.site == site)
    with store.read() as conn:
        return [
            Claim(r.site, r.slot, r.holder, r.claimed_at, r.run_id, r.outcome)
            for r in conn.execute(q)
        ]


def prune(store: Store, site: str, *, keep: timedelta = timedelta(days=90)) -> int:
    """Forget claims older than `keep` (they only serve to deduplicate recent slots)."""
    with store.write() as conn:
        result = conn.execute(
            claims_t.delete().where(
                claims_t.c.site == site, claims_t.c.claimed_at < datetime.now(UTC) - keep
            )
        )
    return int(result.rowcount or 0)
