"""Plain-text tables for the commands' human output: columns as wide as what they hold,
and on a terminal no wider than it is.

Piped or redirected output keeps every value whole (scripts that need the data take
`--json`). On a terminal, a table too wide for it first closes its gaps to one space,
then cuts the values of the columns marked as the ones that may give way, with an
ellipsis, down to a floor; where even that is too wide, it leaves out the columns
marked as the least needed; past that the terminal wraps the lines as it would anyway.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TextIO

from passweb_tui.textsafe import one_line, visible

ELLIPSIS = "…"


def is_terminal(out: TextIO) -> bool:
    """Whether `out` writes to a terminal (False for a closed or not a real stream)."""
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False


def terminal_width(out: TextIO) -> int | None:
    """The width of the terminal `out` writes to (COLUMNS, when set, says it); None when
    `out` is not a terminal, or one that does not say how wide it is."""
    if not is_terminal(out):
        return None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdecimal() and int(columns) > 0:
        return int(columns)
    try:
        # 0: a terminal that does not say (`ssh -tt` from a script): width unknown
        return os.get_terminal_size(out.fileno()).columns or None
    except (AttributeError, OSError, ValueError):
        return None


class LiveLine:
    """One line of progress on a terminal's standard error, drawn again in place.

    It is drawn only where the cursor can be sent back to the start of the line: on a
    terminal, not piped or redirected, and not on one whose TERM says it cannot move
    the cursor (`dumb`). It is cut to the terminal's width: a longer line wraps, and the
    carriage return then goes back to its last row only, leaving a trail of the rows
    above it. Its text is shown as `textsafe.visible` shows it (an ERP's words may be
    in it); the escapes that redraw it go to the stream itself."""

    def __init__(self, stream: TextIO) -> None:
        # the stream itself, not the visible form the commands' stderr writes through
        self.stream: TextIO = getattr(stream, "raw", stream)
        self.live = is_terminal(self.stream) and os.environ.get("TERM") != "dumb"

    def show(self, text: str) -> None:
        """Draw `text` in place of what the line held (nothing when not live)."""
        if not self.live:
            return
        width = terminal_width(self.stream) or 80
        # the last column left free: a line that fills it puts some terminals' cursor
        # on the next row
        self._write("\r\x1b[K" + cut(one_line(visible(text)), width - 1))

    def clear(self) -> None:
        """Leave the line empty, the cursor at its start."""
        if self.live:
            self._write("\r\x1b[K")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal is gone
            pass


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, its end replaced by an ellipsis if cut."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS if width > 0 else ""


def format_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    right: Iterable[int] = (),
    give_way: Iterable[int] = (),
    floor: int = 8,
    width: int | None = None,
    drop: Iterable[int] = (),
) -> list[str]:
    """The table's lines, header first. `right`: columns aligned right (numbers);
    `give_way`: columns whose values are cut when the table is wider than `width`
    (each kept at least `floor` characters, or its header's width if larger); `drop`:
    columns left out, in this order, while the table would not fit `width` even with
    those cut to their floor (the least needed ones: `--json` and `show` have them)."""
    body = [[one_line(str(cell)) for cell in row] for row in rows]
    count = len(headers)
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row[:count]):
            widths[i] = max(widths[i], len(cell))
    give_way, right = list(give_way), set(right)
    keep = list(range(count))
    if width is not None:

        def narrowest(columns: list[int]) -> int:
            least = [
                min(widths[i], max(floor, len(headers[i]))) if i in give_way else widths[i]
                for i in columns
            ]
            return sum(least) + len(columns) - 1

        for i in drop:
            if narrowest(keep) <= width or len(keep) == 1:
                break
            keep.remove(i)
    headers = [headers[i] for i in keep]
    body = [[row[i] if i < len(row) else "" for i in keep] for row in body]
    widths = [widths[i] for i in keep]
    give_way = [keep.index(i) for i in give_way if i in keep]
    aligned_right = {keep.index(i) for i in right if i in keep}
    count = len(keep)
    gap = 2
    if width is not None:
        if sum(widths) + gap * (count - 1) > width:
            gap = 1
        excess = sum(widths) + gap * (count - 1) - width
        for i in give_way:
            if excess <= 0:
                break
            least = max(floor, len(headers[i]))
            shed = min(excess, max(widths[i] - least, 0))
            widths[i] -= shed
            excess -= shed

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i, w in enumerate(widths):
            cell = cut(cells[i] if i < len(cells) else "", w)
            parts.append(cell.rjust(w) if i in aligned_right else cell.ljust(w))
        return (" " * gap).join(parts).rstrip()

    return [line(headers)] + [line(row) for row in body]


def wrapped(text: str, width: int | None, indent: int = 0) -> list[str]:
    """`text` in lines of at most `width` characters, broken between words, the lines
    after the first indented by `indent` spaces; the one line `text` where `width` is
    None (not a terminal) or too narrow to wrap into."""
    if width is None or width - indent < 20 or len(text) <= width:
        return [text]
    import re
    import textwrap

    # a moment (date and time of day) is one word: never its date on one line and its
    # time on the next
    glued = re.sub(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d)", "\\1\x00\\2", text)
    lines = textwrap.wrap(
        glued,
        width=width,
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [line.replace("\x00", " ") for line in lines] or [text]


def print_pairs(pairs: Sequence[tuple[str, str]], out: TextIO) -> None:
    """`name  value` lines, the values in one column; on a terminal a value too long for
    its line goes on under its column, broken between words (not in the middle of a
    time of day, as the terminal would)."""
    if not pairs:
        return
    width = max(len(name) for name, _ in pairs)
    columns = terminal_width(out)
    for name, value in pairs:
        lines = wrapped(f"{name:<{width}}  {value}", columns, indent=width + 2)
        print("\n".join(lines), file=out)


def print_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    out: TextIO,
    *,
    right: Iterable[int] = (),
    give_way: Iterable[int] = (),
    floor: int = 8,
    drop: Iterable[int] = (),
) -> None:
    """Print the table to `out`, fitted to its terminal if it is one."""
    lines = format_table(
        headers,
        rows,
        right=right,
        give_way=give_way,
        floor=floor,
        width=terminal_width(out),
        drop=drop,
    )
    print("\n".join(lines), file=out)
