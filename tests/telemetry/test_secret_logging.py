"""No webhook URL, token or signature in any log line at any level (review
finding #3, issue 11 item 9).

The review saw httpx log `HTTP Request: POST <webhook URL>` at INFO for every
page. Here the process's logging is configured as every stanch service does
it, the level is switched to debug through the real toggle store and its
follower, and real pages go to a real endpoint on loopback; every record that
reaches the root logger (the HTTP client libraries' included) is kept and
searched. tests/cli/test_state_permissions.py does the same against a whole
`stanch dev` stack and its output."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from stanch import telemetry
from stanch.activities.notify import NotifyActivities
from stanch.harness.ports import free_port
from stanch.models import redaction
from stanch.stores.policy import PolicySource
from stanch.stores.toggles import ToggleStore
from tests.support.pages import page
from tests.support.plans import policy_file
from tests.support.webhooks import Answer

SECRET = "T0SECRET/B0SECRET/hookcredential"


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        """Each record as the service would print it, traceback included."""
        return [telemetry.JsonFormatter().format(r) for r in self.records]


@pytest.fixture
def service_logging() -> Iterator[Keep]:
    """Logging as `configure_logging` leaves it, undone afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogRecordFactory(), redaction._known)
    quiet = {name: logging.getLogger(name).level for name in telemetry.QUIET_LOGGERS}
    telemetry.configure_logging("info")
    keep = Keep()
    root.addHandler(keep)
    yield keep
    root.handlers[:], level, factory, redaction._known = saved
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


async def switch_to_debug(tmp_path: Path) -> asyncio.Task[None]:
    """What `stanch toggle log-level debug` does to a running process."""
    store = ToggleStore(tmp_path / "toggles.json")
    store.set_log_level("debug", by="dave")
    follower = asyncio.create_task(telemetry.follow_log_level(store.log_level, every=0.01))
    deadline = asyncio.get_running_loop().time() + 10
    while logging.getLogger().level != logging.DEBUG:
        assert asyncio.get_running_loop().time() < deadline, "the level never changed"
        await asyncio.sleep(0.01)
    return follower


def hooks(receiver_url: str, closed_port: int) -> list[dict[str, Any]]:
    return [
        {"name": "ok", "type": "webhook", "format": "slack", "url": f"{receiver_url}/{SECRET}"},
        {"name": "moved", "type": "webhook", "url": f"{receiver_url}/moved/{SECRET}"},
        {"name": "busy", "type": "webhook", "url": f"{receiver_url}/busy/{SECRET}?sig=abc123"},
        {"name": "gone", "type": "webhook", "url": f"http://127.0.0.1:{closed_port}/{SECRET}"},
    ]


async def test_a_page_at_debug_level_logs_no_webhook_url(
    tmp_path, receiver, service_logging, capfd
):
    follower = await switch_to_debug(tmp_path)
    try:
        # Literal URLs, registered nowhere: what keeps them out is that no
        # logger prints them, not the redaction behind it.
        receiver.script = [
            Answer(200),
            Answer(302, {"Location": f"{receiver.url}/elsewhere/{SECRET}"}),
            Answer(503),
        ]
        policy = policy_file(tmp_path, channels=hooks(receiver.url, free_port()))
        notify = NotifyActivities(PolicySource(policy))
        with pytest.raises(ApplicationError):  # busy and gone will be retried
            await ActivityEnvironment().run(notify.page_on_call, page())
        logging.getLogger("stanch.test").debug("probe")
    finally:
        follower.cancel()

    assert len(receiver.received) == 3, "the pages really went over HTTP"
    lines = service_logging.lines()
    assert any('"msg": "probe"' in line for line in lines), "debug records are kept"
    assert any("log level is now debug" in line for line in lines)
    assert any("page to moved refused: HTTP 302 redirect" in line for line in lines)
    for name in telemetry.QUIET_LOGGERS:
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING
    leaked = [line for line in lines if SECRET in line or "abc123" in line]
    assert leaked == []
    printed = capfd.readouterr()
    assert SECRET not in printed.err + printed.out


async def test_redaction_catches_a_webhook_url_that_a_library_logs_anyway(
    tmp_path, receiver, service_logging, monkeypatch
):
    """Defence in depth: were the HTTP client's logger turned up by some other
    code, the URL from the environment (`${VAR}`, as the README advises) is
    still redacted from its records."""
    monkeypatch.setenv("H3_ONCALL_WEBHOOK", f"{receiver.url}/{SECRET}")
    telemetry.configure_logging("debug")  # reads the environment's secrets
    root = logging.getLogger()
    root.addHandler(service_logging)
    logging.getLogger("httpx").setLevel(logging.DEBUG)  # the regression

    policy = policy_file(
        tmp_path, channels=[{"name": "ok", "type": "webhook", "url": "${H3_ONCALL_WEBHOOK}"}]
    )
    result = await ActivityEnvironment().run(
        NotifyActivities(PolicySource(policy)).page_on_call, page()
    )
    assert result.delivered == ["ok"]
    from_httpx = [r.getMessage() for r in service_logging.records if r.name == "httpx"]
    assert from_httpx and all("[redacted]" in m for m in from_httpx), from_httpx
    assert not any(SECRET in line for line in service_logging.lines())


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (
            "POST https://gw.example/alerts?token=s3cr3t-intake-token HTTP/1.1",
            "s3cr3t-intake-token",
        ),
        ("GET /x?a=1&sig=zZ9%2Bsignature&sv=2024 ", "zZ9%2Bsignature"),
        ("Authorization: Bearer eyJhbGciOiJFZERTQSJ9.e30.c2ln", "eyJhbGciOiJFZERTQSJ9"),
        ("POST https://hooks.slack.com/services/T0/B0/xoxsecret1", "T0/B0/xoxsecret1"),
        ("to https://acme.webhook.office.com/webhookb2/abc@def/IncomingWebhook/x/y", "abc@def"),
    ],
)
def test_redact_strips_known_secret_shapes(text, secret):
    clean = telemetry.redact(text)
    assert secret not in clean and "[redacted]" in clean


def test_registered_secrets_and_their_paths_are_redacted(service_logging):
    telemetry.register_secrets(["https://chat.example/hooks/only-this-path-is-secret", "short"])
    assert telemetry.redact("POST /hooks/only-this-path-is-secret 200") == "POST [redacted] 200"
    assert telemetry.redact("a short word") == "a short word", "short values are not secrets"
    logging.getLogger("stanch.test").warning("sent to %s", "/hooks/only-this-path-is-secret")
    assert service_logging.records[-1].getMessage() == "sent to [redacted]"
