"""`passweb-tui` with no command: the terminal UI on the configured ERP and store.

Without an ERP in the settings it opens the setup screen (or the demo from there);
`--demo` starts the built-in simulator with the demo store and its ERP-side activity.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from typing import Any

from passweb_tui.commands import CliError, Context, ExitCode
from passweb_tui.config import ConfigError, Settings, demo_settings, save_erp_settings
from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.i18n import pick_language, set_language, t

log = logging.getLogger(__name__)

#: How long leaving the UI waits for a cancelled sync to record itself.
CANCEL_WAIT_S = 60.0


def open_engine(settings: Settings, erp: ErpConfig) -> Any:
    """Open the site store (migrating it) for these settings and this ERP."""
    from passweb_tui.engine.facade import Engine, EngineSettings

    return Engine.open(EngineSettings.from_settings(settings, erp))


def setup_values(settings: Settings) -> dict[str, str]:
    """What the settings already say of the ERP, for the setup screen to start with (never
    the password: it is typed, then tested)."""
    return {
        "url": settings.erp_url or "",
        "user": settings.erp_user or "",
        "azienda": settings.azienda or "",
        "anno": str(settings.anno or ""),
        "ca_file": settings.ca_file or "",
    }


def erp_label(erp: ErpConfig) -> str:
    return f"{erp.base_url} {erp.user}@{erp.azienda}"


class UiResources:
    """What the UI opened and must close: the engine, the demo ERP and its activity."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.engine: Any = None
        self.demo_erp: Any = None
        self.activity: Any = None
        self.shopper: Any = None
        self.closed = False

    def start_activity(self, erp: ErpConfig) -> None:
        from passweb_tui.demo_activity import DemoActivity

        self.activity = DemoActivity(
            erp.base_url,
            user=erp.user,
            password=erp.password,
            azienda=erp.azienda,
            anno=erp.anno,
        ).start()
        # and web orders placed now and then on the site, from its own catalogue; one
        # new private customer in four with a tax code the ERP refuses, to mend with `C`
        from passweb_tui.engine.orders.shopper import Shopper

        # sent to the demo ERP as they are placed, as a site sends them at checkout
        self.shopper = Shopper(
            self.engine.store,
            every_s=(15.0, 45.0),
            mistakes=0.25,
            checkout=self.engine.push_orders,
        )
        self.shopper.start()

    def open_configured(self, settings: Settings) -> tuple[Any, str]:
        erp = self.ctx.erp_config() if settings.demo else settings.erp_config()
        self.engine = open_engine(settings, erp)
        if settings.demo:
            self.start_activity(erp)
        return self.engine, erp_label(erp)

    def connect(self, how: str, values: dict[str, Any]) -> tuple[Any, str, str | None]:
        """Called by the setup screen (in a worker thread): save and open, or the demo.
        Returns the engine, the ERP's label, and what kept the ERP from answering the
        check before the settings were saved (None when it answered)."""
        settings = self.ctx.settings
        if how == "demo":
            from passweb_tui.demo import start_demo_erp

            # as --demo: never the configured store, ERP, mail or quota (the demo's
            # shopper places orders: they must not reach a real store, or a real ERP)
            demo = demo_settings(settings)
            if self.demo_erp is None:  # asked twice (a repeated key): the same demo ERP
                self.demo_erp = start_demo_erp(demo.site_data_dir)
            erp = self.demo_erp.erp_config(demo)
            self.engine = open_engine(demo, erp)
            self.start_activity(erp)
            return self.engine, erp_label(erp), None
        # credentials the ERP refuses are not saved: the next start would open on them,
        # and log in with them again and again (the ERP locks a user after a few); nor
        # an address where no Mexal WebAPI answers (a 404 for its installation data, a
        # web page) or whose certificate or CA file is refused: a setting to correct,
        # which trying again does not mend. An ERP that does not answer now (down,
        # unreachable, too busy, a reply cut short) may be set up all the same, and the
        # screen that opens says so.
        from passweb_tui.engine.erp.errors import AuthError, ContextMissingError
        from passweb_tui.screens.setup import NotSaved, test_connection

        unchecked: str | None = None
        try:
            test_connection(values)
        except (AuthError, ContextMissingError) as exc:
            raise NotSaved(str(exc)) from None
        except Exception as exc:
            wrong = answered_otherwise(exc, values["url"])
            if wrong is not None:
                raise NotSaved(wrong) from None
            unchecked = str(exc) or exc.__class__.__name__
        if unchecked is not None:
            log.info("the ERP did not answer the setup's check; saved all the same: %s", unchecked)
        # where this site reads them: [sites.NAME.erp] under --site NAME, else [erp]; a
        # section that cannot be changed in place is refused (ConfigError, shown as is)
        save_erp_settings(
            {
                "url": values["url"],
                "user": values["user"],
                "password": values["password"],
                "azienda": values["azienda"],
                "anno": values.get("anno"),
                "ca_file": values.get("ca_file"),
            },
            settings.source,
            site=settings.site,
        )
        configured = replace(
            settings,
            erp_url=values["url"],
            erp_user=values["user"],
            erp_password=values["password"],
            azienda=values["azienda"],
            anno=values.get("anno") or settings.anno,
            ca_file=values.get("ca_file") or settings.ca_file,
        )
        erp = configured.erp_config()
        self.engine = open_engine(configured, erp)
        return self.engine, erp_label(erp), unchecked

    def close(self, app: Any) -> None:
        """Leave nothing running: a sync still going is cancelled and waited for."""
        if self.closed:
            return
        self.closed = True
        handle = getattr(getattr(app, "sync", None), "handle", None)
        if handle is not None and not handle.done:
            handle.cancel()
            try:
                handle.wait(CANCEL_WAIT_S)
            except Exception:
                log.exception("the cancelled sync did not end cleanly")
        if self.activity is not None:
            self.activity.stop()
        if self.shopper is not None:
            self.shopper.stop()
        engine = self.engine or getattr(app, "engine", None)
        if engine is not None:
            engine.close()
        if self.demo_erp is not None:
            self.demo_erp.stop()


def answered_otherwise(exc: Exception, url: str) -> str | None:
    """What the setup's check met at `url`, said, when it is no Mexal WebAPI's answer or
    a setting to correct (saved, it would only fail again): an answer of another kind
    (a web page, JSON of another shape, a redirect, a proxy's demand, no HTTP at all), a
    TLS server spoken to in plain HTTP, a certificate refused. None for what may pass (no
    answer yet: the ERP down or busy, a timeout, a reply cut short)."""
    from passweb_tui.engine.erp.errors import (
        ErpConnectionError,
        ErpError,
        MalformedResponseError,
        NotFoundError,
    )
    from passweb_tui.engine.erp.settings import ErpConfigError

    said = str(exc) or exc.__class__.__name__
    if isinstance(exc, NotFoundError | ErpConfigError):  # (the form checks the latter)
        return said
    if isinstance(exc, MalformedResponseError):
        return None if exc.undecodable else said
    if isinstance(exc, ErpConnectionError):
        if not exc.retryable or exc.not_http:
            return said
        if url.startswith("http://") and "without sending a response" in said and speaks_tls(url):
            lost = said.split("; if the ERP serves HTTPS")[0]
            return f"{lost}; it serves HTTPS on that port: the URL should start with https://"
        return None
    if (
        type(exc) is ErpError
        and exc.status is not None
        and (300 <= exc.status < 400 or exc.status == 407)
    ):
        return said  # a redirect (to a login page), a proxy's demand for its own login
    return None


def speaks_tls(url: str, timeout_s: float = 3.0) -> bool:
    """Whether a TLS handshake succeeds at the host and port of an http:// URL (a TLS
    server closes a plain HTTP request without a word, as a dropped connection does)."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname:
        return False
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # whether it speaks TLS, not whom to trust
    try:
        raw = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout_s)
    except (OSError, ValueError):
        return False
    try:
        with context.wrap_socket(raw, server_hostname=parts.hostname):
            return True
    except (OSError, ValueError):
        return False
    finally:
        raw.close()


def run(args: argparse.Namespace, ctx: Context) -> int:
    settings = ctx.settings
    try:
        set_language(pick_language(settings.language))
    except ValueError as exc:
        raise CliError(f"{settings.where('language')}: {exc}", ExitCode.USAGE) from None
    from passweb_tui.app import create_app

    resources = UiResources(ctx)
    engine: Any = None
    label = ""
    if settings.demo or settings.erp_url:
        try:
            engine, label = resources.open_configured(settings)
        except ConfigError as exc:
            raise CliError(f"configuration error: {exc}", ExitCode.USAGE) from None
    app = create_app(
        engine,
        connect=resources.connect,
        keymap=settings.keymap,
        erp_label=label,
        warning=t("warn.tls_off") if settings.tls_warning else None,
        setup_values=setup_values(settings),
    )
    app.cleanup = lambda: resources.close(app)
    try:
        code = app.run()
    finally:
        resources.close(app)
    if app.return_code:  # the app ended on an error (Textual has shown it): not a success
        return int(ExitCode.FAILED)
    return int(code or 0)
