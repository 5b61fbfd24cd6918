"""F1: every key that works where the operator is, in three sections (this screen's,
the ones of the table or field with the cursor, and the ones that work everywhere),
in a box that scrolls, so that the whole list can be read at 80x24.

The list is taken from the screen below when F1 is pressed: a key that a [ui] keymap
moved shows under its new name, a key the screen disables just now is dimmed, and a key
that the field with the cursor takes for itself (letters in a search field) is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Footer,
    Input,
    Label,
    OptionList,
    RadioButton,
    RadioSet,
    Select,
    SelectionList,
    Static,
    Tree,
)

from passweb_tui.i18n import t
from passweb_tui.screens.base import localize_bindings

#: section keys in the order they are shown
SECTIONS = ("keys.section.screen", "keys.section.widget", "keys.section.app")


@dataclass
class KeyRow:
    keys: list[str]
    description: str
    tooltip: str = ""
    enabled: bool = True


@dataclass
class KeySection:
    title: str
    rows: list[KeyRow] = field(default_factory=list)


def key_sections(screen: Screen[Any]) -> list[KeySection]:
    """The keys that work on `screen` now, grouped by where they are declared.

    In each section the app's own keys come first, then the toolkit's (cursor, scroll,
    editing), named in the app's language. Several keys of one binding (f1 and ?) share
    a row. The toolkit's system keys and keys without a description are left out.
    """
    app = screen.app
    ours: set[str] = getattr(app, "binding_ids", set)()
    app_ids = {b.id for items in app._bindings.key_to_bindings.values() for b in items if b.id}
    grouped: dict[str, dict[tuple[Any, ...], KeyRow]] = {name: {} for name in SECTIONS}
    for key, active in screen.active_bindings.items():
        binding, node = active.binding, active.node
        if binding.system or key.startswith("super+") or not active.enabled:
            continue  # (not enabled: the screen says it has nothing to do now)
        description, tooltip = binding.description, binding.tooltip
        own = binding.id in ours
        if binding.action in ("command_palette", "app.command_palette"):
            description, tooltip, own = t("key.palette"), "", True
        elif not own and description:
            description = t(f"tx.{description.lower()}", default=description)
        if not description:
            continue
        if isinstance(node, App) or (
            # the app's keys that a screen shows in its footer, through copies
            binding.action.startswith("app.") and binding.id in app_ids
        ):
            section = "keys.section.app"
        elif node is screen:
            section = "keys.section.screen"
        else:
            section = "keys.section.widget"
        label = app.get_key_display(Binding(key, "", key_display=binding.key_display))
        ident = (own, binding.id or binding.action, description)
        row = grouped[section].get(ident)
        if row is None:
            grouped[section][ident] = KeyRow(
                [label], description, tooltip if own else "", active.enabled
            )
        elif label not in row.keys:
            row.keys.append(label)
    # the app's keys in the order it declares them, whichever screen copied some
    declared = [b.id for b in getattr(type(app), "BINDINGS", []) if isinstance(b, Binding)]
    order = {binding_id: i for i, binding_id in enumerate(declared)}
    everywhere = grouped["keys.section.app"]
    grouped["keys.section.app"] = dict(
        sorted(everywhere.items(), key=lambda item: order.get(item[0][1], len(order)))
    )
    return [
        KeySection(
            widget_title(screen.focused) if name == "keys.section.widget" else t(name),
            # the app's own keys first, then the toolkit's
            [row for ident, row in grouped[name].items() if ident[0]]
            + [row for ident, row in grouped[name].items() if not ident[0]],
        )
        for name in SECTIONS
        if grouped[name]
    ]


#: what the section of the focused widget's keys is called, by the kind of widget
WIDGET_TITLES: tuple[tuple[type[Widget], str], ...] = (
    (DataTable, "keys.section.table"),
    (Tree, "keys.section.tree"),
    (Input, "keys.section.input"),
    (SelectionList, "keys.section.list"),
    (OptionList, "keys.section.list"),
    (RadioSet, "keys.section.choice"),
    (Select, "keys.section.choice"),
    (Checkbox, "keys.section.switch"),
    (RadioButton, "keys.section.switch"),
    (Button, "keys.section.button"),
    (ScrollableContainer, "keys.section.panel"),
)


def widget_title(focused: Widget | None) -> str:
    """The focused widget's section: "In the table", "In the text field"..."""
    for kind, key in WIDGET_TITLES:
        if isinstance(focused, kind):
            return t(key)
    return t("keys.section.widget")


def render_section(section: KeySection, key_width: int = 6) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True, min_width=key_width)
    table.add_column(ratio=1)
    for row in section.rows:
        style = "" if row.enabled else "dim"
        what = Text(row.description, style=style)
        if row.tooltip:
            what.append(f" {row.tooltip}", style="dim")
        table.add_row(Text(" ".join(row.keys), style=f"bold {style}".strip()), what)
    return table


class KeysScreen(ModalScreen[None]):
    """The keys of the screen below, by section; escape, F1 or ? close it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "key.close", id="keys.close"),
        # the same id as the app's F1, so that a keymap moving F1 moves this one too
        Binding("f1,question_mark", "close", "key.help", id="app.help", show=False),
    ]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        localize_bindings(self)
        self.sections = key_sections(under)

    def compose(self) -> ComposeResult:
        # one width for the keys of every section, so that the descriptions line up
        width = max((len(" ".join(r.keys)) for s in self.sections for r in s.rows), default=6)
        with Vertical(id="keys") as box:
            box.border_title = t("keys.title")
            with VerticalScroll(id="keys-list"):
                for section in self.sections:
                    yield Label(section.title, classes="keys-section")
                    yield Static(render_section(section, width), classes="keys-table")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#keys-list", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def text(self) -> str:
        """What the list says, a line per key (for scripts and tests)."""
        lines = []
        for section in self.sections:
            lines.append(section.title)
            for row in section.rows:
                tip = f" {row.tooltip}" if row.tooltip else ""
                lines.append(f"{' '.join(row.keys)} {row.description}{tip}")
        return "\n".join(lines)
