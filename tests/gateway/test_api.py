"""The on-call API over real HTTP: every endpoint, who may call it, and that a
refused call changes nothing."""

from __future__ import annotations

import httpx

from stanch.client.ids import workflow_id_for
from tests.support.incidents import settled
from tests.support.oncall import open_vm_incident
from tests.support.plans import API_TOKENS, auth
from tests.support.stack import Stack


async def test_every_endpoint_and_who_may_call_it(stack: Stack):
    async with httpx.AsyncClient(timeout=30) as http:
        incident = await open_vm_incident(stack, http)
        base = f"{stack.url}/api/incidents/{incident}"
        history = stack.client.get_workflow_handle(workflow_id_for(incident))
        await settled(history)
        before = len([e async for e in history.fetch_history_events()])

        assert (await http.get(f"{stack.url}/api/incidents")).status_code == 401
        assert (
            await http.get(f"{stack.url}/api/incidents", headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        missing = await http.get(
            f"{stack.url}/api/incidents/0000000000000000dead", headers=auth("viewer")
        )
        assert missing.status_code == 404 and "no incident" in missing.json()["message"]
        forbidden = await http.post(
            f"{base}/approvals/isolate/approve", json={}, headers=auth("viewer")
        )
        assert forbidden.status_code == 403 and "bob is a viewer" in forbidden.json()["message"]
        assert (await http.post(f"{base}/ack", json={}, headers=auth("viewer"))).status_code == 403
        # A responder may call the endpoint; the workflow still decides, and its
        # refusal is the answer.
        refused = await http.post(
            f"{base}/approvals/delete-it/approve", json={}, headers=auth("responder")
        )
        assert refused.status_code == 409 and "not an approval gate" in refused.json()["message"]
        after = len([e async for e in history.fetch_history_events()])
        assert after == before, "refused calls changed nothing"
        assert API_TOKENS["viewer"] not in forbidden.text + missing.text

        listing = await http.get(f"{stack.url}/api/incidents", headers=auth("viewer"))
        assert incident in [i["incident_id"] for i in listing.json()["incidents"]]
        detail = (await http.get(base, headers=auth("viewer"))).json()
        assert detail["pending_approvals"][0]["step"] == "isolate"

        approved = await http.post(
            f"{base}/approvals/isolate/approve", json={"comment": "go"}, headers=auth("approver")
        )
        assert approved.status_code == 200, approved.text
        ack = await http.post(f"{base}/ack", json={"note": "on it"}, headers=auth("responder"))
        assert ack.status_code == 200 and ack.json()["status"] in ("acknowledged", "contained")
        noted = await http.post(
            f"{base}/notes", json={"text": "VM isolated"}, headers=auth("responder")
        )
        assert noted.status_code == 200
        role = await http.post(
            f"{base}/roles",
            json={"role": "incident_commander", "assignee": "carol"},
            headers=auth("responder"),
        )
        assert role.status_code == 200
        bad_role = await http.post(
            f"{base}/roles",
            json={"role": "overlord", "assignee": "carol"},
            headers=auth("responder"),
        )
        assert bad_role.status_code == 422
        resolved = await http.post(f"{base}/resolve", json={}, headers=auth("admin"))
        assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
        kinds = [
            e["kind"] for e in (await http.get(base, headers=auth("viewer"))).json()["timeline"]
        ]
        assert {"acknowledged", "note", "role_assigned", "resolved"} <= set(kinds)
        openapi = (await http.get(f"{stack.url}/openapi.json")).json()
        assert "/api/incidents/{incident_id}/approvals/{step}/approve" in openapi["paths"]
    await history.terminate("test done")


async def test_a_responder_cannot_approve_what_the_policy_reserves(stack: Stack):
    """alice is on call and a responder: enough for the API, but the policy
    keeps high-risk steps for approvers, and the workflow says so."""
    import yaml

    policy = yaml.safe_load(stack.config.read_text())
    policy["approvals"]["reserved_for_approvers"] = ["high"]
    stack.config.write_text(yaml.safe_dump(policy))
    async with httpx.AsyncClient(timeout=30) as http:
        incident = await open_vm_incident(stack, http)
        base = f"{stack.url}/api/incidents/{incident}"
        pending = (await http.get(base, headers=auth("viewer"))).json()["pending_approvals"][0]
        assert pending["risk"] == "high" and "alice" not in pending["eligible"]
        runbook = stack.client.get_workflow_handle(
            (await http.get(base, headers=auth("viewer"))).json()["state"]["runbook"]["workflow_id"]
        )
        await settled(runbook)
        before = len([e async for e in runbook.fetch_history_events()])

        refused = await http.post(
            f"{base}/approvals/isolate/approve", json={}, headers=auth("responder")
        )
        assert refused.status_code == 409, refused.text
        assert "reserved for approvers" in refused.json()["message"]
        after = len([e async for e in runbook.fetch_history_events()])
        assert after == before, "the refused approval left nothing in the runbook's history"
        still = (await http.get(base, headers=auth("viewer"))).json()["pending_approvals"][0]
        assert still["approvals"] == []

        approved = await http.post(
            f"{base}/approvals/isolate/approve", json={}, headers=auth("approver")
        )
        assert approved.status_code == 200, approved.text
    await stack.client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")
