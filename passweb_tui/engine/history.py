"""Pruning the sync history: runs that finished long ago go, with their rejects and
change-log entries, so that a store synced every few minutes for years stays the size
of its recent past. It deletes only old rows and takes no lease: a sync may run meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, exists, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from passweb_tui.engine.keep import keep_days_problem
from passweb_tui.engine.models import ChangeEntry, RetryKey, SyncReject, SyncRun
from passweb_tui.engine.orders.models import WebOrderUpdate
from passweb_tui.engine.state import LAST_OK_RUN, get_state
from passweb_tui.engine.store import Store

log = logging.getLogger(__name__)

_RUNS: Table = SyncRun.__table__  # type: ignore[attr-defined]
_REJECTS: Table = SyncReject.__table__  # type: ignore[attr-defined]
_CHANGES: Table = ChangeEntry.__table__  # type: ignore[attr-defined]
_RETRY: Table = RetryKey.__table__  # type: ignore[attr-defined]
_UPDATES: Table = WebOrderUpdate.__table__  # type: ignore[attr-defined]

#: rows deleted in one transaction: a SQLite store is never write-locked for long, and
#: a kill loses no more than this batch's work (what it deleted stays deleted)
BATCH_ROWS = 2000
#: runs taken per transaction (their ids are bound parameters of its statements)
BATCH_RUNS = 500
#: the tables pruned, in the order `deleted` lists them
TABLES = ("sync_runs", "sync_rejects", "change_log")
_GOOD = ("ok", "ok_with_rejects")


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed (a dry run: would remove), per table."""

    keep_days: int
    cut: datetime | None  # runs that finished before this went; None: everything is kept
    dry_run: bool
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    #: stopped before the end (`stop` said so): `deleted` is what went before it, and
    #: stays deleted; the rest goes at the next prune
    stopped: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "keep_days": self.keep_days,
            "cut": self.cut.isoformat() if self.cut is not None else None,
            "dry_run": self.dry_run,
            "deleted": {name: self.deleted.get(name, 0) for name in TABLES},
            "stopped": self.stopped,
        }


def prune_history(
    store: Store,
    keep_days: int,
    now: datetime | None = None,
    dry_run: bool = False,
    stop: Callable[[], bool] | None = None,
) -> PruneResult:
    """Delete the runs that finished before `now` - `keep_days` with their rejects and
    change-log entries, and change-log entries older than that whose run is gone; a
    dry run only counts them. `keep_days` 0 keeps everything. Never deleted (see
    _kept_runs): a run not finished, the runs the next sync and `status` read, and the
    runs a record waiting for a retry names. Web orders are not history: left alone.
    `stop`, asked between the transactions, ends the deleting early (a signal)."""
    problem = keep_days_problem(keep_days)
    if problem is not None:
        raise ValueError(f"days to keep the sync history: {problem}")
    if keep_days == 0:
        return PruneResult(keep_days, None, dry_run)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    # aware UTC: the columns' own types store and compare it alike on each database
    cut = now.astimezone(UTC) - timedelta(days=keep_days)
    if dry_run:
        with store.read() as conn:
            counts = _count(conn, cut)
        stopped = False
    else:
        counts, stopped = _delete(store, cut, stop or (lambda: False))
    result = PruneResult(keep_days, cut, dry_run, counts, stopped)
    if not dry_run and any(counts.values()):
        log.info(
            "sync history before %s pruned%s: %d runs, %d rejects, %d change-log entries",
            cut.isoformat(timespec="seconds"),
            " (stopped before the end)" if stopped else "",
            counts["sync_runs"],
            counts["sync_rejects"],
            counts["change_log"],
        )
    return result


def _kept_runs(conn: Connection) -> set[int]:
    """The finished runs that stay however old they are: the last TOTAL that ended well
    (the next TOTAL's progress expects as many records as it read), the last TOTAL or
    CHANGED (`status` tells its failure), the last correctly completed sync (`status`
    and the dashboard tell its age), the newest run of each status (the history keeps
    its newest run, so a run id is never given again), every run a record waiting to be
    fetched again names, and every run that found an ERP-side update to a web order
    still waiting for the operator's review (the review shows the run)."""
    r = _RUNS.c
    real = r.dry_run.is_(False)
    kept: set[int | None] = {
        conn.execute(
            select(func.max(r.id)).where(r.kind == "total", r.status.in_(_GOOD), real)
        ).scalar(),
        conn.execute(
            select(func.max(r.id)).where(
                r.kind.in_(("total", "changed")), real, r.status != "running"
            )
        ).scalar(),
    }
    kept.update(conn.execute(select(func.max(r.id)).group_by(r.status)).scalars())
    kept.update(conn.execute(select(_RETRY.c.run_id).distinct()).scalars())
    kept.update(
        conn.execute(
            select(_UPDATES.c.run_id).where(_UPDATES.c.reviewed.is_(False)).distinct()
        ).scalars()
    )
    last_ok = get_state(conn, LAST_OK_RUN)
    if last_ok and last_ok.strip().isdigit():
        kept.add(int(last_ok))
    return {run_id for run_id in kept if run_id is not None}


def _old_runs(cut: datetime, kept: set[int]) -> ColumnElement[bool]:
    """The runs to prune: finished (with an end, no longer running) before the cut."""
    r = _RUNS.c
    return and_(
        r.finished.is_not(None),
        r.finished < cut,
        r.status != "running",
        r.id.not_in(sorted(kept)),
    )


def _orphan_changes(cut: datetime) -> ColumnElement[bool]:
    """Change-log entries older than the cut whose run is no longer in the history."""
    c = _CHANGES.c
    return and_(c.at < cut, ~exists().where(_RUNS.c.id == c.run_id))


def _count(conn: Connection, cut: datetime) -> dict[str, int]:
    old = select(_RUNS.c.id).where(_old_runs(cut, _kept_runs(conn))).scalar_subquery()

    def count(table: Table, where: ColumnElement[bool]) -> int:
        return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())

    return {
        "sync_runs": count(_RUNS, _RUNS.c.id.in_(old)),
        "sync_rejects": count(_REJECTS, _REJECTS.c.run_id.in_(old)),
        "change_log": count(_CHANGES, or_(_CHANGES.c.run_id.in_(old), _orphan_changes(cut))),
    }


def _delete_some(conn: Connection, table: Table, where: ColumnElement[bool], most: int) -> int:
    """Delete at most `most` rows of `table` that match `where`; how many went."""
    ids = select(table.c.id).where(where).order_by(table.c.id).limit(most).scalar_subquery()
    return int(conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount or 0)


def _delete(store: Store, cut: datetime, stop: Callable[[], bool]) -> tuple[dict[str, int], bool]:
    """What went, and whether `stop` ended it early."""
    counts = dict.fromkeys(TABLES, 0)
    while True:
        if stop():
            return counts, True
        # one short transaction each: a few runs' entries, then those runs once their
        # entries are all gone (a run never outlives a part of its entries for long, and
        # never loses its row while it still has some)
        with store.write() as conn:
            ids = list(
                conn.execute(
                    select(_RUNS.c.id)
                    .where(_old_runs(cut, _kept_runs(conn)))
                    .order_by(_RUNS.c.id)
                    .limit(BATCH_RUNS)
                ).scalars()
            )
            if not ids:
                break
            room = BATCH_ROWS
            for name, table in (("change_log", _CHANGES), ("sync_rejects", _REJECTS)):
                if room > 0:
                    n = _delete_some(conn, table, table.c.run_id.in_(ids), room)
                    counts[name] += n
                    room -= n
            if room > 0:
                # fewer entries than the room: none of these runs has any left
                n = conn.execute(delete(_RUNS).where(_RUNS.c.id.in_(ids))).rowcount or 0
                counts["sync_runs"] += int(n)
    while True:
        if stop():
            return counts, True
        with store.write() as conn:
            n = _delete_some(conn, _CHANGES, _orphan_changes(cut), BATCH_ROWS)
        counts["change_log"] += n
        if n < BATCH_ROWS:
            break
    return counts, False
