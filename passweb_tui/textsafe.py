"""Text shown on the operator's terminal, whatever it holds.

Values come from the ERP and from the site (a description, a customer's name, a note,
an ERP error's detail) and end up on a terminal, often over SSH. A control character in
one of them, the escape character above all, would be read by the terminal as a
command: set the window's title, clear the screen, move the cursor, hide what follows.
So every control character but the tab and the line feed is shown instead as its
Unicode control picture (ESC as "␛"), one character for one, and C1 controls as "�".

JSON output must give a script the value exactly: there the same characters are written
as `\\uXXXX` escapes instead (`json_text`), which a JSON parser turns back into them and
a terminal shows as plain text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

#: code point -> what shows in its place
_PICTURES: dict[int, str] = {c: chr(0x2400 + c) for c in range(32) if c not in (9, 10)}
_PICTURES[0x7F] = "\u2421"  # DEL
_PICTURES.update({c: "\ufffd" for c in range(0x80, 0xA0)})

#: the same characters as a JSON string spells them escaped (tab and line feed too)
_JSON_ESCAPES: dict[int, str] = {c: f"\\u{c:04x}" for c in (*_PICTURES, 9, 10)}


def visible(text: str) -> str:
    """`text` with its control characters (but tab and line feed) made visible."""
    return text.translate(_PICTURES)


def json_text(
    value: Any, *, ensure_ascii: bool = True, default: Callable[[Any], Any] | None = None
) -> str:
    """`value` as JSON text holding no control character (C0, DEL, C1): each one in a
    string is written as a `\\uXXXX` escape, so that a parser reads the value back exactly
    and `visible` leaves the text as it is. (`json.dumps` escapes the C0 ones itself,
    but not DEL, nor C1 unless `ensure_ascii`.)"""
    text = json.dumps(value, ensure_ascii=ensure_ascii, default=default)
    # outside its strings, JSON without indent has no control character at all; inside
    # them, a raw one can only be DEL or C1, where an escape means the same
    return text.translate(_JSON_ESCAPES)


def one_line(text: str) -> str:
    """`text` on one line, for a table's cell or a `name  value` line: each line break
    shown as " ↵ " (the value is whole in `--json`)."""
    if "\n" not in text and "\r" not in text:
        return text
    return " \u21b5 ".join(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def guard_rendered_text() -> None:
    """Make what Rich and Textual render show control characters too. Both drop a few
    (bell, backspace, carriage return...) from the text they are given and pass the
    escape character through; they read the table of what to drop at each call, so
    adding to it covers every widget. The ones they drop they still drop."""
    import rich.control
    import textual.content

    tables: list[dict[int, Any]] = [
        rich.control._CONTROL_STRIP_TRANSLATE,  # type: ignore[attr-defined]
        textual.content._CONTROL_STRIP_TRANSLATE,  # type: ignore[attr-defined]
    ]
    for table in tables:
        for code, picture in _PICTURES.items():
            table.setdefault(code, picture)
