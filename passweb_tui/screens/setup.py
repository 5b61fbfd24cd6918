"""First start without an ERP: enter its address and credentials, test them, save them
(owner-only config file; the password is never shown again) or start the demo instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static
from textual.worker import Worker, WorkerState

from passweb_tui.i18n import engine_text, t
from passweb_tui.screens.base import (
    OrderedButton,
    OrderedInput,
    after_typing,
    localize_bindings,
    show_app_keys,
)

FIELDS = [
    ("url", "setup.url", "https://erp.example.com/webapi"),
    ("user", "setup.user", ""),
    ("password", "setup.password", ""),
    ("azienda", "setup.azienda", ""),
    ("anno", "setup.anno", ""),
    ("ca_file", "setup.ca_file", ""),
]


class NotSaved(ValueError):
    """Settings the ERP refused, so not saved: `reason` is the ERP's refusal."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason} (nothing was saved)")
        self.reason = reason


class SetupError(ValueError):
    """A value of the setup form is wrong; the message names the field."""


def validate(values: dict[str, str]) -> dict[str, Any]:
    """The form's values checked and typed, or SetupError naming the first bad field."""
    from passweb_tui.engine.erp.settings import ErpConfig, ErpConfigError, check_url

    url = values.get("url", "").strip().rstrip("/")
    if not url:
        raise SetupError(t("setup.err.url_missing"))
    if "@" in url:  # a password in it: said without repeating the address
        try:
            check_url(url)
        except ErpConfigError as exc:
            raise SetupError(t("setup.err.url_invalid", why=str(exc))) from None
    if not url.startswith(("http://", "https://")) or not url.endswith("/webapi"):
        raise SetupError(t("setup.err.url_form", url=url))
    try:
        check_url(url)  # as the settings check it once saved (a port past 65535)
    except ErpConfigError as exc:
        raise SetupError(t("setup.err.url_invalid", why=str(exc))) from None
    user = values.get("user", "").strip()
    if not user:
        raise SetupError(t("setup.err.user_missing"))
    if not values.get("password"):
        raise SetupError(t("setup.err.password_missing"))
    azienda = values.get("azienda", "").strip()
    if not azienda:
        raise SetupError(t("setup.err.azienda_missing"))
    anno_text = values.get("anno", "").strip()
    anno: int | None = None
    if anno_text:
        if not anno_text.isdigit() or not 1900 <= int(anno_text) <= 2999:
            raise SetupError(t("setup.err.anno", anno=anno_text))
        anno = int(anno_text)
    ca_file = values.get("ca_file", "").strip() or None
    if ca_file and not Path(ca_file).expanduser().is_file():
        raise SetupError(t("setup.err.ca_file", path=ca_file))
    try:  # every other check the settings make once saved (a pasted tab in azienda)
        ErpConfig(base_url=url, user=user, password=values["password"], azienda=azienda)
    except ErpConfigError as exc:
        raise SetupError(t("setup.err.invalid", why=str(exc))) from None
    return {
        "url": url,
        "user": user,
        "password": values["password"],
        "azienda": azienda,
        "anno": anno,
        "ca_file": str(Path(ca_file).expanduser()) if ca_file else None,
    }


def test_connection(values: dict[str, Any]) -> dict[str, Any]:
    """Reach the ERP and log in with the form's values (runs in a worker thread)."""
    from passweb_tui.engine.erp.client import MexalClient
    from passweb_tui.engine.erp.settings import ErpConfig

    config = ErpConfig(
        base_url=values["url"],
        user=values["user"],
        password=values["password"],
        azienda=values["azienda"],
        anno=values["anno"],
        ca_file=values["ca_file"],
        max_retries=1,
        read_timeout_s=30.0,
    )
    with MexalClient(config) as client:
        return client.check()


class SetupScreen(Screen[None]):
    """The ERP's address and credentials, or the demo."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "test", "key.test_connection", id="setup.test", priority=True),
        Binding("ctrl+s", "save", "key.save", id="setup.save", priority=True),
        Binding("ctrl+d", "demo", "key.demo", id="setup.demo", priority=True),
    ]

    def __init__(self, values: dict[str, str] | None = None) -> None:
        """`values`: what the settings already hold (never the password), filled in."""
        super().__init__(id="setup")
        self.initial = {k: v for k, v in (values or {}).items() if k != "password" and v}
        localize_bindings(self)

    def compose(self) -> ComposeResult:
        show_app_keys(self, ["app.quit"])  # before an ERP is set up, leaving is the other way
        with VerticalScroll(id="setup-body"):
            yield Label(t("setup.title"), id="setup-title")
            yield Static(t("setup.intro"), id="setup-intro")
            with Grid(id="setup-form"):
                for name, label, placeholder in FIELDS:
                    yield Label(t(label))
                    yield OrderedInput(
                        self.initial.get(name, ""),
                        placeholder=placeholder,
                        password=name == "password",
                        id=f"setup-{name}",
                        type="integer" if name == "anno" else "text",
                        compact=True,
                    )
            with Horizontal(id="setup-buttons"):
                yield OrderedButton(t("setup.test"), id="setup-test", compact=True)
                yield OrderedButton(
                    t("setup.save"), id="setup-save", variant="primary", compact=True
                )
                yield OrderedButton(
                    t("setup.demo"), id="setup-demo", variant="success", compact=True
                )
        # outside the scrolling form, just above the footer: on a short terminal the
        # outcome of Test or Save is in view whatever part of the form is
        yield Static(id="setup-result")
        yield Footer()

    def on_mount(self) -> None:
        # the first field still to fill in
        empty = [n for n, _, _ in FIELDS if not self.initial.get(n) and n != "ca_file"]
        self.query_one(f"#setup-{empty[0] if empty else 'url'}", Input).focus()

    def form(self) -> dict[str, str]:
        return {name: self.query_one(f"#setup-{name}", Input).value for name, _, _ in FIELDS}

    def say(self, text: str, style: str = "") -> None:
        self.query_one("#setup-result", Static).update(Text(text, style=style))

    def checked(self) -> dict[str, Any] | None:
        try:
            return validate(self.form())
        except SetupError as exc:
            self.say(str(exc), "bold red")
            return None

    def on_button_pressed(self, event: Button.Pressed) -> None:
        action = {"setup-test": self.action_test, "setup-save": self.action_save}.get(
            event.button.id or "", self.action_demo
        )
        action()

    def action_test(self) -> None:
        after_typing(self, self._test)

    def _test(self) -> None:
        values = self.checked()
        if values is None:
            return
        self.say(t("setup.testing"))
        self.run_worker(
            lambda: test_connection(values), group="setup-test", thread=True, exit_on_error=False
        )

    def action_save(self) -> None:
        after_typing(self, self._save)

    def _save(self) -> None:
        values = self.checked()
        if values is None:
            return
        connect = getattr(self.app, "connect", None)
        if connect is None:
            self.say(t("setup.cannot_connect"), "bold red")
            return
        self.say(t("setup.saving"))
        self.run_worker(
            lambda: connect("config", values), group="setup-open", thread=True, exit_on_error=False
        )

    def action_demo(self) -> None:
        connect = getattr(self.app, "connect", None)
        if connect is None:
            self.say(t("setup.cannot_connect"), "bold red")
            return
        self.say(t("setup.starting_demo"))
        self.run_worker(
            lambda: connect("demo", {}), group="setup-open", thread=True, exit_on_error=False
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        group = event.worker.group
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            if isinstance(error, NotSaved):
                said = f"{engine_text(error.reason)} {t('setup.not_saved')}"
            else:
                said = engine_text(f"{error}") or error.__class__.__name__
            self.say(t("setup.failed", error=said), "bold red")
        elif event.state == WorkerState.SUCCESS and group == "setup-test":
            info = cast(Any, event.worker.result) or {}
            self.say(
                t(
                    "setup.test_ok",
                    version=info.get("version") or "?",
                    azienda=info.get("azienda") or "",
                    anno=info.get("anno") or "",
                ),
                "green",
            )
        elif event.state == WorkerState.SUCCESS and group == "setup-open":
            # (engine, label), and what kept the ERP from answering the check, if anything
            engine, label, *unchecked = cast(Any, event.worker.result)
            self.app.connected(engine, label)  # type: ignore[attr-defined]
            if unchecked and unchecked[0]:
                self.app.notify(
                    t("setup.saved_unchecked", error=engine_text(unchecked[0])),
                    severity="warning",
                    timeout=20,
                )
