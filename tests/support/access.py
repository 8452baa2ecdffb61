"""Emergency access in tests: a policy with a vendor among its guests, a
guest's own Log Analytics client against azuresim, and a grant asked for the
way the gateway asks (signed for the caller's credential)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from azure.core.exceptions import HttpResponseError
from azure.monitor.query.aio import LogsQueryClient
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from stanch.activities.azure_clients import LOGS_ENDPOINT, StaticTokenCredential
from stanch.azuresim import AzureSim
from stanch.azuresim.rbac import guest_token
from stanch.client.access import incident_access, request_access
from stanch.client.ids import workflow_id_for
from stanch.harness.waiting import eventually
from stanch.models.access_grant import AccessGrantView, AccessRequest, GrantStatus
from stanch.models.config import ApiRole
from stanch.models.decision import PersonRequest
from stanch.models.runbook import RunbookResult
from stanch.testing.decisions import SIGNER
from stanch.testing.estate import SUB
from tests.support.alerts import unique_alert
from tests.support.plans import REMEDIATION, auth, policy_file
from tests.support.stack import Stack

Request = TypeVar("Request", bound=PersonRequest)
VENDOR_PRINCIPAL = "7d1c0f3e-2b9a-4c5d-8e6f-0a1b2c3d4e5f"
OPS = f"/subscriptions/{SUB}/resourceGroups/rg-ops"
WEB = f"/subscriptions/{SUB}/resourceGroups/rg-web"
WORKSPACE_ID = "11111111-2222-3333-4444-555555555555"  # law-ops in azuresim's world
VENDOR = {
    "id": "contoso-support",
    "name": "Dana Vendor",
    "organisation": "Contoso Databases Ltd",
    "contact": "dana@contoso.example",
    "principal_id": VENDOR_PRINCIPAL,
    "support": {"hours": "24x7", "response_time": "1h", "reference": "CT-4471"},
    "expires": "2099-12-31",
}
EXPIRED = {
    **VENDOR,
    "id": "old-vendor",
    "principal_id": "00000000-1111-2222-3333-444444444444",
    "expires": "2020-01-31",
}
ACCESS_POLICY: dict[str, Any] = {
    "guests": [VENDOR, EXPIRED],
    "access": {
        "emergency_roles": [
            {"role": "Log Analytics Reader", "max_duration": "4h"},
            {"role": "Monitoring Reader", "max_duration": "4h"},
            {"role": "Virtual Machine Contributor", "max_duration": "2h"},
        ]
    },
    "remediation": {"scopes": [{"subscription": SUB, "resource_groups": ["rg-ops", "rg-web"]}]},
}


def access_policy_file(tmp_path: Path, **overrides: Any) -> Path:
    return policy_file(tmp_path, **{**ACCESS_POLICY, **overrides})


async def ask_for_access(
    env: WorkflowEnvironment,
    task_queue: str,
    incident_id: str,
    *,
    by: str = "alice",
    role: str = "Log Analytics Reader",
    scope: str = OPS,
    duration: timedelta = timedelta(hours=2),
    credential: ApiRole = ApiRole.RESPONDER,
) -> AccessGrantView:
    """Starts a grant as the on-call API does, signed at the server's clock."""
    sign = await signing_at(env, credential)
    request = AccessRequest(
        by=by, guest="contoso-support", role=role, scope=scope, duration=duration
    )
    return await request_access(
        env.client, task_queue, incident_id, request, principal_id=VENDOR_PRINCIPAL, sign=sign
    )


async def signing_at(env: WorkflowEnvironment, credential: ApiRole) -> Any:
    """The client room's `sign`, as the gateway would sign for `credential`,
    dated by the server's clock (the time-skipping one runs ahead of ours)."""
    now = await env.get_current_time() if env.supports_time_skipping else None

    def sign(workflow_id: str, action: str, request: Request) -> Request:
        return SIGNER.sign(workflow_id, action, request, credential, now)

    return sign


async def grant_of(handle: WorkflowHandle[Any, Any]) -> AccessGrantView:
    found: AccessGrantView = await handle.query("grant", result_type=AccessGrantView)
    return found


async def until_status(
    handle: WorkflowHandle[Any, Any], status: GrantStatus, timeout: float = 30
) -> AccessGrantView:
    async def reached() -> AccessGrantView | None:
        grant = await grant_of(handle)
        return grant if grant.status is status else None

    found: AccessGrantView = await eventually(reached, timeout, f"{handle.id} {status}", every=0.05)
    return found


@asynccontextmanager
async def guest_logs(sim: AzureSim) -> AsyncIterator[LogsQueryClient]:
    """The vendor's own Log Analytics client: their token, not stanch's."""
    client = LogsQueryClient(
        StaticTokenCredential(guest_token(VENDOR_PRINCIPAL)),
        endpoint=sim.url,
        audience=LOGS_ENDPOINT,
        connection_verify=str(sim.ca_file),
        retry_total=0,
    )
    try:
        yield client
    finally:
        await client.close()


async def guest_reads_logs(client: LogsQueryClient) -> bool:
    """True if the vendor's query of the ops workspace is answered, False on 403."""
    try:
        await client.query_workspace(WORKSPACE_ID, "Event | take 1", timespan=timedelta(hours=1))
    except HttpResponseError as e:
        if e.status_code == 403:
            return False
        raise
    return True


def assignments(sim: AzureSim) -> list[dict[str, Any]]:
    with sim.state.lock:
        return list(sim.state.role_assignments.values())


async def handle_for(client: Client, grant: AccessGrantView) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(grant.workflow_id)


async def grant_result(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> RunbookResult:
    """The grant's end. Its handle was not made by `start_workflow` in the test
    (the client room started it), so the time-skipping server is told to skip
    time while the result is awaited, as it would for a handle of its own."""
    if getattr(env, "time_skipping_unlocked", None) is not None:
        # Move the test server's clock ourselves until the grant has ended: a
        # result long poll relies on time skipping being unlocked, and another
        # module's leftovers could leave it locked (the grant then waited
        # forever in a full random-order run).
        for _ in range(400):
            described = await handle.describe()
            if described.status != WorkflowExecutionStatus.RUNNING:
                break
            await env.sleep(timedelta(minutes=5))
    result = await handle.result()
    assert isinstance(result, RunbookResult)
    return result


def access_stack_policy(tmp_path: Path, **overrides: Any) -> Path:
    """The real stack's policy (API tokens for bob, alice, carol and dave) with
    the vendor among its guests and the ops and web groups in scope."""
    tokens: dict[str, Any] = dict(REMEDIATION["access"])  # type: ignore[arg-type]
    access = {**tokens, **ACCESS_POLICY["access"]}
    return policy_file(tmp_path, **{**REMEDIATION, **ACCESS_POLICY, "access": access, **overrides})


async def open_stack_incident(stack: Stack, http: httpx.AsyncClient) -> str:
    """An incident opened by an alert through the gateway, once it answers."""
    answer = await stack.post_alert(http, unique_alert())
    assert answer.status_code == 202, answer.text
    incident: str = answer.json()["incident_id"]

    async def answers() -> bool:
        found = await http.get(f"{stack.url}/api/incidents/{incident}", headers=auth("viewer"))
        return found.status_code == 200

    await eventually(answers, 20, f"incident {incident} answering")
    return incident


def grant_body(**changes: Any) -> dict[str, Any]:
    """POST /api/incidents/{id}/access: the vendor, logs of rg-ops, two hours."""
    body = {
        "guest": "contoso-support",
        "role": "Log Analytics Reader",
        "scope": OPS,
        "duration": "2h",
        "reason": "their database engine's logs",
    }
    body.update(changes)
    return body


async def grants_of(stack: Stack, http: httpx.AsyncClient, incident: str) -> list[dict[str, Any]]:
    listing = await http.get(f"{stack.url}/api/incidents/{incident}/access", headers=auth("viewer"))
    assert listing.status_code == 200, listing.text
    grants: list[dict[str, Any]] = listing.json()["incidents"][0]["grants"]
    return grants


async def until_grant(
    stack: Stack,
    http: httpx.AsyncClient,
    incident: str,
    grant_id: str,
    check: Any,
    what: str,
    timeout: float = 30,
) -> dict[str, Any]:
    """Until the incident lists grant `grant_id` and `check(grant)` holds."""

    async def reached() -> dict[str, Any] | None:
        for grant in await grants_of(stack, http, incident):
            if grant["grant_id"] == grant_id and check(grant):
                return grant
        return None

    found: dict[str, Any] = await eventually(reached, timeout, f"grant {grant_id} {what}")
    return found


def awaiting_approval(grant: dict[str, Any]) -> bool:
    """For until_grant: the grant's gate waits for someone's approval."""
    return bool(grant["view"] and grant["view"]["pending"])


def role_assignment_writes(sim: AzureSim) -> list[tuple[str, int | None]]:
    """Every PUT and DELETE of a role assignment azuresim saw, with its status."""
    return [
        (c["method"], c["status"])
        for c in sim.journal.calls(0)
        if "/roleassignments/" in c["path"].lower() and c["method"] in ("PUT", "DELETE")
    ]


async def end_incident(client: Client, incident: str) -> None:
    """A test's incident and its grants still open, terminated: the dev server
    outlives the test, and a grant does not end with a terminated incident."""
    for grant in await incident_access(client, incident):
        if grant.status.is_open:
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(grant.workflow_id).terminate("test done")
    await client.get_workflow_handle(workflow_id_for(incident)).terminate("test done")
