"""The Textual app: screens as modes, global keys, the command palette, and the one
sync launched from the UI (run by the engine in its own thread, watched through messages).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, cast

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, get_current_worker

from passweb_tui.config import make_private_folder, screenshot_dir
from passweb_tui.i18n import engine_notes, engine_text, language, t
from passweb_tui.screens.base import BaseScreen, ConfirmScreen, kind_label, localize_bindings
from passweb_tui.screens.sync_state import SyncMonitor
from passweb_tui.textsafe import guard_rendered_text

log = logging.getLogger(__name__)

#: Modes of the app: (mode name, module under passweb_tui.screens, screen class).
SCREENS: list[tuple[str, str, str]] = [
    ("dashboard", "dashboard", "DashboardScreen"),
    ("sync", "sync", "SyncScreen"),
    ("changes", "changes", "ChangesScreen"),
    ("categories", "categories", "CategoriesScreen"),
    ("catalogue", "catalogue", "CatalogueScreen"),
    ("runs", "runs", "RunsScreen"),
    ("fields", "fields", "FieldsScreen"),
]
#: Web orders get their screens with the orders engine; until the module exists the
#: mode is not registered and the palette says so instead of showing an empty screen.
ORDERS_SCREEN = ("orders", "orders", "OrdersScreen")

#: keys whose names Italian spells its own way (see PasswebApp.get_key_display)
_ITALIAN_KEYS = {"space": "spazio", "delete": "canc"}

#: Palette entries whose English text scripts rely on (CONTRACTS.md).
PALETTE_GOTO = ["dashboard", "orders", "changes", "categories", "catalogue", "runs", "fields"]
SYNC_KINDS = ["total", "changed", "partial"]

#: How long quitting waits for a cancelled sync to record itself as cancelled.
CANCEL_GRACE_S = 60.0
#: what a run cancelled because the UI was stopped records as its error (as `sync` does)
SIGTERM_REASON = "cancelled by SIGTERM"
HANGUP_REASON = "cancelled by SIGHUP (the terminal hung up)"
#: The interpreter's thread switch interval while the app runs. The sync's thread is busy
#: in Python; a short interval hands the UI thread the interpreter sooner, which took the
#: slowest key response during a Totale from ~0.25 s to ~0.015 s (bench/bench_ui.py).
UI_SWITCH_INTERVAL_S = 0.001


class SyncUpdated(Message):
    """The running sync moved on; a flood of these collapses into the latest."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SyncUpdated)


class SyncFinished(Message):
    """The sync launched from the UI ended (any outcome)."""


class SyncRefused(Message):
    """The engine refused to launch a sync; `reason` says why, in its words."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


def orders_available() -> bool:
    return importlib.util.find_spec(f"passweb_tui.screens.{ORDERS_SCREEN[1]}") is not None


class PasswebApp(App[int]):
    """The terminal UI of passweb-tui."""

    CSS_PATH = "app.tcss"
    TITLE = "passweb-tui"
    ENABLE_COMMAND_PALETTE = True
    # narrow terminals (80 columns over SSH) stack panels that sit side by side when wide
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    # Only F1 shows in every footer: at 80 columns the screen's own keys need the room.
    # The dashboard and the setup screen show some of the others (FOOTER_APP_KEYS); all
    # are listed by F1 and offered by the command palette.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "goto('dashboard')", "nav.dashboard", id="goto.dashboard", show=False),
        Binding("s", "goto('sync')", "nav.sync", id="goto.sync", show=False),
        Binding("c", "goto('changes')", "nav.changes", id="goto.changes", show=False),
        Binding("g", "goto('categories')", "nav.categories", id="goto.categories", show=False),
        Binding("a", "goto('catalogue')", "nav.catalogue", id="goto.catalogue", show=False),
        Binding("o", "goto('orders')", "nav.orders", id="goto.orders", show=False),
        Binding("r", "goto('runs')", "nav.runs", id="goto.runs", show=False),
        Binding("f", "goto('fields')", "nav.fields", id="goto.fields", show=False),
        Binding("f1,question_mark", "toggle_help", "key.help", id="app.help"),
        Binding("ctrl+q", "quit", "key.quit", id="app.quit", priority=True, show=False),
    ]

    def __init__(
        self,
        engine: Any = None,
        *,
        connect: Callable[[str, dict[str, Any]], Any] | None = None,
        keymap: dict[str, str] | None = None,
        stable: bool = False,
        clock: Callable[[], dt.datetime] | None = None,
        erp_label: str = "",
        poll_s: float = 5.0,
        warning: str | None = None,
        setup_values: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        # values from the ERP and the site never drive the terminal (see textsafe)
        guard_rendered_text()
        localize_bindings(self)
        self.engine = engine
        self.connect = connect
        self.stable = stable  # masks clock times and durations (snapshot tests)
        self.clock = clock or dt.datetime.now
        self.erp_label = erp_label
        self.poll_s = poll_s
        #: shown in the top bar of every screen (e.g. TLS verification turned off)
        self.warning = warning
        #: what the settings already say of the ERP, to start the setup screen's form with
        self.setup_values = dict(setup_values or {})
        self.sync = SyncMonitor()
        #: the newest finished run the dashboard has read (here or from elsewhere): the
        #: top bar's badge gives way to it when it is later than this app's own run
        self.newest_run_seen: int | None = None
        self.marked: dict[str, set[str]] = {}  # entity -> codes marked in the catalogue
        self._keymap_wanted = dict(keymap or {})
        self._declared_keys: dict[str, str] | None = None
        self._exiting = False
        self._previous_sighup: Any = None
        self._previous_sigterm: Any = None
        self._sigterm_seen = False
        self._switch_interval = sys.getswitchinterval()
        #: closes what the app was given (engine, demo ERP) before a hard exit on SIGHUP
        self.cleanup: Callable[[], None] | None = None
        #: set whenever the sync launched from here ends or is refused (tests wait on it)
        self.sync_ended = asyncio.Event()
        self._cancel_dialog: ConfirmScreen | None = None  # "cancel the sync?" while asked
        self._quit_dialog: ConfirmScreen | None = None  # "cancel it and quit?" while asked
        for mode, module, cls in self._screens():
            self.add_mode(mode, self._screen_factory(module, cls))

    # -- construction ---------------------------------------------------------------

    @staticmethod
    def _screens() -> list[tuple[str, str, str]]:
        return [*SCREENS, ORDERS_SCREEN] if orders_available() else list(SCREENS)

    @staticmethod
    def _screen_factory(module: str, cls: str) -> Callable[[], Screen[Any]]:
        def build() -> Screen[Any]:
            mod = importlib.import_module(f"passweb_tui.screens.{module}")
            return getattr(mod, cls)()  # type: ignore[no-any-return]

        return build

    def now(self) -> dt.datetime:
        return self.clock()

    def on_mount(self) -> None:
        self._apply_keymap()
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(UI_SWITCH_INTERVAL_S)
        if not self.is_headless and threading.current_thread() is threading.main_thread():
            # a plain signal handler, not the event loop's: when the terminal is gone the
            # loop may be stuck writing to it and would never run a loop callback
            self._previous_sighup = signal.signal(signal.SIGHUP, self._on_sighup)
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        if self.engine is None:
            from passweb_tui.screens.setup import SetupScreen

            self.push_screen(SetupScreen(self.setup_values))
        else:
            self.switch_mode("dashboard")

    def on_unmount(self) -> None:
        sys.setswitchinterval(self._switch_interval)
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def _apply_keymap(self) -> None:
        """Apply [ui] keymap from the config file; unknown binding ids are named."""
        if not self._keymap_wanted:
            return
        known = self.binding_ids()
        unknown = sorted(set(self._keymap_wanted) - known)
        if unknown:
            # only the bad ids and the nearest good ones: the whole list (some 60 ids)
            # made a toast taller than 24 rows, its first line off the screen
            near = dict.fromkeys(
                m for bad in unknown for m in difflib.get_close_matches(bad, sorted(known), n=1)
            )
            hint = t("keymap.did_you_mean", ids=", ".join(near)) if near else ""
            self.notify(
                t("keymap.unknown", ids=", ".join(unknown), hint=hint),
                severity="warning",
                timeout=15,
                markup=False,  # "[ui]" is not a style
            )
        self.set_keymap({k: v for k, v in self._keymap_wanted.items() if k in known})

    @classmethod
    def _keymap_classes(cls) -> list[type[Any]]:
        """The app's own classes that declare bindings."""
        from passweb_tui.screens.base import KeyTable
        from passweb_tui.screens.keys import KeysScreen
        from passweb_tui.screens.setup import SetupScreen

        classes: list[type[Any]] = [
            cls,
            ConfirmScreen,
            KeyTable,
            BaseScreen,
            SetupScreen,
            KeysScreen,
        ]
        for _mode, module, name in cls._screens():
            mod = importlib.import_module(f"passweb_tui.screens.{module}")
            classes.append(getattr(mod, name))
            classes.extend(getattr(mod, "KEYMAP_CLASSES", []))
        for mod_name in ("changes", "runs", "record"):
            mod = importlib.import_module(f"passweb_tui.screens.{mod_name}")
            classes.extend(getattr(mod, "KEYMAP_CLASSES", []))
        return classes

    @classmethod
    def declared_keys(cls) -> dict[str, str]:
        """The keys each binding id has when no keymap moves it (the keymap's
        vocabulary); `doctor` checks [ui] keymap against it without starting the app."""
        keys: dict[str, str] = {}
        for klass in cls._keymap_classes():
            for base in klass.__mro__:
                for binding in base.__dict__.get("BINDINGS", []):
                    if isinstance(binding, Binding) and binding.id:
                        keys.setdefault(binding.id, binding.key)
        return keys

    def binding_ids(self) -> set[str]:
        """Every binding id the app and its screens declare (the keymap's vocabulary)."""
        return set(self._default_keys())

    def _default_keys(self) -> dict[str, str]:
        """The keys each binding id has when no keymap moves it."""
        if self._declared_keys is None:
            self._declared_keys = self.declared_keys()
        return self._declared_keys

    def get_key_display(self, binding: Binding) -> str:
        """A key as the footer, F1 and the hints name it: in Italian, the space bar is
        "spazio" ("space segna" mixed two languages in one hint)."""
        shown = super().get_key_display(binding)
        if language() == "it":
            return _ITALIAN_KEYS.get(shown, shown)
        return shown

    def key_label(self, binding_id: str) -> str:
        """The key of a binding as the footer shows it, after [ui] keymap: hints in
        labels and messages name this key, so a remapped key is never misnamed."""
        keys = self._keymap.get(binding_id) or self._default_keys().get(binding_id, "")
        first = keys.split(",")[0].strip()
        return self.get_key_display(Binding(first, "")) if first else binding_id

    # -- navigation --------------------------------------------------------------

    def action_goto(self, mode: str) -> None:
        if self.engine is None:
            self.notify(t("setup.needed"), severity="warning")
            return
        if mode not in self._modes:
            self.notify(t(f"unavailable.{mode}", default=t("unavailable.generic")), timeout=6)
            return
        if self.current_mode != mode:
            self.switch_mode(mode)
        # A screen's key opens its main view: a detail opened from it earlier (a run, an
        # order, a record's history) is closed, not shown again as if the key had been
        # misread. The main view keeps its own state (view, search, cursor).
        while len(self.screen_stack) > 1 and isinstance(self.screen, BaseScreen):
            self.pop_screen()

    def action_toggle_help(self) -> None:
        """F1: the keys that work here, in a box of their own (it closes with F1 too)."""
        from passweb_tui.screens.keys import KeysScreen

        if isinstance(self.screen, KeysScreen):
            self.screen.dismiss(None)
        else:
            self.push_screen(KeysScreen(self.screen))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Palette entries: each starts with its English text, a translation may follow."""

        def title(english: str, key: str) -> str:
            local = t(key)
            return english if language() == "en" or local == english else f"{english} - {local}"

        for kind in SYNC_KINDS:
            yield SystemCommand(
                title(f"Sync: {kind}", f"palette.sync.{kind}"),
                t(f"palette.sync.{kind}.help"),
                lambda kind=kind: self.launch_from_palette(kind),  # type: ignore[misc]
            )
        for mode in PALETTE_GOTO:
            available = mode in self._modes
            yield SystemCommand(
                title(f"Go to: {mode}", f"palette.goto.{mode}"),
                t(f"palette.goto.{mode}.help") if available else t(f"unavailable.{mode}"),
                lambda mode=mode: self.action_goto(mode),  # type: ignore[misc]
            )
        yield SystemCommand(
            title("Sync: cancel", "palette.sync.cancel"),
            t("palette.sync.cancel.help"),
            self.action_cancel_sync,
        )
        # Textual's own entries, in the UI's language; Keys opens this app's F1 box
        yield SystemCommand(title("Keys", "palette.keys"), t("palette.keys.help"), self.action_keys)
        if screen.maximized is not None:
            yield SystemCommand(
                title("Minimize", "palette.minimize"),
                t("palette.minimize.help"),
                screen.action_minimize,
            )
        elif screen.focused is not None and screen.focused.allow_maximize:
            yield SystemCommand(
                title("Maximize", "palette.maximize"),
                t("palette.maximize.help"),
                screen.action_maximize,
            )
        yield SystemCommand(
            title("Theme", "palette.theme"), t("palette.theme.help"), self.action_change_theme
        )
        yield SystemCommand(
            title("Screenshot", "palette.screenshot"),
            t("palette.screenshot.help", folder=str(screenshot_dir())),
            # once the palette has closed: the picture is of the screen beneath it
            lambda: self.set_timer(0.1, self.save_picture),
        )
        yield SystemCommand(title("Quit", "palette.quit"), t("palette.quit.help"), self.action_quit)

    def action_command_palette(self) -> None:
        """ctrl+p: the palette, its prompt in the UI's language."""
        from textual.command import CommandPalette

        if self.use_command_palette and not CommandPalette.is_open(cast(Any, self)):
            self.push_screen(
                CommandPalette(placeholder=t("palette.placeholder"), id="--command-palette")
            )

    def search_themes(self) -> None:
        """The palette's list of themes, its prompt in the UI's language."""
        from textual.command import CommandPalette
        from textual.theme import ThemeProvider

        self.push_screen(CommandPalette(providers=[ThemeProvider], placeholder=t("palette.themes")))

    def action_keys(self) -> None:
        """The F1 box of the screen beneath the palette (as F1 shows it)."""
        from passweb_tui.screens.keys import KeysScreen

        if not isinstance(self.screen, KeysScreen):
            self.push_screen(KeysScreen(self.screen))

    def save_picture(self) -> None:
        """An SVG picture of the screen in the screenshot folder; says where, or why not."""
        folder = screenshot_dir()
        try:
            make_private_folder(folder)  # a picture shows customers and orders
            saved = self.save_screenshot(path=str(folder))
        except OSError as exc:
            why = exc.strerror or str(exc)
            self.notify(t("screenshot.failed", folder=str(folder), why=why), severity="error")
            return
        self.notify(t("screenshot.saved", path=saved))

    def launch_from_palette(self, kind: str) -> None:
        """TOTAL and CHANGED start at once; PARTIAL opens the launcher to choose a scope."""
        if kind == "partial":
            self.action_goto("sync")
            return
        self.start_sync(kind)
        self.action_goto("sync")

    # -- syncs -----------------------------------------------------------------

    def start_sync(self, kind: str, *, scope: Any = None, dry_run: bool = False) -> bool:
        """Ask the engine to start a run; False (with a message) when it cannot start."""
        if self.engine is None:
            self.notify(t("setup.needed"), severity="warning")
            return False
        if self.sync.running:
            busy = t(
                "sync.busy", cancel=self.key_label("sync.cancel"), sync=self.key_label("goto.sync")
            )
            self.notify(busy, severity="warning")
            return False
        self.sync.begin(kind, dry_run)
        self.sync_ended.clear()
        self.post_message(SyncUpdated())
        self.run_worker(
            lambda: self._sync_thread(kind, scope, dry_run),
            name=f"sync-{kind}",
            group="sync",
            thread=True,
            exit_on_error=False,
        )
        return True

    def _on_progress(self, event: Any) -> None:
        """Called by the engine from its thread: record, then nudge the UI thread."""
        self.sync.feed(event)
        self.post_message(SyncUpdated())

    def _sync_thread(self, kind: str, scope: Any, dry_run: bool) -> None:
        from passweb_tui.engine.facade import LaunchRefused, SyncError, failure_text

        try:
            handle = self.engine.start_run(
                kind,
                scope=scope,
                dry_run=dry_run,
                origin="site",
                on_event=self._on_progress,
                quota=True,  # the monthly quota binds the operator here as on the CLI
            )
        except (LaunchRefused, SyncError) as exc:
            # refused by the lease, or a scope the engine will not run: say why (the lease's
            # holder with its times on this machine's clock, as the screens show times)
            info = getattr(exc, "info", None)
            said = str(exc)
            if info is not None:
                said = f"another TOTAL/CHANGED sync is running: {info.brief()}"
            self.sync.refuse(engine_text(said))
            self.post_message(SyncRefused(engine_text(said)))
            self.post_message(SyncUpdated())
            return
        except Exception as exc:
            log.exception("sync could not start")
            self.sync.finish(error=failure_text(exc))
            self.post_message(SyncFinished())
            return
        self.sync.attach(handle)
        self.post_message(SyncUpdated())
        worker = get_current_worker()
        result = None
        try:
            # bounded waits so the app can still shut down; the run itself goes on
            quiet_since = time.monotonic()
            while result is None and not worker.is_cancelled:
                result = handle.wait(0.25)
                if result is None and handle.done:
                    result = handle.wait(0)
                    break
                if time.monotonic() - quiet_since >= 1.0:
                    # the elapsed time moves on while the ERP is slow or a retry waits
                    quiet_since = time.monotonic()
                    self.post_message(SyncUpdated())
        except Exception as exc:
            self.sync.finish(error=failure_text(exc))
            self.post_message(SyncFinished())
            return
        if worker.is_cancelled and result is None:
            return
        error = getattr(handle, "error", None)
        self.sync.finish(result, failure_text(error) if error else None)
        self.post_message(SyncFinished())

    def shown_screen(self) -> BaseScreen | None:
        """The app's screen in view, also under a dialog open over it."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, BaseScreen):
                return screen
        return None

    def on_sync_updated(self, _message: SyncUpdated) -> None:
        screen = self.shown_screen()
        if screen is not None:
            screen.show_sync(self.sync.snapshot())

    def on_sync_refused(self, message: SyncRefused) -> None:
        self.notify(message.reason, title=t("sync.refused"), severity="error", timeout=12)
        self.sync_ended.set()

    def on_sync_finished(self, _message: SyncFinished) -> None:
        snap = self.sync.snapshot()
        if snap is None:
            self.sync_ended.set()
            return
        dialog = self._cancel_dialog
        if dialog is not None and self.screen is dialog:  # nothing is left to cancel
            dialog.settle(t("sync.ended_while_asked"))
        asked = self._quit_dialog
        if asked is not None and self.screen is asked:
            # the question was whether to cancel the run to quit: it has ended, so there
            # is nothing to cancel; quitting stays the operator's own step
            asked.settle(t("quit.ended_while_asked", key=self.key_label("app.quit")))
        screen = self.shown_screen()
        if screen is not None:
            screen.show_sync(snap)
            screen.sync_finished(snap)
        severity = {"ok": "information", "ok_with_rejects": "warning"}.get(
            snap.status or "", "error"
        )
        text = t(
            "sync.ended",
            kind=kind_label(snap.ran_kind) + (" " + t("sync.dry") if snap.dry_run else ""),
            status=t(f"status.{snap.status or 'failed'}"),
            run=snap.run_id or "-",
        )
        if snap.error:
            text += f"\n{engine_notes(snap.error)}"
        if getattr(screen, "id", None) == "sync":
            self.sync_ended.set()  # the launcher shows the outcome itself
            return
        self.notify(text, severity=severity, timeout=10)  # type: ignore[arg-type]
        self.sync_ended.set()

    def action_cancel_sync(self) -> None:
        """Cancel the running sync, after asking."""
        if not self.sync.running:
            self.notify(t("sync.none_running"))
            return

        def answer(yes: bool | None) -> None:
            self._cancel_dialog = None
            if yes and self.sync.request_cancel():
                self.post_message(SyncUpdated())

        self._cancel_dialog = ConfirmScreen(t("sync.cancel_question"))
        self.push_screen(self._cancel_dialog, answer)

    # -- leaving -----------------------------------------------------------------

    async def action_quit(self) -> None:
        if not self.sync.running:
            self.exit(0, 0)
            return

        def answer(yes: bool | None) -> None:
            self._quit_dialog = None
            if yes:
                self.cancel_and_exit()

        self._quit_dialog = ConfirmScreen(t("quit.sync_running"))
        self.push_screen(self._quit_dialog, answer)

    def cancel_and_exit(self, code: int = 0, reason: str | None = None) -> None:
        """Cancel the running sync, let it record itself as cancelled (`reason`: the
        error recorded; by default, that the operator cancelled it), then exit."""
        if self._exiting:
            return
        self._exiting = True
        self.sync.request_cancel(reason)
        handle = self.sync.handle

        def wait_then_exit() -> None:
            if handle is not None:
                try:
                    handle.wait(CANCEL_GRACE_S)
                except Exception:
                    log.exception("waiting for the cancelled sync failed")
            self.call_from_thread(self.exit, code, code)

        self.run_worker(wait_then_exit, thread=True, group="exit", exit_on_error=False)

    def hangup(self) -> None:
        """Cancel a running sync cleanly and exit, through the app's own shutdown."""
        log.warning("terminal hung up; cancelling any running sync and exiting")
        self.cancel_and_exit(1, HANGUP_REASON)

    def _on_sigterm(self, _signum: int, _frame: Any) -> None:
        """Asked to stop (kill, a service manager, a shutdown) while the terminal is still
        there: a running sync is cancelled and recorded so, then the UI leaves as by its
        own quit, giving the terminal back as it found it. A second SIGTERM while that
        goes on ends the process at once."""
        if self._sigterm_seen:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self._sigterm_seen = True  # an exit already under way (a quit) just goes on
        log.warning("asked to stop (SIGTERM); cancelling any running sync and exiting")
        threading.Thread(
            target=lambda: self.call_from_thread(self.cancel_and_exit, 1, SIGTERM_REASON),
            name="sigterm",
            daemon=True,
        ).start()

    def _on_sighup(self, _signum: int, _frame: Any) -> None:
        threading.Thread(target=self._hangup_without_terminal, name="hangup", daemon=True).start()

    def _hangup_without_terminal(self) -> None:
        """The terminal is gone (SIGHUP): nothing can be drawn any more, so the UI is not
        shut down politely (that writes to the dead terminal and may block forever). The
        sync is cancelled and waited for, so it is recorded as cancelled with nothing
        half-written; what the app was given is closed; then the process ends."""
        log.warning("terminal hung up; cancelling any running sync and exiting")
        try:
            self.sync.request_cancel(HANGUP_REASON)
            handle = self.sync.handle
            if handle is not None:
                handle.wait(CANCEL_GRACE_S)
            if self.cleanup is not None:
                self.cleanup()
        except Exception:
            log.exception("cleaning up after the terminal hung up")
        finally:
            logging.shutdown()
            os._exit(1)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.error is not None and worker.group != "sync":
            self.report_error(worker.name or worker.group, worker.error)

    def report_error(self, what: str, error: BaseException | None) -> None:
        """One place where failures of background work are shown (and logged)."""
        from passweb_tui.engine.facade import failure_text

        log.error("background task %s failed", what, exc_info=error)
        self.notify(
            t(
                "error.background",
                what=what,
                error=engine_text(failure_text(error)) if error else "?",
            ),
            severity="error",
            timeout=10,
        )

    # -- connecting (setup screen) ------------------------------------------------

    def connected(self, engine: Any, erp_label: str) -> None:
        """The setup screen produced an engine: show the app."""
        self.engine = engine
        self.erp_label = erp_label
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.switch_mode("dashboard")


def create_app(engine: Any = None, **options: Any) -> PasswebApp:
    """Build the app around an open engine (None: start on the setup screen)."""
    return PasswebApp(engine, **options)
