"""E-mail of each run's outcome to a ";"-separated list of addresses, over SMTP."""

from __future__ import annotations

import logging
import smtplib
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


def parse_recipients(text: str) -> list[str]:
    """ "a@x.it; b@y.it" -> ["a@x.it", "b@y.it"]; empty parts are ignored."""
    out: list[str] = []
    for part in text.split(";"):
        addr = part.strip()
        if not addr:
            continue
        local, at, domain = addr.rpartition("@")
        if not at or not local or not domain or " " in addr or "," in addr:
            raise NotifyError(f"{addr!r} is not an e-mail address (separate addresses with ';')")
        out.append(addr)
    return out


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
            smtp = smtplib.SMTP(
                self.mail.host, self.mail.port, timeout=timeout_s or self.mail.timeout_s
            )
        except (OSError, smtplib.SMTPException) as exc:
            raise self._not_sent(result, exc) from None
        try:
            if self.mail.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.mail.user:
                smtp.login(self.mail.user, self.mail.password or "")
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

    def _not_sent(self, result: RunResult, exc: BaseException) -> MailNotSent:
        return MailNotSent(
            f"could not e-mail the outcome of run {result.run_id} to "
            f"{'; '.join(self.mail.recipients)} via {self.mail.host}:{self.mail.port}: {exc}"
        )
