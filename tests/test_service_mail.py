"""The outcome e-mails' mail server: login, TLS, what a failure says, and doctor's check.

A small SMTP server on a real socket stands in for the mail server: it offers AUTH
PLAIN (and STARTTLS only when told to) and keeps what it is sent."""

from __future__ import annotations

import base64
import os
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hard_support import cli_here
from test_hard_secrets import lines_of

from passweb_tui.engine.service.notify import MailNotSent, MailSettings, Notifier
from passweb_tui.engine.service.service import cleartext_warning


class AuthSink(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, user: str = "sync@shop.it", password: str = "s3cret") -> None:
        super().__init__(("127.0.0.1", 0), _AuthHandler)
        self.user, self.password = user, password
        self.refusal = b"535 5.7.8 bad   credentials"  # the reply to a wrong login
        self.logins: list[str] = []
        self.mails = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _AuthHandler(socketserver.StreamRequestHandler):
    server: AuthSink

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink ESMTP")
        while line := self.rfile.readline():
            cmd = line.decode().strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-sink")
                self.reply("250 AUTH PLAIN")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(cmd.split()[2]).decode().split("\0")
                self.server.logins.append(user)
                if (user, password) == (self.server.user, self.server.password):
                    self.reply("235 2.7.0 authenticated")
                else:
                    self.wfile.write(self.server.refusal + b"\r\n")
            elif verb == "DATA":
                self.reply("354 go on")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
                self.server.mails += 1
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def sink() -> Iterator[AuthSink]:
    server = AuthSink()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def mail(sink: AuthSink, **kw: object) -> MailSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": sink.port,
        "sender": "sync@shop.it",
        "recipients": ["ops@shop.it"],
        "user": "sync@shop.it",
        "password": "s3cret",
        "timeout_s": 10,
    }
    values.update(kw)
    return MailSettings(**values)  # type: ignore[arg-type]


def test_the_check_logs_in_as_a_send_would_and_sends_nothing(sink: AuthSink) -> None:
    said = Notifier(mail(sink), "shop").check()
    assert said == f"127.0.0.1:{sink.port} answered, unencrypted, logged in as sync@shop.it"
    assert sink.logins == ["sync@shop.it"] and sink.mails == 0


def test_a_refused_login_says_so_with_the_servers_reply(sink: AuthSink) -> None:
    with pytest.raises(MailNotSent) as err:
        Notifier(mail(sink, password="wrong"), "shop").check()
    assert str(err.value) == (
        f"127.0.0.1:{sink.port} refused the login of 'sync@shop.it'"
        " (535 5.7.8 bad credentials): check smtp_user and smtp_password"
    )
    assert "wrong" not in str(err.value)


def test_starttls_asked_of_a_server_without_it_is_named(sink: AuthSink) -> None:
    with pytest.raises(MailNotSent) as err:
        Notifier(mail(sink, starttls=True), "shop").check()
    assert "does not offer STARTTLS" in str(err.value)
    assert "set smtp_starttls = false, or use port 465" in str(err.value)
    assert sink.logins == []  # no password sent in the clear instead


def test_a_port_nothing_listens_on_is_named(sink: AuthSink) -> None:
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as closed:
        port = int(closed.server_address[1])
    with pytest.raises(MailNotSent) as err:
        Notifier(mail(sink, port=port), "shop").check()
    assert str(err.value) == (
        f"127.0.0.1:{port} refused the connection (nothing listens on that port)"
    )


def test_a_password_sent_unencrypted_over_the_network_is_warned_of() -> None:
    plain = MailSettings("mail.example.it", 587, user="sync@example.it", password="x")
    assert plain.tls is None and plain.cleartext_login
    assert cleartext_warning(plain) == (
        "the SMTP password for sync@example.it goes to mail.example.it:587 unencrypted:"
        " set smtp_starttls = true, or smtp_port = 465"
    )
    assert MailSettings("mail.example.it", 587, user="u", starttls=True).tls == "STARTTLS"
    assert MailSettings("mail.example.it", 465, user="u").tls == "TLS"
    for quiet in (
        MailSettings("mail.example.it", 587, user="u", starttls=True),
        MailSettings("mail.example.it", 465, user="u"),
        MailSettings("localhost", 25, user="u"),  # it never leaves the machine
        MailSettings("mail.example.it", 25),  # no login, no password to see
    ):
        assert cleartext_warning(quiet) is None, quiet


def _doctor(tmp_path: Path, service: str) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text(f"[service]\n{service}")
    os.chmod(config, 0o600)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PASSWEB_TUI_CONFIG": str(config),
    }
    done = cli_here("--db", f"sqlite:///{tmp_path / 'store.db'}", "doctor", env=env)
    return {
        what: line
        for line in done.stdout.splitlines()
        for what in lines_of(line)
        if what.startswith("mail")
    }


def test_doctor_checks_the_mail_server_the_service_would_use(
    sink: AuthSink, tmp_path: Path
) -> None:
    base = (
        f'notify = "ops@shop.it"\nsmtp_host = "127.0.0.1"\nsmtp_port = {sink.port}\n'
        'smtp_user = "sync@shop.it"\n'
    )
    good = _doctor(tmp_path, base + 'smtp_password = "s3cret"\n')
    assert good == {
        "mail server": f"OK   mail server: 127.0.0.1:{sink.port} answered, unencrypted,"
        " logged in as sync@shop.it"
    }
    bad = _doctor(tmp_path, base + 'smtp_password = "nope"\n')
    assert bad["mail server"].startswith(f"FAIL mail server: 127.0.0.1:{sink.port} refused")
    assert sink.mails == 0
    nobody = _doctor(tmp_path, "")
    assert nobody == {
        "mail": "OK   mail: no outcome e-mails (set notify and smtp_host in [service])"
    }


def test_a_sender_that_is_not_one_plain_address_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[service]\nsmtp_from = "Sync <sync@shop.it>"\n')
    os.chmod(config, 0o600)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PASSWEB_TUI_CONFIG": str(config),
    }
    done = cli_here("--db", f"sqlite:///{tmp_path / 'store.db'}", "runs", env=env)
    assert done.returncode == 2
    assert "smtp_from" in done.stderr
    assert "'Sync <sync@shop.it>' is not an e-mail address" in done.stderr
