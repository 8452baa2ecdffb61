"""An approver's comment is on the incident's timeline, in the gate's entry
(review: `stanch approve ... --comment "disk full, evidence kept"` reached the
audit trail only). Through the real gateway: the API's timeline, the
dashboard's incident page and `stanch show`'s rendering of the same detail."""

from __future__ import annotations

import html

import httpx

from stanch.cli.incidents import print_incident
from stanch.client.ids import workflow_id_for
from stanch.client.incidents import fetch_incident
from stanch.harness.waiting import eventually
from stanch.models.incident import TimelineEntry
from stanch.workflows.runbook._approval_gate import COMMENT_SHOWN
from tests.support.oncall import open_vm_incident, sign_in_with_form
from tests.support.plans import API_TOKENS, auth
from tests.support.stack import Stack

SAID = "disk full, evidence kept <kept in blob>"


async def gate_entry(stack: Stack, incident: str) -> TimelineEntry:
    found: list[TimelineEntry] = []

    async def approved() -> bool:
        timeline = (await fetch_incident(stack.client, incident)).timeline
        found[:] = [e for e in timeline if "approval: isolate: approved" in e.summary]
        return bool(found)

    await eventually(approved, 30, f"the isolate gate's entry on {incident}'s timeline")
    return found[0]


async def test_the_approvers_comment_is_on_the_gates_timeline_entry(stack: Stack, capsys):
    long_tail = " and the rest of a very long story" * 200  # ~7000 characters, cut to 4000
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        incident = await open_vm_incident(stack, http)
        base = f"/api/incidents/{incident}"
        approved = await http.post(
            f"{base}/approvals/isolate/approve",
            json={"comment": SAID + long_tail},
            headers=auth("approver"),
        )
        assert approved.status_code == 200, approved.text
        entry = await gate_entry(stack, incident)

        # Who approved and what they said; the long comment cut short for the timeline.
        assert f"approved by carol — carol: {SAID}" in entry.summary
        assert "…[truncated" in entry.summary
        assert len(entry.summary) < COMMENT_SHOWN + 100

        api = (await http.get(base, headers=auth("viewer"))).json()["timeline"]
        assert entry.summary in [e["summary"] for e in api]

        assert (await sign_in_with_form(http, API_TOKENS["viewer"])).status_code == 303
        page = (await http.get(f"/incidents/{incident}")).text
        assert html.escape(f"carol: {SAID}") in page and "<kept in blob>" not in page

    print_incident(await fetch_incident(stack.client, incident), as_json=False)
    assert f"approved by carol — carol: {SAID}" in capsys.readouterr().out
    await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")


def test_each_comment_is_cut_for_the_timeline_and_every_decider_is_named():
    from stanch.workflows.runbook._approval_gate import GateDecision, with_comments

    gate = GateDecision(approvals=["carol", "dave"], comments=["carol: " + "x" * 5000, "dave: ok"])
    said = with_comments("approved by carol, dave", gate)
    assert said.startswith("approved by carol, dave — carol: xxx")
    assert said.endswith("; dave: ok") and "…[truncated" in said
    assert len(said) <= len("approved by carol, dave — ") + COMMENT_SHOWN + len("; dave: ok")
    assert with_comments("approved by carol", GateDecision(approvals=["carol"])) == (
        "approved by carol"
    )
