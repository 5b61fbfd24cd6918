"""Settings: file < environment < flags, clear errors, and safe handling of the password."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from passweb_tui.config import (
    ConfigError,
    config_path,
    data_dir,
    key_lines,
    load_settings,
    save_erp_settings,
)


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def test_folders_follow_platformdirs(isolated_home: Path) -> None:
    assert str(config_path()).startswith(str(isolated_home))
    assert str(data_dir()).startswith(str(isolated_home))
    settings = load_settings({})
    assert settings.resolved_db_url == f"sqlite:///{data_dir() / 'store.db'}"
    assert load_settings({"demo": True}).resolved_db_url.endswith("/demo/store.db")


def test_priority_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.toml",
        '[erp]\nurl = "https://file:9004/webapi"\nuser = "fileuser"\nazienda = "FIL"\nanno = 2024\n',
    )
    env = {"PASSWEB_TUI_ERP_USER": "envuser", "PASSWEB_TUI_ANNO": "2025"}
    s = load_settings({"anno": 2026, "azienda": None}, env=env, path=cfg)
    assert s.erp_url == "https://file:9004/webapi"  # file only
    assert s.erp_user == "envuser"  # env beats file
    assert s.anno == 2026  # flag beats env
    assert s.azienda == "FIL"  # a flag left out does not erase the file's value


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "broken.toml", "[erp\nurl = 1\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_settings({}, env={}, path=cfg)


def test_a_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Some Windows editors start a UTF-8 file with a byte-order mark, which no editor
    shows: the file reads as its text says."""
    cfg = tmp_path / "bom.toml"
    cfg.write_bytes(b"\xef\xbb\xbf[sync]\noverlap_minutes = 60\n")
    assert load_settings({}, env={}, path=cfg).overlap_minutes == 60


def test_a_bad_value_or_key_is_named_with_its_line(tmp_path: Path) -> None:
    text = (
        "# the shop\n"
        "[erp]\n"
        'url = "http://erp.example/webapi"\n'
        'note = """\n'  # an unknown key whose text holds lines that read like keys
        "anno = 1\n"
        '"""\n'
        "\n"
        '[ sites . "shop" . sync ]  # a profile\n'
        '"overlap_minutes" = -1\n'
    )
    lines, headers = key_lines(text)
    assert lines[("erp", "url")] == 3 and lines[("erp", "note")] == 4
    assert ("erp", "anno") not in lines  # inside the text, not a key
    assert lines[("sites.shop.sync", "overlap_minutes")] == 9
    assert headers == {"erp": 2, "sites.shop.sync": 8}
    cfg = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=r"c\.toml:4: unknown key 'note' in \[erp\]$"):
        load_settings({}, env={}, path=cfg)
    cfg = write(tmp_path / "c.toml", text.replace("note", "user"))
    with pytest.raises(
        ConfigError, match=r"c\.toml:9: \[sites\.shop\.sync\] overlap_minutes: must be 0-"
    ):
        load_settings({"site": "shop"}, env={}, path=cfg)
    cfg = write(tmp_path / "c.toml", "[erp]\n\n[erpp.x]\n")
    with pytest.raises(ConfigError, match=r"c\.toml:3: unknown section \[erpp\]$"):
        load_settings({}, env={}, path=cfg)
    # a dotted key is not found: the message goes without a line, never with a wrong one
    cfg = write(tmp_path / "c.toml", "erp.anno = 'x'\n")
    with pytest.raises(ConfigError, match=r"c\.toml: \[erp\] anno: expected a whole"):
        load_settings({}, env={}, path=cfg)


def test_unknown_key_and_wrong_type_are_named(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[erp]\nurrl = "x"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'urrl' in \[erp\]"):
        load_settings({}, env={}, path=cfg)
    cfg = write(tmp_path / "c.toml", '[erp]\nanno = "twenty"\n')
    with pytest.raises(ConfigError, match=r"\[erp\] anno: expected a whole number"):
        load_settings({}, env={}, path=cfg)
    with pytest.raises(ConfigError, match="environment PASSWEB_TUI_SITE_NO"):
        load_settings({}, env={"PASSWEB_TUI_SITE_NO": "x"}, path=tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="site number must be 1-9"):
        load_settings({"site_no": 12}, env={}, path=tmp_path / "none.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sites = 5\n", "sites must be a table"),
        ("[sites]\nshop = 1\n", "sites.shop must be a table"),
        (
            "[sync]\noverlap_minutes = -600\n",
            r"c\.toml:\d+: \[sync\] overlap_minutes: must be 0-10080, got -600",
        ),
        ("[sync]\nlease_seconds = 0\n", r"c\.toml:\d+: \[sync\] lease_seconds: must be 2-86400"),
        (
            "[store]\nchange_log_days = -1\n",
            r"c\.toml:\d+: \[store\] change_log_days: must be 1-36600",
        ),
        # beyond what a date, a timer or the database can take: said, not a crash later
        ("[sync]\noverlap_minutes = 1000000000000\n", r"overlap_minutes: must be 0-10080"),
        ("[sync]\nlease_seconds = 1000000000000000\n", r"lease_seconds: must be 2-86400"),
        (
            "[sync]\nresource_max_mb = 0\n",
            r"c\.toml:\d+: \[sync\] resource_max_mb: must be 1-10240, got 0",
        ),
        (
            "[sync]\nresource_max_mb = 20000\n",
            r"\[sync\] resource_max_mb: must be 1-10240, got 20000",
        ),
        ("[store]\nchange_log_days = 1000000000000\n", r"change_log_days: must be 1-36600"),
        ("[erp]\nmagazzino = 100000000000000000000\n", r"magazzino: must be a warehouse"),
        ("[service]\norder_poll_seconds = 10000000000\n", r"order_poll_seconds: must be 1-86400"),
        # checked by every command, not by the terminal UI alone
        (
            '[ui]\nlanguage = "fr"\n',
            r"c\.toml:\d+: \[ui\] language: language 'fr' is not available",
        ),
    ],
)
def test_odd_values_are_configuration_errors(tmp_path: Path, text: str, message: str) -> None:
    cfg = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=message):
        load_settings({}, env=dict(REACH_ERP), path=cfg).erp_config()


def test_the_largest_attachment_is_a_setting_in_mb(tmp_path: Path) -> None:
    """[sync] resource_max_mb reaches the ERP client as its limit for one attachment;
    100 MB unless set."""
    plain = load_settings({}, env=dict(REACH_ERP), path=write(tmp_path / "a.toml", ""))
    assert plain.erp_config().max_attachment_bytes == 100 * 1024 * 1024
    cfg = write(tmp_path / "c.toml", "[sync]\nresource_max_mb = 3\n")
    settings = load_settings({}, env=dict(REACH_ERP), path=cfg)
    assert settings.erp_config().max_attachment_bytes == 3 * 1024 * 1024


#: what a command that reaches the ERP has, so that erp_config() checks the ERP's values
REACH_ERP = {
    "PASSWEB_TUI_ERP_URL": "http://127.0.0.1:9/webapi",
    "PASSWEB_TUI_ERP_USER": "u",
    "PASSWEB_TUI_ERP_PASSWORD": "pw",
    "PASSWEB_TUI_AZIENDA": "A",
}


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"PASSWEB_TUI_ANNO": "5"}, "^environment PASSWEB_TUI_ANNO: must be a year like 2026"),
        ({}, r"c\.toml:\d+: \[erp\] max_in_flight: requests in flight"),
    ],
)
def test_the_erps_values_are_checked_when_the_erp_is_reached_not_to_read_the_store(
    tmp_path: Path, env: dict[str, str], said: str
) -> None:
    """A command that only reads the store (runs, changes, orders list) works with an ERP
    setting that is wrong; one that reaches the ERP is refused, naming it."""
    cfg = write(tmp_path / "c.toml", "[erp]\nmax_in_flight = 9\n" if not env else "")
    settings = load_settings({}, env={**REACH_ERP, **env}, path=cfg)
    with pytest.raises(ConfigError, match=said):
        settings.erp_config()


@pytest.mark.parametrize(
    ("text", "site", "env", "flags", "said"),
    [
        ("[erp]\nsite_no = 12\n", None, {}, {}, r"c\.toml:\d+: \[erp\] site_no: .*1-9, got 12$"),
        (
            "[erp]\nmax_in_flight = 9\n",
            None,
            {},
            {},
            r"c\.toml:\d+: \[erp\] max_in_flight: .*1-5, got 9$",
        ),
        (
            '[sync]\ncategory_mode = "terziaria"\n',
            None,
            {},
            {},
            r"c\.toml:\d+: \[sync\] category_mode: must be primaria or secondaria, got 'terziaria'$",
        ),
        (
            "[erp]\nmax_in_flight = 2\n[sites.outlet.erp]\nmax_in_flight = 0\n",
            "outlet",
            {},
            {},
            r"c\.toml:\d+: \[sites\.outlet\.erp\] max_in_flight: .*got 0$",
        ),
        (
            '[sites.outlet.sync]\ncategory_mode = "Primaria"\n',
            "outlet",
            {},
            {},
            r"c\.toml:\d+: \[sites\.outlet\.sync\] category_mode: .*got 'Primaria'$",
        ),
        # the environment beats the file, and is what the message names
        (
            "[erp]\nsite_no = 3\n",
            None,
            {"PASSWEB_TUI_SITE_NO": "0"},
            {},
            r"^environment PASSWEB_TUI_SITE_NO: site number must be 1-9, got 0$",
        ),
        (
            "[erp]\nsite_no = 3\n",
            None,
            {"PASSWEB_TUI_SITE_NO": "3"},
            {"site_no": 10},
            r"^--site-no: site number must be 1-9, got 10$",
        ),
        (
            "",
            None,
            {"PASSWEB_TUI_ANNO": "26"},
            {},
            r"^environment PASSWEB_TUI_ANNO: must be a year like 2026, got 26$",
        ),
        (
            "[erp]\nmagazzino = 0\n",
            None,
            {},
            {},
            r"c\.toml:\d+: \[erp\] magazzino: must be a warehouse number",
        ),
        (
            '[sites.bar.service]\nevery = "fortnight"\n',
            "bar",
            {},
            {},
            r"c\.toml:\d+: \[sites\.bar\.service\] every: expected a number",
        ),
        (
            '[sites.bar.ui]\nkeymap = {"app.quit" = ""}\n',
            "bar",
            {},
            {},
            r"c\.toml:\d+: \[sites\.bar\.ui\] keymap\.app\.quit: expected keys as text",
        ),
    ],
)
def test_a_bad_value_names_the_file_section_key_variable_or_flag_that_gave_it(
    tmp_path: Path,
    text: str,
    site: str | None,
    env: dict[str, str],
    flags: dict[str, object],
    said: str,
) -> None:
    cfg = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=said):
        load_settings({"site": site, **flags}, env={**REACH_ERP, **env}, path=cfg).erp_config()


def test_a_bad_erp_url_names_where_it_was_given(tmp_path: Path) -> None:
    env = {"PASSWEB_TUI_ERP_PASSWORD": "pw", "PASSWEB_TUI_ERP_URL": "https://erp.example/api"}
    given = {"erp_user": "u", "azienda": "A"}
    with pytest.raises(ConfigError, match=r"^environment PASSWEB_TUI_ERP_URL: .*end in /webapi"):
        load_settings(given, env=env, path=tmp_path / "none.toml").erp_config()
    cfg = write(tmp_path / "c.toml", '[erp]\nurl = "erp.example:9004/webapi"\n')
    env = {"PASSWEB_TUI_ERP_PASSWORD": "pw"}
    with pytest.raises(ConfigError, match=r"c\.toml:\d+: \[erp\] url: .*start with http://"):
        load_settings(given, env=env, path=cfg).erp_config()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("get-pw 'unclosed", r"\[erp\] password_command: not a valid command line"),
        ("   ", r"c\.toml:\d+: \[erp\] password_command: is empty"),
        # a command that prints nothing: an empty password would only be refused by the
        # ERP, and each refusal counts toward locking the user out
        ("true", r"c\.toml:\d+: \[erp\] password_command: printed no password"),
    ],
)
def test_a_malformed_password_command_is_named(tmp_path: Path, command: str, message: str) -> None:
    base = '[erp]\nurl = "http://h/webapi"\nuser = "u"\nazienda = "A"\n'
    cfg = write(tmp_path / "c.toml", base + f'password_command = "{command}"\n')
    with pytest.raises(ConfigError, match=message):
        load_settings({}, env={}, path=cfg).resolve_password()


def test_another_sites_secret_makes_a_readable_file_refused(tmp_path: Path) -> None:
    text = '[erp]\nuser = "u"\n[sites.outlet.erp]\npassword = "hunter2"\n'
    cfg = write(tmp_path / "c.toml", text, mode=0o644)
    for site in ({}, {"site": "outlet"}):
        with pytest.raises(ConfigError, match="holds a password but is readable by others"):
            load_settings(site, env={}, path=cfg)
    text = '[sites.outlet.service]\ntrigger_token = "t0ken"\n'
    cfg = write(tmp_path / "c.toml", text, mode=0o644)
    with pytest.raises(ConfigError, match="holds a trigger token"):
        load_settings({}, env={}, path=cfg)


def test_password_in_a_readable_file_is_refused(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[erp]\npassword = "hunter2"\n', mode=0o644)
    with pytest.raises(ConfigError, match="readable by others") as info:
        load_settings({}, env={}, path=cfg)
    assert "hunter2" not in str(info.value)
    os.chmod(cfg, 0o600)
    assert load_settings({}, env={}, path=cfg).resolve_password() == "hunter2"


def test_a_store_url_with_a_password_in_a_readable_file_is_refused(tmp_path: Path) -> None:
    """A PostgreSQL password inside [store] db is a secret like the ERP's: not read from
    a file others can read (in any site's profile)."""
    from passweb_tui.config import file_secrets

    url = "postgresql+psycopg://sync:TopSecret99@db.example.it/passweb"
    for text in (f'[store]\ndb = "{url}"\n', f'[sites.a.store]\ndb = "{url}"\n'):
        cfg = write(tmp_path / "c.toml", text, mode=0o644)
        with pytest.raises(ConfigError, match="holds a database password") as info:
            load_settings({}, env={}, path=cfg)
        assert "TopSecret99" not in str(info.value) and "PASSWEB_TUI_DB" in str(info.value)
    os.chmod(cfg, 0o600)
    assert load_settings({"site": "a"}, env={}, path=cfg).db_url == url
    # without a password (trust, ~/.pgpass): nothing secret
    assert file_secrets({"store": {"db": "postgresql+psycopg://sync@db/passweb"}}) == []


def test_password_sources(tmp_path: Path) -> None:
    base = '[erp]\nurl = "http://h/webapi"\nuser = "u"\nazienda = "A"\n'
    cfg = write(
        tmp_path / "c.toml",
        base + f"password_command = \"{sys.executable} -c 'print(chr(97) * 4)'\"\n",
    )
    s = load_settings({}, env={}, path=cfg)
    assert s.resolve_password() == "aaaa"
    assert "aaaa" not in repr(s.erp_config())
    s = load_settings({}, env={"PASSWEB_TUI_ERP_PASSWORD": "from-env"}, path=cfg)
    assert s.erp_config().password == "from-env"
    assert "from-env" not in repr(s.erp_config())
    cfg = write(
        tmp_path / "c.toml",
        base + f"password_command = \"{sys.executable} -c 'raise SystemExit(3)'\"\n",
    )
    with pytest.raises(ConfigError, match=r"\[erp\] password_command: exited with status 3"):
        load_settings({}, env={}, path=cfg).resolve_password()
    # its own last words say why; what it printed on stdout is never shown
    said = "import sys; print('hunter2'); sys.exit('pass: vault is locked')"
    cfg = write(
        tmp_path / "c.toml", base + f'password_command = "{sys.executable} -c \\"{said}\\""\n'
    )
    with pytest.raises(ConfigError) as err:
        load_settings({}, env={}, path=cfg).resolve_password()
    assert str(err.value).endswith("exited with status 1: pass: vault is locked"), str(err.value)
    assert "hunter2" not in str(err.value)


def test_missing_erp_settings_are_listed(tmp_path: Path) -> None:
    s = load_settings({}, env={}, path=tmp_path / "none.toml")
    with pytest.raises(ConfigError) as info:
        s.erp_config()
    message = str(info.value)
    assert "ERP URL" in message and "ERP user" in message and "azienda" in message


def test_site_profiles_override_the_defaults(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.toml",
        '[erp]\nuser = "u"\nsite_no = 1\n\n[sites.shop2.erp]\nsite_no = 2\n\n[sites.shop2.store]\ndb = "sqlite:///x.db"\n',
    )
    s = load_settings({"site": "shop2"}, env={}, path=cfg)
    assert (s.site_no, s.erp_user, s.db_url) == (2, "u", "sqlite:///x.db")
    assert s.site_data_dir.name == "shop2"
    with pytest.raises(ConfigError, match=r"no \[sites\.nope\] profile"):
        load_settings({"site": "nope"}, env={}, path=cfg)


def test_saved_settings_are_owner_only_and_read_back(tmp_path: Path) -> None:
    cfg = tmp_path / "sub" / "config.toml"
    save_erp_settings(
        {
            "url": "https://erp.example:9004/webapi",
            "user": "mario",
            "password": 'p"w\\d',
            "anno": 2026,
        },
        path=cfg,
    )
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    s = load_settings({}, env={}, path=cfg)
    assert (s.erp_url, s.erp_user, s.anno) == ("https://erp.example:9004/webapi", "mario", 2026)
    assert s.resolve_password() == 'p"w\\d'
    # a second save keeps what was there
    save_erp_settings({"azienda": "ABC"}, path=cfg)
    s = load_settings({}, env={}, path=cfg)
    assert (s.erp_user, s.azienda) == ("mario", "ABC")


def test_saving_keeps_a_file_with_any_site_name_and_value_valid(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "config.toml",
        '[sites."negozio-città".erp]\nuser = "luca"\n[sites."a\\"b".erp]\nuser = "x"\n',
    )
    save_erp_settings({"user": "mario\trossi", "password": "line1\nline2"}, path=cfg)
    s = load_settings({}, env={}, path=cfg)
    assert s.erp_user == "mario\trossi" and s.resolve_password() == "line1\nline2"
    assert load_settings({"site": "negozio-città"}, env={}, path=cfg).erp_user == "luca"
    with pytest.raises(ConfigError, match="a site name is letters"):  # not a folder name
        load_settings({"site": 'a"b'}, env={}, path=cfg)
    # an empty name (a script's unset variable) is not taken for the default site
    with pytest.raises(ConfigError, match="--site '': a site name is letters"):
        load_settings({"site": ""}, env={}, path=cfg)


OPERATORS_FILE = (
    "# passweb-tui\n"
    "[erp]  # the main ERP\n"
    '"url" = "https://old.example/webapi"   # moved in May\n'
    "# the number on the site\n"
    "site_no = 2\n"
    "\n"
    "[service]\n"
    'notify = "ops@example.com"\n'
    'smtp_host = "mail.example.com"\n'
    "\n"
    "[sites.outlet.erp]\n"
    "# a value over several lines, one of them like a header\n"
    'password_command = """\n'
    "[erp]\n"
    'url = 1"""\n'
    "[[sites.archive.sync.x]] # an array of tables, in a profile nobody runs\n"
    "a = [\n  [1], # [erp]\n]\n"
    '[sites."negozio-città".store]\n'
    'db = "sqlite:///n.db"'  # no newline at the end
)


def test_saving_changes_the_erp_section_in_place_and_nothing_else(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.toml", OPERATORS_FILE)
    save_erp_settings(
        {"url": "https://new.example/webapi", "user": "mario", "anno": 2026, "ca_file": None},
        path=cfg,
    )
    assert cfg.read_text("utf-8") == OPERATORS_FILE.replace(
        '"url" = "https://old.example/webapi"   # moved in May\n'
        "# the number on the site\n"
        "site_no = 2\n",
        '"url" = "https://new.example/webapi"   # moved in May\n'
        "# the number on the site\n"
        "site_no = 2\n"
        'user = "mario"\n'
        "anno = 2026\n",
    )
    s = load_settings({}, env={}, path=cfg)
    assert (s.erp_url, s.erp_user, s.anno, s.site_no) == ("https://new.example/webapi", "mario",
                                                          2026, 2)  # fmt: skip


@pytest.mark.parametrize(("site", "header"), [("shop", "shop"), ("shop.it", '"shop.it"')])
def test_saving_for_a_site_appends_its_erp_table(tmp_path: Path, site: str, header: str) -> None:
    """A site's credentials go where it reads them, [sites.NAME.erp]; the default site and
    the other profiles keep the ERP they had."""
    text = OPERATORS_FILE + f'\n[sites.{header}.store]\ndb = "sqlite:///s.db"'
    cfg = write(tmp_path / "config.toml", text)
    default, outlet = (load_settings(site, env={}, path=cfg) for site in ({}, {"site": "outlet"}))
    save_erp_settings({"url": "https://shop.example/webapi", "password": "pw"}, cfg, site=site)
    assert cfg.read_text("utf-8") == text + (
        f'\n\n[sites.{header}.erp]\nurl = "https://shop.example/webapi"\npassword = "pw"\n'
    )
    assert load_settings({}, env={}, path=cfg) == default
    assert load_settings({"site": "outlet"}, env={}, path=cfg) == outlet
    s = load_settings({"site": site}, env={}, path=cfg)
    assert (s.erp_url, s.site_no, s.resolve_password()) == ("https://shop.example/webapi", 2, "pw")


def test_saving_keeps_windows_line_endings(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    text = b'[erp]\r\nuser = "old"\r\n\r\n[sync]\r\noverlap_minutes = 90\r\n'
    cfg.write_bytes(text)
    save_erp_settings({"user": "new", "azienda": "ABC"}, cfg)
    assert cfg.read_bytes() == text.replace(
        b'user = "old"\r\n', b'user = "new"\r\nazienda = "ABC"\r\n'
    )


@pytest.mark.parametrize(
    ("text", "site", "said"),
    [
        ('erp = { user = "u" }\n[sync]\nlease_seconds = 9\n', None,
         r"\[erp\] in place: it is written as an inline table, line 1 \(erp = \{\.\.\.\}\)"),
        ('[store]\ndb = "x"\n[sites.shop]\nerp.user = "u"\n', "shop",
         r"\[sites\.shop\.erp\] in place: it is written with dotted keys, line 4"
         r" \(sites\.shop\.erp\.user = \.\.\.\)"),
        ('[sites]\nshop = { store = { db = "x" } }\n', "shop",
         r"\[sites\.shop\.erp\] in place: it is written as an inline table, line 2"
         r" \(sites\.shop = \{\.\.\.\}\)"),
    ],
)  # fmt: skip
def test_saving_refuses_a_section_it_cannot_change_in_place(
    tmp_path: Path, text: str, site: str | None, said: str
) -> None:
    cfg = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError, match=said) as refused:
        save_erp_settings({"user": "mario", "password": "pw"}, cfg, site=site or "default")
    message = str(refused.value)
    assert message.startswith(f"{cfg}: the setup does not change [")
    assert "nothing was saved" in message and "by hand" in message and "pw" not in message
    assert cfg.read_text("utf-8") == text
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_saving_refuses_a_change_that_would_not_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit that would change anything but the section (here: one that loses the rest
    of the file) is caught by reading the result back: refused, the file left as it was."""
    import passweb_tui.config as config

    cfg = write(tmp_path / "config.toml", OPERATORS_FILE)
    monkeypatch.setattr(config, "_edit_table", lambda text, section, values: '[erp]\nuser = "m"\n')
    with pytest.raises(ConfigError, match=r"without changing what the rest of the file says"):
        save_erp_settings({"user": "m"}, cfg)
    assert cfg.read_text("utf-8") == OPERATORS_FILE
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_orders_section_says_where_pushed_records_go(tmp_path: Path) -> None:
    from passweb_tui.engine.facade import EngineSettings

    defaults = load_settings({}, env={}, path=tmp_path / "none.toml")
    assert (defaults.customer_ledger, defaults.order_document, defaults.order_series) == (
        "501",
        "OC",
        1,
    )
    cfg = write(
        tmp_path / "c.toml",
        '[orders]\nledger = "502"\ndocument = "OX"\nseries = 3\ncrash_wait_seconds = 600\n'
        "match_erp_customers = false\n",
    )
    assert EngineSettings.from_settings(defaults).options.match_erp_customers is True
    options = EngineSettings.from_settings(load_settings({}, env={}, path=cfg)).options
    assert options.match_erp_customers is False
    assert (options.customer_ledger, options.order_document, options.order_series) == (
        "502",
        "OX",
        3,
    )
    assert options.crash_wait_seconds == 600
    for text, said in (
        ('ledger = "501.AUTO"', "c.toml:2: [orders] ledger: must be"),
        ('document = "FT"', "c.toml:2: [orders] document: must be OC or OX, got 'FT'"),
        ("series = 0", "c.toml:2: [orders] series: must be 1-999, got 0"),
        ('series = "two"', "[orders] series: expected a whole number"),
        ("crash_wait_seconds = -1", "c.toml:2: [orders] crash_wait_seconds: must be 0-86400"),
        (
            'match_erp_customers = "maybe"',
            "c.toml:2: [orders] match_erp_customers: expected true or false",
        ),
    ):
        write(cfg, f"[orders]\n{text}\n")
        with pytest.raises(ConfigError) as err:
            load_settings({}, env={}, path=cfg)
        assert said in str(err.value)


def test_the_demo_never_uses_the_configured_store_erp_or_mail(isolated_home: Path) -> None:
    """A real installation's config and environment are ignored under --demo: the demo
    writes only to its own store and talks only to the built-in simulator."""
    cfg = write(
        isolated_home / "c.toml",
        '[store]\ndb = "sqlite:////srv/shop/store.db"\n'
        '[erp]\nurl = "https://erp.example:9004/webapi"\nuser = "real"\nazienda = "ACM"\n'
        'password_command = "pass show erp"\n'
        '[service]\nsmtp_host = "mail.example"\nnotify = "boss@example.it"\n'
        "monthly_quota = 2\n",
    )
    env = {"PASSWEB_TUI_DB": "postgresql://shop@db/shop", "PASSWEB_TUI_ERP_PASSWORD": "secret"}
    s = load_settings({"demo": True}, env=env, path=cfg)
    assert s.resolved_db_url.endswith("/demo/store.db")
    assert s.erp_url is None and s.erp_password is None and s.password_command is None
    assert s.azienda is None and not s.smtp_host and not s.notify
    assert s.monthly_quota == 0  # the production ERP's allowance does not hold the demo
    real = load_settings({}, env=env, path=cfg)  # the same files without --demo
    assert (
        real.erp_url == "https://erp.example:9004/webapi" and real.db_url == env["PASSWEB_TUI_DB"]
    )
    assert real.monthly_quota == 2
    with pytest.raises(
        ConfigError, match=r"--demo uses its own store .* leave out --db, --erp-url"
    ):
        load_settings({"demo": True, "db_url": "sqlite:///x.db", "erp_url": "https://e/webapi"})


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('[ui]\nkeymap = {"app.quit" = 5}\n', r"\[ui\] keymap.app.quit: expected keys as text"),
        (
            "[sync]\nupdate_descriptions = {categoris = false}\n",
            r"\[sync\] update_descriptions.categoris: not a lookup table",
        ),
        (
            '[sync]\nupdate_descriptions = {price_lists = "maybe"}\n',
            r"\[sync\] update_descriptions.price_lists: expected true or false, got 'maybe'",
        ),
    ],
)
def test_the_values_inside_tables_are_checked(tmp_path: Path, text: str, said: str) -> None:
    cfg = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=said):
        load_settings({}, env={}, path=cfg)


def test_a_ca_file_that_cannot_be_used_is_a_configuration_error(tmp_path: Path) -> None:
    base = {"erp_url": "https://erp.example/webapi", "erp_user": "u", "azienda": "A"}
    env = {"PASSWEB_TUI_ERP_PASSWORD": "pw"}
    for path, said in ((tmp_path / "none.pem", "No such file"), (tmp_path, "")):
        settings = load_settings({**base, "ca_file": str(path)}, env=env)
        with pytest.raises(
            ConfigError, match=f"^--ca-file: .* cannot be used as CA certificates: {said}"
        ):
            settings.erp_config()
    junk = write(tmp_path / "junk.pem", "not a certificate\n")
    with pytest.raises(ConfigError, match="cannot be used as CA certificates"):
        load_settings({**base, "ca_file": str(junk)}, env=env).erp_config()


def test_a_site_name_must_be_a_profile_and_cannot_leave_the_data_folder(tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    with pytest.raises(ConfigError, match="there is no config file"):
        load_settings({"site": "nosuch"}, env={}, path=missing)
    for bad in ("../../evil", "a/b", ".hidden", ""):
        if bad:
            with pytest.raises(ConfigError, match="a site name is letters"):
                load_settings({"site": bad}, env={}, path=missing)
    cfg = write(tmp_path / "c.toml", '[sites.shop-2.erp]\nuser = "s"\n')
    assert load_settings({"site": "shop-2"}, env={}, path=cfg).erp_user == "s"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://user:s3cr3t@erp.example/webapi", r"must not hold a user or password"),
        ("https://admin:se/cr3t@erp.example/webapi", r"must not hold a user or password"),
        ("https://admin:s3#cr3t@erp.example/webapi", r"must not hold a user or password"),
        ("https://admin:p@s3cr3t@erp.example/webapi", r"must not hold a user or password"),
        ("http://[::1/webapi", r"not a valid address \(Invalid IPv6 URL\)"),
        ("http:///webapi", r"names no host"),
        ("http://erp.example:99999/webapi", r"not a valid address \(Port out of range"),
        ("http://erp.example:0/webapi", r"port 0"),
    ],
)
def test_an_erp_url_that_is_no_usable_address_is_named(tmp_path: Path, url: str, said: str) -> None:
    """Said as a setting to correct before any request, never with a password in it."""
    cfg = write(tmp_path / "c.toml", f'[erp]\nurl = "{url}"\nuser = "u"\nazienda = "A"\n')
    with pytest.raises(ConfigError, match=r"c\.toml:\d+: \[erp\] url: .*" + said) as info:
        load_settings({}, env={"PASSWEB_TUI_ERP_PASSWORD": "pw"}, path=cfg).erp_config()
    assert "s3cr3t" not in str(info.value) and "cr3t" not in str(info.value)


def test_a_config_file_named_by_the_environment_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mistyped PASSWEB_TUI_CONFIG is an error, not a run on defaults (a new store, no
    [store] db); the terminal UI may name a file its setup screen is about to write."""
    missing = tmp_path / "confg.toml"
    env = {"PASSWEB_TUI_CONFIG": str(missing)}
    monkeypatch.setenv("PASSWEB_TUI_CONFIG", str(missing))
    with pytest.raises(ConfigError, match=r"PASSWEB_TUI_CONFIG names .*confg\.toml, which"):
        load_settings({}, env=env)
    assert load_settings({}, env=env, config_may_be_new=True).source is None
    write(missing, '[store]\ndb = "sqlite:///x.db"\n')
    assert load_settings({}, env=env).db_url == "sqlite:///x.db"


def test_saving_keeps_a_config_file_whatever_its_name(tmp_path: Path) -> None:
    """A config file named like the save's own temporary file (`site.tmp`) is the file
    saved, not a leftover to remove."""
    from passweb_tui.config import save_erp_settings

    cfg = write(tmp_path / "site.tmp", '# mine\n[store]\ndb = "sqlite:///x.db"\n')
    values = {"url": "http://h/webapi", "user": "u", "password": "pw", "azienda": "A"}
    save_erp_settings(values, cfg)
    text = cfg.read_text()
    assert text.startswith('# mine\n[store]\ndb = "sqlite:///x.db"\n') and "[erp]" in text
    assert load_settings({}, env={}, path=cfg).erp_user == "u"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.tmp"]


def test_a_missing_password_says_what_the_keyring_did(monkeypatch: pytest.MonkeyPatch) -> None:
    """No password anywhere: the error names the keyring entry it looked for, and why the
    keyring gave nothing when it could not be read or is not installed."""
    import sys
    import types

    from passweb_tui.config import Settings

    settings = Settings(erp_url="https://erp.example:9004/webapi", erp_user="web")
    broken = types.ModuleType("keyring")

    def no_backend(service: str, user: str) -> None:
        raise RuntimeError("No recommended backend was available.")

    broken.get_password = no_backend  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", broken)
    with pytest.raises(ConfigError) as said:
        settings.resolve_password()
    text = str(said.value)
    assert "service 'passweb-tui', user 'web@https://erp.example:9004/webapi'" in text
    assert "the keyring could not be read: No recommended backend was available." in text
    monkeypatch.setitem(sys.modules, "keyring", None)  # not installed
    with pytest.raises(ConfigError, match=r"no keyring here: pip install 'passweb-tui\[keyring\]'"):
        settings.resolve_password()


def test_two_sites_on_one_database_are_refused(tmp_path: Path) -> None:
    """A store URL set once at the top is inherited by every [sites.NAME] profile; two
    sites on one database would delete each other's records and share a lease and a
    quota, so a site whose store another site's profile also names is refused."""
    shared = "postgresql+psycopg://sync:secret@db.example.it/passweb"
    cfg = write(
        tmp_path / "c.toml",
        f'[store]\ndb = "{shared}"\n[sites.shop.erp]\nsite_no = 1\n[sites.outlet.erp]\nsite_no = 2\n',
    )
    with pytest.raises(ConfigError) as refused:
        load_settings({"site": "outlet"}, env={}, path=cfg)
    text = str(refused.value)
    assert "sites outlet and shop would share the store" in text
    assert "secret" not in text and "sync:***@db.example.it" in text
    # each profile with its own database, or its own SQLite file: accepted
    cfg.write_text(
        f'[store]\ndb = "{shared}"\n[sites.shop.erp]\nsite_no = 1\n'
        f'[sites.outlet.store]\ndb = "{shared}_outlet"\n',
        encoding="utf-8",
    )
    assert load_settings({"site": "outlet"}, env={}, path=cfg).db_url == f"{shared}_outlet"
    cfg.write_text("[sites.shop.erp]\nsite_no = 1\n[sites.outlet.erp]\nsite_no = 2\n")
    assert load_settings({"site": "outlet"}, env={}, path=cfg).default_store


def test_two_sites_on_one_database_are_refused_however_their_urls_spell_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same database under another spelling (localhost for 127.0.0.1, the default
    port left out, another driver name, a query option; a SQLite path through "."; a
    profile naming another site's default file) is still one store."""
    from passweb_tui.config import data_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    pg = "postgresql+psycopg://postgres@127.0.0.1:5432/shopdb"
    for other in (
        "postgresql://postgres@localhost/shopdb?application_name=x",
        "postgresql+psycopg://someone@127.0.0.1/shopdb",
    ):
        cfg = write(
            tmp_path / "c.toml",
            f'[sites.alpha.store]\ndb = "{pg}"\n[sites.gamma.store]\ndb = "{other}"\n',
        )
        for site in ("alpha", "gamma"):
            with pytest.raises(ConfigError, match="would share the store"):
                load_settings({"site": site}, env={}, path=cfg)
    file = tmp_path / "s.db"
    cfg = write(
        tmp_path / "c.toml",
        f'[sites.a.store]\ndb = "sqlite:///{file}"\n'
        f'[sites.b.store]\ndb = "sqlite:///{tmp_path}/./s.db"\n'
        f'[sites.c.store]\ndb = "sqlite:///{data_dir() / "sites" / "d" / "store.db"}"\n'
        "[sites.d.erp]\nsite_no = 4\n",
    )
    with pytest.raises(ConfigError, match="sites a and b would share"):
        load_settings({"site": "a"}, env={}, path=cfg)
    with pytest.raises(ConfigError, match="sites d and c would share"):
        load_settings({"site": "d"}, env={}, path=cfg)  # d's default store is c's
    # the default site on a profile's own database (a flag, the environment): refused
    cfg = write(tmp_path / "c.toml", f'[sites.alpha.store]\ndb = "{pg}"\n')
    with pytest.raises(ConfigError, match="sites default and alpha would share"):
        load_settings({"db_url": pg.replace("127.0.0.1:5432", "localhost")}, env={}, path=cfg)
    # a top [store] that the default site and one profile inherit, as configured from the
    # start: the same site's store, accepted either way
    cfg = write(tmp_path / "c.toml", f'[store]\ndb = "{pg}"\n[sites.shop.erp]\nsite_no = 1\n')
    assert load_settings({"site": "shop"}, env={}, path=cfg).db_url == pg
    assert load_settings({}, env={}, path=cfg).db_url == pg
    # but a profile of another site (another site number, another ERP company) on the
    # store it inherits: its TOTAL deleted the default site's records
    for other in ("[sites.shop.erp]\nsite_no = 2\n", "[sites.shop.erp]\nazienda = 'XYZ'\n"):
        cfg = write(tmp_path / "c.toml", f'[erp]\nazienda = "DEM"\n[store]\ndb = "{pg}"\n{other}')
        for site in ({"site": "shop"}, {}):
            with pytest.raises(ConfigError, match="would share the store"):
                load_settings(site, env={}, path=cfg)


def test_a_key_written_outside_its_section_is_called_a_key(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "overlap_minutes = 60\n[erp]\nurl = 'http://x'\n")
    with pytest.raises(ConfigError, match=r"unknown key 'overlap_minutes' outside any section"):
        load_settings({}, env={}, path=cfg)
    cfg = write(tmp_path / "c.toml", "[sites.shop]\nfoo = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'foo' in \[sites\.shop\]"):
        load_settings({"site": "shop"}, env={}, path=cfg)
    # profiles within a profile: never read, so refused rather than ignored
    for nested in ("[sites.shop.sites]\nfoo = 1\n", "[sites.shop.sites.x.erp]\nsite_no = 2\n"):
        cfg = write(tmp_path / "c.toml", nested)
        with pytest.raises(ConfigError, match=r"unknown section \[sites\.shop\.sites\]"):
            load_settings({"site": "shop"}, env={}, path=cfg)


def test_a_tables_true_or_false_may_be_written_as_text_as_every_other() -> None:
    """reference.md: a true/false may also be written as text ("yes"/"no", "on"/"off",
    "1"/"0"): inside [sync] update_descriptions too."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        cfg = write(
            Path(folder) / "c.toml",
            '[sync]\nupdate_descriptions = {categories = "no", payments = "on", currencies = "0"}\n',
        )
        flags = load_settings({}, env={}, path=cfg).update_descriptions
    assert flags == {"categories": False, "payments": True, "currencies": False}


def test_a_control_character_in_a_value_sent_in_a_header_is_a_setting_to_correct(
    tmp_path: Path,
) -> None:
    """A multi-line TOML string ends in a line break: as [erp] dominio it made a request
    that could not be sent, said as a lost connection after ten seconds of retries,
    with the Authorization header (user and password, in base64) in the message. It is
    a setting to correct, named with its line; the same for azienda."""
    text = (
        "[erp]\n"
        'url = "http://127.0.0.1:9/webapi"\n'
        'user = "demo"\n'
        'password = "S3cret!pw"\n'
        'azienda = "DEM"\n'
        'dominio = """\nCLOUD\n"""\n'
    )
    cfg = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError) as err:
        load_settings({}, env={}, path=cfg).erp_config()
    said = str(err.value)
    assert "c.toml:6: [erp] dominio: " in said and "control characters" in said, said
    assert "'CLOUD\\n'" in said and "S3cret" not in said
    plain = write(tmp_path / "c.toml", text.replace('dominio = """\nCLOUD\n"""\n', ""))
    with pytest.raises(ConfigError, match=r"PASSWEB_TUI_AZIENDA: azienda must not hold control"):
        load_settings({}, env={"PASSWEB_TUI_AZIENDA": "DEM\r\n"}, path=plain).erp_config()
    with pytest.raises(ConfigError, match=r"PASSWEB_TUI_AZIENDA: azienda must be ASCII"):
        load_settings({}, env={"PASSWEB_TUI_AZIENDA": "Societ\u00e0"}, path=plain).erp_config()
    # the user goes in base64: any character it holds can be sent
    tabbed = load_settings({}, env={"PASSWEB_TUI_ERP_USER": "mario\trossi"}, path=plain)
    assert tabbed.erp_config().user == "mario\trossi"


def test_saving_through_a_linked_config_writes_where_the_link_points(tmp_path: Path) -> None:
    """A config kept with the user's other settings and linked into place: the setup's
    save replaced the link with a file of its own, and the kept file went stale."""
    kept = write(tmp_path / "dotfiles" / "passweb.toml", "[sync]\noverlap_minutes = 70\n")
    link = tmp_path / "config" / "config.toml"
    link.parent.mkdir()
    link.symlink_to(kept)
    save_erp_settings({"url": "https://erp.example/webapi", "user": "mario"}, path=link)
    assert link.is_symlink() and link.resolve() == kept.resolve()
    s = load_settings({}, env={}, path=link)
    assert (s.erp_user, s.overlap_minutes) == ("mario", 70)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert sorted(p.name for p in kept.parent.iterdir()) == ["passweb.toml"]  # no leftovers


def test_a_link_to_a_config_that_is_not_there_is_said(tmp_path: Path) -> None:
    """A config linked from a folder that is not there: taken for no config at all, the
    program ran on its defaults (the default store, no ERP) without a word."""
    link = tmp_path / "config.toml"
    link.symlink_to(tmp_path / "dotfiles" / "passweb.toml")
    with pytest.raises(
        ConfigError, match=r"config\.toml: a link to .*passweb\.toml.*does not exist"
    ):
        load_settings({}, env={}, path=link)
    folder = tmp_path / "linked"  # the config's folder linked, and not there
    folder.symlink_to(tmp_path / "dotfiles" / "passweb-tui")
    with pytest.raises(ConfigError, match=r"linked: a link to .*passweb-tui.*does not exist"):
        load_settings({}, env={}, path=folder / "config.toml")


@pytest.mark.parametrize("text", ["2_026", " 2026 ", "\u0662\u0660\u0662\u0666", "2026.0"])
def test_a_whole_number_is_digits_as_written(tmp_path: Path, text: str) -> None:
    """Python's int() also reads "2_026", spaces around and other scripts' digits: a
    year written so was taken as 2026 where the ERP would not read it so."""
    with pytest.raises(ConfigError, match="PASSWEB_TUI_ANNO: expected a whole number"):
        load_settings({}, env={"PASSWEB_TUI_ANNO": text}, path=tmp_path / "none.toml")
    assert (
        load_settings({}, env={"PASSWEB_TUI_ANNO": "2026"}, path=tmp_path / "n.toml").anno == 2026
    )
