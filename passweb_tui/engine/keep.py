"""How long the sync history is kept ([store] keep_history_days): the rule alone, which
the settings check without loading the store's tables (see history.py for the pruning)."""

from __future__ import annotations

#: 0 keeps the whole history; otherwise at least this many days, so that the runs of a
#: month (what its quota counts, in any time zone) are never cut
MIN_KEEP_DAYS = 35
#: at most a century: beyond it the cut is no date at all
MAX_KEEP_DAYS = 100 * 366


def keep_days_problem(days: int) -> str | None:
    """What is wrong with a number of days to keep the history for; None if nothing."""
    if days == 0 or MIN_KEEP_DAYS <= days <= MAX_KEEP_DAYS:
        return None
    return (
        f"must be 0 (keep everything) or {MIN_KEEP_DAYS}-{MAX_KEEP_DAYS} days"
        f" (at least {MIN_KEEP_DAYS}, so that a month's runs are never cut), got {days}"
    )
