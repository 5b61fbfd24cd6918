"""Schedule rules, launch policy and the [service] settings: pure code, no clock but ours."""

from __future__ import annotations

import os
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest

from passweb_tui.config import ConfigError, load_settings
from passweb_tui.engine.service import policy
from passweb_tui.engine.service.schedule import (
    ScheduleError,
    parse_every,
    parse_weekdays,
    parse_window,
    schedule_from_text,
)

# 2026-11-23 is a Monday; the week runs to Sunday 2026-11-29
MON, FRI, SAT, SUN = 23, 27, 28, 29


def at(day: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(2026, 11, 1, hh, mm, ss) + timedelta(days=day - 1)


def test_every_minutes_all_day_aligns_on_midnight() -> None:
    s = schedule_from_text("15m")
    assert s.next_slot(at(MON, 10, 7)) == at(MON, 10, 15)
    assert s.next_slot(at(MON, 10, 15)) == at(MON, 10, 30)  # strictly after
    assert s.next_slot(at(MON, 23, 50)) == at(MON + 1, 0, 0)
    assert s.last_slot(at(MON, 10, 14, 59)) == at(MON, 10, 0)
    assert s.due(at(MON, 10, 14, 59)) == at(MON, 10, 0)
    assert s.due(at(MON, 10, 15)) == at(MON, 10, 15)


def test_every_odd_minutes_restarts_each_day() -> None:
    s = schedule_from_text("7m")
    slots = list(s.day_slots(at(MON, 0).date()))
    assert slots[0] == at(MON, 0) and slots[1] == at(MON, 0, 7)
    assert slots[-1] == at(MON, 23, 55)  # 205 * 7 min
    assert len(slots) == 206
    # the last slot of the day gives way to midnight, not to 00:05 of the next day
    assert s.due(at(MON + 1, 0, 0, 1)) == at(MON + 1, 0)


def test_window_inside_a_day_and_its_edges() -> None:
    s = schedule_from_text("30m", window="08:00-12:00")
    assert s.next_slot(at(MON, 7, 59)) == at(MON, 8, 0)
    assert s.due(at(MON, 7, 59, 59)) is None  # before the window opens
    assert s.due(at(MON, 8, 0)) == at(MON, 8, 0)  # the start is inside
    assert s.due(at(MON, 11, 59, 59)) == at(MON, 11, 30)
    assert s.due(at(MON, 12, 0)) is None  # the end is outside
    assert s.next_slot(at(MON, 11, 30)) == at(MON + 1, 8, 0)
    assert [t.time() for t in s.day_slots(at(MON, 0).date())][-1] == time(11, 30)


def test_slot_shorter_than_period_ends_at_window_end() -> None:
    s = schedule_from_text("60m", window="08:00-08:30")
    assert s.due(at(MON, 8, 29)) == at(MON, 8, 0)
    assert s.due(at(MON, 8, 30)) is None
    assert s.next_slot(at(MON, 8, 0)) == at(MON + 1, 8, 0)


def test_window_across_midnight_belongs_to_the_day_it_opens() -> None:
    s = schedule_from_text("60m", weekdays="mon-fri", window="22:00-02:00")
    # Friday's window runs into Saturday; Saturday's own window never opens
    assert s.due(at(FRI, 23, 30)) == at(FRI, 23, 0)
    assert s.due(at(SAT, 1, 59)) == at(SAT, 1, 0)
    assert s.due(at(SAT, 2, 0)) is None
    assert s.next_slot(at(SAT, 1, 0)) == at(MON + 7, 22, 0)
    # Monday morning holds no slot: Sunday's window did not open
    assert s.due(at(MON + 7, 1, 0)) is None
    assert s.last_slot(at(MON + 7, 1, 0)) == at(SAT, 1, 0)
    # a Monday-night window crosses into Tuesday as usual
    assert s.due(at(MON + 1, 0, 15)) == at(MON + 1, 0, 0)


def test_weekday_edges_at_midnight_without_window() -> None:
    s = schedule_from_text("10m", weekdays="sat,sun")
    assert s.due(at(FRI, 23, 59, 59)) is None
    assert s.due(at(SAT, 0, 0)) == at(SAT, 0, 0)
    assert s.due(at(SUN, 23, 59)) == at(SUN, 23, 50)
    assert s.due(at(SUN + 1, 0, 0)) is None  # Monday 00:00 is not allowed
    assert s.next_slot(at(SUN, 23, 55)) == at(SAT + 7, 0, 0)


def test_every_n_days_uses_shared_day_numbers_and_weekdays() -> None:
    s = schedule_from_text("2d", window="03:00-04:00")
    first = s.next_slot(at(MON, 12))
    assert first is not None and first.time() == time(3, 0)
    assert first.toordinal() % 2 == 0
    assert s.next_slot(first) == first + timedelta(days=2)
    assert s.due(first + timedelta(minutes=59)) == first
    assert s.due(first + timedelta(hours=1)) is None  # the window closed
    # without a window a day slot stays due for the whole day
    whole = schedule_from_text("1d")
    assert whole.due(at(MON, 23, 59)) == at(MON, 0, 0)
    weekly = schedule_from_text("1d", weekdays="sun")
    assert weekly.next_slot(at(MON, 0)) == at(SUN, 0)


def test_days_and_weekdays_that_never_meet_are_refused() -> None:
    # day 1 of the calendar is a Monday, so every 7th day is a Sunday
    assert schedule_from_text("7d", weekdays="sun").next_slot(at(MON, 0)) == at(SUN, 0)
    with pytest.raises(ScheduleError, match="never falls on an allowed day"):
        schedule_from_text("7d", weekdays="mon")


def test_parsers_name_what_is_wrong() -> None:
    assert parse_every("") == (None, 0)
    assert parse_every("15m") == (timedelta(minutes=15), 0)
    assert parse_every("2h") == (timedelta(hours=2), 0)
    assert parse_every("3d") == (None, 3)
    for bad, msg in (
        ("15", "number and a unit"),
        ("0m", "more than zero"),
        ("25h", "in days"),
        ("999999d", "at most a year"),
    ):
        with pytest.raises(ScheduleError, match=msg):
            parse_every(bad)
    assert parse_weekdays("fri-mon") == {4, 5, 6, 0}
    assert parse_weekdays("Monday, wed") == {0, 2}
    with pytest.raises(ScheduleError, match="unknown day 'mun'"):
        parse_weekdays("mun")
    assert parse_window("22:00-06:00") is not None
    with pytest.raises(ScheduleError, match="start time must be HH:MM"):
        parse_window("25:00-06:00")
    with pytest.raises(ScheduleError, match="the same"):
        parse_window("08:00-08:00")
    with pytest.raises(ScheduleError, match=r"only Ho\.Re\.Ca\."):
        schedule_from_text("15m", kind="total")
    with pytest.raises(ScheduleError, match="cannot be scheduled"):
        schedule_from_text("15m", kind="partial", horeca=True)
    assert schedule_from_text("1d", kind="total", horeca=True).kind == "total"
    assert not schedule_from_text("").enabled


@pytest.mark.parametrize(
    ("kind", "origin", "horeca", "scheduled", "allowed"),
    [
        ("changed", "scheduler", False, "changed", True),
        ("total", "scheduler", False, "changed", False),
        ("partial", "scheduler", True, "changed", False),
        ("total", "scheduler", True, "total", True),
        ("changed", "scheduler", True, "total", False),  # not the configured kind
        ("total", "erp", False, "changed", True),
        ("changed", "erp", False, "changed", True),
        ("partial", "erp", False, "changed", False),
        ("total", "erp", True, "changed", False),  # Ho.Re.Ca.: the site back end only
        ("changed", "erp", True, "changed", False),
        ("total", "site", True, "changed", True),
        ("partial", "site", True, "changed", True),
        ("changed", "shop", False, "changed", False),
    ],
)
def test_launch_policy(kind: str, origin: str, horeca: bool, scheduled: str, allowed: bool) -> None:
    reason = policy.refusal(kind, origin, horeca=horeca, scheduled_kind=scheduled)
    assert (reason is None) == allowed, reason
    if not allowed:
        with pytest.raises(policy.PolicyRefused):
            policy.check(kind, origin, horeca=horeca, scheduled_kind=scheduled)


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def test_service_section_and_site_profiles(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.toml",
        '[service]\nevery = "15m"\nweekdays = "mon-fri"\nwindow = "22:00-06:00"\n'
        'notify = "a@x.it; b@y.it"\nsmtp_host = "mail.x.it"\nmonthly_quota = 300\n'
        '[sites.bar.service]\nhoreca = true\nscheduled_kind = "total"\nevery = "1d"\n',
    )
    s = load_settings({}, env={}, path=cfg)
    assert (s.schedule_every, s.schedule_window, s.monthly_quota) == ("15m", "22:00-06:00", 300)
    assert not s.trigger_enabled and s.trigger_host == "127.0.0.1"  # off, loopback by default
    bar = load_settings({"site": "bar"}, env={}, path=cfg)
    assert bar.horeca and bar.scheduled_kind == "total" and bar.schedule_every == "1d"
    assert bar.schedule_weekdays == "mon-fri"  # inherited from the top-level section


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('every = "fortnight"', r"\[service\] every: expected a number"),
        ('window = "8-20"', r"\[service\] window: start time must be HH:MM"),
        ('scheduled_kind = "total"', r"only Ho.Re.Ca."),
        ('notify = "ops@x.it, boss@x.it"', r"\[service\] notify: .*separate addresses with ';'"),
        ("monthly_quota = -1", r"monthly_quota: cannot be negative"),
        ("trigger_port = 70000", r"trigger_port: must be a TCP port"),
        ('timezone = "Mars/Olympus"', r"unknown time zone"),
    ],
)
def test_bad_service_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    cfg = write(tmp_path / "c.toml", f"[service]\n{text}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings({}, env={}, path=cfg)


def test_trigger_token_needs_an_owner_only_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[service]\ntrigger_token = "s3cret"\n', mode=0o644)
    with pytest.raises(ConfigError, match="holds a trigger token but is readable by others"):
        load_settings({}, env={}, path=cfg)
    os.chmod(cfg, 0o600)
    assert load_settings({}, env={}, path=cfg).trigger_token == "s3cret"
    s = load_settings({}, env={"PASSWEB_TUI_TRIGGER_TOKEN": "from-env"}, path=cfg)
    assert s.trigger_token == "from-env"
    assert "s3cret" not in repr(load_settings({}, env={}, path=cfg))
