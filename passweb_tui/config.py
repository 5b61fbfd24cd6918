"""Settings: platformdirs folders, the TOML config file, environment and flags.

Priority, lowest to highest: config file, environment, command-line flags.
Every problem is a ConfigError whose message names the file, key or variable.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import shlex
import stat
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from passweb_tui.engine.erp.settings import (
    ATTACHMENT_MAX_BYTES,
    ERP_MAX_IN_FLIGHT,
    MB,
    ErpConfig,
    ErpConfigError,
)
from passweb_tui.engine.keep import keep_days_problem
from passweb_tui.i18n import pick_language

APP_NAME = "passweb-tui"
DEFAULT_SITE = "default"


class ConfigError(Exception):
    """A setting is missing, malformed or unsafe; the message says which and where."""


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def make_private_folder(folder: Path) -> None:
    """Make `folder`, and each missing folder above it, owner-only (700), as the XDG
    spec asks: the data folder holds the store and the downloaded resources, which name
    customers and orders. A folder already there is left as it is (its owner may have
    shared it on purpose); `doctor` says when others can read it."""
    try:
        folder.mkdir(mode=0o700)
    except FileNotFoundError:
        if folder.parent == folder:
            raise
        make_private_folder(folder.parent)
        make_private_folder(folder)
    except FileExistsError:
        if not folder.is_dir():
            raise


def screenshot_dir() -> Path:
    """Where the terminal UI saves its screen pictures (palette: Screenshot)."""
    return data_dir() / "screenshots"


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME))


def config_path() -> Path:
    override = os.environ.get("PASSWEB_TUI_CONFIG")
    return Path(override) if override else config_dir() / "config.toml"


@dataclass
class Settings:
    """Everything a command needs, resolved from file, environment and flags."""

    site: str = DEFAULT_SITE
    demo: bool = False
    db_url: str | None = None
    erp_url: str | None = None
    erp_user: str | None = None
    erp_password: str | None = field(default=None, repr=False)
    password_command: str | None = None
    dominio: str | None = None
    azienda: str | None = None
    anno: int | None = None
    magazzino: int | None = None
    site_no: int = 1
    ca_file: str | None = None
    verify_tls: bool = True
    max_in_flight: int = 2
    language: str | None = None
    keymap: dict[str, str] = field(default_factory=dict)
    # sync behaviour (DOMAIN.md)
    overlap_minutes: int = 65
    publish_predeleted: bool = False
    update_descriptions: dict[str, bool] = field(default_factory=dict)
    category_mode: str = "primaria"
    resources: str = "none"  # article images/sheets in TOTAL and CHANGED: none, changed, all
    # the images/sheets the ERP no longer lists, and those of articles the site no
    # longer has, are removed (their files too, once nothing refers to them)
    remove_missing_resources: bool = False
    # the largest article attachment downloaded, in MB: a bigger one is a reject
    resource_max_mb: int = ATTACHMENT_MAX_BYTES // MB
    change_log_days: int = 180
    # how long finished runs are kept, with their rejects and change-log entries (0: for
    # ever); `prune` and `serve` delete older ones (see engine/history.py)
    keep_history_days: int = 400
    lease_seconds: int = 120
    # where web customers and orders go in the ERP (DOMAIN.md)
    customer_ledger: str = "501"  # new customers are created as "<ledger>.AUTO"
    order_document: str = "OC"  # the customer-order document type: OC or OX
    order_series: int = 1  # its number series
    # how long a record whose sending process died waits before it is looked up in the
    # ERP and sent again: longer than the ERP's 5-minute limit on one request
    crash_wait_seconds: int = 360
    # a new web customer the ERP already has (the same VAT number, else tax code) is
    # bound to that ERP customer instead of created again
    match_erp_customers: bool = True
    # the sync service (`serve`): schedule, ERP trigger, e-mail, quota
    schedule_every: str = ""  # "15m", "2h", "1d"; empty = no scheduled sync
    schedule_weekdays: str = ""  # "mon,tue,...", "mon-fri"; empty = every day
    schedule_window: str = ""  # "08:00-20:00", "22:00-06:00"; empty = all day
    schedule_timezone: str = ""  # IANA name; empty = the machine's local time
    horeca: bool = False  # Ho.Re.Ca. site family (DOMAIN.md launch policy)
    scheduled_kind: str = "changed"  # "total" allowed on Ho.Re.Ca. sites only
    order_poll_seconds: int = 2
    trigger_enabled: bool = False
    trigger_host: str = "127.0.0.1"
    trigger_port: int = 8765
    trigger_token: str | None = field(default=None, repr=False)
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = False
    smtp_from: str = "passweb-tui@localhost"
    notify: str = ""  # ";"-separated e-mail addresses
    monthly_quota: int = 0  # TOTAL+CHANGED runs per month; 0 = no limit
    # where it all lives
    source: Path | None = None  # the config file read, if any
    # where each value given came from, as messages name it: the config file with its
    # section and key, the environment variable or the flag (see where())
    origins: dict[str, str] = field(default_factory=dict, repr=False)

    def where(self, attr: str) -> str:
        """Where the value of setting `attr` came from, for an error message; a value
        nobody gave (a default) is named by its key in the config file."""
        return self.origins.get(attr) or _FILE_NAMES.get(attr, attr)

    @property
    def tls_warning(self) -> str | None:
        """The warning to show while TLS verification is off (only an explicit
        `verify_tls = false` in the config file turns it off)."""
        if self.verify_tls:
            return None
        return (
            f"TLS certificate verification is OFF ({self.where('verify_tls')} = false): "
            "the ERP's identity is not checked; use ca_file / --ca-file instead"
        )

    @property
    def site_data_dir(self) -> Path:
        base = data_dir()
        if self.demo:
            return base / "demo"
        if self.site == DEFAULT_SITE:
            return base
        return base / "sites" / self.site

    @property
    def default_store(self) -> bool:
        """Whether the store is the default one, in the data folder (no setting names
        one): only then is a missing folder made for it."""
        return not self.db_url

    @property
    def resolved_db_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.site_data_dir / 'store.db'}"

    def erp_config(self) -> ErpConfig:
        """Connection settings for the ERP; ConfigError when something is missing."""
        missing = [
            name
            for name, value in (
                ("ERP URL (--erp-url, PASSWEB_TUI_ERP_URL or [erp] url)", self.erp_url),
                ("ERP user (--erp-user, PASSWEB_TUI_ERP_USER or [erp] user)", self.erp_user),
                ("azienda (--azienda, PASSWEB_TUI_AZIENDA or [erp] azienda)", self.azienda),
            )
            if not value
        ]
        if missing:
            # no file read: say where it was looked for (a mistyped PASSWEB_TUI_CONFIG)
            where = "" if self.source else f" (no config file at {config_path()})"
            raise ConfigError("missing setting: " + "; ".join(missing) + where)
        _check_erp_values(self)
        if self.ca_file:
            import ssl

            try:
                ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                reason = getattr(exc, "strerror", None) or exc.__class__.__name__
                raise ConfigError(
                    f"{self.where('ca_file')}: {self.ca_file!r} cannot be used as CA"
                    f" certificates: {reason}"
                ) from None
        password = self.resolve_password()
        assert self.erp_url and self.erp_user and self.azienda
        try:
            return ErpConfig(
                base_url=self.erp_url,
                user=self.erp_user,
                password=password,
                azienda=self.azienda,
                anno=self.anno,
                dominio=self.dominio,
                magazzino=self.magazzino,
                ca_file=self.ca_file,
                verify_tls=self.verify_tls,
                max_in_flight=self.max_in_flight,
                max_attachment_bytes=self.resource_max_mb * MB,
            )
        except ErpConfigError as exc:
            attr = {
                "base_url": "erp_url",
                "user": "erp_user",
                "max_attachment_bytes": "resource_max_mb",
            }.get(exc.setting, exc.setting)
            raise ConfigError(f"{self.where(attr)}: {exc}") from None

    def resolve_password(self) -> str:
        """The ERP password from env, config file, password_command or keyring."""
        if self.erp_password is not None:
            return self.erp_password
        if self.password_command:
            where = self.where("password_command")
            try:
                argv = shlex.split(self.password_command)
            except ValueError as exc:
                raise ConfigError(f"{where}: not a valid command line: {exc}") from None
            if not argv:
                raise ConfigError(f"{where}: is empty")
            try:
                out = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ConfigError(f"{where}: could not run: {exc.__class__.__name__}") from None
            if out.returncode != 0:
                # its own last words say why (a vault locked, an entry not found); its
                # output, where a password would be, is never shown
                said = [line.strip() for line in (out.stderr or "").splitlines() if line.strip()]
                printed = (out.stdout or "").strip()
                if said and printed and printed in said[-1]:
                    said = []  # (a trace of the command, echoing what it printed)
                why = f": {said[-1][:200]}" if said else ""
                raise ConfigError(f"{where}: exited with status {out.returncode}{why}")
            printed = out.stdout.rstrip("\n")
            if not printed:
                # an empty password would only be refused by the ERP, and every refusal
                # counts toward locking the user out
                raise ConfigError(f"{where}: printed no password")
            return printed
        entry = f"{self.erp_user}@{self.erp_url}"
        keyring_note = ""
        try:
            import keyring  # type: ignore[import-not-found]
        except ImportError:
            secret = None
            keyring_note = " (no keyring here: pip install 'passweb-tui[keyring]')"
        else:
            try:
                secret = keyring.get_password(APP_NAME, entry)
            except Exception as exc:  # no backend, a locked or unreachable store
                secret = None
                why = " ".join(str(exc).split())[:400] or exc.__class__.__name__
                keyring_note = f" (the keyring could not be read: {why})"
        if secret:
            return str(secret)
        raise ConfigError(
            "no ERP password: set PASSWEB_TUI_ERP_PASSWORD, password_command in the config "
            f"file, a keyring entry (service {APP_NAME!r}, user {entry!r}){keyring_note}, or "
            "password in an owner-only config file"
        )


_ENV = {
    "PASSWEB_TUI_DB": ("db_url", str),
    "PASSWEB_TUI_ERP_URL": ("erp_url", str),
    "PASSWEB_TUI_ERP_USER": ("erp_user", str),
    "PASSWEB_TUI_ERP_PASSWORD": ("erp_password", str),
    "PASSWEB_TUI_AZIENDA": ("azienda", str),
    "PASSWEB_TUI_ANNO": ("anno", int),
    "PASSWEB_TUI_SITE_NO": ("site_no", int),
    "PASSWEB_TUI_CA_FILE": ("ca_file", str),
    "PASSWEB_TUI_TRIGGER_TOKEN": ("trigger_token", str),
    "PASSWEB_TUI_SMTP_PASSWORD": ("smtp_password", str),
}

# config-file keys: section -> {key: (attribute, type)}
_FILE_KEYS: dict[str, dict[str, tuple[str, type]]] = {
    "erp": {
        "url": ("erp_url", str),
        "user": ("erp_user", str),
        "password": ("erp_password", str),
        "password_command": ("password_command", str),
        "dominio": ("dominio", str),
        "azienda": ("azienda", str),
        "anno": ("anno", int),
        "magazzino": ("magazzino", int),
        "site_no": ("site_no", int),
        "ca_file": ("ca_file", str),
        "verify_tls": ("verify_tls", bool),
        "max_in_flight": ("max_in_flight", int),
    },
    "store": {
        "db": ("db_url", str),
        "change_log_days": ("change_log_days", int),
        "keep_history_days": ("keep_history_days", int),
    },
    "sync": {
        "overlap_minutes": ("overlap_minutes", int),
        "publish_predeleted": ("publish_predeleted", bool),
        "category_mode": ("category_mode", str),
        "resources": ("resources", str),
        "remove_missing_resources": ("remove_missing_resources", bool),
        "resource_max_mb": ("resource_max_mb", int),
        "lease_seconds": ("lease_seconds", int),
        "update_descriptions": ("update_descriptions", dict),
    },
    "orders": {
        "ledger": ("customer_ledger", str),
        "document": ("order_document", str),
        "series": ("order_series", int),
        "crash_wait_seconds": ("crash_wait_seconds", int),
        "match_erp_customers": ("match_erp_customers", bool),
    },
    "ui": {"language": ("language", str), "keymap": ("keymap", dict)},
    "service": {
        "every": ("schedule_every", str),
        "weekdays": ("schedule_weekdays", str),
        "window": ("schedule_window", str),
        "timezone": ("schedule_timezone", str),
        "horeca": ("horeca", bool),
        "scheduled_kind": ("scheduled_kind", str),
        "order_poll_seconds": ("order_poll_seconds", int),
        "trigger": ("trigger_enabled", bool),
        "trigger_host": ("trigger_host", str),
        "trigger_port": ("trigger_port", int),
        "trigger_token": ("trigger_token", str),
        "smtp_host": ("smtp_host", str),
        "smtp_port": ("smtp_port", int),
        "smtp_user": ("smtp_user", str),
        "smtp_password": ("smtp_password", str),
        "smtp_starttls": ("smtp_starttls", bool),
        "smtp_from": ("smtp_from", str),
        "notify": ("notify", str),
        "monthly_quota": ("monthly_quota", int),
    },
}

#: each setting by its key in the config file, as messages name it
_FILE_NAMES = {
    attr: f"[{section}] {key}"
    for section, keys in _FILE_KEYS.items()
    for key, (attr, _typ) in keys.items()
}

# keys that are secrets: a config file holding one must be owner-only
_SECRETS = {
    "erp_password": "a password",
    "trigger_token": "a trigger token",
    "smtp_password": "an SMTP password",
}


def _coerce(value: Any, typ: type, where: str) -> Any:
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        # digits as written (a text from the environment): not the forms int() also
        # takes, "2_026", " 2026 " or digits of other scripts
        if isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return int(value)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        }:
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if typ is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected text, got {value!r}")
    return value


def _owner_only(path: Path) -> bool:
    mode = path.stat().st_mode
    return not mode & (stat.S_IRWXG | stat.S_IRWXO)


_TOML_NAME = r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+'
_TOML_HEADER = re.compile(
    rf"^\s*\[\s*((?:{_TOML_NAME})(?:\s*\.\s*(?:{_TOML_NAME}))*)\s*\]\s*(?:#.*)?$"
)
_TOML_KEY = re.compile(rf"^\s*({_TOML_NAME})\s*=")


def _toml_unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        inner = name[1:-1]
        if name[0] == '"':
            try:
                return str(tomllib.loads(f"k = {name}")["k"])
            except tomllib.TOMLDecodeError:
                return inner
        return inner
    return name


def key_lines(text: str) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """The line (from 1) of each `key = ...` in a TOML text, by (table, key), the table
    as its dotted header reads unquoted ("sites.shop.erp"; "" above any header); and the
    line of each table's header. For the place of a value in error messages: a key it
    does not find (a dotted key, one inside an inline table) is simply not there, and
    the message goes without its line."""
    lines: dict[tuple[str, str], int] = {}
    headers: dict[str, int] = {}
    table = ""
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if in_multiline is not None:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _TOML_HEADER.match(line)
        if header is not None:
            parts = re.findall(_TOML_NAME, header.group(1))
            table = ".".join(_toml_unquote(p) for p in parts)
            headers.setdefault(table, number)
            continue
        key = _TOML_KEY.match(line)
        if key is not None:
            lines.setdefault((table, _toml_unquote(key.group(1))), number)
        for quotes in ('"""', "'''"):
            if line.count(quotes) % 2 == 1:
                in_multiline = quotes
                break
    return lines, headers


def read_config_file(
    path: Path, site: str, origins: dict[str, str] | None = None
) -> dict[str, Any]:
    """Values from the TOML file: top-level sections, then [sites.NAME] overrides.

    `origins`, when given, gets each value's file, section and key (for messages)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        for link in (path, path.parent):
            if link.is_symlink() and not link.exists():
                # a link to settings kept elsewhere that are not there (a dotfiles
                # folder not checked out): no settings would pass for the defaults
                raise ConfigError(
                    f"{link}: a link to {os.readlink(link)!r}, which does not exist"
                ) from None
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None

    values: dict[str, Any] = {}
    lines, headers = key_lines(raw.decode("utf-8-sig"))

    def at(line: int | None) -> str:
        return f"{path}" if line is None else f"{path}:{line}"

    def header(table: str) -> int | None:
        """The line of the table's header, or of the first header within it."""
        if table in headers:
            return headers[table]
        within = [n for t, n in headers.items() if t.startswith(f"{table}.")]
        return min(within, default=None)

    def take(sections: dict[str, Any], prefix: str) -> None:
        for section, keys in sections.items():
            if section == "sites" and not prefix:
                continue  # the profiles: read below
            if section == "sites":  # profiles within a profile: none are read
                raise ConfigError(
                    f"{at(header(f'{prefix}sites'))}: unknown section [{prefix}sites]:"
                    " a profile holds no profiles"
                )
            if not isinstance(keys, dict) and section not in _FILE_KEYS:
                # a key, not a section: written above any [section] header
                where = f"in [{prefix[:-1]}]" if prefix else "outside any section"
                line = lines.get((prefix[:-1], section))
                raise ConfigError(
                    f"{at(line)}: unknown key {section!r} {where}: settings go in their section,"
                    f" such as [{next(iter(_FILE_KEYS))}]"
                )
            if section not in _FILE_KEYS:
                raise ConfigError(
                    f"{at(header(prefix + section))}: unknown section [{prefix}{section}]"
                )
            if not isinstance(keys, dict):
                raise ConfigError(f"{path}: {prefix}{section} must be a table")
            for key, value in keys.items():
                spec = _FILE_KEYS[section].get(key)
                line = lines.get((f"{prefix}{section}", key))
                if spec is None:
                    raise ConfigError(f"{at(line)}: unknown key {key!r} in [{prefix}{section}]")
                attr, typ = spec
                where = f"{at(line)}: [{prefix}{section}] {key}"
                values[attr] = _coerce(value, typ, where)
                if origins is not None:
                    origins[attr] = where

    take(doc, "")
    sites = doc.get("sites", {})
    if not isinstance(sites, dict):
        raise ConfigError(f"{path}: sites must be a table of [sites.NAME] profiles")
    for name, profile in sites.items():
        if not isinstance(profile, dict):
            raise ConfigError(f"{path}: sites.{name} must be a table ([sites.{name}.erp] ...)")
    if site != DEFAULT_SITE:
        if site not in sites:
            raise ConfigError(f"{path}: no [sites.{site}] profile for --site {site}")
        take(sites[site], f"sites.{site}.")
    # a secret anywhere in the file (in another site's profile too) is read by whoever
    # can read the file: it is used only when the file is owner-only
    found = file_secrets(doc)
    if "a password" in found and not _owner_only(path):
        raise ConfigError(
            f"{path}: holds a password but is readable by others; run chmod 600 on it "
            "or move the password to PASSWEB_TUI_ERP_PASSWORD, password_command or the keyring"
        )
    secrets = [what for what in found if what != "a password"]
    if secrets and not _owner_only(path):
        raise ConfigError(
            f"{path}: holds {secrets[0]} but is readable by others; run chmod 600 on it "
            "or set it in the environment (PASSWEB_TUI_TRIGGER_TOKEN, PASSWEB_TUI_SMTP_PASSWORD,"
            " PASSWEB_TUI_DB; or PostgreSQL's own password file, ~/.pgpass)"
        )
    return values


def file_secrets(doc: dict[str, Any]) -> list[str]:
    """The secrets a parsed config file holds, at the top or in any site's profile, as
    messages name them ("a password", ...)."""
    sites = doc.get("sites")
    profiles = sites.values() if isinstance(sites, dict) else ()
    parts = [doc, *(p for p in profiles if isinstance(p, dict))]
    return [what for part in parts for what in _secrets_in(part)]


def _secrets_in(part: dict[str, Any]) -> list[str]:
    """What secrets a part of the config file (the top level, or one site's profile)
    holds, as messages name them."""
    found = []
    for section, keys in _FILE_KEYS.items():
        table = part.get(section)
        if not isinstance(table, dict):
            continue
        for key, (attr, _typ) in keys.items():
            if attr in _SECRETS and table.get(key) not in (None, ""):
                found.append(_SECRETS[attr])
            elif attr == "db_url" and isinstance(table.get(key), str) and _url_password(table[key]):
                found.append("a database password")
    return found


def _url_password(url: str) -> bool:
    """Whether a store URL carries a password: in its user part (`user:pw@`) or in its
    query (`?password=`, `?sslpassword=`, ...), whether or not it parses."""
    from passweb_tui.engine.store import url_has_secret

    return url_has_secret(url)


#: settings the demo always takes as its own (see load_settings)
_DEMO_OWN = (
    "db_url",
    "erp_url",
    "erp_user",
    "erp_password",
    "password_command",
    "dominio",
    "azienda",
    "anno",
    "magazzino",
    "ca_file",
    "verify_tls",
    "smtp_host",
    "notify",
    # the production ERP's allowance: the built-in simulator has none
    "monthly_quota",
)


def demo_settings(settings: Settings) -> Settings:
    """These settings as `--demo` has them (the setup screen's demo key): the demo's own
    store and built-in ERP, nobody to e-mail, no quota; the rest as configured."""
    defaults = Settings()
    own = {attr: getattr(defaults, attr) for attr in _DEMO_OWN}
    origins = {k: v for k, v in settings.origins.items() if k not in _DEMO_OWN}
    return replace(settings, demo=True, origins=origins, **own)


#: global flags by the attribute they set
_FLAG_NAMES = {"db_url": "db", "erp_url": "erp-url", "erp_user": "erp-user", "azienda": "azienda",
               "anno": "anno", "site_no": "site-no", "ca_file": "ca-file"}  # fmt: skip


def load_settings(
    flags: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    path: Path | None = None,
    config_may_be_new: bool = False,
) -> Settings:
    """Resolve settings; flags with value None are treated as not given. A config file
    named by PASSWEB_TUI_CONFIG must exist, unless `config_may_be_new` (the terminal UI,
    whose setup screen writes it)."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = dict(os.environ) if env is None else env
    site = flags.get("site")
    site = DEFAULT_SITE if site is None else site  # an empty name is refused below
    if not re.fullmatch(r"[^\W_][\w.-]{0,63}", site):
        # the name becomes a folder of the data folder: nothing that could leave it
        raise ConfigError(
            f"--site {site!r}: a site name is letters, digits, '.', '-' and '_', starting"
            " with a letter or digit (at most 64)"
        )
    cfg_path = path or config_path()
    named = env.get("PASSWEB_TUI_CONFIG") if path is None else None
    if named and not config_may_be_new and not cfg_path.exists():
        # a mistyped path would otherwise run on defaults: a new store, another ERP
        raise ConfigError(
            f"environment PASSWEB_TUI_CONFIG names {cfg_path}, which does not exist"
            " (unset it to use the default config file)"
        )
    if site != DEFAULT_SITE and not cfg_path.exists():
        raise ConfigError(f"--site {site}: there is no config file ({cfg_path}) with its profile")
    origins: dict[str, str] = {}
    values = read_config_file(cfg_path, site, origins)
    for var, (attr, typ) in _ENV.items():
        if var in env and env[var] != "":
            values[attr] = _coerce(env[var], typ, f"environment {var}")
            origins[attr] = f"environment {var}"
    if flags.get("demo"):
        # the demo never touches the configured store, ERP or mail: its own store in its
        # own folder, the built-in simulator, nobody to e-mail
        given = [f"--{_FLAG_NAMES[a]}" for a in _DEMO_OWN if a in flags and a in _FLAG_NAMES]
        if given:
            raise ConfigError(
                f"--demo uses its own store and its built-in ERP: leave out {', '.join(given)}"
            )
        for attr in _DEMO_OWN:
            values.pop(attr, None)
            origins.pop(attr, None)
    values.update(flags)
    for attr in flags:
        if attr in _FLAG_NAMES:
            origins[attr] = f"--{_FLAG_NAMES[attr]}"
        else:  # set by the program itself: no longer the file's value
            origins.pop(attr, None)
    settings = Settings(**values, origins=origins)
    if cfg_path.exists():
        settings.source = cfg_path
        if not flags.get("demo"):
            _check_own_store(settings, cfg_path)
    _check_values(settings)
    _check_tables(settings)
    _check_service(settings)
    warning = settings.tls_warning
    if warning:
        # said on every command's stderr; the UI shows the same text on its screens
        logging.getLogger("passweb_tui.config").warning(warning)
    return settings


def _check_own_store(settings: Settings, cfg_path: Path) -> None:
    """Each site needs a store of its own: runs, records, the lease and the quota are
    kept per store, so two sites on one database would delete each other's records,
    hold each other's lease and spend each other's quota. The stores are compared as
    databases, not as URL texts (localhost is 127.0.0.1, a port left out is the default
    one, a SQLite path is the file it names), with the default site's and every
    profile's, each one's default store where it names none."""
    if settings.demo:
        return
    mine = store_identity(settings.resolved_db_url)
    if mine is None:
        return
    try:
        doc = tomllib.loads(cfg_path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return  # read_config_file has said what is wrong with it
    sites = doc.get("sites")
    profiles = list(sites) if isinstance(sites, dict) else []
    if not profiles:
        return  # one site: nothing to share its store with
    # the default site shares the top [store] with the profiles that inherit it when
    # they are the same site (a profile alike but for what it sets of the service, say):
    # the same ERP company and site number. A profile of another site (another site
    # number, another ERP) on the inherited store is compared as any other: its TOTAL
    # would delete the default site's records.
    mine_inherited = settings.site != DEFAULT_SITE and _top_store(settings.where("db_url"))
    try:
        me = _site_of(read_config_file(cfg_path, settings.site))
    except ConfigError:
        return  # said where the settings are read
    for other in [*profiles, DEFAULT_SITE]:
        if other == settings.site:
            continue
        origins: dict[str, str] = {}
        try:
            other_values = read_config_file(cfg_path, other, origins)
        except ConfigError:
            continue  # that profile's own problem, said when it is used
        url = other_values.get("db_url")
        if DEFAULT_SITE in (other, settings.site) and url is not None:
            theirs_inherited = other != DEFAULT_SITE and _top_store(origins.get("db_url", ""))
            if (mine_inherited or theirs_inherited) and _site_of(other_values) == me:
                continue
        if url is None:
            folder = data_dir() if other == DEFAULT_SITE else data_dir() / "sites" / other
            url = f"sqlite:///{folder / 'store.db'}"
        if store_identity(url) == mine:
            from passweb_tui.engine.store import shown_url

            shown = shown_url(settings.resolved_db_url)
            where = settings.where("db_url") if settings.db_url else "its default store"
            raise ConfigError(
                f"{where}: sites {settings.site} and {other} would share the store {shown};"
                " each site needs its own database (set [sites.NAME.store] db for each), or"
                " they would delete each other's records and share one lease and one quota"
            )


def _site_of(values: dict[str, Any]) -> tuple[Any, ...]:
    """The site a site's config file settings name: its ERP address, company and site
    number (what the environment or a flag sets is the same for every site)."""
    return (values.get("erp_url"), values.get("azienda"), values.get("site_no", 1))


def _top_store(origin: str) -> bool:
    """Whether a store URL came from the config file's top [store] section."""
    return origin.endswith(": [store] db")


def store_identity(url: str) -> tuple[Any, ...] | None:
    """The database a store URL names, for telling whether two URLs name the same one
    (None when the URL does not parse: said where it is used)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database.startswith("file:") or database in ("", ":memory:"):
            return (backend, database)
        return (backend, str(Path(database).expanduser().resolve()))
    host = (parsed.host or "localhost").lower()
    if host in ("127.0.0.1", "::1", "localhost"):
        host = "localhost"
    port = parsed.port or {"postgresql": 5432, "mysql": 3306}.get(backend)
    return (backend, host, port, parsed.database)


def _check_erp_values(settings: Settings) -> None:
    """The ERP's plain values: checked by the commands that reach the ERP (erp_config),
    not by those that only read the store."""
    where = settings.where
    if not 1 <= settings.max_in_flight <= ERP_MAX_IN_FLIGHT:
        # the ERP refuses the request past its limit per user, counted over every process
        raise ConfigError(
            f"{where('max_in_flight')}: requests in flight to the ERP must be"
            f" 1-{ERP_MAX_IN_FLIGHT}, got {settings.max_in_flight}"
        )
    if settings.anno is not None and not 1900 <= settings.anno <= 2999:
        # the ERP's company year, sent in every request's Coordinate-Gestionale header
        raise ConfigError(f"{where('anno')}: must be a year like 2026, got {settings.anno}")
    if settings.magazzino is not None and not 1 <= settings.magazzino <= 999_999:
        raise ConfigError(
            f"{where('magazzino')}: must be a warehouse number (1-999999), got {settings.magazzino}"
        )


#: the largest [sync] resource_max_mb: 10 GB (a download goes to a file, not to memory)
RESOURCE_MAX_MB_LIMIT = 10 * 1024


def _check_values(settings: Settings) -> None:
    """The plain values that must be in a range or one of a few words."""
    where = settings.where
    if not 1 <= settings.site_no <= 9:
        raise ConfigError(f"{where('site_no')}: site number must be 1-9, got {settings.site_no}")
    if not re.fullmatch(r"[0-9]{1,6}", settings.customer_ledger):
        raise ConfigError(
            f"{where('customer_ledger')}: must be the ERP's customer ledger (mastro), digits"
            f" like 501, got {settings.customer_ledger!r}"
        )
    if settings.order_document not in {"OC", "OX"}:
        raise ConfigError(
            f"{where('order_document')}: must be OC or OX, got {settings.order_document!r}"
        )
    if not 1 <= settings.order_series <= 999:
        raise ConfigError(f"{where('order_series')}: must be 1-999, got {settings.order_series}")
    if not 0 <= settings.crash_wait_seconds <= 86_400:
        raise ConfigError(
            f"{where('crash_wait_seconds')}: must be 0-86400 (the ERP gives one request up to"
            f" 300 s: less risks sending an order twice), got {settings.crash_wait_seconds}"
        )
    if settings.resources not in {"none", "changed", "all"}:
        raise ConfigError(
            f"{where('resources')}: must be none, changed or all, got {settings.resources!r}"
        )
    for attr, least, most in (
        ("overlap_minutes", 0, 7 * 24 * 60),  # a week
        ("lease_seconds", 2, 24 * 3600),  # a day
        ("change_log_days", 1, 100 * 366),
        ("resource_max_mb", 1, RESOURCE_MAX_MB_LIMIT),
    ):
        value = getattr(settings, attr)
        if not least <= value <= most:
            raise ConfigError(f"{where(attr)}: must be {least}-{most}, got {value}")
    problem = keep_days_problem(settings.keep_history_days)
    if problem is not None:
        raise ConfigError(f"{where('keep_history_days')}: {problem}")
    if settings.category_mode not in {"primaria", "secondaria"}:
        raise ConfigError(
            f"{where('category_mode')}: must be primaria or secondaria,"
            f" got {settings.category_mode!r}"
        )
    if settings.language:
        try:
            pick_language(settings.language)
        except ValueError as exc:  # every command checks it, not the UI alone
            raise ConfigError(f"{where('language')}: {exc}") from None


def _check_tables(settings: Settings) -> None:
    """The values inside [ui] keymap and [sync] update_descriptions."""
    for action, keys in settings.keymap.items():
        if not isinstance(keys, str) or not keys.strip():
            raise ConfigError(
                f"{settings.where('keymap')}.{action}: expected keys as text"
                f' (like "ctrl+q"), got {keys!r}'
            )
    if not settings.update_descriptions:
        return
    from passweb_tui.engine.records import LOOKUP_ENTITIES  # only then: it loads the models

    where = settings.where("update_descriptions")
    for table, flag in list(settings.update_descriptions.items()):
        if table not in LOOKUP_ENTITIES:
            raise ConfigError(
                f"{where}.{table}: not a lookup table (one of {', '.join(LOOKUP_ENTITIES)})"
            )
        # as every true/false setting: "yes"/"no", "on"/"off", "1"/"0" written as text too
        settings.update_descriptions[table] = _coerce(flag, bool, f"{where}.{table}")


#: the [service] settings a schedule message starts with ("window: ...")
_SCHEDULE_SETTINGS = {
    "every": "schedule_every",
    "weekdays": "schedule_weekdays",
    "window": "schedule_window",
    "scheduled_kind": "scheduled_kind",
}


def _check_service(settings: Settings) -> None:
    """The [service] values must make sense before `serve` or the UI relies on them."""
    from passweb_tui.engine.service.schedule import ScheduleError, schedule_from_text

    where = settings.where
    try:
        schedule_from_text(
            settings.schedule_every,
            settings.schedule_weekdays,
            settings.schedule_window,
            kind=settings.scheduled_kind,
            horeca=settings.horeca,
        )
    except ScheduleError as exc:
        # its message starts with the setting at fault; one about every and weekdays
        # together does not, and is named after every
        key, sep, problem = str(exc).partition(": ")
        attr = _SCHEDULE_SETTINGS.get(key) if sep else None
        if attr is None:
            raise ConfigError(f"{where('schedule_every')}: {exc}") from None
        raise ConfigError(f"{where(attr)}: {problem}") from None
    if settings.schedule_timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(settings.schedule_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{where('schedule_timezone')}: unknown time zone {settings.schedule_timezone!r}"
            ) from None
    for attr in ("trigger_port", "smtp_port"):
        value = getattr(settings, attr)
        if not 0 <= value <= 65535:
            raise ConfigError(f"{where(attr)}: must be a TCP port 0-65535, got {value}")
    if settings.monthly_quota < 0:
        raise ConfigError(
            f"{where('monthly_quota')}: cannot be negative, got {settings.monthly_quota}"
        )
    if not 1 <= settings.order_poll_seconds <= 86_400:
        raise ConfigError(
            f"{where('order_poll_seconds')}: must be 1-86400 (a day), got"
            f" {settings.order_poll_seconds}"
        )
    from passweb_tui.engine.service.notify import NotifyError, is_address, parse_recipients

    try:
        recipients = parse_recipients(settings.notify)
    except NotifyError as exc:
        raise ConfigError(f"{where('notify')}: {exc}") from None
    if recipients and not settings.smtp_host:
        raise ConfigError(
            f"{where('notify')}: outcome e-mails need a mail server too: set smtp_host in [service]"
        )
    if not is_address(settings.smtp_from):
        raise ConfigError(
            f"{where('smtp_from')}: {settings.smtp_from!r} is not an e-mail address"
            " (one plain address, like sync@example.it)"
        )


def save_erp_settings(
    values: dict[str, Any], path: Path | None = None, *, site: str = DEFAULT_SITE
) -> Path:
    """Write the ERP settings of the setup screen where `site` reads them: [erp] for the
    default site, [sites.NAME.erp] for another.

    Only that table changes: the keys given get their new values in place (a key the
    table lacks is added after its last one; the table is appended when there is none),
    every other line of the file stays as it was, comments included. A table written in
    a form that cannot be changed in place (an inline table, dotted keys) is refused with
    a ConfigError saying what to edit by hand; so is a change the project's loader would
    not read back as exactly the settings intended. The file is written owner-only, to a
    temporary file renamed over it; nothing is changed when it is refused."""
    cfg_path = path or config_path()
    section = ("erp",) if site == DEFAULT_SITE else ("sites", site, "erp")
    name = ".".join(_toml_key(part) for part in section)
    new = {key: value for key, value in values.items() if value is not None}
    unknown = sorted(set(new) - set(_FILE_KEYS["erp"]))
    if unknown:
        raise ValueError(f"not ERP settings: {', '.join(unknown)}")
    by_hand = f"nothing was saved: set url, user, password and azienda in [{name}] by hand"
    try:
        text = cfg_path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise ConfigError(f"{cfg_path}: cannot be read ({exc.strerror}); {by_hand}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{cfg_path}: not UTF-8 text; {by_hand}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{cfg_path}: not valid TOML ({exc}); {by_hand}") from None
    # the settings the site reads now: the saved keys are all that may change
    try:
        before = read_config_file(cfg_path, site)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; {by_hand}") from None
    try:
        new_text = _edit_table(text, section, new)
    except _CannotEdit as exc:
        raise ConfigError(
            f"{cfg_path}: the setup does not change [{name}] in place: {exc}; {by_hand}"
        ) from None
    # the whole document must read the same, but for the keys saved
    expected_doc = copy.deepcopy(doc)
    table = expected_doc
    for part in section:
        table = table.setdefault(part, {})
    table.update(new)
    expected = dict(before)
    for key, value in new.items():
        attr, typ = _FILE_KEYS["erp"][key]
        expected[attr] = _coerce(value, typ, f"[{name}] {key}")
    # a config that is a link (to a file kept with the user's other settings) is written
    # where the link points, and stays a link
    target = cfg_path.resolve() if cfg_path.is_symlink() else cfg_path
    target.parent.mkdir(parents=True, exist_ok=True)
    # a new file of its own beside the config (never the config itself, whatever its
    # name), owner-only from the start
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(new_text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            same = _same(tomllib.loads(new_text), expected_doc)
            same = same and read_config_file(tmp, site) == expected
        except (ConfigError, tomllib.TOMLDecodeError):
            same = False
        if not same:
            raise ConfigError(
                f"{cfg_path}: the setup could not change [{name}] without changing what the"
                f" rest of the file says; {by_hand}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return cfg_path


def _same(a: Any, b: Any) -> bool:
    """Two parsed documents hold the same (a NaN, unequal to itself, included)."""
    return bool(a == b or repr(a) == repr(b))


class _CannotEdit(Exception):
    """The config file's text is in a form that is not changed in place; says which."""


@dataclass
class _Statement:
    """One statement of a TOML text: a table header or a key = value."""

    start: int  # where its line begins
    end: int  # just past its line's newline (or the end of the text)
    kind: str  # "table" ([a.b]), "array" ([[a.b]]) or "key" (a.b = value)
    path: tuple[str, ...]  # the header's table, or the key (relative to its table)
    value: tuple[int, int] = (0, 0)  # a key's value, start and end


def _skip_blanks(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _past_line(text: str, i: int) -> int:
    """Past what ends a statement at i: blanks, a comment, the newline."""
    i = _skip_blanks(text, i)
    if i < len(text) and text[i] == "#":
        newline = text.find("\n", i)
        return len(text) if newline < 0 else newline + 1
    if text.startswith("\r\n", i):
        return i + 2
    if i == len(text) or text[i] == "\n":
        return min(i + 1, len(text))
    raise _CannotEdit(f"unexpected {text[i]!r}")


def _past_string(text: str, i: int) -> int:
    """Past the string (basic, literal, or either multi-line) opening at i."""
    for quote in ('"""', "'''"):
        if text.startswith(quote, i):
            j = i + 3
            while not text.startswith(quote, j):
                j += 2 if quote == '"""' and text[j] == "\\" else 1
                if j >= len(text):
                    raise _CannotEdit("a string that does not end")
            end = j + 3
            while end < len(text) and end - j < 5 and text[end] == quote[0]:
                end += 1  # up to two quotes just before the closing ones are the string's
            return end
    quote, j = text[i], i + 1
    while text[j] != quote:
        if text[j] in "\r\n":
            raise _CannotEdit("a string that does not end on its line")
        j += 2 if quote == '"' and text[j] == "\\" else 1
    return j + 1


def _past_value(text: str, i: int) -> int:
    """Past the value starting at i (an array may span lines, with comments)."""
    if text[i] in "\"'":
        return _past_string(text, i)
    if text[i] in "[{":
        depth = 0
        while True:
            if text[i] in "\"'":
                i = _past_string(text, i)
                continue
            if text[i] == "#":
                i = text.index("\n", i)
            elif text[i] in "[{":
                depth += 1
            elif text[i] in "]}":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    # a number, true/false or a date (which may hold a space): up to a comment or newline
    j = i
    while j < len(text) and text[j] not in "#\r\n":
        j += 1
    while text[j - 1] in " \t":
        j -= 1
    return j


def _key_until(text: str, i: int, stop: str) -> int:
    """Where a key starting at i ends, at `stop` outside its quotes."""
    while text[i] != stop:
        if text[i] in "\"'":
            i = _past_string(text, i)
        elif text[i] in "\r\n#":
            raise _CannotEdit("a key that does not end on its line")
        else:
            i += 1
    return i


def _key_path(key: str) -> tuple[str, ...]:
    """The parts of a dotted key as TOML reads them (quotes and escapes undone)."""
    node: Any = tomllib.loads(f"{key} = 0")
    path: list[str] = []
    while isinstance(node, dict):
        ((part, node),) = node.items()
        path.append(part)
    return tuple(path)


def _statements(text: str) -> list[_Statement]:
    """The statements of a valid TOML text, in order (blank and comment lines left out)."""
    out: list[_Statement] = []
    i = 0
    try:
        while i < len(text):
            start, i = i, _skip_blanks(text, i)
            if i == len(text):
                break
            if text[i] in "\r\n#":
                i = _past_line(text, i)
            elif text[i] == "[":
                array = text.startswith("[[", i)
                key = i + (2 if array else 1)
                close = _key_until(text, key, "]")
                if array and not text.startswith("]]", close):
                    raise _CannotEdit("an array of tables' header")
                path = _key_path(text[key:close])
                i = _past_line(text, close + (2 if array else 1))
                out.append(_Statement(start, i, "array" if array else "table", path))
            else:
                equals = _key_until(text, i, "=")
                path = _key_path(text[i:equals])
                value = _skip_blanks(text, equals + 1)
                value_end = _past_value(text, value)
                i = _past_line(text, value_end)
                out.append(_Statement(start, i, "key", path, (value, value_end)))
    except (IndexError, ValueError):  # TOMLDecodeError is a ValueError
        raise _CannotEdit("its text could not be followed") from None
    return out


def _edit_table(text: str, section: tuple[str, ...], values: dict[str, Any]) -> str:
    """The text with `values` set in table `section` ([section] header), nothing else
    changed; _CannotEdit if the table is written in another form."""

    def line(statement: _Statement) -> int:
        return text.count("\n", 0, statement.start) + 1

    name = ".".join(_toml_key(part) for part in section)
    header: _Statement | None = None
    body: list[_Statement] = []  # the table's keys
    table: tuple[str, ...] = ()
    for statement in _statements(text):
        if statement.kind != "key":
            table = statement.path
            if statement.kind == "array" and (
                table[: len(section)] == section or section[: len(table)] == table
            ):
                raise _CannotEdit(f"line {line(statement)} makes it part of an array of tables")
            if table == section:
                header = statement
            continue
        full = table + statement.path
        if table == section:
            if len(statement.path) > 1:
                raise _CannotEdit(f"line {line(statement)} in it is a dotted key")
            body.append(statement)
        elif section[: len(full)] == full:
            raise _CannotEdit(
                f"it is written as an inline table, line {line(statement)}"
                f" ({'.'.join(full)} = {{...}})"
            )
        elif full[: len(section)] == section:
            raise _CannotEdit(
                f"it is written with dotted keys, line {line(statement)} ({'.'.join(full)} = ...)"
            )
    nl = "\r\n" if "\r\n" in text else "\n"
    left = dict(values)
    edits: list[tuple[int, int, str]] = []
    for statement in body:
        key = statement.path[0]
        if key in left:
            edits.append((*statement.value, _toml_value(left.pop(key))))
    added = "".join(f"{_toml_key(key)} = {_toml_value(value)}{nl}" for key, value in left.items())
    if header is None:  # a new table at the end, after a blank line
        at, added = len(text), f"[{name}]{nl}{added}"
        if text.strip() and not re.search(r"\n[ \t]*\r?\n\Z", text):
            added = nl + added  # (and a newline first, below, if the last line has none)
    else:  # after the table's last key
        at = (body[-1] if body else header).end
    if added:
        if text[:at] and not text[:at].endswith("\n"):
            added = nl + added  # the last line had no newline
        edits.append((at, at, added))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _toml_string(text: str) -> str:
    """A TOML basic string: backslash, quote and every control character escaped."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return _toml_string(str(value))


def _toml_key(key: str) -> str:
    # a bare key is ASCII letters, digits, "_" and "-" only; anything else is quoted
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def with_demo_erp(
    settings: Settings, url: str, user: str, password: str, azienda: str, anno: int
) -> Settings:
    """The same settings pointed at the embedded demo simulator."""
    return replace(
        settings,
        erp_url=url,
        erp_user=user,
        erp_password=password,
        azienda=azienda,
        anno=anno,
        password_command=None,
        ca_file=None,
    )
