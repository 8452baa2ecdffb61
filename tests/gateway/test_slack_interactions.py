"""Acting from Slack (issue 17, item 4), against the running stack: the pages
a Slack channel receives carry buttons; clicks are posted to the real gateway
as Slack posts them, signed with a test signing secret; the outcome reaches
the click's response_url (a real receiver on loopback). Forged, stale,
future and replayed requests are a 401 and change nothing; a Slack user not
on the roster, another workspace, and a roster person the policy does not
allow to decide are refused where the clicker sees it, and change nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stanch.activities.notify import page_payload
from stanch.client.ids import workflow_id_for
from stanch.gateway.slack import MAX_AGE, SeenRequests, SlackRefused, verify_request
from stanch.harness.plans import response_plan
from stanch.harness.waiting import eventually
from stanch.models.chat import GateAsk, SlackAction
from stanch.models.config import ChannelFormat, ConfigError, parse_config
from stanch.models.incident import Page
from stanch.models.risk import Risk
from stanch.models.severity import Severity
from stanch.models.status import IncidentStatus
from stanch.testing.runbooks import journal_mutations
from tests.support.incidents import settled
from tests.support.oncall import open_vm_incident
from tests.support.plans import API_TOKENS, auth
from tests.support.slack import (
    SECRET_VARIABLE,
    SIGNING_SECRET,
    SLACK_IDS,
    answer_slack,
    answer_to,
    click,
    post_click,
    received_at,
    signed,
    slack_page,
)
from tests.support.stack import Stack
from tests.support.webhooks import Receiver


async def test_a_signed_slack_approval_goes_through_and_nothing_else_changes_anything(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver, stack: Stack
):
    monkeypatch.setenv(SECRET_VARIABLE, SIGNING_SECRET)
    # High risk is the approvers' own: alice, on call, may not decide it.
    answer_slack(stack, receiver, reserved_for_approvers=["high"])
    async with httpx.AsyncClient(timeout=30) as http:
        incident_id = await open_vm_incident(stack, http)
        page = await slack_page(receiver, incident_id, SlackAction.APPROVE)
        buttons = next(b for b in page["blocks"] if b["type"] == "actions")["elements"]
        assert [b["action_id"] for b in buttons] == ["stanch.approve", "stanch.reject"]
        value = json.loads(buttons[0]["value"])
        # What the gate is, and nothing that grants anything.
        assert set(value) == {"incident", "runbook", "run", "step"}
        assert (value["incident"], value["runbook"], value["step"]) == (
            incident_id,
            "quarantine_vm",
            "isolate",
        )
        assert "confirm" in buttons[0], "a high-risk approval asks again before it is sent"
        shown = json.dumps(page)
        assert SIGNING_SECRET not in shown and not any(t in shown for t in API_TOKENS.values())

        runbook = stack.client.get_workflow_handle(value["run"])
        incident = stack.client.get_workflow_handle(workflow_id_for(incident_id))
        await settled(runbook)
        await settled(incident)
        before = await _history_lengths(runbook, incident)
        carol, carol_answer = click(receiver, page, "stanch.approve", SLACK_IDS["carol"])

        # Not Slack's: each a 401 before anything is read or done.
        body, headers = signed(carol, secret="0" * 32)
        forged = await post_click(http, stack, body, headers)
        assert forged.status_code == 401 and "does not verify" in forged.json()["message"]
        body, headers = signed(carol, at=time.time() - MAX_AGE - 1)
        stale = await post_click(http, stack, body, headers)
        assert stale.status_code == 401 and "old" in stale.json()["message"], stale.text
        body, headers = signed(carol, at=time.time() + 600)
        ahead = await post_click(http, stack, body, headers)
        assert ahead.status_code == 401 and "future" in ahead.json()["message"]
        body, _ = signed(carol)
        unsigned = await post_click(http, stack, body, {"Content-Type": headers["Content-Type"]})
        assert unsigned.status_code == 401
        # Slack's, signed: but edited on the way (the body is what is signed).
        body, headers = signed(carol)
        edited = await post_click(http, stack, body.replace(b"U0CAROL", b"U0DAVE"), headers)
        assert edited.status_code == 401
        assert received_at(receiver, carol_answer) == [], "no answer went to Slack"

        # Slack's, but nobody stanch knows: refused where the clicker sees it.
        stranger, stranger_answer = click(receiver, page, "stanch.approve", "U0MALLORY")
        body, headers = signed(stranger)
        assert (await post_click(http, stack, body, headers)).status_code == 200
        said = await answer_to(receiver, stranger_answer)
        assert said["response_type"] == "ephemeral" and said["replace_original"] is False
        assert "U0MALLORY is not on stanch's roster" in said["text"]
        replayed = await post_click(http, stack, body, headers)
        assert replayed.status_code == 401 and "replay" in replayed.json()["message"]

        other, other_answer = click(receiver, page, "stanch.approve", SLACK_IDS["carol"])
        other["team"] = {"id": "T0ELSEWHERE"}
        assert (await post_click(http, stack, *signed(other))).status_code == 200
        assert "workspace T0STANCH only" in (await answer_to(receiver, other_answer))["text"]

        # On the roster and on call, but the policy keeps high risk for
        # approvers: the workflow refuses, and the clicker reads its words.
        alice, alice_answer = click(receiver, page, "stanch.approve", SLACK_IDS["alice"])
        assert (await post_click(http, stack, *signed(alice))).status_code == 200
        said = await answer_to(receiver, alice_answer)
        assert said["response_type"] == "ephemeral", said
        assert "reserved for approvers" in said["text"], said

        assert await _history_lengths(runbook, incident) == before, "no refusal reached history"
        assert journal_mutations(stack.sim) == [], "nothing was changed in Azure"
        detail = await http.get(f"{stack.url}/api/incidents/{incident_id}", headers=auth("viewer"))
        assert detail.json()["pending_approvals"][0]["approvals"] == []

        # carol holds the approver role: her click is her decision.
        body, headers = signed(carol)
        assert (await post_click(http, stack, body, headers)).status_code == 200
        said = await answer_to(receiver, carol_answer)
        assert said["replace_original"] is True, said
        assert "Carol approved isolate of quarantine_vm" in said["text"]
        assert [b for b in said["blocks"] if b["type"] == "actions"] == [], "buttons gone"
        assert said["blocks"][0] == page["blocks"][0], "the page itself is kept"

        async def isolated() -> list[tuple[str, str]]:
            return journal_mutations(stack.sim)

        assert await eventually(isolated, 30, "the quarantine's write in azuresim")
        timeline = (
            await http.get(f"{stack.url}/api/incidents/{incident_id}", headers=auth("viewer"))
        ).json()["timeline"]
        assert any("carol" in e["summary"] and "isolate" in e["summary"] for e in timeline)

        # The same request again: a replay, answered by nobody.
        again = await post_click(http, stack, body, headers)
        assert again.status_code == 401 and "replay" in again.json()["message"]
        assert len(received_at(receiver, carol_answer)) == 1
    await incident.terminate("test done")


async def test_an_acknowledge_from_slack_acknowledges_the_incident(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver, stack: Stack
):
    monkeypatch.setenv(SECRET_VARIABLE, SIGNING_SECRET)
    answer_slack(stack, receiver)
    async with httpx.AsyncClient(timeout=30) as http:
        incident_id = await open_vm_incident(stack, http)
        page = await slack_page(receiver, incident_id, SlackAction.ACKNOWLEDGE)
        assert json.loads(_button(page, "stanch.acknowledge")["value"]) == {"incident": incident_id}
        bob, bob_answer = click(receiver, page, "stanch.acknowledge", SLACK_IDS["bob"])
        assert (await post_click(http, stack, *signed(bob))).status_code == 200
        said = await answer_to(receiver, bob_answer)
        assert said["replace_original"] is True
        assert "Bob acknowledged" in said["text"], said
        assert [b for b in said["blocks"] if b["type"] == "actions"] == []
        detail = (
            await http.get(f"{stack.url}/api/incidents/{incident_id}", headers=auth("viewer"))
        ).json()
        assert detail["state"]["status"] in ("acknowledged", "contained"), detail["state"]
        acks = [e for e in detail["timeline"] if e["kind"] == "acknowledged"]
        assert acks and "bob" in acks[0]["summary"].lower(), acks
    await stack.client.get_workflow_handle(workflow_id_for(incident_id)).terminate("test done")


def test_slacks_signature_is_checked_in_full():
    body, headers = signed({"type": "block_actions"})
    stamp, signature = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    now = float(stamp)
    verify_request(SIGNING_SECRET, stamp, signature, body, now)  # Slack's own: accepted
    refusals = {
        "another secret": (("1" * 32), stamp, signature, body, now),
        "another body": (SIGNING_SECRET, stamp, signature, body + b"&x=1", now),
        "another time": (SIGNING_SECRET, str(int(stamp) + 1), signature, body, now),
        "truncated signature": (SIGNING_SECRET, stamp, signature[:-1], body, now),
        "five minutes and a second": (SIGNING_SECRET, stamp, signature, body, now + MAX_AGE + 1),
        "not a time": (SIGNING_SECRET, "12e9", signature, body, now),
        "no signature": (SIGNING_SECRET, stamp, None, body, now),
    }
    for why, given in refusals.items():
        with pytest.raises(SlackRefused) as refused:
            verify_request(*given)
        assert refused.value.status == 401, why


def test_seen_requests_forget_only_what_has_gone_stale_and_refuse_when_full():
    seen = SeenRequests(kept=2)
    assert seen.first_time("v0=a", 1000, now=1000)
    assert not seen.first_time("v0=a", 1000, now=1000 + MAX_AGE)  # still good: still known
    assert seen.first_time("v0=b", 1100, now=1100)
    with pytest.raises(SlackRefused) as full:
        seen.first_time("v0=c", 1100, now=1100)
    assert full.value.status == 503, "full of fresh requests: refuse rather than forget one"
    assert seen.first_time("v0=c", 1100 + MAX_AGE, now=1000 + MAX_AGE + 2)  # a's time is over


def test_the_policy_names_what_is_wrong_with_its_slack_settings(tmp_path: Path):
    plan = response_plan(tmp_path / "pages.jsonl", [{"people": ["alice"]}])
    plan["roster"][0]["slack"] = "U0SAME"
    plan["roster"][1]["slack"] = "U0SAME"
    plan["chat"] = {"slack": {"signing_secret": "${STANCH_TEST_SLACK_SECRET_UNSET}"}}
    with pytest.raises(ConfigError) as refused:
        parse_config(plan)
    assert "chat.slack.signing_secret: ${STANCH_TEST_SLACK_SECRET_UNSET} is not set" in (
        refused.value.problems
    )
    assert "roster[1].slack: Slack user 'U0SAME' is also roster[0].slack" in (
        refused.value.problems
    )


def test_slack_pages_carry_buttons_only_where_stanch_answers_them():
    page = Page(
        incident_id="0606c4dda03d72c2f5d7",
        workflow_id="incident-0606c4dda03d72c2f5d7",
        title="vm-web-1 unavailable",
        severity=Severity.SEV1,
        status=IncidentStatus.TRIGGERED,
        service=None,
        resources=[],
        recipients=[],
        tier=1,
        round=0,
        channels=None,
        reason="opened",
    )
    plain = page_payload(page, ChannelFormat.SLACK)
    assert [b["type"] for b in plain["blocks"]] == ["section", "context"]
    paged = page_payload(page, ChannelFormat.SLACK, buttons=True)
    assert [e["action_id"] for e in _actions(paged)] == ["stanch.acknowledge"]
    gate = GateAsk(runbook="restart_vm", run="rb-1", step="restart", risk=Risk.MEDIUM)
    asked = page_payload(page.model_copy(update={"approval": gate}), ChannelFormat.SLACK, True)
    approve, reject = _actions(asked)
    assert (approve["action_id"], reject["action_id"]) == ("stanch.approve", "stanch.reject")
    assert "confirm" not in approve, "only a high-risk approval asks twice"
    assert json.loads(reject["value"]) == {
        "incident": "0606c4dda03d72c2f5d7",
        "runbook": "restart_vm",
        "run": "rb-1",
        "step": "restart",
    }


def _actions(payload: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [
        e for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    return found


async def _history_lengths(*handles: Any) -> list[int]:
    return [len([e async for e in h.fetch_history_events()]) for h in handles]


def _button(page: dict[str, Any], action_id: str) -> dict[str, Any]:
    actions = [b for b in page["blocks"] if b["type"] == "actions"]
    found: dict[str, Any] = next(
        e for block in actions for e in block["elements"] if e["action_id"] == action_id
    )
    return found
