"""The WebAPI value helpers: arrays, dates, times, numbers, flags and keys."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passweb_tui.engine.erp import values


def test_indexed_arrays_round_trip_in_index_order() -> None:
    parsed = values.parse_indexed([[2, 11.0], [1, 12.5]])
    assert parsed == {2: 11.0, 1: 12.5}
    assert values.to_indexed(parsed) == [[1, 12.5], [2, 11.0]]
    assert values.parse_indexed(None) == {}
    assert values.parse_indexed([]) == {}


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("S", "expected an [[index, value], ...] array in field 'trasf_sito'"),
        ([[1, "S", "x"]], "not an [index, value] pair"),
        ([[True, "S"]], "non-negative integer"),
        ([["1", "S"]], "non-negative integer"),
        ([[-1, "S"]], "non-negative integer"),
        ([[1, "S"], [1, "N"]], "index 1 appears twice"),
    ],
)
def test_indexed_arrays_reject_bad_shapes_naming_them(bad: object, says: str) -> None:
    with pytest.raises(ValueError, match="trasf_sito") as err:
        values.parse_indexed(bad, field="trasf_sito")
    assert says in str(err.value)


def test_to_indexed_refuses_non_integer_index() -> None:
    with pytest.raises(ValueError, match="'a'"):
        values.to_indexed({"a": 1})  # type: ignore[dict-item]


def test_dates_times_and_datetimes() -> None:
    assert values.parse_date("20250903") == dt.date(2025, 9, 3)
    assert values.format_date(dt.date(2025, 9, 3)) == "20250903"
    assert values.parse_time("101500") == dt.time(10, 15)
    assert values.format_time(dt.time(9, 5, 7, 999)) == "090507"
    assert values.parse_datetime("20250903 101500") == dt.datetime(2025, 9, 3, 10, 15)
    assert values.format_datetime(dt.datetime(2025, 9, 3, 10, 15, 1)) == "20250903 101501"
    assert values.join_date_time("20250903", "235959") == dt.datetime(2025, 9, 3, 23, 59, 59)
    assert values.join_date_time("20250903", "") == dt.datetime(2025, 9, 3)
    assert values.parse_optional_date("00000000") is None
    assert values.parse_optional_date("") is None
    assert values.parse_optional_date("20240229") == dt.date(2024, 2, 29)


def test_aware_datetime_is_sent_in_local_time() -> None:
    aware = dt.datetime(2025, 9, 3, 10, 15, tzinfo=dt.UTC)
    local = aware.astimezone().replace(tzinfo=None)
    assert values.format_datetime(aware) == local.strftime("%Y%m%d %H%M%S")


@pytest.mark.parametrize(
    ("func", "bad"),
    [
        (values.parse_date, "2025-09-03"),
        (values.parse_date, "20250230"),
        (values.parse_date, "2025093"),
        (values.parse_date, 20250903),
        (values.parse_date, "２０２５０９０３"),
        (values.parse_time, "246000"),
        (values.parse_time, "10:15"),
        (values.parse_datetime, "20250903101500"),
        (values.parse_datetime, "20250903 256000"),
        (values.parse_datetime, None),
    ],
)
def test_bad_dates_and_times_are_refused_naming_the_value(func: object, bad: object) -> None:
    with pytest.raises(ValueError) as err:
        func(bad)  # type: ignore[operator]
    assert repr(bad) in str(err.value)


def test_format_date_refuses_a_datetime() -> None:
    with pytest.raises(ValueError, match="expected a date"):
        values.format_date(dt.datetime(2025, 1, 1, 10, 0))


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(9999, 12, 31)))
def test_dates_round_trip(day: dt.date) -> None:
    assert values.parse_date(values.format_date(day)) == day


@given(st.datetimes(min_value=dt.datetime(1900, 1, 1)).map(lambda d: d.replace(microsecond=0)))
def test_datetimes_round_trip(when: dt.datetime) -> None:
    assert values.parse_datetime(values.format_datetime(when)) == when


def test_to_decimal_is_exact() -> None:
    assert values.to_decimal(12.1) == Decimal("12.1")
    assert values.to_decimal(Decimal("0.0001")) == Decimal("0.0001")
    assert values.to_decimal(7) == Decimal(7)
    assert values.to_decimal(" 3.50 ") == Decimal("3.50")


@pytest.mark.parametrize("bad", [None, True, "12,5", "", "abc", float("nan"), "Infinity", [1]])
def test_to_decimal_refuses_non_numbers(bad: object) -> None:
    with pytest.raises(ValueError) as err:
        values.to_decimal(bad)
    assert repr(bad) in str(err.value) or str(bad) in str(err.value)


def test_flags() -> None:
    assert values.parse_flag("S") is True
    assert values.parse_flag("N") is False
    assert values.format_flag(True) == "S"
    with pytest.raises(ValueError, match="'s'"):
        values.parse_flag("s")
    with pytest.raises(ValueError, match="boolean"):
        values.format_flag(1)  # type: ignore[arg-type]


def test_keys() -> None:
    assert values.needs_hex("KIT/0001")
    assert values.needs_hex("A\\B")
    assert not values.needs_hex("OC+1+15")
    assert values.hex_key("KIT/1") == "4B49542F31"
    assert values.unhex_key("4b49542f31") == "KIT/1"
    with pytest.raises(ValueError, match="non-empty"):
        values.check_key("")
    with pytest.raises(ValueError, match="'ARTè'"):
        values.hex_key("ARTè")
    with pytest.raises(ValueError, match="not a hex-encoded key"):
        values.unhex_key("zz")


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1))
def test_hex_keys_round_trip(key: str) -> None:
    assert values.unhex_key(values.hex_key(key)) == key
