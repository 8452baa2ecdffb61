"""Status updates and subscriptions over real HTTP, with a real SMTP server
(aiosmtpd: STARTTLS and AUTH) and a real webhook endpoint: the comms lead's
update reaches an email subscriber of the severity and a webhook subscriber
of the incident once each, without its internal note; anyone else is refused
(403, or exit 2 from `stanch update`) and nothing is sent or recorded."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from stanch.harness.waiting import eventually
from stanch.testing.estate import DEMO_ALERT
from tests.support.plans import API_TOKENS, auth
from tests.support.smtp import PASSWORD, PASSWORD_VARIABLE, running_mail_server
from tests.support.stack import Stack
from tests.support.webhooks import Receiver

SECRET = "root cause is the leaked storage key"
CTO = "cto@example.com"


def lead_communications(stack: Stack, email: dict[str, Any]) -> None:
    """dave (an admin) leads communications; status changes send nothing by
    themselves here, so every message counted is a posted update."""
    policy = yaml.safe_load(stack.config.read_text())
    for person in policy["roster"]:
        if person["id"] == "dave":
            person["roles"] = [*person.get("roles", []), "comms"]
    policy["communications"] = {"automatic_updates": False, "email": email}
    stack.config.write_text(yaml.safe_dump(policy))


async def open_incident(stack: Stack, http: httpx.AsyncClient) -> tuple[str, str]:
    body = json.loads(DEMO_ALERT.read_text())
    body["data"]["essentials"]["alertRule"] = f"updates-{uuid.uuid4().hex[:6]}"
    incident: str = (await stack.post_alert(http, body)).json()["incident_id"]

    async def ready() -> str | None:
        got = await http.get(
            f"{stack.url}/api/incidents/{incident}/updates", headers=auth("viewer")
        )
        if got.status_code != 200 or not got.json()["ready"]:
            return None
        detail = await http.get(f"{stack.url}/api/incidents/{incident}", headers=auth("viewer"))
        return str(detail.json()["state"]["severity"])

    severity = await eventually(ready, 30, "the incident's communications")
    return incident, severity


def stanch_update(
    stack: Stack, state: Path, token: str, incident: str, text: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
    env |= {"STANCH_GATEWAY_URL": stack.url, "STANCH_API_TOKEN": token}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "stanch.cli.main",
            "update",
            incident,
            text,
            "--state-dir",
            str(state),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


async def test_the_comms_lead_reaches_every_subscriber_once_and_nobody_else_may_post(
    stack: Stack, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)  # the worker of the stack runs here
    with running_mail_server(tmp_path) as mail:
        lead_communications(stack, mail.policy())
        async with httpx.AsyncClient(timeout=30) as http:
            incident, severity = await open_incident(stack, http)
            base = f"{stack.url}/api/incidents/{incident}"

            # Stakeholders off the roster: an email for the severity, a webhook for this incident.
            standing = await http.post(
                f"{stack.url}/api/subscriptions",
                json={"channel": f"email:{CTO}", "severity": severity},
                headers=auth("viewer"),
            )
            assert standing.status_code == 201, standing.text
            hook = f"webhook:{receiver.url}/status"
            one = await http.post(
                f"{base}/subscribers", json={"channel": hook}, headers=auth("viewer")
            )
            assert one.status_code == 200, one.text
            assert one.json()["subscribers"] == ["webhook:127.0.0.1/…"]  # never the URL
            bad = await http.post(
                f"{base}/subscribers",
                json={"channel": "webhook:http://evil.example/x"},
                headers=auth("viewer"),
            )
            assert bad.status_code == 422 and "https" in bad.text

            # Refused: a responder who does not lead communications, a viewer, the CLI as alice.
            alice = await http.post(
                f"{base}/updates", json={"text": "All fine"}, headers=auth("responder")
            )
            assert alice.status_code == 403 and "alice may not post" in alice.text
            bob = await http.post(
                f"{base}/updates", json={"text": "All fine"}, headers=auth("viewer")
            )
            assert bob.status_code == 403
            blank = await http.post(f"{base}/updates", json={"text": "   "}, headers=auth("admin"))
            assert blank.status_code == 422
            cli = await asyncio.to_thread(
                stanch_update,
                stack,
                tmp_path / "cli",
                API_TOKENS["responder"],
                incident,
                "All fine",
            )
            assert cli.returncode == 2 and "may not post status updates" in cli.stderr, cli.stderr
            nothing = (await http.get(f"{base}/updates", headers=auth("viewer"))).json()
            assert nothing["updates"] == []

            posted = await http.post(
                f"{base}/updates",
                json={
                    "text": "Web checkout is degraded; we are isolating a VM",
                    "internal": SECRET,
                },
                headers=auth("admin"),
            )
            assert posted.status_code == 201, posted.text
            update = posted.json()
            assert update["internal"] is None

            async def delivered() -> bool:
                return (
                    len(mail.to(CTO)) == 1
                    and len([r for r in receiver.received if r["path"] == "/status"]) == 1
                )

            await eventually(delivered, 30, "the update to both subscribers")
            listed = (await http.get(f"{base}/updates", headers=auth("viewer"))).json()
            timeline = (await http.get(base, headers=auth("viewer"))).json()["timeline"]
            page = await http.get(
                f"{stack.url}/fragments/incidents/{incident}", headers=auth("viewer")
            )
            await asyncio.sleep(1)  # a second delivery to either would show by now

    [email] = mail.to(CTO)
    [webhook] = [r for r in receiver.received if r["path"] == "/status"]
    assert email.message["Message-ID"] == f"<{update['id']}@stanch>"
    assert email.tls and email.login
    assert webhook["key"].startswith(f"{update['id']}/")
    assert SECRET not in str(email.message) and SECRET not in json.dumps(webhook["body"])
    assert [u["id"] for u in listed["updates"]] == [update["id"]]
    assert SECRET not in json.dumps(listed)  # the API shows no internal note either
    lines = [e["summary"] for e in timeline if e["kind"] == "status_update"]
    assert lines == [
        f"Status update 1: Web checkout is degraded; we are isolating a VM (internal: {SECRET})"
    ]
    # Refusals left nothing: one update, one email, one webhook.
    assert len(mail.received) == 1
    # The dashboard's incident page shows the update and the subscribers, no internal note.
    assert page.status_code == 200
    assert "Web checkout is degraded" in page.text and "webhook:127.0.0.1/…" in page.text
    assert SECRET not in page.text.split("<section class='comms'>")[1]
    assert "data-post='/api/incidents/" in page.text and "Subscribe</button>" in page.text
