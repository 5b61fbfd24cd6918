"""First start against a real simulator: the setup screen tests the connection, saves it
owner-only and opens the store; the demo's ERP-side activity really changes the ERP."""

from __future__ import annotations

import argparse
import os
import random
import stat
import tomllib
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from stub_http import answer_json, answering
from textual.widgets import Input, Static
from textual.worker import WorkerFailed
from ui_screen import workers_done

from passweb_tui.app import create_app
from passweb_tui.commands import Context
from passweb_tui.commands.ui import UiResources
from passweb_tui.config import config_path, load_settings
from passweb_tui.demo_activity import DemoActivity
from passweb_tui.engine.erp.settings import ErpConfig
from passweb_tui.engine.facade import Engine, EngineSettings
from passweb_tui.engine.orders.api import WebOrders
from passweb_tui.engine.orders.shopper import place_orders
from passweb_tui.i18n import set_language
from passweb_tui.screens.dashboard import DashboardScreen

pytestmark = pytest.mark.anyio
pytest_plugins = ["ui_fixtures"]


def context(site: str | None = None) -> Context:
    return Context(argparse.Namespace(demo=False, command=None, site=site))


async def test_setup_tests_saves_owner_only_and_opens_the_store(erp_sim: Any) -> None:
    resources = UiResources(context())
    app = create_app(None, connect=resources.connect)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            form = {
                "url": erp_sim.url,
                "user": erp_sim.user,
                "password": erp_sim.password,
                "azienda": erp_sim.azienda,
                "anno": str(erp_sim.anno),
            }
            for name, value in form.items():
                app.screen.query_one(f"#setup-{name}", Input).value = value
            await pilot.press("ctrl+t")
            await workers_done(app)
            await pilot.pause()
            said = str(app.screen.query_one("#setup-result", Static).render())
            assert said.startswith("Connected: ERP version") and erp_sim.azienda in said

            await pilot.press("ctrl+s")
            await workers_done(app)
            await pilot.pause()
            assert isinstance(app.screen, DashboardScreen)
            assert app.engine is resources.engine
        path = config_path()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        saved = tomllib.loads(path.read_text("utf-8"))["erp"]
        assert saved == {
            "url": erp_sim.url,
            "user": erp_sim.user,
            "password": erp_sim.password,
            "azienda": erp_sim.azienda,
            "anno": erp_sim.anno,
        }
    finally:
        resources.close(app)


def write_config(text: str) -> Path:
    """The operator's config file, owner-only, where the program looks for it."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def operators_config(data: Path) -> str:
    """A config file as an operator writes one: comments, several sections, the
    default site's ERP and a `shop` profile with a store but no ERP of its own."""
    return (
        "# passweb-tui, written by hand\n"
        "[erp]   # the main company's ERP\n"
        'url = "https://main.example:9004/webapi"\n'
        'user = "main"\n'
        'azienda = "MAI"  # not the shop\'s\n'
        "\n"
        "[sync]\n"
        "overlap_minutes = 90\n"
        "[sync.update_descriptions]\n"
        "payments = true\n"
        "\n"
        "# the second shop: its own store\n"
        "[sites.shop.store]\n"
        f'db = "sqlite:///{data / "shop.db"}"\n'
        "[sites.shop.sync] # more often\n"
        "overlap_minutes = 30"  # and no newline at the end
    )


async def save_from_setup(app: Any, pilot: Any, erp_sim: Any) -> str:
    """Fill the setup form with the simulator's credentials, save; what the setup screen
    says then ("" when it gave way to the dashboard)."""
    await pilot.pause()
    form = {"url": erp_sim.url, "user": erp_sim.user, "password": erp_sim.password,
            "azienda": erp_sim.azienda, "anno": str(erp_sim.anno)}  # fmt: skip
    for name, value in form.items():
        app.screen.query_one(f"#setup-{name}", Input).value = value
    await pilot.press("ctrl+s")
    try:
        await workers_done(app)
    except WorkerFailed:  # a refusal: the screen says it (read below)
        pass
    await pilot.pause()
    if isinstance(app.screen, DashboardScreen):
        return ""
    return str(app.screen.query_one("#setup-result", Static).render())


async def test_setup_under_site_saves_that_profiles_erp_and_nothing_else(
    erp_sim: Any, tmp_path: Path
) -> None:
    """Under --site shop the credentials go to [sites.shop.erp], appended; every line the
    operator wrote stays as it was, and the default site keeps its own ERP."""
    before = operators_config(tmp_path)
    path = write_config(before)
    default_site = load_settings({}, env={})
    resources = UiResources(context("shop"))
    app = create_app(None, connect=resources.connect)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await save_from_setup(app, pilot, erp_sim)
            assert isinstance(app.screen, DashboardScreen)
        after = path.read_text("utf-8")
        assert after == before + (
            "\n\n[sites.shop.erp]\n"
            f'url = "{erp_sim.url}"\n'
            f'user = "{erp_sim.user}"\n'
            f'password = "{erp_sim.password}"\n'
            f'azienda = "{erp_sim.azienda}"\n'
            f"anno = {erp_sim.anno}\n"
        )
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert load_settings({}, env={}) == default_site
        shop = load_settings({"site": "shop"}, env={})
        assert (shop.erp_url, shop.erp_user, shop.azienda, shop.anno, shop.overlap_minutes) == (
            erp_sim.url,
            erp_sim.user,
            erp_sim.azienda,
            erp_sim.anno,
            30,
        )
        assert shop.resolve_password() == erp_sim.password
        assert shop.update_descriptions == {"payments": True}  # the top level's, still read
    finally:
        resources.close(app)


async def test_setup_without_site_changes_the_erp_section_in_place(
    erp_sim: Any, tmp_path: Path
) -> None:
    """An [erp] section without an address (so the setup shows) gets the credentials
    in place: its own comment and other keys stay, and so does every other line."""
    head = "# passweb-tui\n[store]  # where the site's copy lives\n"
    head += f'db = "sqlite:///{tmp_path / "store.db"}"\n\n'
    erp_before = '[erp]\n# from the setup screen\nuser = "someone-else"   # who?\nsite_no = 2\n'
    tail = '\n# the sync\n[sync]\noverlap_minutes = 90\n\n[sites.shop.store]\ndb = "x"\n'
    path = write_config(head + erp_before + tail)
    resources = UiResources(context())
    app = create_app(None, connect=resources.connect)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await save_from_setup(app, pilot, erp_sim)
            assert isinstance(app.screen, DashboardScreen)
        erp_after = (
            "[erp]\n# from the setup screen\n"
            f'user = "{erp_sim.user}"   # who?\n'
            "site_no = 2\n"
            f'url = "{erp_sim.url}"\n'
            f'password = "{erp_sim.password}"\n'
            f'azienda = "{erp_sim.azienda}"\n'
            f"anno = {erp_sim.anno}\n"
        )
        assert path.read_text("utf-8") == head + erp_after + tail
        saved = load_settings({}, env={})
        assert (saved.erp_url, saved.erp_user, saved.site_no, saved.overlap_minutes) == (
            erp_sim.url,
            erp_sim.user,
            2,
            90,
        )
    finally:
        resources.close(app)


async def test_setup_refuses_a_section_it_cannot_change_in_place(erp_sim: Any) -> None:
    """The profile's ERP written with dotted keys: the screen says which file and
    section to edit by hand, the file is left exactly as it was, the setup stays."""
    before = '[sites.shop]\nerp.site_no = 2  # the shop\'s number\nstore.db = "sqlite:///x.db"\n'
    path = write_config(before)
    resources = UiResources(context("shop"))
    app = create_app(None, connect=resources.connect)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            said = await save_from_setup(app, pilot, erp_sim)
            assert said.startswith("Failed:")
            assert f"{path}: the setup does not change [sites.shop.erp] in place" in said
            assert "dotted keys" in said and "nothing was saved" in said
            assert "by hand" in said and erp_sim.password not in said
            assert not isinstance(app.screen, DashboardScreen)
        assert path.read_text("utf-8") == before
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file
    finally:
        resources.close(app)


async def test_setup_starts_with_what_the_config_already_says_of_the_erp() -> None:
    """A config file that names the company, user and year but no ERP address opens the
    setup: those are filled in (the password never is), and the cursor waits in the
    first empty field."""
    from passweb_tui.commands.ui import setup_values

    write_config('[erp]\nuser = "mario"\nazienda = "DEM"\nanno = 2026\n')
    settings = context().settings  # as the command resolves them
    app = create_app(None, setup_values=setup_values(settings))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        value = {n: app.screen.query_one(f"#setup-{n}", Input).value for n in FORM_NAMES}
        assert value == {
            "url": "", "user": "mario", "password": "", "azienda": "DEM", "anno": "2026",
            "ca_file": "",
        }  # fmt: skip
        assert app.focused is app.screen.query_one("#setup-url", Input)
    app = create_app(None, setup_values={"url": "http://erp:9004/webapi", "user": "mario"})
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.focused is app.screen.query_one("#setup-password", Input)


FORM_NAMES = ("url", "user", "password", "azienda", "anno", "ca_file")


def test_demo_activity_changes_what_a_variati_then_reads(erp_sim: Any, tmp_path: Any) -> None:
    erp = ErpConfig(erp_sim.url, erp_sim.user, erp_sim.password, erp_sim.azienda, erp_sim.anno)
    engine = Engine.open(EngineSettings(f"sqlite:///{tmp_path / 'store.db'}", erp))
    try:
        engine.run("total")
        # a web order of the demo's shopper, sent to the ERP: the activity fulfils its rows
        (order_id,) = place_orders(engine.store, 1, rng=random.Random(3))
        assert engine.run("partial").status == "ok"
        activity = DemoActivity(
            erp_sim.url,
            user=erp_sim.user,
            password=erp_sim.password,
            azienda=erp_sim.azienda,
            anno=erp_sim.anno,
        )
        with httpx.Client(base_url=erp_sim.root, timeout=30) as http:
            for _ in range(4):  # the fourth round also fulfils a web order row, if any
                activity.tick(http)
        run = engine.run("changed")
        assert run.status == "ok"
        assert run.entities["articles"]["updated"] + run.entities["customers"]["updated"] > 0
        updates = WebOrders(engine.store).updates(order_id=order_id)
        assert [u["state_after"] for u in updates] == ["partially_fulfilled"], updates
    finally:
        engine.close()


async def save_at(url: str, erp_sim: Any) -> tuple[str, bool, list[str]]:
    """Save and open with the simulator's credentials at `url`: what the form says, whether
    the dashboard opened, and the notices shown."""
    resources = UiResources(context())
    app = create_app(None, connect=resources.connect)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            form = {"url": url, "user": erp_sim.user, "password": erp_sim.password,
                    "azienda": erp_sim.azienda}  # fmt: skip
            for name, value in form.items():
                app.screen.query_one(f"#setup-{name}", Input).value = value
            await pilot.press("ctrl+s")
            for _ in range(100):
                try:
                    await workers_done(app)
                except WorkerFailed:  # a refusal: the form says it (read below)
                    pass
                await pilot.pause(0.05)
                if isinstance(app.screen, DashboardScreen) or "Failed" in str(
                    app.screen.query_one("#setup-result", Static).render()
                ):
                    break
            opened = isinstance(app.screen, DashboardScreen)
            said = "" if opened else str(app.screen.query_one("#setup-result", Static).render())
            return " ".join(said.split()), opened, [str(n.message) for n in app._notifications]
    finally:
        resources.close(app)


async def test_an_address_where_no_webapi_answers_is_not_saved(erp_sim: Any) -> None:
    """An address that answers, but as no Mexal WebAPI does (a 404 on its installation
    data): the check said so, and the save wrote it all the same and opened a dashboard
    that could never reach it (the next start too)."""
    wrong = erp_sim.url.replace("/webapi", "/sim/webapi")
    said, opened, _ = await save_at(wrong, erp_sim)
    assert not opened and said.startswith("Failed: no Mexal WebAPI answers at"), said
    assert said.endswith("(nothing was saved)"), said
    assert not config_path().exists()


async def test_an_address_that_answers_with_a_web_page_is_not_saved(erp_sim: Any) -> None:
    """A web server's page where the WebAPI should be (an address one path off): no
    Mexal WebAPI answers there, so nothing is saved."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!DOCTYPE html><html><body>Welcome</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/webapi"
        said, opened, _ = await save_at(url, erp_sim)
    finally:
        server.shutdown()
        server.server_close()
    assert not opened and "not valid JSON" in said and "<!DOCTYPE html>" in said, said
    assert said.endswith("(nothing was saved)"), said
    assert not config_path().exists()


def _answer_status(status: int, **headers: str) -> Any:
    def answer(handler: Any) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def _answer_no_http(handler: Any) -> None:
    handler.wfile.write(b"* OK IMAP4rev1 ready\r\n\r\n")  # another kind of server there
    handler.close_connection = True


def _answer_nothing(handler: Any) -> None:
    handler.close_connection = True  # a dropped connection: nothing said


def _answer_cut_short(handler: Any) -> None:
    handler.send_response(200)  # a real reply, cut on its way (a flaky link)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "500")
    handler.end_headers()
    handler.wfile.write(b'{"versione": "2.9"')
    handler.close_connection = True


@pytest.mark.parametrize(
    ("answer", "saved"),
    [
        (answer_json(b'{"hello": "world"}'), False),
        (_answer_status(302, Location="http://127.0.0.1/login"), False),
        (_answer_status(407, Proxy_Authenticate="Basic"), False),
        (_answer_no_http, False),
        (_answer_nothing, True),
        (_answer_cut_short, True),
        (_answer_status(502), True),  # a gateway whose ERP is down: it may come up
        (_answer_status(429), True),  # a proxy's throttle: it passes
    ],
    ids=[
        "json-of-another-shape", "redirect", "proxy-407", "no-http", "dropped", "cut-short",
        "502", "429",
    ],
)  # fmt: skip
def test_an_address_that_answers_otherwise_is_not_saved(answer: Any, saved: bool) -> None:
    """What answered the setup's check at an address, and whether the setup saves it: a
    JSON object of another shape (a server that is not the ERP; a TOTAL against it
    removed every record), a redirect to a login page, a proxy's 407 and a server
    speaking no HTTP were saved as an ERP not answering now; they are answers of
    another kind, not saved. A dropped connection and a gateway's 502 still are."""
    from passweb_tui.commands.ui import answered_otherwise
    from passweb_tui.screens.setup import test_connection

    with (
        answering(answer) as url,
        mock.patch("passweb_tui.engine.erp.client.MexalClient._backoff", lambda *a: 0.0),
        pytest.raises(Exception) as err,
    ):
        test_connection({"url": url, "user": "u", "password": "p", "azienda": "A",
                         "anno": None, "ca_file": None})  # fmt: skip
    said = answered_otherwise(err.value, url)
    assert (said is None) == saved, (said, str(err.value))


def test_an_address_the_settings_would_refuse_is_not_saved() -> None:
    """A port past 65535 passed the form's check and was saved: the settings then
    refused the file at every start, and the setup never came back."""
    from passweb_tui.screens.setup import SetupError, validate

    form = {"user": "u", "password": "p", "azienda": "A"}
    for url in ("http://127.0.0.1:99999/webapi", "http://127.0.0.1:abc/webapi",
                "http://[::1/webapi", "http://demo:x@erp.example/webapi"):  # fmt: skip
        with pytest.raises(SetupError, match="WebAPI URL"):
            validate({**form, "url": url})
    # a password in a URL of the wrong form is not repeated either
    with pytest.raises(SetupError) as err:
        validate({**form, "url": "http://demo:S3cret@erp.example/webap"})
    assert "S3cret" not in str(err.value)
    # what the settings refuse in the other fields (a pasted tab, a letter out of ASCII)
    for azienda in ("AB\tC", "Societ\u00e0"):
        with pytest.raises(SetupError, match="azienda must"):
            validate({**form, "url": "http://127.0.0.1:9/webapi", "azienda": azienda})
    assert not config_path().exists()


async def test_a_reply_cut_short_on_its_way_is_saved_and_said_so(erp_sim: Any) -> None:
    """The ERP answered, but its reply was cut short on the way (a flaky link): a Mexal
    WebAPI is there, so the settings are saved, with the notice."""
    erp_sim.admin("PUT", "faults", json={"malformed": 1.0})
    try:
        said, opened, notices = await save_at(erp_sim.url, erp_sim)
    finally:
        erp_sim.admin("DELETE", "faults")
    assert opened, said
    assert config_path().exists()
    assert any("not valid JSON" in n for n in notices), notices


async def test_an_erp_that_does_not_answer_now_is_saved_and_said_so(erp_sim: Any) -> None:
    """The ERP down while it is set up: saved (it may come up later), and the dashboard
    that opens says the check went unanswered, and why."""
    said, opened, notices = await save_at("http://127.0.0.1:1/webapi", erp_sim)
    assert opened, said
    assert config_path().exists()
    assert any(
        n.startswith("Saved without the ERP's answer: cannot reach the ERP") for n in notices
    ), notices


def fill_wrong_password(app: Any, erp_sim: Any) -> None:
    """The setup form with the simulator's address and user, and a password it refuses."""
    form = {"url": erp_sim.url, "user": erp_sim.user, "password": "wrong",
            "azienda": erp_sim.azienda}  # fmt: skip
    for name, value in form.items():
        app.screen.query_one(f"#setup-{name}", Input).value = value


# last in the module: a refused login must not disturb the tests sharing the simulator
async def test_setup_says_when_the_erp_refuses_the_password(erp_sim: Any) -> None:
    app = create_app(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        fill_wrong_password(app, erp_sim)
        await pilot.press("ctrl+t")
        await workers_done(app)
        await pilot.pause()
        said = str(app.screen.query_one("#setup-result", Static).render())
        assert said.startswith("Failed:")
    assert not config_path().exists()  # nothing saved by a test of the connection


async def save_refused(erp_sim: Any) -> tuple[str, bool]:
    """Save and open with a password the ERP refuses: what the screen says (on one line)
    and whether the app opened its dashboard all the same."""
    resources = UiResources(context())
    app = create_app(None, connect=resources.connect)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            fill_wrong_password(app, erp_sim)
            await pilot.press("ctrl+s")
            await workers_done(app)
            await pilot.pause()
            said = " ".join(str(app.screen.query_one("#setup-result", Static).render()).split())
            return said, isinstance(app.screen, DashboardScreen)
    finally:
        resources.close(app)


async def test_save_and_open_keeps_nothing_the_erp_refuses(erp_sim: Any) -> None:
    """Saving credentials the ERP refuses would open every later start on them, logging
    in again and again: they are not saved, and the screen says why (in Italian too, where
    the ERP's refusal was left in English)."""
    said, opened = await save_refused(erp_sim)
    assert said.startswith("Failed:") and "nothing was saved" in said
    assert not opened
    assert not config_path().exists()
    set_language("it")
    try:
        said, opened = await save_refused(erp_sim)
    finally:
        set_language("en")
    assert said.startswith("Non riuscito: il gestionale ha rifiutato le credenziali")
    assert said.endswith("(non è stato salvato nulla)"), said
    assert "ERP" not in said and "nothing" not in said, said
    assert not opened and not config_path().exists()


def test_the_setup_screens_demo_never_uses_the_configured_store_or_quota(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The demo key of the setup screen opens the demo as --demo does: its own store (the
    demo's shopper places orders, which must never reach a real store, and from it a
    real ERP) and no quota; before, it kept the configured [store] db and quota."""
    import passweb_tui.commands.ui as ui
    import passweb_tui.demo as demo

    write_config('[store]\ndb = "sqlite:////srv/shop/store.db"\n[service]\nmonthly_quota = 1\n')
    opened: list[Any] = []

    class DemoErp:
        def erp_config(self, settings: Any) -> str:
            return "the demo ERP"

        def stop(self) -> None:
            pass

    monkeypatch.setattr(demo, "start_demo_erp", lambda folder: DemoErp())
    monkeypatch.setattr(ui, "open_engine", lambda settings, erp: opened.append(settings) or None)
    monkeypatch.setattr(ui, "erp_label", lambda erp: erp)
    monkeypatch.setattr(UiResources, "start_activity", lambda self, erp: None)
    resources = UiResources(context())
    assert resources.ctx.settings.db_url == "sqlite:////srv/shop/store.db"  # configured
    resources.connect("demo", {})
    (settings,) = opened
    assert settings.demo and settings.db_url is None and settings.monthly_quota == 0
    assert settings.resolved_db_url.endswith("/demo/store.db")
