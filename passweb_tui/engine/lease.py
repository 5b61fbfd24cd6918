"""The lease that lets only one TOTAL or CHANGED run at a time, across processes and machines.

A row in the store names the holder and expires unless its heartbeat renews it, so a
killed run blocks the next one for at most the lease time; not even that long where the
holder was a process of this machine, which is seen gone at once (see owners). Runs
that take no lease (a PARTIAL, a dry run) keep a row of their own in the same table the
same way (RunMark), which blocks nobody and only tells readers that they are alive.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update

from passweb_tui.engine.models import SyncLease
from passweb_tui.engine.owners import LiveHere, holder_seen, new_token, token_label
from passweb_tui.engine.store import Store

PULL_LEASE = "pull"
#: the name of a run mark is this and the run's id (see RunMark)
RUN_MARK = "run:"
_T = SyncLease.__table__  # type: ignore[attr-defined]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LeaseInfo:
    holder: str
    run_id: int | None
    started_at: datetime
    heartbeat_at: datetime
    expires_at: datetime

    @property
    def who(self) -> str:
        """The holder as an operator reads it ("shop, pid 4242")."""
        return token_label(self.holder)

    def describe(self) -> str:
        run = f"run {self.run_id}" if self.run_id is not None else "a run being set up"
        return (
            f"{run} (held by {self.who}) since {self.started_at.isoformat(timespec='seconds')}, "
            f"last heartbeat {self.heartbeat_at.isoformat(timespec='seconds')}, "
            f"lease expires {self.expires_at.isoformat(timespec='seconds')}"
        )

    def brief(self) -> str:
        """One short line for a screen: the run, its holder, and since and until when,
        in local wall time (the date only when it is not today's)."""
        run = f"run {self.run_id}" if self.run_id is not None else "a run being set up"
        return (
            f"{run} ({self.who}) since {_local(self.started_at)},"
            f" lease until {_local(self.expires_at)}"
        )


def _local(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone()
    if local.date() == datetime.now(local.tzinfo).date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


class LeaseRefused(Exception):
    def __init__(self, info: LeaseInfo | None) -> None:
        self.info = info
        what = info.describe() if info else "another run"
        super().__init__(f"another TOTAL/CHANGED sync is running: {what}")


class LeaseLost(Exception):
    """The lease expired and someone else took it while this run still went on."""


#: the leases and marks this process holds (see owners.LiveHere)
_HELD = LiveHere()


def holder_name() -> str:
    return new_token()


def holder_alive(holder: str) -> bool | None:
    """Whether the process that holds a lease or a mark still holds it; None when this
    machine cannot tell (the holder runs elsewhere, or its name carries no start time,
    so a later process given the same id would pass for it): then its expiry decides."""
    return holder_seen(holder, _HELD)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def read_lease(store: Store, name: str = PULL_LEASE) -> LeaseInfo | None:
    """The live lease, or None when nobody holds it: it expired, or its holder is a
    process of this machine that is gone."""
    info = last_lease(store, name)
    if info is None or info.expires_at <= utcnow() or holder_alive(info.holder) is False:
        return None
    return info


def last_lease(store: Store, name: str = PULL_LEASE) -> LeaseInfo | None:
    """The lease as its row has it, expired or not; None when it was given back."""
    with store.read() as conn:
        row = conn.execute(select(_T).where(_T.c.name == name)).mappings().first()
    return _info(row)


def _info(row: Any) -> LeaseInfo | None:
    expires = _aware(row["expires_at"]) if row is not None else None
    if row is None or row["holder"] is None or expires is None:
        return None
    return LeaseInfo(
        row["holder"],
        row["run_id"],
        _aware(row["started_at"]) or expires,
        _aware(row["heartbeat_at"]) or expires,
        expires,
    )


class Lease:
    """A held lease; renew it with `heartbeat()` or let `start_heartbeat()` do so."""

    def __init__(self, store: Store, seconds: float, name: str = PULL_LEASE) -> None:
        self.store = store
        self.seconds = seconds
        self.name = name
        self.holder = holder_name()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: the run of the holder this lease was taken from (expired, or its process seen
        #: gone) and its last heartbeat: about when that run stopped
        self.taken_from: tuple[int, datetime] | None = None

    def acquire(self, run_id: int | None = None) -> None:
        now = utcnow()
        fresh = {
            "holder": self.holder,
            "run_id": run_id,
            "started_at": now,
            "heartbeat_at": now,
            "expires_at": now + timedelta(seconds=self.seconds),
        }
        # known here as alive before the row names it: another thread of this process
        # reading the row at once must not take its holder for a dead one
        _HELD.add(self.holder)
        try:
            got, holder_row = self._take(fresh, now)
        except BaseException:
            _HELD.discard(self.holder)
            raise
        if not got:
            _HELD.discard(self.holder)
            raise LeaseRefused(_info(holder_row))

    def _take(self, fresh: dict[str, Any], now: datetime) -> tuple[bool, Any]:
        """Take the lease if it is free, expired, or held by a process seen gone; whether
        it was taken, and the row of its holder when it was not."""
        holder_row = None
        with self.store.write() as conn:
            prior = conn.execute(
                select(_T.c.holder, _T.c.run_id, _T.c.heartbeat_at).where(_T.c.name == self.name)
            ).first()
            # one conditional UPDATE: only one of two racing processes can match it
            result = conn.execute(
                update(_T)
                .where(_T.c.name == self.name)
                .where(or_(_T.c.holder.is_(None), _T.c.expires_at <= now))
                .values(**fresh)
            )
            got = result.rowcount == 1
            if not got:
                # read the holder in the same transaction as the refusal: read later, the
                # lease might have expired meanwhile and the refusal could not say who
                holder_row = (
                    conn.execute(select(_T).where(_T.c.name == self.name)).mappings().first()
                )
                gone = holder_row["holder"] if holder_row is not None else None
                if gone is not None and holder_alive(gone) is False:
                    # its process is gone from this machine: taken over now, not once the
                    # lease runs out (only one of two racing takers still finds that holder)
                    got = (
                        conn.execute(
                            update(_T)
                            .where(_T.c.name == self.name, _T.c.holder == gone)
                            .values(**fresh)
                        ).rowcount
                        == 1
                    )
        beat = _aware(prior.heartbeat_at) if prior is not None else None
        if got and prior is not None and prior.holder and prior.run_id is not None and beat:
            self.taken_from = (int(prior.run_id), beat)
        return got, holder_row

    def set_run(self, run_id: int) -> None:
        with self.store.write() as conn:
            conn.execute(
                update(_T)
                .where(_T.c.name == self.name, _T.c.holder == self.holder)
                .values(run_id=run_id)
            )

    def heartbeat(self) -> None:
        now = utcnow()
        with self.store.write() as conn:
            result = conn.execute(
                update(_T)
                .where(_T.c.name == self.name, _T.c.holder == self.holder)
                .values(heartbeat_at=now, expires_at=now + timedelta(seconds=self.seconds))
            )
            if result.rowcount != 1:
                self.lost.set()
                raise LeaseLost(f"the {self.name} lease was taken over by another run")

    def held(self, conn: Connection) -> bool:
        """Whether this lease is still ours, read in the caller's transaction (so what the
        caller writes there is written only by the holder)."""
        found = conn.execute(
            select(_T.c.holder).where(_T.c.name == self.name, _T.c.holder == self.holder)
        ).first()
        return found is not None

    def start_heartbeat(self) -> None:
        def beat() -> None:
            interval = max(self.seconds / 3, 0.05)
            while not self._stop.wait(interval):
                try:
                    self.heartbeat()
                except LeaseLost:
                    return
                except Exception:
                    # a busy store is retried at the next beat; the lease has slack for it
                    continue

        self._thread = threading.Thread(target=beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _HELD.discard(self.holder)
        with self.store.write() as conn:
            conn.execute(
                update(_T)
                .where(_T.c.name == self.name, _T.c.holder == self.holder)
                .values(holder=None, run_id=None, expires_at=None)
            )


class RunMark(Lease):
    """The mark of a run that takes no lease (a PARTIAL, a dry run): a row of its own in
    the lease table, written with the run's record and renewed by the same heartbeat, so
    that a reader tells a run under way from one whose process died (its mark expired or
    gone). Nobody waits on it: it is never refused and never taken over."""

    def __init__(self, store: Store, seconds: float, run_id: int) -> None:
        super().__init__(store, seconds, name=f"{RUN_MARK}{run_id}")
        self.run_id = run_id

    def insert(self, conn: Connection) -> None:
        """Write the mark in the caller's transaction (the one that records the run)."""
        now = utcnow()
        _HELD.add(self.holder)
        conn.execute(
            insert(_T).values(
                name=self.name,
                holder=self.holder,
                run_id=self.run_id,
                started_at=now,
                heartbeat_at=now,
                expires_at=now + timedelta(seconds=self.seconds),
            )
        )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _HELD.discard(self.holder)
        with self.store.write() as conn:
            conn.execute(delete(_T).where(_T.c.name == self.name, _T.c.holder == self.holder))


def live_marks(conn: Connection) -> set[int]:
    """The runs whose mark is live: runs without a lease that are under way (the mark
    not expired and its holder not seen gone, or its holder seen running however late
    its heartbeat)."""
    return {run_id for run_id, _, live in _marks(conn) if live}


def dead_mark_beats(conn: Connection) -> dict[int, datetime]:
    """The last heartbeat of each run whose mark is there but not live: about when its
    process stopped."""
    rows = conn.execute(
        select(_T.c.run_id, _T.c.heartbeat_at).where(_T.c.name.startswith(RUN_MARK))
    ).all()
    beats = {int(r): b for r, b in rows if r is not None and b is not None}
    return {
        run_id: beat
        for run_id, _, live in _marks(conn)
        if not live and (beat := _aware(beats.get(run_id))) is not None
    }


def drop_dead_marks(conn: Connection) -> None:
    """Forget the marks of runs that are not under way (their processes are gone)."""
    dead = [name for _, name, live in _marks(conn) if not live]
    if dead:
        conn.execute(delete(_T).where(_T.c.name.in_(dead)))


def _marks(conn: Connection) -> list[tuple[int, str, bool]]:
    """(run id, name, under way) of each run's mark."""
    now = utcnow()
    found = []
    rows = conn.execute(
        select(_T.c.name, _T.c.holder, _T.c.run_id, _T.c.expires_at).where(
            _T.c.name.startswith(RUN_MARK)
        )
    )
    for name, holder, run_id, expires_at in rows:
        if run_id is None:
            continue
        alive = holder_alive(holder) if holder else False
        expires = _aware(expires_at)
        live = alive is True or (alive is None and expires is not None and expires > now)
        found.append((int(run_id), name, live))
    return found
