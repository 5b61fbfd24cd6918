"""The monthly quota of TOTAL and CHANGED runs, counted from the store's run history.

Dry runs and PARTIAL syncs do not count; a run counts in the UTC month it started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from passweb_tui.engine.models import SyncRun
from passweb_tui.engine.store import Store

_RUNS = SyncRun.__table__  # type: ignore[attr-defined]
COUNTED_KINDS = ("total", "changed")


class QuotaExhausted(Exception):
    """No TOTAL/CHANGED left this month; the message says how many were used."""


@dataclass(frozen=True)
class QuotaStatus:
    used: int
    quota: int  # 0 = no limit
    month: str  # "YYYY-MM"

    @property
    def limited(self) -> bool:
        return self.quota > 0

    @property
    def remaining(self) -> int | None:
        return max(self.quota - self.used, 0) if self.limited else None

    @property
    def exhausted(self) -> bool:
        return self.limited and self.used >= self.quota

    def describe(self) -> str:
        if not self.limited:
            return f"{self.used} TOTAL/CHANGED syncs in {self.month} (no quota)"
        return f"{self.used} / {self.quota} TOTAL/CHANGED syncs used in {self.month}"


def month_start(now: datetime) -> datetime:
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def runs_this_month(store: Store, now: datetime | None = None) -> int:
    """TOTAL and CHANGED runs (not dry runs) started in the UTC month of `now`."""
    start = month_start(now or datetime.now(UTC))
    end = _next_month(start)
    # the column's own type converts aware UTC for each database
    lo, hi = start, end
    q = (
        select(func.count())
        .select_from(_RUNS)
        .where(
            _RUNS.c.kind.in_(COUNTED_KINDS),
            _RUNS.c.dry_run.is_(False),
            _RUNS.c.started >= lo,
            _RUNS.c.started < hi,
        )
    )
    with store.read() as conn:
        return int(conn.execute(q).scalar_one())


def quota_status(store: Store, quota: int, now: datetime | None = None) -> QuotaStatus:
    """ "used / quota this month", for the UI and for `serve`."""
    now = now or datetime.now(UTC)
    return QuotaStatus(runs_this_month(store, now), quota, f"{month_start(now):%Y-%m}")


def check_quota(store: Store, quota: int, kind: str, now: datetime | None = None) -> None:
    """Raise QuotaExhausted when a TOTAL/CHANGED would go beyond the monthly quota."""
    if kind not in COUNTED_KINDS or quota <= 0:
        return
    status = quota_status(store, quota, now)
    if status.exhausted:
        raise QuotaExhausted(
            f"monthly sync quota used up: {status.used} of {status.quota} TOTAL/CHANGED "
            f"syncs in {status.month}"
        )
