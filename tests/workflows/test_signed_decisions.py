"""Identity on the Temporal path is proven, not declared (security review #11,
#2): whoever reaches Temporal directly, as the `temporal` CLI or a script with
a worker's certificate would, cannot ack, resolve or approve as anyone; a
credential's role bounds what its holder may decide. Every attack runs against
the live stack: real gateway, real dev server, real worker, azuresim."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from stanch.client.ids import incident_id_of, workflow_id_for
from stanch.gateway.signing import DecisionSigner, new_private_key_text, parse_private_key
from stanch.models.config import ApiRole
from stanch.models.incident import (
    Acknowledge,
    AddNote,
    IncidentStatus,
    Resolve,
    UpdateResult,
)
from stanch.models.runbook import ApprovalDecision, RunbookView
from stanch.testing.decisions import SIGNER, decide, signed
from stanch.testing.estate import DEMO_ALERT
from stanch.testing.runbooks import audit_records, journal_mutations
from stanch.testing.started import Started
from stanch.workflows.incident import IncidentWorkflow
from tests.support.oncall import open_vm_incident
from tests.support.plans import API_TOKENS, auth
from tests.support.stack import Stack

CAROL_AS_RESPONDER = "tok-carol-scoped-responder-7d1e9f3a2b"


async def open_incident(started: Started, stack: Stack, http: httpx.AsyncClient) -> WorkflowHandle:
    incident = await open_vm_incident(stack, http)
    return started.add(stack.client.get_workflow_handle(workflow_id_for(incident)))


async def status(handle: WorkflowHandle) -> IncidentStatus:
    view = await handle.query(IncidentWorkflow.state)
    return view.state.status


async def update_events(handle: WorkflowHandle) -> list[str]:
    kinds = [EventType.Name(e.event_type) async for e in handle.fetch_history_events()]
    return [k for k in kinds if "UPDATE" in k]


async def refused(handle: WorkflowHandle, action: str, request: object) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(action, request, result_type=UpdateResult)
    return str(failure.value.cause)


async def test_decisions_sent_straight_to_temporal_are_refused(stack: Stack, started: Started):
    async with httpx.AsyncClient(timeout=30) as http:
        incident = await open_incident(started, stack, http)
    before = await update_events(incident)
    wid = incident.id

    # The review's reproduction: `stanch ack --as dave` with only Temporal access.
    assert "unsigned decision" in await refused(incident, "acknowledge", Acknowledge(by="dave"))

    # A key of the attacker's own making.
    own = DecisionSigner(parse_private_key(new_private_key_text()))
    forged = own.sign(wid, "acknowledge", Acknowledge(by="dave"), ApiRole.ADMIN)
    assert "unknown key" in await refused(incident, "acknowledge", forged)

    # A real proof whose body was altered afterwards: bob's ack claimed by dave.
    genuine = await signed(wid, "acknowledge", Acknowledge(by="bob"))
    altered = genuine.model_copy(update={"by": "dave"})
    assert "does not verify" in await refused(incident, "acknowledge", altered)
    # The same proof with someone else's signature bytes swapped in.
    other = await signed(wid, "acknowledge", Acknowledge(by="dave"))
    assert genuine.proof is not None and other.proof is not None
    spliced = genuine.model_copy(
        update={"proof": genuine.proof.model_copy(update={"signature": other.proof.signature})}
    )
    assert "does not verify" in await refused(incident, "acknowledge", spliced)

    # A proof for another action, or another incident, moved here.
    note = await signed(wid, "add_note", AddNote(by="dave", text="x"))
    moved = Resolve(by="dave", proof=note.proof)
    assert "does not verify" in await refused(incident, "resolve", moved)
    elsewhere = await signed("incident-somewhere-else", "acknowledge", Acknowledge(by="dave"))
    assert "does not verify" in await refused(incident, "acknowledge", elsewhere)

    # Captured long ago.
    stale = await signed(
        wid, "acknowledge", Acknowledge(by="dave"), issued_at=datetime.now(UTC) - timedelta(hours=1)
    )
    assert "stale" in await refused(incident, "acknowledge", stale)

    # Not the junk a base64 decoder would choke on.
    assert genuine.proof is not None
    garbage = genuine.model_copy(
        update={"proof": genuine.proof.model_copy(update={"signature": "!!not-base64!!"})}
    )
    assert "does not verify" in await refused(incident, "acknowledge", garbage)

    # A viewer credential may look, not act.
    as_viewer = await signed(wid, "acknowledge", Acknowledge(by="bob"), role=ApiRole.VIEWER)
    assert "viewer; this needs responder" in await refused(incident, "acknowledge", as_viewer)

    assert await status(incident) is IncidentStatus.TRIGGERED
    assert await update_events(incident) == before, "refusals leave no trace in history"
    await incident.terminate("test done")


async def test_a_captured_decision_cannot_be_replayed(stack: Stack, started: Started):
    async with httpx.AsyncClient(timeout=30) as http:
        incident = await open_incident(started, stack, http)
    note = await signed(incident.id, "add_note", AddNote(by="bob", text="captured"))
    first = await incident.execute_update("add_note", note, result_type=UpdateResult)
    assert first.changed
    assert "already used" in await refused(incident, "add_note", note)
    timeline = await incident.query(IncidentWorkflow.timeline)
    assert [e.summary for e in timeline if e.kind == "note"] == ["captured"]
    await incident.terminate("test done")


async def test_a_forged_approval_signal_is_ignored_and_audited(stack: Stack):
    async with httpx.AsyncClient(timeout=30) as http:
        incident_id = await open_vm_incident(stack, http)
        base = f"{stack.url}/api/incidents/{incident_id}"
        detail = (await http.get(base, headers=auth("viewer"))).json()
        runbook = stack.client.get_workflow_handle(detail["state"]["runbook"]["workflow_id"])
        # Signals cannot be refused before history, so the forgery lands there,
        # is checked by the same rule and changes nothing.
        await runbook.signal("approve", ApprovalDecision(step="isolate", by="dave"))
        forged_key = DecisionSigner(parse_private_key(new_private_key_text()))
        await runbook.signal(
            "approve",
            forged_key.sign(
                runbook.id, "approve", ApprovalDecision(step="isolate", by="carol"), ApiRole.ADMIN
            ),
        )
        for _ in range(100):
            view = await runbook.query("status", result_type=RunbookView)
            refusals = _audit_refusals(stack)
            if len(refusals) >= 2:
                break
            await asyncio.sleep(0.1)
        assert view.pending is not None and view.pending.approvals == []
        assert journal_mutations(stack.sim) == [], "nothing was changed in Azure"
        reasons = [r["details"]["reason"] for r in refusals]
        assert any("unsigned decision" in r for r in reasons), reasons
        assert any("unknown key" in r for r in reasons), reasons
        # The same approval through the API, signed by the gateway, counts.
        approved = await http.post(
            f"{base}/approvals/isolate/approve", json={}, headers=auth("approver")
        )
        assert approved.status_code == 200, approved.text
    await stack.client.get_workflow_handle(workflow_id_for(incident_id)).terminate("test done")


def _audit_refusals(stack: Stack) -> list[dict]:
    records = audit_records(stack.config.parent)
    return [r for r in records if r.get("action") == "approval refused"]


async def test_a_responder_scoped_credential_cannot_approve_for_an_approver(stack: Stack):
    """Review #2: carol holds the approver role on the roster, but this token
    of hers is scoped down to responder; with it she may not approve a
    high-risk step she is eligible for only as an approver."""
    policy = yaml.safe_load(stack.config.read_text())
    policy["access"]["tokens"].append(
        {"person": "carol", "role": "responder", "token": CAROL_AS_RESPONDER}
    )
    stack.config.write_text(yaml.safe_dump(policy))
    scoped = {"Authorization": f"Bearer {CAROL_AS_RESPONDER}"}
    async with httpx.AsyncClient(timeout=30) as http:
        incident_id = await open_vm_incident(stack, http)
        base = f"{stack.url}/api/incidents/{incident_id}"
        refused = await http.post(f"{base}/approvals/isolate/approve", json={}, headers=scoped)
        assert refused.status_code == 409, refused.text
        assert "credential used is a responder; this needs approver" in refused.json()["message"]
        pending = (await http.get(base, headers=auth("viewer"))).json()["pending_approvals"][0]
        assert pending["approvals"] == []
        assert journal_mutations(stack.sim) == [], "the VM was not touched"
        approved = await http.post(
            f"{base}/approvals/isolate/approve", json={}, headers=auth("approver")
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["pending"] is None or approved.json()["pending"]["approvals"]
    await stack.client.get_workflow_handle(workflow_id_for(incident_id)).terminate("test done")


async def test_people_acting_through_the_api_are_signed_and_counted(stack: Stack, started: Started):
    async with httpx.AsyncClient(timeout=30) as http:
        incident = await open_incident(started, stack, http)
        incident_id = incident_id_of(incident.id)
        acked = await http.post(
            f"{stack.url}/api/incidents/{incident_id}/ack", json={}, headers=auth("responder")
        )
        assert acked.status_code == 200, acked.text
    assert await status(incident) is IncidentStatus.ACKNOWLEDGED
    # A test that talks to Temporal directly signs as the gateway does.
    resolved = await decide(incident, "resolve", Resolve(by="alice"), result_type=UpdateResult)
    assert resolved.status is IncidentStatus.RESOLVED
    assert API_TOKENS and SIGNER.key_id.startswith("ed25519-")
    assert base64.b64decode(SIGNER.public_key)
    await incident.terminate("test done")


async def test_incidents_opened_before_signing_load_their_keys_when_asked(
    dev_env, tmp_path, task_queue, new_id, azure, sim, started
):
    """An incident (and its runbook) whose plan was loaded by a worker that
    knew no decision keys, as every incident running when this feature is
    deployed: its first signed decision makes it load the keys, and counts."""
    from stanch.harness.ports import free_port
    from stanch.models.settings import Settings
    from stanch.testing.estate import VM1
    from stanch.testing.runbooks import approval_plan, start_runbook
    from stanch.worker import build_worker
    from tests.support.incidents import open_incident
    from tests.support.plans import REMEDIATION, policy_file
    from tests.support.stack import gateway_at

    config = policy_file(tmp_path, **REMEDIATION)
    address = dev_env.client.service_client.config.target_host
    keyless = Settings(
        temporal_address=address,
        task_queue=task_queue,
        config=config,
        state_dir=tmp_path,
        decision_key=None,
    )
    incident_id = new_id()
    async with build_worker(dev_env.client, keyless, azure):
        incident = await open_incident(started, dev_env.client, task_queue, incident_id)
        plan = None
        for _ in range(100):
            plan = (await incident.query(IncidentWorkflow.state)).plan_loaded
            if plan:
                break
            await asyncio.sleep(0.05)
        assert plan
        runbook = await start_runbook(
            started,
            dev_env.client,
            task_queue,
            "quarantine_vm",
            VM1,
            plan=approval_plan().model_copy(update={"decision_keys": {}}),
            incident_id=incident_id,
        )
        for _ in range(200):
            if (await runbook.query("status", result_type=RunbookView)).pending:
                break
            await asyncio.sleep(0.05)

    settings = Settings(
        temporal_address=address,
        task_queue=task_queue,
        config=config,
        state_dir=tmp_path,
        alert_token="t" * 40,
    )
    port = free_port()
    async with build_worker(dev_env.client, settings, azure), gateway_at(settings, port) as url:
        async with httpx.AsyncClient(timeout=30) as http:
            acked = await http.post(
                f"{url}/api/incidents/{incident_id}/ack", json={}, headers=auth("responder")
            )
        assert acked.status_code == 200, acked.text
        assert await status(incident) is IncidentStatus.ACKNOWLEDGED
        # The keyless runbook is refused until it has loaded the keys, then counts.
        refusal = await refused(
            runbook, "approve", await signed(runbook.id, "approve", _approval())
        )
        assert "no decision keys are loaded yet" in refusal
        await runbook.signal("refresh_decision_keys")
        for _ in range(100):
            try:
                await runbook.execute_update(
                    "approve",
                    await signed(runbook.id, "approve", _approval()),
                    result_type=RunbookView,
                )
                break
            except WorkflowUpdateFailedError as e:
                assert "no decision keys" in str(e.cause)
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the runbook never loaded its keys")
    await runbook.terminate("test done")
    await incident.terminate("test done")


def _approval() -> ApprovalDecision:
    return ApprovalDecision(step="isolate", by="carol")


async def test_workers_trust_the_keys_the_policy_lists_and_only_those(
    dev_env, tmp_path, task_queue
):
    """Production shape: the worker holds no private key; the policy lists the
    gateway's public keys (old and new while rotating)."""
    from stanch.gateway.signing import public_key_text
    from stanch.harness.ports import free_port
    from stanch.models.settings import Settings
    from stanch.worker import build_worker
    from tests.support.plans import REMEDIATION, policy_file
    from tests.support.stack import gateway_at

    old = parse_private_key(new_private_key_text())
    new = parse_private_key(new_private_key_text())
    listed = [
        {"id": "gw-old", "public_key": public_key_text(old)},
        {"id": "gw-new", "public_key": public_key_text(new)},
    ]
    remediation: dict[str, Any] = copy.deepcopy(REMEDIATION)
    remediation["access"]["decision_keys"] = listed
    config = policy_file(tmp_path, **remediation)
    address = dev_env.client.service_client.config.target_host
    worker_settings = Settings(
        temporal_address=address,
        task_queue=task_queue,
        config=config,
        state_dir=tmp_path,
        decision_key=None,
    )
    gateway_settings = worker_settings.model_copy(
        update={"decision_key": SecretStr(base64_seed(new)), "alert_token": SecretStr("t" * 40)}
    )
    port = free_port()
    async with (
        build_worker(dev_env.client, worker_settings),
        gateway_at(gateway_settings, port) as url,
        httpx.AsyncClient(timeout=30) as http,
    ):
        alert = json.loads(DEMO_ALERT.read_text())
        alert["data"]["essentials"]["alertRule"] = f"keys-{uuid.uuid4().hex[:6]}"
        posted = await http.post(f"{url}/alerts", json=alert, params={"token": "t" * 40})
        incident_id = posted.json()["incident_id"]
        incident = dev_env.client.get_workflow_handle(workflow_id_for(incident_id))
        # The test run's own key is not listed: this worker does not trust it.
        for _ in range(100):
            cause = await refused(
                incident,
                "acknowledge",
                await signed(incident.id, "acknowledge", Acknowledge(by="bob")),
            )
            if "no decision keys are loaded yet" not in cause:
                break
            await asyncio.sleep(0.1)
        assert "unknown key" in cause
        rotated_out = DecisionSigner(old).sign(
            incident.id,
            "add_note",
            AddNote(by="bob", text="old key still listed"),
            ApiRole.RESPONDER,
        )
        assert (
            await incident.execute_update("add_note", rotated_out, result_type=UpdateResult)
        ).changed
        acked = await http.post(
            f"{url}/api/incidents/{incident_id}/ack", json={}, headers=auth("responder")
        )
        assert acked.status_code == 200, acked.text
    await incident.terminate("test done")


def base64_seed(key) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()
