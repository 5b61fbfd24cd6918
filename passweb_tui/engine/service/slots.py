"""Claims of scheduled slots: one row per (site, slot), so several `serve` processes
sharing a store run each scheduled sync once. The primary key does the deciding.

The table is made by the store's migrations (revision w003_service_slot_claims)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from passweb_tui.engine.owners import LiveHere, holder_seen, new_token
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


#: the holders of the services running in this process (see owners.LiveHere)
LIVE = LiveHere()


def holder_name() -> str:
    return new_token()


def holder_gone(holder: str) -> bool:
    """Whether a claim's holder is a process of this machine that is seen gone (by its
    id and start time); False when that cannot be told (another machine, a name without
    a start time): then only the claim's age tells."""
    return holder_seen(holder, LIVE) is False


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
    record_key(store, site, slot_key(slot), run_id=run_id, outcome=outcome)


def record_key(store: Store, site: str, key: str, *, run_id: int | None, outcome: str) -> None:
    with store.write() as conn:
        conn.execute(
            claims_t.update()
            .where(claims_t.c.site == site, claims_t.c.slot == key)
            .values(run_id=run_id, outcome=outcome)
        )


def release(store: Store, site: str, slot: datetime, holder: str) -> None:
    """Give a slot back (the run could not start yet) so that a later tick may retry it."""
    release_key(store, site, slot_key(slot), holder)


def release_key(store: Store, site: str, key: str, holder: str) -> None:
    """Give back a claim of `holder`, so that this process or another may claim it again."""
    with store.write() as conn:
        conn.execute(
            claims_t.delete().where(
                claims_t.c.site == site, claims_t.c.slot == key, claims_t.c.holder == holder
            )
        )


def claim_of(store: Store, site: str, key: str) -> Claim | None:
    """The claim held on `key`, if any."""
    with store.read() as conn:
        r = conn.execute(
            sa.select(claims_t).where(claims_t.c.site == site, claims_t.c.slot == key)
        ).first()
    return None if r is None else Claim(r.site, r.slot, r.holder, r.claimed_at, r.run_id, r.outcome)


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
