"""Email as a channel, against a real SMTP server on loopback (aiosmtpd) that
requires STARTTLS and a login: plain text plus HTML, a Message-ID per update,
replies threaded on the incident's first update, and failures named without
the password."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stanch.activities.email import EmailFailed, compose, send_email
from stanch.models.communications import Subscriber
from stanch.models.severity import Severity
from stanch.models.status import IncidentStatus
from stanch.models.status_updates import Briefing, Delivery, StatusUpdate, UpdateKind
from tests.support.smtp import PASSWORD, PASSWORD_VARIABLE, MailServer, running_mail_server


@pytest.fixture
def mail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MailServer]:
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)
    with running_mail_server(tmp_path) as server:
        yield server


def delivery(
    number: int, text: str = "We are looking into it", to: str = "cto@example.com"
) -> Delivery:
    return Delivery(
        incident_id="abc123",
        update=StatusUpdate(
            id=f"abc123.run1.{number}",
            number=number,
            at=datetime(2026, 3, 1, 12, number, tzinfo=UTC),
            kind=UpdateKind.POSTED,
            status=IncidentStatus.ACKNOWLEDGED,
            text=text,
            by="carol",
        ),
        briefing=Briefing(
            title="VM unavailable",
            severity=Severity.SEV1,
            status=IncidentStatus.ACKNOWLEDGED,
            service="web",
        ),
        subscriber=Subscriber.parse(f"email:{to}"),
        thread="abc123.run1.1",
    )


async def test_an_update_is_sent_over_starttls_with_a_login_as_text_and_html(
    mail: MailServer,
) -> None:
    settings = mail.settings()
    await send_email(settings, compose(delivery(1, "Checkout is <slow> & failing"), settings))

    [got] = mail.to("cto@example.com")
    assert got.tls and got.login == "stanch-mailer"
    message = got.message
    assert message["Message-ID"] == "<abc123.run1.1@stanch>"
    assert message["In-Reply-To"] is None  # the first update starts the thread
    assert message["Subject"] == "[stanch] Sev1 VM unavailable [web]"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert "Checkout is <slow> & failing" in plain.get_content()
    assert "Checkout is &lt;slow&gt; &amp; failing" in html.get_content()  # escaped, never markup
    assert "Status: acknowledged" in plain.get_content()


async def test_later_updates_reply_to_the_first_so_clients_thread_one_incident(
    mail: MailServer,
) -> None:
    settings = mail.settings()
    for number in (1, 2, 3):
        await send_email(settings, compose(delivery(number), settings))

    messages = [r.message for r in mail.to("cto@example.com")]
    assert [m["Message-ID"] for m in messages] == [f"<abc123.run1.{n}@stanch>" for n in (1, 2, 3)]
    for later in messages[1:]:
        assert later["In-Reply-To"] == "<abc123.run1.1@stanch>"
        assert later["References"] == "<abc123.run1.1@stanch>"
    assert len({m["Subject"] for m in messages}) == 1


async def test_a_wrong_password_is_refused_for_good_and_never_named(
    mail: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_VARIABLE, "not-the-password")
    settings = mail.settings()
    with pytest.raises(EmailFailed) as refused:
        await send_email(settings, compose(delivery(1), settings))
    assert refused.value.permanent
    assert "refused the login" in str(refused.value)
    assert "not-the-password" not in str(refused.value)
    assert mail.received == [] and mail.logins_refused >= 1  # smtplib tries each mechanism


async def test_a_server_certificate_that_is_not_trusted_sends_nothing(mail: MailServer) -> None:
    settings = mail.settings(ca_file=None)  # the system's CAs: the test CA is not one
    with pytest.raises(EmailFailed) as refused:
        await send_email(settings, compose(delivery(1), settings))
    assert refused.value.permanent and "TLS failed" in str(refused.value)
    assert mail.received == []


async def test_no_server_listening_is_worth_retrying(mail: MailServer) -> None:
    from stanch.harness.ports import free_port

    settings = mail.settings(port=free_port())
    with pytest.raises(EmailFailed) as failed:
        await send_email(settings, compose(delivery(1), settings))
    assert not failed.value.permanent


def test_a_title_cannot_add_a_header() -> None:
    d = delivery(1)
    d.briefing.title = "VM down\r\nBcc: everyone@example.com"
    from stanch.models.communications import EmailSettings

    message = compose(d, EmailSettings(host="127.0.0.1", from_address="stanch@example.com"))
    assert message["Bcc"] is None
    assert "\n" not in str(message["Subject"])
