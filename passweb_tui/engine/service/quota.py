"""The monthly quota of TOTAL and CHANGED runs, counted from the store's run history.

Dry runs and PARTIAL syncs do not count; a run counts in the month it started, in the
site's time zone (the service's `timezone` setting, else this machine's local time): a
run at 00:30 on the 1st, Italian time, is the new month's, though still the old one's
in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

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


def site_zone(name: str | None) -> tzinfo | None:
    """The zone a site's months are counted in: the service's `timezone` setting (checked
    when the settings load), else None for this machine's local time."""
    from zoneinfo import ZoneInfo

    return ZoneInfo(name) if name else None


def month_bounds(now: datetime, tz: tzinfo | None = None) -> tuple[datetime, datetime, str]:
    """The month of `now` in `tz` (None: this machine's local time): its start and end
    as aware UTC moments, and its "YYYY-MM"."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    local = now.astimezone(tz) if tz is not None else now.astimezone()
    start = local.replace(tzinfo=None, day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        end = start.replace(year=start.year + 1, month=1)
    else:
        end = start.replace(month=start.month + 1)

    def moment(wall: datetime) -> datetime:
        # a naive wall time's astimezone() reads it by this machine's own zone rules
        return (wall.replace(tzinfo=tz) if tz is not None else wall).astimezone(UTC)

    return moment(start), moment(end), f"{start:%Y-%m}"


def runs_this_month(store: Store, now: datetime | None = None, tz: tzinfo | None = None) -> int:
    """TOTAL and CHANGED runs (not dry runs) started in the month of `now` (see
    month_bounds)."""
    # the column's own type converts aware UTC for each database
    lo, hi, _ = month_bounds(now or datetime.now(UTC), tz)
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


def quota_status(
    store: Store, quota: int, now: datetime | None = None, tz: tzinfo | None = None
) -> QuotaStatus:
    """ "used / quota this month", for the UI and for `serve`."""
    now = now or datetime.now(UTC)
    return QuotaStatus(runs_this_month(store, now, tz), quota, month_bounds(now, tz)[2])


def check_quota(
    store: Store, quota: int, kind: str, now: datetime | None = None, tz: tzinfo | None = None
) -> None:
    """Raise QuotaExhausted when a TOTAL/CHANGED would go beyond the monthly quota."""
    if kind not in COUNTED_KINDS or quota <= 0:
        return
    status = quota_status(store, quota, now, tz)
    if status.exhausted:
        raise QuotaExhausted(
            f"monthly sync quota used up: {status.used} of {status.quota} TOTAL/CHANGED "
            f"syncs in {status.month}"
        )
