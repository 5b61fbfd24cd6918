"""Connection settings for one Mexal WebAPI endpoint.

Kept apart from the client so that configuration code can build them without
importing httpx, and so that the password never shows in a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The ERP refuses the sixth request in flight per user; never go above this.
ERP_MAX_IN_FLIGHT = 5

MB = 1024 * 1024
#: the most a reply read into memory may hold (a page, a search, a look-up): a page of
#: 1000 articles with every field is a few MB, so this is only ever reached by a server
#: gone wrong (or a proxy in front of it)
REPLY_MAX_BYTES = 256 * MB
#: the most one article attachment may hold, unless [sync] resource_max_mb says
ATTACHMENT_MAX_BYTES = 100 * MB


class ErpConfigError(ValueError):
    """One connection setting cannot be used; `setting` is its field name, so that
    whoever read the settings can say where that value came from."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class ErpConfig:
    """Where the ERP is and how to speak to it."""

    base_url: str  # ends in /webapi
    user: str
    password: str = field(repr=False)
    azienda: str = ""
    anno: int | None = None
    dominio: str | None = None  # cloud edition only
    magazzino: int | None = None
    sottoazienda: str | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0  # the ERP may take up to 5 minutes for one request
    max_in_flight: int = 2
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    # how long the client keeps retrying while the ERP answers "busy" (503), counted
    # from its first busy answer with no success since, over all requests: the 5
    # minutes one request may hold a slot of the user's pool. A pool still full after
    # that is not a passing rush, and a server asking (Retry-After) for an hour must
    # not hold a sync for an hour, nor each of its requests for a while
    max_unavailable_s: float = 300.0
    # the largest reply body read into memory, and the largest attachment downloaded
    # (to a file, see MexalClient.download_attachment): a body past them is refused as
    # soon as it goes past, before the rest of it comes
    max_reply_bytes: int = REPLY_MAX_BYTES
    max_attachment_bytes: int = ATTACHMENT_MAX_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.max_in_flight <= ERP_MAX_IN_FLIGHT:
            raise ErpConfigError(
                "max_in_flight", f"max_in_flight must be between 1 and {ERP_MAX_IN_FLIGHT}"
            )
        check_url(self.base_url)
        for name in ("azienda", "dominio", "sottoazienda"):
            # sent as they are in the requests' headers (the user goes in base64), where
            # a line break (a TOML multi-line string ends in one) makes a request that
            # cannot be sent at all
            value = getattr(self, name)
            if value is not None and any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
                raise ErpConfigError(
                    name, f"{name} must not hold control characters (a line break?): {value!r}"
                )
            if value is not None and not value.isascii():
                raise ErpConfigError(
                    name, f"{name} must be ASCII letters, digits and signs: {value!r}"
                )
        if self.max_retries < 0:
            raise ErpConfigError(
                "max_retries", f"max_retries cannot be negative, got {self.max_retries}"
            )
        for name in (
            "connect_timeout_s",
            "read_timeout_s",
            "backoff_base_s",
            "backoff_max_s",
            "max_unavailable_s",
        ):
            if getattr(self, name) <= 0:
                raise ErpConfigError(name, f"{name} must be positive, got {getattr(self, name)}")
        for name in ("max_reply_bytes", "max_attachment_bytes"):
            if getattr(self, name) < 1:
                raise ErpConfigError(name, f"{name} must be at least 1, got {getattr(self, name)}")


def check_url(url: str) -> None:
    """ErpConfigError unless `url` is an http(s) address of a host, ending in /webapi,
    with no user or password in it (they would show wherever the address is shown)."""
    from urllib.parse import urlsplit

    if "@" in url:
        # a user or password in it (or an address too odd to tell): the address is not
        # repeated, since no mask can be sure where a password with / # or @ ends
        raise ErpConfigError(
            "base_url",
            "ERP URL must not hold a user or password (it has an '@'; not shown here): the"
            " user goes in [erp] user, the password in PASSWEB_TUI_ERP_PASSWORD,"
            " password_command or the keyring",
        )
    shown = repr(url)
    if not url.startswith(("http://", "https://")):
        raise ErpConfigError("base_url", f"ERP URL must start with http:// or https://: {shown}")
    if not url.rstrip("/").endswith("/webapi"):
        raise ErpConfigError("base_url", f"ERP URL must end in /webapi: {shown}")
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when not a number from 0 to 65535
    except ValueError as exc:
        raise ErpConfigError(
            "base_url", f"ERP URL is not a valid address ({exc}): {shown}"
        ) from None
    if not parts.hostname:
        raise ErpConfigError("base_url", f"ERP URL names no host: {shown}")
    if port == 0:
        raise ErpConfigError("base_url", f"ERP URL: port 0 is not a port to connect to: {shown}")
