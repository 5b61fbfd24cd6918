"""What every screen shares: the top bar with the running sync, the footer, tables
driven by j/k, keyed-row diffing, formatting of times and counts, and a yes/no dialog.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Footer,
    Input,
    Label,
    RadioButton,
    SelectionList,
    Static,
)
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist
from textual.widgets.option_list import OptionDoesNotExist
from textual.worker import Worker, WorkerState

from passweb_tui.i18n import date_text, decimal_point, group_digits, grouped_number, t

if TYPE_CHECKING:
    from passweb_tui.app import PasswebApp
    from passweb_tui.screens.sync_state import SyncSnapshot


def localize_bindings(node: DOMNode) -> None:
    """Translate the descriptions of a node's bindings, which hold catalogue keys.

    Bindings are declared once per class, but the language is chosen per app, so the
    node's own copy of its bindings is rewritten when it is created.
    """
    bindings = node._bindings.key_to_bindings
    for key, items in bindings.items():
        bindings[key] = [
            replace(b, description=t(b.description), tooltip=t(b.tooltip) if b.tooltip else "")
            if b.description
            else b
            for b in items
        ]


def show_app_keys(screen: Screen[Any], binding_ids: Sequence[str]) -> None:
    """Show some of the app's keys in this screen's footer, in the order given.

    The app's own bindings stay out of the footers so that each screen's keys fit in
    80 columns; a screen that has the room lists some of them through copies that keep
    their ids, so a [ui] keymap moves the copy along with the original.
    """
    app_bindings = [b for items in screen.app._bindings.key_to_bindings.values() for b in items]
    own = screen._bindings.key_to_bindings
    for binding_id in binding_ids:
        for binding in app_bindings:
            if binding.id == binding_id and binding.key not in own:
                action = binding.action.removeprefix("app.")
                own[binding.key] = [replace(binding, action=f"app.{action}", show=True)]


async def take_key_in_order(widget: Widget, event: events.Key) -> bool:
    """Whether `widget` dealt with a key it reads (else the widget's own handling comes
    next), so that keys that come in one burst (over SSH, a paste) take effect in the
    order typed.

    The app hands each key to the widget that has the focus when the app reads it, and
    a key the widget does not take goes up to the screen and the app, whose bindings run
    only once they read it. In a burst, "/" then "Smith" on the orders table: every key
    went to the table before the search field had the focus, and "S" ran the screen's
    Send now. So the widget runs the bindings of the keys it reads as it reads them (its
    own, the screen's and the app's; the priority ones ran already, as the app read the
    key), and a key read after one that moved the focus away or put a question over the
    screen goes on to the widget that has the focus then."""
    app = widget.app
    if widget in _HELD:
        # a binding of the screen or the app ran on an earlier key, and what it does to
        # the focus (a field focused, a question pushed) takes effect once the app gets
        # to it: this key goes to the focused widget after that, in the order read
        event.stop()
        event.prevent_default()
        _HELD[widget] += 1
        key = key_again(event)
        if widget in _SUBMITTED:
            _after_bubbling(widget, _pass_on, app, key, widget)
        else:
            app.call_later(_pass_on, app, key, widget)
        return True
    top = app.screen  # a question pushed over the widget's screen, say
    target = top.focused or top
    if target is not widget and (top is not widget.screen or top.focused is not None):
        event.stop()
        event.prevent_default()
        target.post_message(key_again(event))
        return True
    for node, bindings in widget.screen._modal_binding_chain:
        for binding in bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority and await app.run_action(binding.action, node):
                event.stop()
                event.prevent_default()
                if node is not widget:
                    _HELD[widget] = 0
                    app.call_later(_release, app, widget)
                elif (isinstance(widget, Input) and binding.action == "submit") or (
                    isinstance(widget, DataTable) and binding.action == "select_cursor"
                ):
                    # enter in a field or a table: the screen answers its Submitted or
                    # RowSelected message (the search field gives the focus to the
                    # table, a row opens its record) only once the message has come up
                    # to it, after the keys read behind the enter: "W90", enter, "j"
                    # filtered by "W90j"; enter, escape on the catalogue took the
                    # catalogue away from under the record. Those keys wait for it.
                    _HELD[widget] = 0
                    _SUBMITTED.add(widget)
                    _after_bubbling(widget, _release, app, widget)
                return True
    return False


def _after_bubbling(widget: Widget, then: Callable[..., None], *args: Any) -> None:
    """`then(*args)` once a message the widget posted before this call has bubbled up to
    its screen and been handled there: a callback that climbs the same way, one queue
    at a time behind it."""

    def hop(node: Widget) -> None:
        parent = node.parent
        if isinstance(node, Screen) or not isinstance(parent, Widget):
            then(*args)
        else:
            parent.call_later(hop, parent)

    widget.call_later(hop, widget)


#: widgets whose next keys wait for a binding they ran to take effect (see above), and
#: how many of those keys are on their way through the app's queue
_HELD: weakref.WeakKeyDictionary[Widget, int] = weakref.WeakKeyDictionary()
#: widgets among them held by their own enter: their keys follow its Submitted or
#: RowSelected message up to the screen
_SUBMITTED: weakref.WeakSet[Widget] = weakref.WeakSet()


def key_again(event: events.Key) -> events.Key:
    """A key read, to be handed on (a key event goes to one widget): it keeps the time
    it was read at, which tells a key typed ahead from one typed after what it waited
    for (see LaunchButton)."""
    key = events.Key(event.key, event.character)
    key.time = event.time
    return key


def keys_on_their_way() -> bool:
    """Whether keys held back (see take_key_in_order) are still to reach their widget."""
    return bool(_HELD)


def _pass_on(app: App[Any], key: events.Key, widget: Widget) -> None:
    """A key held back, to the widget that has the focus now (or its screen)."""
    screen = app.screen
    (screen.focused or screen).post_message(key)
    if widget in _HELD:
        _HELD[widget] -= 1


def _release(app: App[Any], widget: Widget) -> None:
    """The widget takes its keys itself again, once those it held have been passed on
    (until then a key it reads could overtake them)."""
    if _HELD.get(widget, 0) > 0:
        app.call_later(_release, app, widget)
    else:
        _HELD.pop(widget, None)
        _SUBMITTED.discard(widget)


class OrderedScroll(VerticalScroll):
    """A scrolling body that has the focus itself (a screen of panels with no table):
    it reads keys in order too, so that a screen's key and the keys typed right behind
    it ("o" then "3" from the dashboard) reach the screen that key opens."""

    async def _on_key(self, event: events.Key) -> None:
        await take_key_in_order(self, event)


class KeyTable(DataTable[Any]):
    """A row-cursor table that also moves with j/k, as operators expect from pagers, and
    goes to its first/last row with home/end (the DataTable scrolls sideways with them;
    its ctrl+home/ctrl+end still go to the first/last row too)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "key.down", show=False, id="table.down"),
        Binding("k", "cursor_up", "key.up", show=False, id="table.up"),
        # g stays free for the categories, so no g/G for first/last
        Binding("home", "scroll_top", "key.first_row", show=False, id="table.first"),
        Binding("end", "scroll_bottom", "key.last_row", show=False, id="table.last"),
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(*args, **kwargs)
        localize_bindings(self)

    #: keys read while the table waits for the rows of a new page (see wait_for_rows)
    _waiting_keys: list[events.Key] | None = None
    _waiting_timer: Timer | None = None

    async def _on_key(self, event: events.Key) -> None:
        if self._waiting_keys is not None:
            # the rows they are meant for are on their way: they wait for them, escape
            # too (let through, it left the screen, and the keys typed before it ran on
            # the next one: "n / stone escape" on the catalogue launched a Totale)
            event.stop()
            event.prevent_default()
            self._waiting_keys.append(key_again(event))
            return
        # (a key not taken goes on to the DataTable's own handling)
        await take_key_in_order(self, event)

    def wait_for_rows(self, at_most_s: float = 2.0) -> None:
        """Keys read from now until `rows_came` (or `at_most_s` seconds, whichever is
        first) take effect after it, in order: "t" then "j" on the catalogue moved the
        cursor of the table being emptied for the other entity, and the "j" was lost
        once its rows came."""
        if self._waiting_keys is None:
            self._waiting_keys = []
        if self._waiting_timer is not None:
            self._waiting_timer.stop()
        self._waiting_timer = self.set_timer(at_most_s, self.rows_came)

    def rows_came(self) -> None:
        """The rows waited for are shown: the keys read meanwhile take effect now, on
        this table while it has the focus on its screen (a question or another screen
        in front of it, or a click on another widget meanwhile: they were not typed for
        those, and are dropped)."""
        keys, self._waiting_keys = self._waiting_keys, None
        if self._waiting_timer is not None:
            self._waiting_timer.stop()
            self._waiting_timer = None
        if not keys or not self.is_attached or self.app.screen is not self.screen:
            return
        if not self.has_focus:  # a click elsewhere meanwhile: they were the table's keys
            return
        for key in keys:
            self.post_message(key)

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return None if row_key.value is None else str(row_key.value)


def diff_rows(table: DataTable[Any], rows: Iterable[tuple[Hashable, Sequence[Any]]]) -> None:
    """Bring `table` to `rows` (key, cells), in that order, touching only what differs.

    Rows keep their place and the cursor stays on the same record while a
    dashboard refreshes, which clearing and refilling the table would not give.
    """
    wanted = {str(key): list(cells) for key, cells in rows}
    columns = list(table.columns)
    changed_membership = False
    for row_key in list(table.rows):
        if row_key.value not in wanted:
            table.remove_row(row_key)
            changed_membership = True
    for key, cells in wanted.items():
        try:
            current = table.get_row(key)
        except RowDoesNotExist:
            table.add_row(*cells, key=key)
            changed_membership = True
            continue
        for column, old, new in zip(columns, current, cells, strict=False):
            if str(old) != str(new):
                table.update_cell(key, column, new, update_width=True)
    if changed_membership and table.row_count > 1:
        position = {tuple(str(c) for c in cells): i for i, cells in enumerate(wanted.values())}
        table.sort(key=lambda row: position.get(tuple(str(c) for c in row), 0))


#: the ERP's numeric and date fields, as numeric_fields last read them
_NUMERIC: weakref.WeakKeyDictionary[Any, tuple[float, FieldKinds]] = weakref.WeakKeyDictionary()

#: (entity, field) -> the field's type in the ERP's catalogue, "N" (a number) or "D" (a
#: date), for the fields whose values the screens write in the language's style
FieldKinds = Mapping[tuple[str, str], str]


def numeric_fields(engine: Any) -> FieldKinds:
    """The ERP's numeric fields (type N in its field catalogue), whose values the screens
    write with the language's decimal point (a weight of "6.003" read as six thousand in
    Italian), and its date fields (type D), written as the screens write a day (not
    20261201). A value of another field that looks like a number (a customer's code,
    501.00042) is left as it is. Read at most once a minute."""
    import time

    now = time.monotonic()
    kept = _NUMERIC.get(engine)
    if kept is not None and now - kept[0] < 60:
        return kept[1]
    found = {
        (entity, f.name): f.type
        for entity in engine.field_entities()
        for f in engine.fields(entity)
        if f.type in ("N", "D")
    }
    _NUMERIC[engine] = (now, found)
    return found


def number_value(value: Any, kind: str | bool | None) -> Any:
    """A value of a field as the screens write it: a number with a fraction kept as
    text, of a numeric field (`kind` "N", or True), with the language's decimal point; a
    date (`kind` "D", AAAAMMGG as the ERP gives it) as the screens write a day; anything
    else as it is."""
    from passweb_tui.engine.records import number_text

    if not isinstance(value, str):
        return value
    if kind == "D":
        if len(value) == 8 and value.isdigit() and value != "00000000":
            try:
                dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
            except ValueError:
                return value
            return date_text(int(value[:4]), int(value[4:6]), int(value[6:]))
        return value
    if kind:
        return number_text(value, decimal_point("."))
    return value


def fmt_money(value: Any) -> str:
    """An amount as a price list shows it (see records.money_text)."""
    from passweb_tui.engine.records import money_text

    return grouped_number(money_text(value))


def fmt_int(value: int | None) -> str:
    return "-" if value is None else group_digits(f"{value:,}")


def fmt_duration(app: Any, seconds: float | None) -> str:
    """A duration as an operator reads it; masked when the app renders for snapshots."""
    if seconds is None:
        return "-"
    if getattr(app, "stable", False):
        return "··s"
    if seconds < 60:
        return decimal_point(f"{seconds:.1f}s")
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_when(app: Any, when: dt.datetime | str | None) -> str:
    """A moment as day and time, or relative words for today; masked for snapshots."""
    if when is None or when == "":
        return "-"
    if isinstance(when, str):
        try:
            moment = dt.datetime.fromisoformat(when)
        except ValueError:
            return when
    else:
        moment = when
    if getattr(app, "stable", False):
        return "··:··"
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    now = app.now() if hasattr(app, "now") else dt.datetime.now()
    if moment.date() == now.date():
        return moment.strftime("%H:%M:%S")
    return f"{date_text(moment.year, moment.month, moment.day)} {moment:%H:%M}"


def field_label(name: str | None) -> str:
    """A change-log field; whole-record changes come as "(inserted)"/"(deleted)"."""
    if not name:
        return "-"
    if name.startswith("(") and name.endswith(")"):
        return "(" + t("change." + name[1:-1], default=name[1:-1]) + ")"
    return name


def kind_label(kind: str | None) -> str:
    """TOTAL/CHANGED/PARTIAL under the names operators know from the ERP (Totale...)."""
    return t(f"kind.{kind}") if kind in {"total", "changed", "partial"} else (kind or "-")


def run_kind(run: Any) -> str:
    """A run's kind as the lists show it: `Totale*` for a CHANGED that ran as a TOTAL
    (as `passweb-tui runs` marks it), and the dry-run mark."""
    kind = value_of(run, "kind")
    label = kind_label(kind)
    requested = value_of(run, "requested_kind")
    if requested and requested != kind:
        label += "*"
    if value_of(run, "dry_run"):
        label += " " + t("sync.dry")
    return label


def run_changes_cell(run: Any, changes: int) -> str:
    """The changes of a run; a dry run's, which it only counted, in parentheses."""
    return f"({fmt_int(changes)})" if value_of(run, "dry_run") else fmt_int(changes)


def orders_cell(counts: dict[str, int]) -> str:
    """What a run did with web orders: sent, failed to send, updated from the ERP."""
    # the word first ("inviati 1"): in Italian a number before it would have to agree
    done = [
        f"{t('col.' + k).lower()} {fmt_int(counts[k])}"
        for k in ("sent", "failed", "updated")
        if counts.get(k)
    ]
    return ", ".join(done) or "-"


def status_text(status: str | None) -> Text:
    """A run outcome, coloured where colour is available, readable without it."""
    label = t(f"status.{status}") if status else "-"
    style = {
        "ok": "green",
        "ok_with_rejects": "yellow",
        "failed": "bold red",
        "cancelled": "magenta",
        "running": "cyan",
    }.get(status or "", "")
    return Text(label, style=style)


def value_of(obj: Any, name: str, default: Any = None) -> Any:
    """Read a field from a facade object or a plain mapping."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


class OrderedInput(Input):
    """A text field whose keys take effect in the order they were typed.

    Textual inserts a typed character as soon as the field reads its key, but lets a
    key the field binds (backspace, end, the arrows...) bubble up to the app, which
    runs the field's binding only once the field has read the keys queued behind it.
    When keys come in one burst, as a quick typist's often do over SSH, End, Backspace,
    Q then came out as Q, End, Backspace: over a field whose text was selected, an
    empty field, saved as such. Here the field runs the bindings of the keys it reads as
    it reads them (see take_key_in_order), and a key it reads after one that moved the
    focus away (Tab, escape) goes on to the widget that has the focus now.
    """

    async def _on_key(self, event: events.Key) -> None:
        # a printable key is typed into the field: only the others run bindings here
        if event.is_printable and self.app.screen.focused is self and self not in _HELD:
            await super()._on_key(event)
        elif await take_key_in_order(self, event):
            if self.screen.focused is self:
                self._restart_blink()
        else:
            await super()._on_key(event)


class OrderedButton(Button):
    """A button whose keys take effect in the order they were typed (see
    take_key_in_order): a Tab read by the Test button in a burst moved the focus to the
    next field, but the keys behind it went to the button, which let them up to the
    screen's bindings, and the field never had them."""

    async def _on_key(self, event: events.Key) -> None:
        if not await take_key_in_order(self, event):
            await super()._on_key(event)


def after_typing(screen: Screen[Any], action: Callable[[], object]) -> None:
    """Run `action` once the focused text field has read every key queued ahead of the
    one that asked for it.

    A form's save key is a priority binding (a field must not take it), so it runs as
    soon as the app reads it, while the keys typed just before it may still wait in the
    field's queue: "Milano" then ctrl+s in one burst saved the field as it was before.
    A callback queued on the field runs after those keys."""

    def when_read(waited: Input | None) -> None:
        # the focus may have moved on (a Tab in the burst) to a field that has keys of
        # its own still to read, or keys may be on their way to it: those are waited
        # for too
        if keys_on_their_way():
            screen.app.call_later(when_read, waited)
            return
        focused = screen.focused
        if isinstance(focused, Input) and focused is not waited:
            focused.call_later(when_read, focused)
        else:
            action()

    when_read(None)


class StateCheckbox(Checkbox):
    """A checkbox whose mark is absent when off, readable without colour (NO_COLOR)."""

    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]
        return "X" if self.value else " "


class StateRadioButton(RadioButton):
    """A radio button whose dot is absent when off, readable without colour."""

    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]
        return "●" if self.value else " "


class StateSelectionList(SelectionList[str]):
    """A selection list whose marks are absent when off, readable without colour."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        try:
            option = self.get_option_at_index(self.scroll_offset.y + y)
        except OptionDoesNotExist:
            return strip
        segments = list(strip)
        if (
            len(segments) > 1
            and segments[1].text == Checkbox.BUTTON_INNER
            and option.value not in set(self.selected)
        ):
            segments[1] = Segment(" ", segments[1].style)
            return Strip(segments, strip.cell_length)
        return strip


class SyncBadge(Static):
    """The running (or last finished) sync, one line, shown on every screen."""

    def show(self, snap: SyncSnapshot | None) -> None:
        newest = getattr(self.app, "newest_run_seen", None)
        if (
            snap is not None
            and not snap.running
            and snap.run_id is not None
            and newest is not None
            and newest > snap.run_id
        ):
            snap = None  # a later run ended since (launched elsewhere): its outcome is not this
        if snap is None:
            self.update("")
            self.set_class(False, "-running")
            return
        self.set_class(snap.running, "-running")
        self.update(snap.one_line(self.app))


class TopBar(Horizontal):
    """Title of the app and screen on the left, the sync badge on the right."""

    def __init__(self, title: str) -> None:
        super().__init__(id="topbar")
        self._title = title

    def compose(self) -> ComposeResult:
        yield Label(f"passweb-tui · {self._title}", id="topbar-title")
        warning = getattr(self.app, "warning", None)
        if warning:
            yield Label(f"⚠ {warning}", id="topbar-warning")
        yield SyncBadge(id="sync-badge")


class BaseScreen(Screen[None]):
    """A screen of the app: top bar, body, footer; escape goes back."""

    TITLE_KEY: ClassVar[str] = ""
    #: Ids of the app's own bindings this screen's footer shows (see show_app_keys).
    FOOTER_APP_KEYS: ClassVar[tuple[str, ...]] = ()
    #: Where the focus goes when escape leaves a text field: the screen's main widget
    #: (default: its first table, else nothing focused).
    FIELD_EXIT: ClassVar[str | None] = None
    #: Worker groups whose failures the screen shows itself.
    OWN_ERRORS: ClassVar[frozenset[str]] = frozenset()
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "key.back", id="screen.back", show=False),
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        localize_bindings(self)

    @property
    def papp(self) -> PasswebApp:
        return self.app  # type: ignore[return-value]

    def bound_key(self, binding_id: str) -> str:
        """The key bound to `binding_id` (after [ui] keymap), for hints on screen."""
        return self.papp.key_label(binding_id)

    def compose(self) -> ComposeResult:
        show_app_keys(self, self.FOOTER_APP_KEYS)
        yield TopBar(t(self.TITLE_KEY))
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_screen_resume(self) -> None:
        self.show_sync(self.papp.sync.snapshot())
        self.on_shown()

    def on_shown(self) -> None:
        """Called each time the screen comes to the front; screens refresh here."""
        if self.RELOAD_WHEN_STALE:
            self.reload_if_stale()

    #: whether the screen reloads, when it comes to the front again, if a run started or
    #: ended meanwhile (here or in another process); it then calls `load`
    RELOAD_WHEN_STALE = False
    _data_mark: Any = None

    def load(self) -> None:
        """Read what the screen shows from the engine (screens with data define it)."""

    def reload_if_stale(self) -> None:
        engine = self.papp.engine
        if engine is None:
            return
        try:
            mark = engine.data_mark()
        except Exception:  # a store that cannot be read now: the screen keeps what it has
            return
        previous, self._data_mark = self._data_mark, mark
        if previous is not None and mark != previous:  # the first time, on_mount loaded
            self.load()

    def show_sync(self, snap: SyncSnapshot | None) -> None:
        """Reflect the sync's state; the sync screen shows more than the badge."""
        for badge in self.query(SyncBadge):
            badge.show(snap)

    def sync_finished(self, snap: SyncSnapshot) -> None:
        """A run ended; screens showing store data reload here."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """One place for failed reads: say what failed, never crash the screen."""
        worker = event.worker
        if event.state == WorkerState.ERROR and worker.group not in self.OWN_ERRORS:
            self.papp.report_error(worker.name or worker.group, worker.error)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            # on the first screen, with no field to leave, escape has nowhere to go: it
            # is not offered (F1 leaves it out)
            return (
                isinstance(self.focused, Input)
                or len(self.app.screen_stack) > 1
                or self.app.current_mode != "dashboard"
            )
        return True

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.leave_field()
            return
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        elif self.app.current_mode != "dashboard":
            self.app.switch_mode("dashboard")

    def leave_field(self) -> None:
        """Escape in a text field leaves the field and keeps what was typed in it (a
        filter stays applied); a second escape then leaves the screen."""
        found = self.query(self.FIELD_EXIT or KeyTable)
        if found and found.first().focusable:
            found.first().focus()
        else:
            self.set_focus(None)


#: F1 over a modal box. A modal screen keeps the keys of the screens and the app below it
#: from working, so each modal box names F1 again (with the app's binding id, so that
#: a keymap moving F1 moves it here too): it lists the box's own keys.
MODAL_HELP = Binding("f1,question_mark", "app.toggle_help", "key.help", id="app.help", show=False)


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; y/enter say yes, n/escape say no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        MODAL_HELP,
        Binding("y", "answer(True)", "key.yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "key.no", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question
        self.settled = False  # the question no longer stands: any answer closes it
        localize_bindings(self)

    def compose(self) -> ComposeResult:
        with Grid(id="confirm"):
            yield Label(self.question, id="confirm-question")
            key = cast("PasswebApp", self.app).key_label
            yield Button(t("confirm.yes", key=key("confirm.yes")), id="yes", variant="error")
            yield Button(t("confirm.no", key=key("confirm.no")), id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def settle(self, notice: str) -> None:
        """What the question was about has gone (the run it would cancel ended): it turns
        into this notice, which the next answer closes as a no. It stays until then, so
        a key meant as the answer is not taken by the screen below (where `y` would
        switch the dry run, say)."""
        self.settled = True
        self.query_one("#confirm-question", Label).update(
            f"{notice}\n{t('confirm.settled', yes=self._key('confirm.yes'), no=self._key('confirm.no'))}"
        )
        self.query_one("#yes", Button).display = False
        ok = self.query_one("#no", Button)
        ok.label = t("confirm.ok")
        ok.focus()

    def _key(self, binding_id: str) -> str:
        return cast("PasswebApp", self.app).key_label(binding_id)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes" and not self.settled)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes and not self.settled)
