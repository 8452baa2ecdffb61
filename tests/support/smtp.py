"""A real SMTP server on loopback (aiosmtpd) that insists on STARTTLS and a
login, with a certificate made for the test (trustme), and keeps every
message it accepted, parsed."""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from stanch.harness.ports import free_port
from stanch.models.communications import EmailSettings

USER = "stanch-mailer"
PASSWORD = "s3cret-smtp-password-for-tests"
SENDER = "stanch@example.com"
# The policy names the password by variable: a test sets it (monkeypatch) for its worker.
PASSWORD_VARIABLE = "STANCH_TEST_SMTP_PASSWORD"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


@dataclass
class MailServer:
    host: str
    port: int
    ca_file: Path
    received: list[Received] = field(default_factory=list)
    logins_refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def settings(self, **changes: Any) -> EmailSettings:
        """The policy's communications.email for this server (password by ${NAME})."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": USER,
            "password": f"${{{PASSWORD_VARIABLE}}}",
            "from_address": SENDER,
            "ca_file": self.ca_file,
            **changes,
        }
        return EmailSettings.model_validate(values)

    def policy(self, **changes: Any) -> dict[str, Any]:
        """The same, as the YAML of stanch.yaml would hold it."""
        return self.settings(**changes).model_dump(mode="json", exclude={"password"}) | {
            "password": f"${{{PASSWORD_VARIABLE}}}"
        }

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.recipients]


class _Keeper:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data if session.authenticated else None
        with self.server.lock:
            self.server.received.append(
                Received(
                    sender=envelope.mail_from,
                    recipients=list(envelope.rcpt_tos),
                    message=parsed,
                    tls=session.ssl is not None,
                    login=login,
                )
            )
        return "250 OK"


@contextmanager
def running_mail_server(tmp_path: Path) -> Iterator[MailServer]:
    """STARTTLS required before anything else, and AUTH (PLAIN or LOGIN) with
    USER/PASSWORD required before MAIL."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    server = MailServer("127.0.0.1", free_port(), ca_file)

    def authenticate(smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        if (
            isinstance(data, LoginPassword)
            and data.login.decode() == USER
            and data.password.decode() == PASSWORD
        ):
            return AuthResult(success=True, auth_data=USER)
        with server.lock:
            server.logins_refused += 1
        return AuthResult(success=False, handled=False)

    controller = Controller(
        _Keeper(server),
        hostname="127.0.0.1",
        port=server.port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
        ready_timeout=10,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
