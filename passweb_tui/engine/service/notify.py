"""E-mail of each run's outcome to a ";"-separated list of addresses, over SMTP."""

from __future__ import annotations

import contextlib
import logging
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from passweb_tui.engine.sync import RunResult

log = logging.getLogger("passweb_tui.service.notify")


class NotifyError(ValueError):
    """A recipient list or mail setting is malformed; the message says which."""


class MailNotSent(Exception):
    """The mail server did not take an outcome e-mail; the message says where and why."""


#: the port of SMTP over TLS from the first byte (RFC 8314); any other port talks plain
#: SMTP first, and STARTTLS (smtp_starttls) turns TLS on before the login
SMTPS_PORT = 465
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def parse_recipients(text: str) -> list[str]:
    """ "a@x.it; b@y.it" -> ["a@x.it", "b@y.it"]; empty parts are ignored."""
    out: list[str] = []
    for part in text.split(";"):
        addr = part.strip()
        if not addr:
            continue
        if not is_address(addr):
            raise NotifyError(f"{addr!r} is not an e-mail address (separate addresses with ';')")
        out.append(addr)
    return out


def is_address(addr: str) -> bool:
    """A plain address, local@domain: what an SMTP envelope takes (no display name)."""
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        return False
    return not any(c.isspace() or c in ',;<>"' or ord(c) < 32 for c in addr)


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int = 25
    sender: str = "passweb-tui@localhost"
    recipients: list[str] = field(default_factory=list)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout_s: float = 30.0

    @property
    def tls(self) -> str | None:
        """How the connection is encrypted: "TLS" (port 465), "STARTTLS", or None."""
        if self.port == SMTPS_PORT:
            return "TLS"
        return "STARTTLS" if self.starttls else None

    @property
    def cleartext_login(self) -> bool:
        """True when the password would cross the network unencrypted."""
        return bool(self.user) and self.tls is None and self.host.lower() not in _LOOPBACK


def format_message(
    result: RunResult, *, site: str, sender: str, recipients: list[str]
) -> EmailMessage:
    kind = result.kind.upper()
    if result.requested_kind != result.kind:
        kind += f" (requested {result.requested_kind.upper()})"
    if result.dry_run:
        kind += " DRY RUN"  # nothing was written: said where a reader looks first
    msg = EmailMessage()
    msg["Subject"] = f"[passweb-tui {site}] run {result.run_id} {kind}: {result.status}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="passweb-tui")
    lines = [
        f"Site: {site}",
        f"Run: {result.run_id}",
        f"Kind: {kind}",
        f"Launched by: {result.origin}",
        f"Outcome: {result.status}",
        f"Started: {result.started.isoformat(timespec='seconds')}",
        f"Finished: {result.finished.isoformat(timespec='seconds') if result.finished else '-'}",
    ]
    if result.duration_s is not None:
        lines.append(f"Duration: {result.duration_s:.1f} s")
    if result.error:
        lines.append(f"Error: {result.error}")
    if result.message:
        lines.append(f"Notes: {result.message}")
    if result.entities:
        lines.append("")
        lines.append("entity: fetched inserted updated unchanged deleted rejected off-site")
        for name, c in result.entities.items():
            counts = " ".join(
                str(c.get(k, 0))
                for k in ("fetched", "inserted", "updated", "unchanged", "deleted", "rejected")
            )
            lines.append(f"{name}: {counts} {result.off_site.get(name, 0)}")
    lines.append("")
    lines.append(
        f"Orders sent {result.orders.get('sent', 0)}, failed {result.orders.get('failed', 0)}; "
        f"customers sent {result.customers.get('sent', 0)}, "
        f"failed {result.customers.get('failed', 0)}"
    )
    msg.set_content("\n".join(lines) + "\n")
    return msg


class Notifier:
    """Sends run outcomes; a message the server did not take raises MailNotSent, for the
    service to log and try again later."""

    def __init__(self, mail: MailSettings, site: str) -> None:
        self.mail = mail
        self.site = site

    def send(self, result: RunResult, timeout_s: float | None = None) -> bool:
        """True once the server took the message; False when there is nobody to send to.
        `timeout_s`: a shorter wait for the server than the settings' (a service that is
        stopping)."""
        if not self.mail.recipients:
            return False
        msg = format_message(
            result, site=self.site, sender=self.mail.sender, recipients=self.mail.recipients
        )
        try:
            smtp = self._session(timeout_s)
        except (OSError, smtplib.SMTPException) as exc:
            raise self._not_sent(result, exc) from None
        try:
            smtp.send_message(msg, to_addrs=self.mail.recipients)
        except (OSError, smtplib.SMTPException) as exc:
            smtp.close()
            raise self._not_sent(result, exc) from None
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            # the server has taken the message: sending it again would deliver it twice
            smtp.close()
        log.info(
            "outcome of run %s e-mailed to %d address(es)", result.run_id, len(self.mail.recipients)
        )
        return True

    def check(self, timeout_s: float = 10.0) -> str:
        """Connect, turn TLS on and log in as a send would, then leave without sending:
        what `doctor` says of the mail server. Raises MailNotSent saying what failed."""
        try:
            smtp = self._session(timeout_s)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailNotSent(
                f"{self.mail.host}:{self.mail.port} {smtp_failure(exc, self.mail)}"
            ) from None
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.quit()
        how = f" over {self.mail.tls}" if self.mail.tls else ", unencrypted"
        login = f", logged in as {self.mail.user}" if self.mail.user else ""
        return f"{self.mail.host}:{self.mail.port} answered{how}{login}"

    def _session(self, timeout_s: float | None) -> smtplib.SMTP:
        """A connection ready for a message: TLS on as set, logged in when a user is set."""
        timeout = timeout_s or self.mail.timeout_s
        if self.mail.tls == "TLS":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.mail.host,
                self.mail.port,
                timeout=timeout,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(self.mail.host, self.mail.port, timeout=timeout)
        try:
            if self.mail.tls == "STARTTLS":
                smtp.starttls(context=ssl.create_default_context())
            if self.mail.user:
                smtp.login(self.mail.user, self.mail.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _not_sent(self, result: RunResult, exc: BaseException) -> MailNotSent:
        return MailNotSent(
            f"could not e-mail the outcome of run {result.run_id} to "
            f"{'; '.join(self.mail.recipients)} via {self.mail.host}:{self.mail.port}:"
            f" {smtp_failure(exc, self.mail)}"
        )


def smtp_failure(exc: BaseException, mail: MailSettings) -> str:
    """What went wrong with the mail server, in words: the server's own reply is kept
    (it says why), with what was being done when it came."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return (
            f"refused the login of {mail.user!r} ({_reply(exc)}): check smtp_user and smtp_password"
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return (
            f"does not offer STARTTLS ({exc}): set smtp_starttls = false, or use port {SMTPS_PORT}"
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{a} ({_reply(e)})" for a, e in exc.recipients.items())
        return f"refused the recipients: {refused}"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"refused the sender {exc.sender!r} ({_reply(exc)}): check smtp_from"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"answered {_reply(exc)}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"closed the connection ({exc or 'no reason given'})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, TimeoutError):
        return "did not answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "refused the connection (nothing listens on that port)"
    if isinstance(exc, socket.gaierror):
        return f"is not a host name that resolves ({exc.strerror})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"could not be reached ({exc.strerror})"
    return str(exc) or type(exc).__name__


def _reply(exc: smtplib.SMTPResponseException | tuple[int, bytes]) -> str:
    code, text = (exc.smtp_code, exc.smtp_error) if not isinstance(exc, tuple) else exc
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(str(text).split())}"
