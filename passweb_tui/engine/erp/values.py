"""Conversions between the Mexal WebAPI's value formats and Python values.

Strict on purpose: every helper raises ValueError naming the bad value, so the
engine can reject a malformed ERP record instead of storing a guess.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

#: Characters allowed in a record key (MEXAL_WEBAPI.md: 0x20-0x7E).
_KEY_MIN, _KEY_MAX = 0x20, 0x7E


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- [[index, value]] arrays -------------------------------------------------


def parse_indexed(value: Any, *, field: str | None = None) -> dict[int, Any]:
    """`[[1, 12.5], [2, 11.0]]` -> `{1: 12.5, 2: 11.0}`; None or [] -> {}.

    Every item must be a pair whose first element is a non-negative integer,
    and no index may repeat.
    """
    where = f" in field {field!r}" if field else ""
    if value is None:
        return {}
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected an [[index, value], ...] array{where}, got {_describe(value)}")
    result: dict[int, Any] = {}
    for item in value:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise ValueError(f"array item{where} is not an [index, value] pair: {_describe(item)}")
        index, item_value = item
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(
                f"array index{where} must be a non-negative integer, got {_describe(index)}"
            )
        if index in result:
            raise ValueError(f"array index {index} appears twice{where}: {_describe(value)}")
        result[index] = item_value
    return result


def to_indexed(values: Mapping[int, Any]) -> list[list[Any]]:
    """`{2: 11.0, 1: 12.5}` -> `[[1, 12.5], [2, 11.0]]` (ordered by index)."""
    for index in values:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"array index must be a non-negative integer, got {_describe(index)}")
    return [[index, values[index]] for index in sorted(values)]


# --- dates and times ----------------------------------------------------------


def _digits(value: Any, length: int, what: str, example: str) -> str:
    if not isinstance(value, str) or len(value) != length or not value.isascii():
        raise ValueError(f"expected a {what} as {example!r}, got {_describe(value)}")
    if not value.isdigit():
        raise ValueError(f"expected a {what} as {example!r}, got {_describe(value)}")
    return value


def parse_date(value: Any) -> dt.date:
    """`"20250903"` (AAAAMMGG) -> date(2025, 9, 3)."""
    text = _digits(value, 8, "date", "AAAAMMGG")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise ValueError(f"not a valid date (AAAAMMGG): {value!r}") from None


def parse_optional_date(value: Any) -> dt.date | None:
    """Like parse_date, but None, "" and "00000000" (no date set) give None."""
    if value is None or value == "" or value == "00000000":
        return None
    return parse_date(value)


def format_date(value: dt.date) -> str:
    """date(2025, 9, 3) -> `"20250903"`; a datetime is refused (use format_datetime)."""
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ValueError(f"expected a date, got {_describe(value)}")
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def parse_time(value: Any) -> dt.time:
    """`"101500"` (HHMMSS) -> time(10, 15, 0)."""
    text = _digits(value, 6, "time", "HHMMSS")
    try:
        return dt.time(int(text[:2]), int(text[2:4]), int(text[4:]))
    except ValueError:
        raise ValueError(f"not a valid time (HHMMSS): {value!r}") from None


def format_time(value: dt.time) -> str:
    """time(10, 15, 0) -> `"101500"` (seconds kept, fractions dropped)."""
    if not isinstance(value, dt.time):
        raise ValueError(f"expected a time, got {_describe(value)}")
    return f"{value.hour:02d}{value.minute:02d}{value.second:02d}"


def parse_datetime(value: Any) -> dt.datetime:
    """`"20250903 101500"` (AAAAMMGG HHMMSS) -> a naive datetime in the ERP's local time."""
    if not isinstance(value, str) or len(value) != 15 or value[8] != " ":
        raise ValueError(f"expected a date-time as 'AAAAMMGG HHMMSS', got {_describe(value)}")
    try:
        day = parse_date(value[:8])
        clock = parse_time(value[9:])
    except ValueError:
        raise ValueError(f"not a valid date-time (AAAAMMGG HHMMSS): {value!r}") from None
    return dt.datetime.combine(day, clock)


def format_datetime(value: dt.datetime) -> str:
    """A datetime -> `"AAAAMMGG HHMMSS"`.

    The ERP works in naive local time; an aware datetime is first converted to
    this machine's local time.
    """
    if not isinstance(value, dt.datetime):
        raise ValueError(f"expected a datetime, got {_describe(value)}")
    if value.tzinfo is not None:
        value = value.astimezone().replace(tzinfo=None)
    return f"{format_date(value.date())} {format_time(value.time())}"


def join_date_time(day: Any, clock: Any) -> dt.datetime:
    """A date field and a time field (`dt_mod_sistema`, `ora_mod_sistema`) -> datetime.

    A missing or empty time counts as midnight; the date is required.
    """
    when = parse_date(day)
    if clock is None or clock == "":
        return dt.datetime.combine(when, dt.time())
    return dt.datetime.combine(when, parse_time(clock))


# --- numbers and flags --------------------------------------------------------


def to_decimal(value: Any) -> Decimal:
    """An ERP number (int, Decimal, float or numeric string with a dot) -> Decimal.

    Floats go through their shortest repr, so 12.1 becomes Decimal("12.1"), not
    its binary expansion. Booleans, None, NaN and infinities are refused.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a number, got {_describe(value)}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        return Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text or "," in text or "_" in text:
            raise ValueError(f"expected a number with a dot for decimals, got {value!r}")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"expected a number with a dot for decimals, got {value!r}") from None
    else:
        raise ValueError(f"expected a number, got {_describe(value)}")
    if not result.is_finite():
        raise ValueError(f"expected a finite number, got {_describe(value)}")
    return result


def parse_flag(value: Any) -> bool:
    """The ERP's `"S"` / `"N"` flags -> True / False."""
    if value == "S":
        return True
    if value == "N":
        return False
    raise ValueError(f"expected a flag 'S' or 'N', got {_describe(value)}")


def format_flag(value: bool) -> str:
    """True / False -> `"S"` / `"N"`."""
    if not isinstance(value, bool):
        raise ValueError(f"expected a boolean, got {_describe(value)}")
    return "S" if value else "N"


# --- keys -----------------------------------------------------------------------


def check_key(key: Any) -> str:
    """Return `key` if it is a usable record key (non-empty, characters 0x20-0x7E)."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"a record key must be a non-empty string, got {_describe(key)}")
    for ch in key:
        if not _KEY_MIN <= ord(ch) <= _KEY_MAX:
            raise ValueError(f"record key {key!r} has a character the ERP does not allow: {ch!r}")
    return key


def needs_hex(key: str) -> bool:
    """Whether the key must travel hex-encoded (it contains `/` or `\\`)."""
    return "/" in key or "\\" in key


def hex_key(key: str) -> str:
    """The key's bytes as hex digits, for `?encoding=hex` (`"KIT/1"` -> `"4B49542F31"`)."""
    return check_key(key).encode("ascii").hex().upper()


def unhex_key(text: str) -> str:
    """The inverse of hex_key."""
    try:
        key = bytes.fromhex(text).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"not a hex-encoded key: {text!r}") from None
    return check_key(key)
