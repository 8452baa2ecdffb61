"""Slack, as far as stanch's tests need it: a policy that answers Slack's
buttons and pages a Slack channel, and button clicks posted to the gateway
as Slack posts them (a form with a JSON `payload`, signed with the app's
signing secret). The channel and each click's `response_url` are paths of one
real receiver on loopback (tests/support/webhooks.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
import yaml

from stanch.harness.waiting import eventually
from tests.support.stack import Stack
from tests.support.webhooks import Receiver

SECRET_VARIABLE = "STANCH_TEST_SLACK_SIGNING_SECRET"
SIGNING_SECRET = "8f14e45fceea167a5a36dedd4bea2543"  # the app's, in these tests
WORKSPACE = "T0STANCH"
SLACK_IDS = {"alice": "U0ALICE", "bob": "U0BOB", "carol": "U0CAROL", "dave": "U0DAVE"}
CHANNEL_PATH = "/slack-channel"


def answer_slack(stack: Stack, receiver: Receiver, **approvals: Any) -> None:
    """The stack's policy, now answering Slack's buttons: everyone on the
    roster has a Slack id, a Slack channel (the receiver) gets every page, and
    `approvals` are set on the approval policy."""
    policy = yaml.safe_load(stack.config.read_text())
    for person in policy["roster"]:
        person["slack"] = SLACK_IDS[person["id"]]
    policy["channels"].append(
        {
            "name": "slack",
            "type": "webhook",
            "format": "slack",
            "url": f"{receiver.url}{CHANNEL_PATH}",
        }
    )
    policy["chat"] = {
        "slack": {
            "signing_secret": "${" + SECRET_VARIABLE + "}",
            "workspace": WORKSPACE,
            "response_hosts": ["127.0.0.1"],
        }
    }
    policy["approvals"].update(approvals)
    stack.config.write_text(yaml.safe_dump(policy))


def signed(
    payload: dict[str, Any], secret: str = SIGNING_SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of Slack's request carrying `payload`."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time() if at is None else at))
    mac = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + mac.hexdigest(),
    }


def click(
    receiver: Receiver, page: dict[str, Any], action_id: str, user: str
) -> tuple[dict[str, Any], str]:
    """Slack's block_actions payload for `user` clicking `action_id` on the
    page the Slack channel received, and the path its answer will come to."""
    button = next(
        element
        for block in page["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action_id
    )
    answer_path = f"/respond/{uuid.uuid4().hex}"
    payload = {
        "type": "block_actions",
        "team": {"id": WORKSPACE, "domain": "stanch-tests"},
        "user": {"id": user, "username": user.lower(), "team_id": WORKSPACE},
        "api_app_id": "A0STANCH",
        "container": {"type": "message", "message_ts": "1700000000.000100"},
        "trigger_id": f"{uuid.uuid4().int}",
        "channel": {"id": "C0PAGES", "name": "pages"},
        "message": {"type": "message", "text": page["text"], "blocks": page["blocks"]},
        "response_url": f"{receiver.url}{answer_path}",
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "block_id": "stanch",
                "value": button["value"],
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return payload, answer_path


async def post_click(
    http: httpx.AsyncClient, stack: Stack, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await http.post(f"{stack.url}/slack/interactions", content=body, headers=headers)


def received_at(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    return [r["body"] for r in receiver.received if r["path"] == path]


async def slack_page(receiver: Receiver, incident: str, action_id: str) -> dict[str, Any]:
    """The page of `incident` the Slack channel got that carries `action_id`."""

    async def carrying() -> dict[str, Any] | None:
        for page in received_at(receiver, CHANNEL_PATH):
            actions = [b for b in page.get("blocks", []) if b["type"] == "actions"]
            ids = {e["action_id"] for block in actions for e in block["elements"]}
            values = [e["value"] for block in actions for e in block["elements"]]
            if action_id in ids and any(json.loads(v)["incident"] == incident for v in values):
                return page
        return None

    found: dict[str, Any] = await eventually(carrying, 20, f"a Slack page with {action_id}")
    return found


async def answer_to(receiver: Receiver, path: str) -> dict[str, Any]:
    """What stanch sent to one click's response_url (the first, once it came)."""

    async def answered() -> dict[str, Any] | None:
        sent = received_at(receiver, path)
        return sent[0] if sent else None

    found: dict[str, Any] = await eventually(answered, 60, f"an answer at {path}")
    return found
