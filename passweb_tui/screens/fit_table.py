"""A table whose columns fit its width: at 80 columns a number is never cut.

A DataTable wider than its place scrolls sideways and shows a column cut at the edge,
so "93" reads "9". Here the columns that do not fit are left out instead (the least
needed first), and text columns that may be shortened end in an ellipsis (a text that
gives way is shortened first, before a column is left out for it); numbers are never
shortened. Columns that have a short label take it, all at once, when that keeps a
column that has something in it from being left out. On a terminal narrower than the
columns always shown (60 columns), those are left out too, from the right, rather
than cut at the edge.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.widgets.data_table import RowDoesNotExist

from passweb_tui.screens.base import KeyTable, diff_rows

#: the narrowest a shortened text column gets (characters, ellipsis included)
MIN_SHRUNK = 6


@dataclass(frozen=True)
class Col:
    """A column of a FitTable."""

    key: str
    label: str | Text
    #: 0: always shown; otherwise left out when the table is too narrow, highest first
    drop: int = 0
    #: text that may be shortened with an ellipsis to make room (never a number)
    shrink: bool = False
    #: room kept for values still to come, so the column does not come and go
    min_width: int = 0
    #: a text column shortened to this width (when longer) before any column is left
    #: out for it; 0: the others are left out first
    give_way: int = 0
    #: left out before any other column when no row has a value in it ("-", nothing, or
    #: a count of none) and the table is too narrow; the least needed (`drop`) first
    empty_first: bool = False
    #: a shorter label ("Ins." for "Inserted"), shown when the labels are too wide to
    #: show every column that has something in it
    short: str | Text = ""
    #: how a cell too wide for its column is shortened, given its row's cells by column
    #: key and the width (None: cut at the end, with an ellipsis)
    shorten: Callable[[Mapping[str, Any], int], Any] | None = None


def cell_width(cell: Any) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


def clip(cell: Any, width: int) -> Any:
    """`cell` in at most `width` cells, ending in an ellipsis when shortened."""
    if cell_width(cell) <= width:
        return cell
    text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
    text.truncate(width, overflow="ellipsis")
    return text


def _blank(cell: Any) -> bool:
    text = cell.plain if isinstance(cell, Text) else str(cell)
    return text.strip() in ("", "-", "0")


def _empty(rows: Sequence[Sequence[Any]], index: int) -> bool:
    """Whether no row has a value in the column at `index`."""
    return all(_blank(row[index]) for row in rows if index < len(row))


def fit_columns(
    columns: Sequence[Col], rows: Sequence[Sequence[Any]], width: int, padding: int = 1
) -> tuple[list[str], dict[str, int]]:
    """The keys of the columns to show in `width` cells, and the widths text columns
    are shortened to. Numbers keep their full width: what does not fit is left out."""
    widths = {
        col.key: max(
            cell_width(col.label),
            col.min_width,
            *(cell_width(row[i]) for row in rows if i < len(row)),
        )
        for i, col in enumerate(columns)
    }
    shown = list(columns)

    def total() -> int:
        return sum(widths[c.key] + 2 * padding for c in shown)

    def total_shortened() -> int:
        # a long text that gives way (an error, a scope) is shortened to its `give_way`
        # before a column is left out for it: the short columns say more a cell
        return sum(
            (
                min(widths[c.key], max(c.give_way, cell_width(c.label)))
                if c.shrink and c.give_way
                else widths[c.key]
            )
            + 2 * padding
            for c in shown
        )

    empty = sorted(
        (c for i, c in enumerate(columns) if c.empty_first and _empty(rows, i)),
        key=lambda c: -c.drop,
    )
    left_out: list[Col] = []
    # no text is shortened to keep a column with nothing in it
    for col in empty:
        if total() <= width:
            break
        shown.remove(col)
        left_out.append(col)
    for col in sorted((c for c in columns if c.drop), key=lambda c: -c.drop):
        if total_shortened() <= width:
            break
        if col in shown:
            shown.remove(col)
            left_out.append(col)
    # a narrow column left out before a wide one that had to go as well may fit again:
    # it comes back, the most needed first (an empty one stays out)
    for col in reversed(left_out[:-1]):
        if col in empty:
            continue
        kept = {c.key for c in shown} | {col.key}
        before = shown
        shown = [c for c in columns if c.key in kept]
        if total_shortened() > width:
            shown = before

    def shortened(cols: list[Col]) -> tuple[int, dict[str, int]]:
        # the widest text gives way first, a cell at a time, so that two long columns (a
        # change's old and new value) end up alike instead of one cut to nothing
        left = dict(widths)
        caps: dict[str, int] = {}
        excess = sum(left[c.key] + 2 * padding for c in cols) - width
        while excess > 0:
            candidates = [c for c in cols if c.shrink and left[c.key] > MIN_SHRUNK]
            if not candidates:
                break
            widest = max(candidates, key=lambda c: left[c.key])
            left[widest.key] -= 1
            caps[widest.key] = left[widest.key]
            excess -= 1
        return excess, caps

    excess, caps = shortened(shown)
    # narrower still (60 columns, say) than the columns always shown, each text at its
    # shortest: more are left out, from the right (the columns come in the order they
    # matter: a run's outcome before its counts); never the first (what names the row),
    # and never a number cut at the edge
    for col in list(reversed(shown[1:])):
        if excess <= 0:
            break
        shown.remove(col)
        excess, caps = shortened(shown)
    return [c.key for c in shown], caps


def labelled(
    columns: Sequence[Col], rows: Sequence[Sequence[Any]], width: int, padding: int = 1
) -> list[Col]:
    """`columns` with the labels to show in `width` cells: their own, or the short ones
    (every column that has one) when their own would leave out a column that has
    something in it and the short ones leave out fewer."""
    if not any(c.short for c in columns):
        return list(columns)

    def lost(cols: Sequence[Col]) -> int:
        keys, _caps = fit_columns(cols, rows, width, padding)
        return sum(1 for i, c in enumerate(cols) if c.key not in keys and not _empty(rows, i))

    short = [replace(c, label=c.short) if c.short else c for c in columns]
    own = lost(columns)
    return short if own and lost(short) < own else list(columns)


#: what a FitTable shows: the keys of its columns, the widths text columns are
#: shortened to, and the columns' labels
Fit = tuple[list[str], dict[str, int], list[str | Text]]


class FitTable(KeyTable):
    """A KeyTable given all its columns and rows, showing the columns that fit."""

    def __init__(self, columns: Sequence[Col], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.all_columns = list(columns)
        self._rows: list[tuple[Hashable, Sequence[Any]]] = []
        self._fit: Fit | None = None
        self._fitted_width = 0

    def on_mount(self) -> None:
        self._apply()

    def set_columns(self, columns: Sequence[Col]) -> None:
        """Other columns (another entity): the rows go, the cursor goes to the top."""
        self.all_columns = list(columns)
        self._rows = []
        self._fit = None
        self._apply()

    def on_resize(self, _event: events.Resize) -> None:
        self._apply()

    def show_rows(self, rows: Sequence[tuple[Hashable, Sequence[Any]]]) -> None:
        """Bring the table to `rows` (key, a cell for each of the columns given)."""
        self._rows = list(rows)
        self._apply()

    @property
    def shown_columns(self) -> list[str]:
        return [str(key.value) for key in self.columns]

    def available_width(self) -> int:
        """The width the columns may take: the table's, less a vertical scrollbar when
        the rows are more than it shows (or its height is not known yet)."""
        width = self.size.width
        if len(self._rows) + self.header_height > self.size.height:
            width -= self.styles.scrollbar_size_vertical
        return width

    def _apply(self) -> None:
        cells = [cells for _key, cells in self._rows]
        caps: dict[str, int] = {}
        if self.size.width <= 0:  # not laid out yet: all of them, fitted when it is
            columns = self.all_columns
            keys = [c.key for c in columns]
        else:
            width = self.available_width()
            columns = labelled(self.all_columns, cells, width, self.cell_padding)
            keys, caps = fit_columns(columns, cells, width, self.cell_padding)
            # fitted to the width of this moment: should the layout still be settling
            # (a screen pushed and filled at once), fitted again once it has
            self._fitted_width = self.size.width
            self.call_after_refresh(self._refit_if_resized)
        labels = {c.key: c.label for c in columns}
        fit: Fit = (keys, caps, [labels[k] for k in keys])
        if fit != self._fit:
            self._rebuild(fit)
        index = {c.key: i for i, c in enumerate(self.all_columns)}
        own = {c.key: c.shorten for c in self.all_columns if c.shorten is not None}

        def cell(row: Sequence[Any], k: str) -> Any:
            value = row[index[k]]
            if k not in caps or cell_width(value) <= caps[k]:
                return value
            if k in own:
                by_key = {c: row[i] for c, i in index.items() if i < len(row)}
                return clip(own[k](by_key, caps[k]), caps[k])
            return clip(value, caps[k])

        diff_rows(
            self,
            [(key, [cell(row, k) for k in keys if index[k] < len(row)]) for key, row in self._rows],
        )

    def _refit_if_resized(self) -> None:
        if self.size.width > 0 and self.size.width != self._fitted_width:
            self._apply()

    def _rebuild(self, fit: Fit) -> None:
        """New columns (or labels): cleared and filled again (a column never narrows by
        itself), keeping the cursor on its record."""
        self._fit = fit
        selected = self.selected_key()
        self.clear(columns=True)
        keys, _caps, labels = fit
        for key, label in zip(keys, labels, strict=True):
            self.add_column(label, key=key)
        if selected is None:
            return
        self.call_after_refresh(self._restore_cursor, selected)

    def _restore_cursor(self, key: str) -> None:
        try:
            self.move_cursor(row=self.get_row_index(key), animate=False)
        except RowDoesNotExist:
            pass
