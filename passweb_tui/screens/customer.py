"""The web customer of an order that the ERP has not taken yet: correct the details it
refused, or bind the customer to one the ERP already has. The engine checks both as
`passweb-tui orders customer` does; this form only gathers what the operator typed."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static
from textual.worker import Worker, WorkerState

from passweb_tui.engine.orders.api import CustomerNotChanged, OrderNotFound
from passweb_tui.engine.orders.intake import ERP_CUSTOMER_FIELDS, OrderInvalid
from passweb_tui.engine.orders.push import customer_subject, error_reason
from passweb_tui.engine.store import StoreError
from passweb_tui.i18n import engine_text, t
from passweb_tui.screens.base import (
    MODAL_HELP,
    ConfirmScreen,
    OrderedButton,
    OrderedInput,
    after_typing,
    localize_bindings,
)

#: the details the form shows, in the order the ERP's customer record has them
DETAILS = tuple(ERP_CUSTOMER_FIELDS)
#: what the engine raises for a refused change: said in the form, which stays open
REFUSALS = (OrderInvalid, CustomerNotChanged, OrderNotFound, StoreError)


def changed_details(before: dict[str, Any], typed: dict[str, str]) -> dict[str, str]:
    """The details the operator changed (spaces around a value do not count); an
    emptied field is a change to nothing, which the engine takes as clearing it."""
    return {k: v.strip() for k, v in typed.items() if v.strip() != str(before.get(k) or "").strip()}


class CustomerScreen(ModalScreen[str | None]):
    """Correct or bind the web customer of one order; dismissed with what was done (for
    a notice), or None when closed with nothing done."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "key.save", id="customer.save", priority=True),
        Binding("ctrl+b", "bind", "key.bind", id="customer.bind", priority=True),
        Binding("escape", "close", "key.close", id="customer.close"),
        MODAL_HELP,
    ]

    def __init__(self, order_id: str, customer: dict[str, Any]) -> None:
        super().__init__()
        self.order_id = order_id
        self.customer = customer
        self.busy = False
        self._submitted: tuple[str, str] | None = None  # the field enter was pressed in
        localize_bindings(self)

    def _key(self, binding_id: str) -> str:
        return cast(Any, self.app).key_label(binding_id)

    def compose(self) -> ComposeResult:
        with Vertical(id="customer"):
            yield Label(t("customer.title", order=self.order_id), id="customer-title")
            intro = Text(t("customer.intro"))
            if self.customer.get("last_error"):
                intro.append(f"\n{t('orders.last_error')}: ", style="bold red")
                # the form is about this customer: the error need not name it again
                subject = customer_subject(self.customer.get("name"), self.customer["id"])
                intro.append(engine_text(error_reason(str(self.customer["last_error"]), subject)))
            yield Static(intro, id="customer-intro")
            with Grid(id="customer-form"):
                for name in DETAILS:
                    yield Label(t(f"customer.{name}"))
                    yield OrderedInput(
                        str(self.customer.get(name) or ""), id=f"customer-{name}", compact=True
                    )
                yield Label(t("customer.erp_code"))
                yield OrderedInput(
                    "",
                    placeholder=t("customer.erp_code_hint"),
                    id="customer-erp_code",
                    compact=True,
                    max_length=20,
                )
            yield Static("", id="customer-result")
            with Horizontal(id="customer-buttons"):
                yield OrderedButton(
                    t("customer.save", key=self._key("customer.save")),
                    id="customer-save",
                    variant="primary",
                    compact=True,
                )
                yield OrderedButton(
                    t("customer.bind", key=self._key("customer.bind")),
                    id="customer-bind",
                    compact=True,
                )
                yield OrderedButton(
                    t("customer.close", key=self._key("customer.close")),
                    id="customer-close",
                    compact=True,
                )
        yield Footer()  # this form's keys, not those of the screen beneath

    def on_mount(self) -> None:
        # the detail the ERP refused, where the error names it; else the first one
        error = str(self.customer.get("last_error") or "")
        named = [d for d in DETAILS if f"customer.{d}" in error or ERP_CUSTOMER_FIELDS[d] in error]
        self.query_one(f"#customer-{named[0] if named else 'name'}", Input).focus()

    def typed(self) -> dict[str, str]:
        values = {name: self.query_one(f"#customer-{name}", Input).value for name in DETAILS}
        # the field enter was pressed in, as it was then: keys typed after enter in the
        # same burst ("00199", enter, "7") may have reached it since
        if self._submitted is not None:
            name, value = self._submitted
            if name in values:
                values[name] = value
        return values

    def say(self, text: str, style: str = "") -> None:
        self.query_one("#customer-result", Static).update(Text(text, style=style))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        {
            "customer-save": self.action_save,
            "customer-bind": self.action_bind,
        }.get(event.button.id or "", self.action_close)()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # enter in the ERP code binds; in a detail, it saves: what the fields held at
        # the enter (the field reads the keys before it first, then says it was pressed)
        event.stop()
        name = (event.input.id or "").removeprefix("customer-")
        self._submitted = (name, event.value)
        try:
            if name == "erp_code":
                self._bind()
            else:
                self._save()
        finally:
            self._submitted = None

    def action_close(self) -> None:
        """Close the form; corrections typed and not saved are asked about first (the
        operator may have typed what the ERP asked for and reached for esc)."""
        if self.busy:
            return
        changes = changed_details(self.customer, self.typed())
        if not changes:
            self.dismiss(None)
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.dismiss(None)

        labels = [t(f"customer.{name}", default=name) for name in changes]
        question = t("customer.discard_question", details=", ".join(labels))
        self.app.push_screen(ConfirmScreen(question), answer)

    def action_save(self) -> None:
        after_typing(self, self._save)

    def _save(self) -> None:
        if self.busy:
            return
        changes = changed_details(self.customer, self.typed())
        if not changes:
            self.say(t("customer.unchanged"), "yellow")
            return
        orders = self._orders()
        order_id = self.order_id
        self._start(
            t("customer.saving"), "customer-save", lambda: orders.mend_customer(order_id, changes)
        )

    def action_bind(self) -> None:
        after_typing(self, self._bind)

    def _bind(self) -> None:
        if self.busy:
            return
        code = self.query_one("#customer-erp_code", Input).value.strip()
        if self._submitted is not None and self._submitted[0] == "erp_code":
            code = self._submitted[1].strip()
        if not code:
            self.say(t("customer.no_code"), "yellow")
            self.query_one("#customer-erp_code", Input).focus()
            return
        if changed_details(self.customer, self.typed()):
            # binding takes the ERP customer as it is: typed corrections would be lost
            self.say(t("customer.bind_or_save", save=self._key("customer.save")), "yellow")
            return
        orders = self._orders()
        engine = cast(Any, self.app).engine
        # the ERP's customer is read and shown first: a mistyped code would put the
        # order on another account
        self._start(
            t("customer.binding", code=code),
            "customer-lookup",
            lambda: (code, orders.erp_customer(engine.client(), code)),
        )

    def confirm_bind(self, code: str, record: dict[str, Any] | None) -> None:
        if record is None:
            self.say(t("customer.no_such_erp", code=code), "bold red")
            self.query_one("#customer-erp_code", Input).focus()
            return
        who = " · ".join(
            filter(
                None,
                (
                    str(record.get("ragione_sociale") or "").strip(),
                    record.get("partita_iva") and t("customer.vat", vat=record["partita_iva"]),
                    record.get("codice_fiscale")
                    and t("customer.tax_code_short", code=record["codice_fiscale"]),
                    str(record.get("localita") or "").strip(),
                ),
            )
        )
        orders = self._orders()
        engine = cast(Any, self.app).engine
        order_id = self.order_id

        def answer(yes: bool | None) -> None:
            if yes:
                self._start(
                    t("customer.binding", code=code),
                    "customer-bind",
                    lambda: orders.bind_customer(engine.client(), order_id, code),
                )
            else:
                self.say("")

        question = t("customer.bind_question", order=order_id, code=code, who=who or "-")
        self.app.push_screen(ConfirmScreen(question), answer)

    def _orders(self) -> Any:
        from passweb_tui.screens.orders import orders_of

        return orders_of(self.app)

    def _start(self, notice: str, group: str, work: Any) -> None:
        self.busy = True
        self.say(notice)
        self.run_worker(work, group=group, thread=True, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        group = event.worker.group
        if group not in ("customer-save", "customer-bind", "customer-lookup"):
            return
        if event.state == WorkerState.ERROR:
            self.busy = False
            error = event.worker.error
            self.say(self._refusal(error), "bold red")
        elif event.state == WorkerState.SUCCESS:
            self.busy = False
            if group == "customer-lookup":
                code, record = cast(tuple[str, Any], event.worker.result)
                self.confirm_bind(code, record)
                return
            now = cast(dict[str, Any], event.worker.result)
            if group == "customer-save":
                self.dismiss(t("customer.saved", order=self.order_id))
            else:
                self.dismiss(
                    t("customer.bound", order=self.order_id, code=now.get("erp_code") or "")
                )

    def _refusal(self, error: BaseException | None) -> str:
        """Why nothing was done: the engine's reason, or the ERP's failure by name."""
        if error is None:
            return t("customer.failed", error="?")
        text = str(error) or error.__class__.__name__
        if isinstance(error, REFUSALS):
            # "customer.tax_code: ..." names the detail as the form's label does
            field, colon, rest = text.partition(": ")
            name = field.removeprefix("customer.")
            if colon and field.startswith("customer.") and name in DETAILS:
                return f"{t('customer.' + name, default=name)}: {rest}"
            return text
        return t("customer.failed", error=text)
