"""The app's frame without a store: the setup screen, the palette entries scripts rely
on, F1 and ?, the keymap from the config file, and the import boundary."""

from __future__ import annotations

import subprocess
import sys

import pytest
from textual.widgets import Input, Static

from passweb_tui.app import PALETTE_GOTO, create_app
from passweb_tui.i18n import set_language
from passweb_tui.screens.keys import KeysScreen
from passweb_tui.screens.setup import SetupScreen

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def english_afterwards():
    yield
    set_language("en")


def palette_titles(app) -> list[str]:
    return [str(c.title) for c in app.get_system_commands(app.screen)]


async def test_without_an_erp_the_setup_screen_opens() -> None:
    app = create_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen)
        # no store yet: jumping to a screen says what to do instead of failing
        await pilot.press("escape")
        app.action_goto("runs")
        await pilot.pause()
        assert any("Set up the ERP connection first" in str(n.message) for n in app._notifications)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "WebAPI URL: required."),
        ({"url": "http://erp:9004/api"}, "must start with http:// or https:// and end in /webapi"),
        ({"url": "http://erp:9004/webapi"}, "User: required."),
        ({"url": "http://erp:9004/webapi", "user": "u"}, "Password: required."),
        ({"url": "http://erp:9004/webapi", "user": "u", "password": "p"}, "Azienda: required."),
        (
            {
                "url": "http://erp/webapi",
                "user": "u",
                "password": "p",
                "azienda": "A",
                "anno": "20",
            },
            "Anno: a year such as 2026, got 20",
        ),
        (
            {
                "url": "http://erp/webapi",
                "user": "u",
                "password": "p",
                "azienda": "A",
                "ca_file": "/nonexistent/ca.pem",
            },
            "CA file: /nonexistent/ca.pem is not a readable file",
        ),
    ],
)
async def test_setup_names_the_wrong_field(values: dict[str, str], message: str) -> None:
    app = create_app(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        for name, value in values.items():
            app.screen.query_one(f"#setup-{name}", Input).value = value
        await pilot.press("ctrl+s")
        await pilot.pause()
        shown = str(app.screen.query_one("#setup-result", Static).render())
        assert message in shown


async def test_setup_never_shows_the_password() -> None:
    app = create_app(None)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        box = app.screen.query_one("#setup-password", Input)
        box.focus()
        await pilot.press(*"s3cret")
        assert box.value == "s3cret" and box.password
        assert "s3cret" not in str(box.render_line(0))


@pytest.mark.parametrize("language", ["en", "it"])
async def test_palette_entries_start_with_their_english_text(language: str) -> None:
    set_language(language)
    app = create_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        titles = palette_titles(app)
    wanted = ["Sync: total", "Sync: changed", "Sync: partial"] + [
        f"Go to: {m}" for m in PALETTE_GOTO
    ]
    for english in wanted:
        assert any(title == english or title.startswith(english + " - ") for title in titles), (
            english,
            titles,
        )
    if language == "it":
        assert "Sync: changed - Sincronizzazione Variati" in titles


async def test_f1_and_question_mark_show_the_keys_of_the_screen() -> None:
    app = create_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        setup = app.screen
        await pilot.press("f1")
        assert isinstance(app.screen, KeysScreen)
        await pilot.press("f1")  # F1 again closes it
        assert app.screen is setup
        setup.set_focus(None)
        await pilot.press("question_mark")
        assert isinstance(app.screen, KeysScreen)
        await pilot.press("escape")
        assert app.screen is setup


async def test_keymap_from_settings_moves_a_binding_and_names_unknown_ids() -> None:
    app = create_app(None, keymap={"app.help": "f2", "no.such.binding": "f3"})
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        assert not isinstance(app.screen, KeysScreen)
        await pilot.press("f2")
        assert isinstance(app.screen, KeysScreen)
        assert "f2 Keys" in app.screen.text()  # the list names the key as moved
        await pilot.press("f2")  # and the moved key closes it too
        assert not isinstance(app.screen, KeysScreen)
        warnings = [str(n.message) for n in app._notifications]
        assert any("unknown binding id no.such.binding" in w for w in warnings)


def test_every_binding_has_an_id_and_a_description() -> None:
    app = create_app(None)
    missing = []
    from passweb_tui.app import PasswebApp  # noqa: F401  (the classes scanned below)

    for cls in app._keymap_classes():
        for binding in cls.__dict__.get("BINDINGS", []):
            if not binding.id or not binding.description:
                missing.append((cls.__name__, binding.key))
    assert missing == []


async def test_quitting_without_a_sync_does_not_ask() -> None:
    app = create_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.return_code == 0


def test_engine_and_simulator_never_load_the_ui() -> None:
    code = (
        "import sys, passweb_tui.engine.facade, passweb_tui.mexal_sim;"
        "bad=[m for m in sys.modules if m=='textual' or m.startswith(('textual.',"
        "'passweb_tui.screens','passweb_tui.app'))];print(bad);sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_palettes_own_entries_speak_the_ui_language_and_say_what_they_did(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys opens the app's F1 box (escape closes it), the prompt and Textual's entries
    are in Italian after their English text, and Screenshot says where it saved the
    picture, or why it could not."""
    from textual.command import CommandInput, CommandPalette

    import passweb_tui.app as app_module

    set_language("it")
    folder = tmp_path / "pictures"
    monkeypatch.setattr(app_module, "screenshot_dir", lambda: folder)
    app = create_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        titles = palette_titles(app)
        for english, italian in [("Keys", "Tasti"), ("Theme", "Tema"),
                                 ("Screenshot", "Istantanea dello schermo"), ("Quit", "Esci")]:  # fmt: skip
            assert f"{english} - {italian}" in titles, titles
        app.action_command_palette()
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        assert app.screen.query_one(CommandInput).placeholder == "Cerca un comando…"
        await pilot.press("escape")
        await pilot.pause()
        app.search_themes()  # the palette's Theme - Tema
        await pilot.pause()
        assert app.screen.query_one(CommandInput).placeholder == "Cerca un tema…"
        await pilot.press("escape")
        await pilot.pause()

        keys = next(c for c in app.get_system_commands(app.screen) if c.title.startswith("Keys"))
        below = app.screen
        keys.callback()
        await pilot.pause()
        assert isinstance(app.screen, KeysScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is below

        app.save_picture()
        await pilot.pause()
        (saved,) = folder.glob("*.svg")
        assert saved.read_text().startswith("<svg")
        assert any(
            f"Istantanea dello schermo salvata: {saved}" in str(n.message)
            for n in app._notifications
        )

        blocked = tmp_path / "a-file"
        blocked.write_text("")
        monkeypatch.setattr(app_module, "screenshot_dir", lambda: blocked / "pictures")
        app.save_picture()
        await pilot.pause()
        assert any(
            str(n.message).startswith(
                f"Istantanea dello schermo non salvata in {blocked / 'pictures'}: "
            )
            for n in app._notifications
        ), [str(n.message) for n in app._notifications]
