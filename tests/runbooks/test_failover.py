"""failover on the time-skipping server, its activities against azuresim:
nothing moves before a high-risk approval; an approved failover writes
exactly its planned endpoint PATCHes and verifies the secondary serves; a
release approved by a second person writes exactly the way back; a secondary
that never comes Online fails the run and undoes it; retries after faults end
where a clean run does; a Weighted profile takes its primary out."""

from __future__ import annotations

from typing import Any

from azure.mgmt.trafficmanager.models import Profile
from temporalio.client import Client, WorkflowHandle

from stanch.activities.azure_clients import AzureClients
from stanch.activities.traffic import TrafficActivities
from stanch.azuresim import AzureSim
from stanch.azuresim.amend import Amendment, ResourceChange, amend
from stanch.azuresim.faults import Fault
from stanch.harness.waiting import eventually
from stanch.models.runbook import (
    ApprovalDecision,
    RunbookInput,
    RunbookOutcome,
    RunbookResult,
    RunbookView,
    StepStatus,
)
from stanch.models.traffic import ServingCheck
from stanch.testing.decisions import decide
from stanch.testing.estate import RG, SUB, VM2
from stanch.testing.runbooks import approval_plan, audit_records, result_of, start_runbook

PROFILE = f"{RG}/providers/Microsoft.Network/trafficManagerProfiles/tm-web"
WEST = f"{PROFILE}/externalEndpoints/web-westeurope"
NORTH = f"{PROFILE}/externalEndpoints/web-northeurope"
WEIGHTED = f"{RG}/providers/Microsoft.Network/trafficManagerProfiles/tm-api"
FAILOVER_WRITES = [
    ("web-westeurope", "priority", 3),
    ("web-northeurope", "priority", 1),
    ("web-westeurope", "priority", 2),
]
BACK_WRITES = [
    ("web-northeurope", "priority", 3),
    ("web-westeurope", "priority", 1),
    ("web-northeurope", "priority", 2),
]


def endpoint_writes(sim: AzureSim) -> list[tuple[str, str, Any]]:
    """(endpoint, field, value) of every write azuresim applied, in order."""
    found = []
    for call in sim.journal.calls():
        if call["mutation"] and call["status"] in (200, 201, None) and call["applied"]:
            (field, value), *_ = call["body"]["properties"].items()
            found.append((call["path"].rsplit("/", 1)[-1], field, value))
    return found


def endpoints_held(sim: AzureSim) -> dict[str, tuple[Any, ...]]:
    with sim.state.lock:
        return {
            r.name: (r.properties.get("endpointStatus"), r.properties.get("priority"))
            for r in sim.state.resources.values()
            if "/externalendpoints/" in r.id.lower()
        }


def probes_see(sim: AzureSim, **health: str) -> None:
    """The world's knob: what Traffic Manager's probes see of each endpoint."""
    ids = {"west": WEST, "north": NORTH}
    changes = [ResourceChange(id=ids[k], health=v) for k, v in health.items()]
    with sim.state.lock:
        amend(sim.state, Amendment(resources=changes))


async def at_gate(handle: WorkflowHandle[Any, Any]) -> RunbookView:
    async def waiting() -> RunbookView | None:
        view: RunbookView = await handle.query("status", result_type=RunbookView)
        return view if view.pending is not None else None

    view: RunbookView = await eventually(waiting, 20, "at its approval gate", every=0.05)
    return view


async def approve(env: Any, handle: WorkflowHandle[Any, Any], step: str, by: str) -> None:
    await decide(
        handle, "approve", ApprovalDecision(step=step, by=by), env=env, result_type=RunbookView
    )


async def release(
    client: Client, task_queue: str, started: Any, done: WorkflowHandle[Any, Any], result: Any
) -> WorkflowHandle[Any, Any]:
    """As `stanch release` starts it: carol asks, so someone else must approve."""
    incident = done.id.split("-")[1]
    handle = await client.start_workflow(
        "release",
        RunbookInput(
            incident_id=incident,
            resource_id=PROFILE,
            requested_by="carol",
            approval=approval_plan(),
            params={
                "runbook": "failover",
                "applied": [u.model_dump(mode="json") for u in result.applied],
            },
        ),
        id=f"runbook-{incident}-release",
        task_queue=task_queue,
        result_type=RunbookResult,
    )
    return started.add(handle)


async def test_approved_failover_moves_traffic_and_a_second_persons_release_moves_it_back(
    ts_env, runbooks, sim, started
):
    before = endpoints_held(sim)
    handle = await start_runbook(started, ts_env.client, runbooks.task_queue, "failover", PROFILE)
    view = await at_gate(handle)
    assert view.pending is not None
    assert (view.pending.step, view.pending.risk) == ("failover", "high")
    assert endpoint_writes(sim) == [], "nothing moves before the approval"
    assert [s.name for s in view.steps] == [
        "read traffic profile",
        "capture evidence",
        "approval: failover",
    ]
    await approve(ts_env, handle, "failover", "carol")
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.MITIGATED, result.summary
    assert endpoint_writes(sim) == FAILOVER_WRITES
    assert endpoints_held(sim) == {
        "web-westeurope": ("Enabled", 2),
        "web-northeurope": ("Enabled", 1),
    }
    assert [s.name for s in result.steps][3:] == [
        "read traffic profile before failover",
        "move traffic to web-northeurope",
        "check web-northeurope serves (#1)",
    ]
    # The profile and its endpoints, kept before anything changed.
    (evidence,) = result.evidence
    record = next(r for r in audit_records(runbooks.state_dir) if r["action"] == "capture evidence")
    assert record["details"]["sha256"] == evidence.sha256
    assert [u.activity for u in result.applied] == ["set_endpoints"]

    back = await release(ts_env.client, runbooks.task_queue, started, handle, result)
    await at_gate(back)
    assert endpoint_writes(sim) == FAILOVER_WRITES, "nothing moves back before the approval"
    await approve(ts_env, back, "release", "dave")
    released = await result_of(back)
    assert released.outcome is RunbookOutcome.RELEASED, released.summary
    assert endpoint_writes(sim) == FAILOVER_WRITES + BACK_WRITES
    assert endpoints_held(sim) == before
    assert {c["method"] for c in sim.journal.calls() if c["mutation"]} == {"PATCH"}


async def test_a_secondary_that_never_comes_online_fails_the_run_and_is_undone(
    ts_env, runbooks, sim, started
):
    before = endpoints_held(sim)
    probes_see(sim, north="Unknown")  # forever CheckingEndpoint: not known bad, never Online
    handle = await start_runbook(started, ts_env.client, runbooks.task_queue, "failover", PROFILE)
    await at_gate(handle)
    await approve(ts_env, handle, "failover", "carol")
    result = await result_of(handle)  # the time-skipping server skips the 10 minutes
    assert result.outcome is RunbookOutcome.FAILED, result.summary
    assert "did not serve within 0:10:00" in result.summary and "undid 1 change" in result.summary
    checks = [s for s in result.steps if s.name.startswith("check web-northeurope serves")]
    assert len(checks) > 1 and all("CheckingEndpoint" in (s.detail or "") for s in checks)
    assert endpoint_writes(sim) == FAILOVER_WRITES + BACK_WRITES
    assert endpoints_held(sim) == before
    assert result.applied == [], "nothing left in place"
    assert result.steps[-1].name == "undo move traffic to web-northeurope"
    assert result.steps[-1].status is StepStatus.UNDONE


async def test_the_verification_waits_durably_for_the_secondary(ts_env, runbooks, sim, started):
    probes_see(sim, north="Unknown")
    handle = await start_runbook(
        started,
        ts_env.client,
        runbooks.task_queue,
        "failover",
        PROFILE,
        params={"verify_every": 1, "verify_within": 300},  # seconds
    )
    await at_gate(handle)
    await approve(ts_env, handle, "failover", "carol")

    async def first_check_failed() -> bool:
        view: RunbookView = await handle.query("status", result_type=RunbookView)
        return any(s.name.endswith("(#1)") and s.ended_at for s in view.steps)

    await eventually(first_check_failed, 20, "the first check, still CheckingEndpoint")
    probes_see(sim, north="Available")
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.MITIGATED, result.summary
    assert endpoint_writes(sim) == FAILOVER_WRITES, "verified: not undone"


async def test_retries_after_faults_end_where_a_clean_run_does(ts_env, runbooks, sim, started):
    sim.faults.add(Fault(path="externalEndpoints/web-northeurope", method="PATCH", status=503))
    sim.faults.add(Fault(path="externalEndpoints/web-westeurope", method="PATCH", drop_after=True))
    handle = await start_runbook(started, ts_env.client, runbooks.task_queue, "failover", PROFILE)
    await at_gate(handle)
    await approve(ts_env, handle, "failover", "carol")
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.MITIGATED, result.summary
    assert endpoints_held(sim) == {
        "web-westeurope": ("Enabled", 2),
        "web-northeurope": ("Enabled", 1),
    }
    # The parking write got through (its answer lost) and is not made again.
    assert endpoint_writes(sim) == FAILOVER_WRITES
    assert [f.fired for f in sim.faults.list()] == [], "both faults met"


async def test_a_weighted_profile_fails_over_by_taking_the_primary_out(
    ts_env, runbooks, sim, started, azure: AzureClients
):
    profile = {
        "location": "global",
        "properties": {
            "trafficRoutingMethod": "Weighted",
            "endpoints": [_external("api-westeurope", 1), _external("api-northeurope", 2)],
        },
    }
    await azure.traffic_manager(SUB).profiles.create_or_update("rg-web", "tm-api", Profile(profile))
    # The probes: the primary fails, the secondary is Online (once checked).
    with sim.state.lock:
        amend(
            sim.state,
            Amendment(
                resources=[
                    ResourceChange(
                        id=f"{WEIGHTED}/externalEndpoints/api-westeurope", health="Degraded"
                    )
                ]
            ),
        )
    secondary = ServingCheck(profile_id=WEIGHTED, endpoint="api-northeurope")

    async def online() -> bool:
        return (await TrafficActivities(azure).check_endpoint_serving(secondary)).serving

    await eventually(online, 10, "the new secondary Online")
    sim.journal.clear()
    handle = await start_runbook(
        started,
        ts_env.client,
        runbooks.task_queue,
        "failover",
        WEIGHTED,
        params={"primary": "api-westeurope", "secondary": "api-northeurope"},
    )
    view = await at_gate(handle)
    assert view.steps[0].detail and "routes by Weighted" in view.steps[0].detail
    await approve(ts_env, handle, "failover", "carol")
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.MITIGATED, result.summary
    assert endpoint_writes(sim) == [("api-westeurope", "endpointStatus", "Disabled")]


async def test_no_failover_when_the_primary_serves_or_the_secondary_fails_too(
    ts_env, runbooks, sim, started
):
    probes_see(sim, west="Available")
    fine = await start_runbook(started, ts_env.client, runbooks.task_queue, "failover", PROFILE)
    assert (await result_of(fine)).outcome is RunbookOutcome.NOT_NEEDED

    probes_see(sim, west="Degraded", north="Degraded")
    both = await start_runbook(started, ts_env.client, runbooks.task_queue, "failover", PROFILE)
    result = await result_of(both)
    assert result.outcome is RunbookOutcome.FAILED
    assert "web-northeurope is Degraded too" in result.summary
    assert all(not s.name.startswith("approval") for s in result.steps), "nobody was asked"

    elsewhere = await start_runbook(started, ts_env.client, runbooks.task_queue, "failover", VM2)
    refused = await result_of(elsewhere)
    assert refused.outcome is RunbookOutcome.FAILED and "profile_id" in refused.summary
    assert refused.steps == []
    assert endpoint_writes(sim) == []


async def test_a_dry_run_plans_and_moves_nothing(ts_env, runbooks, sim, started):
    handle = await start_runbook(
        started, ts_env.client, runbooks.task_queue, "failover", PROFILE, dry_run=True
    )
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.PLANNED, result.summary
    assert [s.status for s in result.steps if s.mutates] == [StepStatus.PLANNED]
    assert endpoint_writes(sim) == []


def _external(name: str, priority: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints",
        "properties": {"target": f"{name}.example.net", "weight": 50, "priority": priority},
    }
