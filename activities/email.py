"""Email as a channel: one status update as one message, sent over SMTP with
STARTTLS and a login.

Each message has a Message-ID of its own update (`<update-id@stanch>`), so a
message sent twice (a worker lost between the server taking it and the
delivery being recorded) is one message to mail clients, and every update
after the incident's first replies to that first one (In-Reply-To and
References), so each incident is one thread.

The password is resolved at the moment of sending and never logged: an
error names the server and what it said, never the credentials.
"""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime

from stanch.models.communications import EmailSettings
from stanch.models.secret_reference import UnresolvedSecret
from stanch.models.status_updates import Delivery, message_id


class EmailFailed(Exception):
    """The server did not take the message. `permanent`: retrying cannot help
    (a refused login or recipient, a server without STARTTLS)."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def subject(delivery: Delivery) -> str:
    brief = delivery.briefing
    where = f" [{brief.service}]" if brief.service else ""
    # One subject for the whole thread: clients that thread by subject agree.
    return f"[stanch] {brief.severity} {brief.title}{where}"


def compose(delivery: Delivery, settings: EmailSettings) -> EmailMessage:
    """The message for `delivery`: plain text and HTML of the same words."""
    update, brief = delivery.update, delivery.briefing
    message = EmailMessage()
    message["Subject"] = _one_line(subject(delivery))
    message["From"] = settings.from_address
    message["To"] = delivery.subscriber.normalised
    message["Date"] = format_datetime(update.at)
    message["Message-ID"] = message_id(update.id)
    if delivery.thread != update.id:
        message["In-Reply-To"] = message_id(delivery.thread)
        message["References"] = message_id(delivery.thread)
    message["X-Stanch-Incident"] = delivery.incident_id
    lines = [
        update.text,
        "",
        f"Status: {update.status}",
        f"Severity: {brief.severity}",
        *([f"Service: {brief.service}"] if brief.service else []),
        f"Incident: {delivery.incident_id}",
        f"Update {update.number} at {update.at:%Y-%m-%d %H:%M} UTC",
    ]
    message.set_content("\n".join(lines) + "\n")
    facts = "".join(f"<li>{html.escape(line)}</li>" for line in lines[2:])
    message.add_alternative(
        "<!doctype html><html><body>"
        f'<p style="white-space:pre-wrap">{html.escape(update.text)}</p>'
        f"<ul>{facts}</ul></body></html>\n",
        subtype="html",
    )
    return message


def _one_line(text: str) -> str:
    # A title comes from the alert rule: it must not add a header.
    return " ".join(text.split())


async def send_email(settings: EmailSettings, message: EmailMessage) -> None:
    """Sends `message` (smtplib, in a thread); EmailFailed says why not."""
    await asyncio.to_thread(_send, settings, message)


def _send(settings: EmailSettings, message: EmailMessage) -> None:
    where = f"SMTP server {settings.host}:{settings.port}"
    try:
        password = settings.resolved_password()
    except UnresolvedSecret as e:
        raise EmailFailed(f"communications.email.password: {e}", permanent=True) from None
    seconds = settings.timeout.total_seconds()
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=seconds) as smtp:
            smtp.ehlo()
            if settings.starttls:
                if not smtp.has_extn("starttls"):
                    raise EmailFailed(f"{where} does not offer STARTTLS", permanent=True)
                context = ssl.create_default_context(
                    cafile=str(settings.ca_file) if settings.ca_file else None
                )
                smtp.starttls(context=context)
                smtp.ehlo()
            if settings.username:
                smtp.login(settings.username, password or "")
            smtp.send_message(message)
    except EmailFailed:
        raise
    except smtplib.SMTPAuthenticationError as e:
        raise EmailFailed(f"{where} refused the login ({e.smtp_code})", permanent=True) from None
    except smtplib.SMTPRecipientsRefused as e:
        codes = sorted({code for code, _ in e.recipients.values()})
        transient = all(400 <= code < 500 for code in codes)
        raise EmailFailed(f"{where} refused the recipient ({codes})", not transient) from None
    except smtplib.SMTPResponseException as e:
        said = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else ""
        raise EmailFailed(
            f"{where} answered {e.smtp_code} {said[:200]}", permanent=e.smtp_code >= 500
        ) from None
    except ssl.SSLError as e:
        raise EmailFailed(f"{where}: TLS failed ({e.reason})", permanent=True) from None
    except (smtplib.SMTPException, OSError) as e:
        raise EmailFailed(f"{where}: {type(e).__name__}: {e}", permanent=False) from None
