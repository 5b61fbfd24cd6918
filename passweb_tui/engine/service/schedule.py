"""When the sync service runs its scheduled sync: pure rules on naive local wall-clock times.

A schedule produces *slots*: the wall-clock moments a scheduled run is due. Every
process computes the same slots, so a slot is also the identity several `serve`
processes agree on when they claim a run (see slots.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

DAY = timedelta(days=1)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_WEEKDAYS = frozenset(range(7))
SCHEDULABLE_KINDS = ("changed", "total")


class ScheduleError(ValueError):
    """A schedule setting is malformed or can never fire; the message says which and why."""


@dataclass(frozen=True)
class Window:
    """A daily time window [start, end); end <= start means it crosses midnight."""

    start: time
    end: time

    @property
    def length(self) -> timedelta:
        span = datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)
        return span if span > timedelta(0) else span + DAY

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class Schedule:
    """Run `kind` every `every` (minutes-based) or every `every_days` days.

    Minutes-based: slots start each allowed day at the window's start (midnight when
    there is no window) and repeat every `every` while inside the window. Days-based:
    one slot at the window's start (or midnight) on days whose ordinal is a multiple of
    `every_days`, so that all processes agree on the days. The weekday rule looks at the
    day the window *opens*: a Friday 22:00-06:00 window still runs on Saturday morning.
    """

    every: timedelta | None = None
    every_days: int = 0
    weekdays: frozenset[int] = ALL_WEEKDAYS
    window: Window | None = None
    kind: str = "changed"

    @property
    def enabled(self) -> bool:
        return self.every is not None or self.every_days > 0

    @property
    def period(self) -> timedelta:
        """The nominal distance between two slots."""
        if self.every is not None:
            return self.every
        return DAY * self.every_days

    def _day_start(self, day: date) -> datetime:
        return datetime.combine(day, self.window.start if self.window else time(0))

    def _day_span(self) -> timedelta:
        return self.window.length if self.window else DAY

    def day_slots(self, day: date) -> Iterator[datetime]:
        """The slots that belong to `day` (those of a window opening that day), in order."""
        if day.weekday() not in self.weekdays or not self.enabled:
            return
        start = self._day_start(day)
        if self.every is None:
            if day.toordinal() % self.every_days == 0:
                yield start
            return
        end = start + self._day_span()
        t = start
        while t < end:
            yield t
            t += self.every

    def _slot_end(self, slot: datetime) -> datetime:
        """Until when `slot` may still start: the next period or the window's end, if sooner."""
        if self.every is None:
            return slot + self._day_span()
        window_end = self._day_start(slot.date()) + self._day_span()
        if (
            self.window is not None
            and self.window.crosses_midnight
            and slot.time() < (self.window.start)
        ):
            # the slot belongs to the window that opened the day before
            window_end = self._day_start(slot.date() - DAY) + self._day_span()
        return min(slot + self.every, window_end)

    def _search_days(self) -> int:
        # days-based schedules may need up to 7 * N days to meet an allowed weekday
        return 7 * max(self.every_days, 1) + 2

    def next_slot(self, after: datetime) -> datetime | None:
        """The first slot strictly after `after`, or None if the schedule never fires."""
        first = after.date() - DAY  # a window opened yesterday may still have slots today
        for offset in range(self._search_days() + 1):
            for slot in self.day_slots(first + timedelta(days=offset)):
                if slot > after:
                    return slot
        return None

    def last_slot(self, at: datetime) -> datetime | None:
        """The latest slot at or before `at` (looking back as far as a schedule cycle)."""
        # the slots of a day's window all come before those of the next day's window,
        # so the newest day with a slot at or before `at` holds the answer
        for offset in range(-1, self._search_days() + 1):
            best: datetime | None = None
            for slot in self.day_slots(at.date() - timedelta(days=offset)):
                if slot > at:
                    break
                best = slot
            if best is not None:
                return best
        return None

    def due(self, at: datetime) -> datetime | None:
        """The slot to run at `at`: the latest one not yet superseded nor past its window."""
        slot = self.last_slot(at)
        if slot is None or at >= self._slot_end(slot):
            return None
        return slot

    def describe(self) -> str:
        if not self.enabled:
            return "no scheduled sync"
        if self.every is not None:
            minutes = int(self.every.total_seconds() // 60)
            seconds = int(self.every.total_seconds())
            what = f"every {minutes} min" if seconds % 60 == 0 else f"every {seconds} s"
        else:
            what = f"every {self.every_days} day(s)"
        days = (
            "every day"
            if self.weekdays == ALL_WEEKDAYS
            else ",".join(WEEKDAYS[d] for d in sorted(self.weekdays))
        )
        window = f" within {self.window}" if self.window else ""
        return f"{self.kind.upper()} {what}, {days}{window}"


_EVERY = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_every(text: str) -> tuple[timedelta | None, int]:
    """ "15m", "2h", "1d" (or "30s", for demos) -> (period, days); ("", 0) when empty."""
    if not text.strip():
        return None, 0
    m = _EVERY.match(text.lower())
    if not m:
        raise ScheduleError(
            f"every: expected a number and a unit (m minutes, h hours, d days), got {text!r}"
        )
    n, unit = int(m.group(1)), m.group(2)
    if n <= 0:
        raise ScheduleError(f"every: must be more than zero, got {text!r}")
    if unit == "d":
        if n > 366:
            raise ScheduleError(f"every: at most a year (366d), got {text!r}")
        return None, n
    period = timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600}[unit])
    if period > DAY:
        raise ScheduleError(f"every: more than a day, write it in days (e.g. '2d'), got {text!r}")
    return period, 0


_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _day_index(name: str) -> int | None:
    if name in WEEKDAYS:
        return WEEKDAYS.index(name)
    if name in _FULL_NAMES:
        return _FULL_NAMES.index(name)
    return None


def parse_weekdays(text: str) -> frozenset[int]:
    """ "mon,wed,fri", "mon-fri", "sat-sun" or "" (every day) -> weekday numbers (Monday 0)."""
    if not text.strip():
        return ALL_WEEKDAYS
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        a, b = _day_index(first), _day_index(last or first)
        if a is None or b is None:
            raise ScheduleError(
                f"weekdays: unknown day {part!r} in {text!r}; use mon,tue,wed,thu,fri,sat,sun "
                "or ranges like mon-fri"
            )
        d = a
        while True:  # a range may wrap past Sunday: fri-mon
            days.add(d)
            if d == b:
                break
            d = (d + 1) % 7
    if not days:
        raise ScheduleError(f"weekdays: no day given in {text!r}")
    return frozenset(days)


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


def _parse_clock(text: str, where: str) -> time:
    m = _CLOCK.match(text.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ScheduleError(f"window: {where} time must be HH:MM (00:00-23:59), got {text!r}")
    return time(int(m.group(1)), int(m.group(2)))


def parse_window(text: str) -> Window | None:
    """ "08:00-20:00" or "22:00-06:00" (crossing midnight) -> Window; "" -> None."""
    if not text.strip():
        return None
    start, sep, end = text.partition("-")
    if not sep:
        raise ScheduleError(f"window: expected HH:MM-HH:MM, got {text!r}")
    window = Window(_parse_clock(start, "start"), _parse_clock(end, "end"))
    if window.start == window.end:
        raise ScheduleError(
            f"window: start and end are the same ({text!r}); leave it empty for all day"
        )
    return window


def schedule_from_text(
    every: str, weekdays: str = "", window: str = "", *, kind: str = "changed", horeca: bool = False
) -> Schedule:
    """A Schedule from the [service] settings; ScheduleError names what is wrong."""
    if kind not in SCHEDULABLE_KINDS:
        raise ScheduleError(
            f"scheduled_kind: {kind!r} cannot be scheduled; only changed (or total on "
            "Ho.Re.Ca. sites) can"
        )
    if kind == "total" and not horeca:
        raise ScheduleError(
            "scheduled_kind: only Ho.Re.Ca. sites (horeca = true) may schedule a TOTAL"
        )
    period, days = parse_every(every)
    schedule = Schedule(period, days, parse_weekdays(weekdays), parse_window(window), kind)
    if schedule.enabled and schedule.next_slot(datetime(2000, 1, 1)) is None:
        raise ScheduleError(
            f"every {every!r} on weekdays {weekdays!r} never falls on an allowed day"
        )
    return schedule
