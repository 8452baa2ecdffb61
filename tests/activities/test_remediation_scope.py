"""Remediation has a scope (review finding #12): the alert picks the resource a
runbook changes, so `remediation.scopes` in the policy bounds it.

The reproduction attacks the running stack as the review did: an alert through
the real gateway, for a VM in a resource group outside the scopes, with a policy
that auto-approves the runbook's risk. The runbook must refuse before any write
reaches Azure (azuresim's journal), say why on the timeline and in the audit
trail, and hand the incident to on-call."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from stanch.activities.locks import LockActivities
from stanch.client.incidents import IncidentDetail, fetch_incident
from stanch.models.azure import LockRequest, QuarantineRequest, TagChange
from stanch.models.config import ConfigError, RemediationScope, parse_config
from stanch.models.incident import IncidentStatus
from stanch.models.risk import Risk
from stanch.models.runbook import (
    RunbookInput,
    RunbookOutcome,
    RunbookResult,
    RunbookSpec,
    StepStatus,
)
from stanch.models.settings import Settings
from stanch.testing.estate import RG, SUB, VM1, VM2, WORLD
from stanch.testing.runbooks import approval_plan, audit_records, start_runbook
from stanch.testing.started import Started
from stanch.worker import WORKFLOWS, activities_for
from stanch.workflows.runbook import Runbook
from stanch.workflows.scope import (
    NO_SCOPES,
    covering,
    named_resources,
    scope_refusal,
    scope_warnings,
    tags_needed,
)
from tests.support.plans import policy_file
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
ALERT = ROOT / "examples" / "demo" / "vm-web-1-unavailable.json"
FINANCE = f"/subscriptions/{SUB}/resourceGroups/rg-finance"
VM_FIN = f"{FINANCE}/providers/Microsoft.Compute/virtualMachines/vm-fin-1"
OTHER_SUB = "00000000-0000-0000-0000-0000000000bb"
WEB_ONLY = [{"subscription": SUB, "resource_groups": ["rg-web"]}]
WRITES = {"PUT", "PATCH", "POST", "DELETE"}


def scopes(*entries: dict[str, Any]) -> list[RemediationScope]:
    return [RemediationScope.model_validate(e) for e in entries]


# ---- the decision itself (workflows/scope.py) ------------------------------------


def test_no_scopes_admit_nothing():
    assert scope_refusal(VM1, []) == NO_SCOPES


def test_a_listed_group_admits_its_resources_whatever_the_case():
    web = scopes({"subscription": SUB.upper(), "resource_groups": ["RG-WEB"]})
    assert scope_refusal(VM1, web) is None
    assert scope_refusal(VM1.lower(), web) is None  # Azure lower-cases alert targets
    assert scope_refusal(RG, web) is None  # a lock on the group itself
    globbed = scopes({"subscription": SUB, "resource_groups": ["rg-w*"]})
    assert scope_refusal(VM2, globbed) is None


@pytest.mark.parametrize(
    ("target", "why"),
    [
        (VM_FIN, "resource group rg-finance of subscription"),
        (VM1.replace(SUB, OTHER_SUB), f"subscription {OTHER_SUB} is not listed"),
        (f"/subscriptions/{SUB}", "not inside a resource group"),
        (f"/subscriptions/{SUB}/providers/Microsoft.Authorization/locks/x", "not inside"),
        # Spellings an SDK or an HTTP library could resolve to another path.
        (f"{RG}/../rg-finance/providers/Microsoft.Compute/virtualMachines/x", "not a plain"),
        (f"{RG}%2F..%2Frg-finance/providers/Microsoft.Compute/virtualMachines/x", "not a plain"),
        (f"/subscriptions/{SUB}//resourceGroups/rg-web", "not a plain"),
        ("vm-web-1", "not a plain"),
    ],
)
def test_anything_not_plainly_inside_is_refused(target: str, why: str):
    reason = scope_refusal(target, scopes(*WEB_ONLY))
    assert reason is not None and why in reason, reason


def test_tags_are_read_only_when_a_scope_requires_them():
    tagged = scopes({"subscription": SUB, "resource_groups": ["rg-web"], "tags": {"env": "prod"}})
    assert tags_needed(VM1, tagged)
    assert not tags_needed(VM_FIN, tagged)  # refused on placement, no read
    assert not tags_needed(RG, tagged)  # a group has no tags to read: refused
    either = [*tagged, *scopes({"subscription": SUB, "resource_groups": ["rg-*"]})]
    assert not tags_needed(VM1, either)  # an untagged scope admits it already
    assert scope_refusal(VM1, tagged, {"ENV": "prod", "service": "web"}) is None
    assert "lacks the tags" in (scope_refusal(VM1, tagged, {"env": "staging"}) or "")
    assert "could not be read" in (scope_refusal(VM1, tagged, None) or "")
    assert "could not be read" in (scope_refusal(RG, tagged, None) or "")
    assert len(covering(VM1, either)) == 2


def test_what_a_change_touches_is_every_arm_id_in_its_argument():
    assert named_resources(TagChange(resource_id=VM1, tags={"a": "b"}).model_dump()) == [VM1]
    lock = LockRequest(scope=RG, name="stanch-x", level="CanNotDelete", notes="n")
    assert named_resources(lock.model_dump()) == [RG]
    request = QuarantineRequest(resource_id=VM1.lower(), incident_id="i1")
    assert named_resources({"a": request.model_dump(), "b": [VM1]}) == [VM1.lower()]
    assert named_resources({"name": "no ids here"}) == []


def test_config_check_warnings():
    assert "remediation.scopes" in scope_warnings([])[0]
    wide = scope_warnings(scopes({"subscription": SUB, "resource_groups": ["rg-web", "*"]}))
    assert wide == [
        f"remediation.scopes[0].resource_groups[1]: '*' admits every resource group "
        f"of subscription {SUB}"
    ]
    assert scope_warnings(scopes(*WEB_ONLY)) == []


# ---- the policy file ---------------------------------------------------------


def base_policy(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "roster": [{"id": "alice"}],
        "escalation_policies": {"default": {"tiers": [{"people": ["alice"]}]}},
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("scope", "path"),
    [
        ({"subscription": "not-a-guid", "resource_groups": ["rg"]}, "scopes[0].subscription"),
        ({"subscription": SUB, "resource_groups": []}, "scopes[0].resource_groups"),
        ({"subscription": SUB, "resource_groups": ["rg/../x"]}, "scopes[0].resource_groups"),
        ({"subscription": SUB}, "scopes[0].resource_groups"),
        ({"subscription": SUB, "resource_groups": ["rg"], "tag": {}}, "scopes[0].tag"),
    ],
)
def test_bad_scopes_are_config_errors_naming_the_path(scope: dict[str, Any], path: str):
    with pytest.raises(ConfigError) as caught:
        parse_config(base_policy(remediation={"scopes": [scope]}))
    assert any(p.startswith(f"remediation.{path}") for p in caught.value.problems), caught.value


def test_config_check_warns_when_no_scopes_are_configured(tmp_path: Path):
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(base_policy()))
    result = subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", "config", "check", str(bare)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert f"{bare}: warning: remediation.scopes: none configured" in result.stderr
    assert f"{bare}: ok" in result.stdout


@pytest.mark.parametrize(
    "shipped",
    [
        ROOT / "stanch.yaml",
        ROOT / "examples" / "demo.yaml",
        ROOT / "examples" / "drills" / "vm-down-quarantine.yaml",
        ROOT / "examples" / "drills" / "azure-throttling.yaml",
    ],
    ids=lambda p: p.name,
)
def test_shipped_policies_scope_their_world(shipped: Path):
    data = yaml.safe_load(shipped.read_text())
    config = parse_config(data.get("policy", data))
    world = yaml.safe_load(WORLD.read_text())
    vms = [r["id"] for r in world["resources"] if "/virtualMachines/" in r["id"]]
    assert vms and all(scope_refusal(vm, config.remediation.scopes) is None for vm in vms)
    assert scope_refusal(VM_FIN, config.remediation.scopes) is not None


# ---- the review's reproduction: the real gateway, Temporal and azuresim ------------


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Any]:
    """azuresim's world plus a failing VM in rg-finance, a group no scope lists."""
    from stanch.azuresim import AzureSim, load_world
    from stanch.azuresim.world import SeedResource

    world = load_world(WORLD)
    world.resources.append(
        SeedResource(
            id=VM_FIN,
            tags={"service": "ledger", "env": "prod"},
            health="Unavailable",
            health_summary="The virtual machine is unresponsive.",
        )
    )
    world.operation_seconds = 0.3
    simulator = AzureSim(world, state_dir=tmp_path / "azuresim").start()
    yield simulator
    simulator.stop()


def auto_approving(stack: Stack) -> None:
    """The stack's policy, with quarantine_vm bound by its own match (any VM
    Resource Health reports) and its high risk auto-approved: the review's
    setting. Re-read by the worker when the incident opens."""
    data = yaml.safe_load(stack.config.read_text())
    data["approvals"] = {"auto_approve": ["high"], "tiers": [{"timeout": "15m"}]}
    data["runbooks"] = [{"runbook": "quarantine_vm"}]
    data["remediation"] = {"scopes": WEB_ONLY}
    stack.config.write_text(yaml.safe_dump(data))


async def alert_on(stack: Stack, target: str) -> str:
    body = json.loads(ALERT.read_text())
    essentials = body["data"]["essentials"]
    essentials["alertRule"] = f"vm-down-{uuid.uuid4().hex[:6]}"
    essentials["alertTargetIDs"] = [target.lower()]
    async with httpx.AsyncClient() as http:
        response = await stack.post_alert(http, body)
    assert response.status_code == 202, response.text
    return str(response.json()["incident_id"])


async def finished(stack: Stack, incident: str, timeout: float = 60) -> IncidentDetail:
    """The incident once its runbook has reported its end."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        detail = await fetch_incident(stack.client, incident)
        if detail.view.state.runbook_result is not None:
            return detail
        assert asyncio.get_running_loop().time() < deadline, detail.view.state.model_dump_json()
        await asyncio.sleep(0.1)


def writes_to(sim: Any, resource: str) -> list[str]:
    group = resource.split("/providers/")[0].lower()
    return [
        f"{c['method']} {c['path']}"
        for c in sim.journal.calls()
        if c["method"] in WRITES and c["mutation"] and c["path"].lower().startswith(group)
    ]


async def test_alert_for_a_vm_outside_the_scopes_changes_nothing(stack: Stack, tmp_path: Path):
    auto_approving(stack)
    before = stack.sim.state.snapshot()
    incident = await alert_on(stack, VM_FIN)
    detail = await finished(stack, incident)
    state = detail.view.state

    result = state.runbook_result
    assert result is not None and result.outcome is RunbookOutcome.REFUSED, result
    assert "rg-finance" in result.summary and "outside remediation.scopes" in result.summary
    # Nothing written anywhere: no tag, lock, NSG or NIC change (reads were fine).
    assert [c for c in stack.sim.journal.calls() if c["mutation"]] == []
    assert stack.sim.state.snapshot() == before
    assert stack.sim.state.locks == {}
    # Said on the timeline, and the incident is over to on-call.
    refused = [e for e in detail.timeline if e.kind == "runbook:step_refused"]
    assert refused and "outside remediation.scopes" in refused[0].summary
    assert any(e.kind == "handed_to_humans" for e in detail.timeline)
    assert state.status is IncidentStatus.TRIGGERED  # still paging, not "contained"
    # And in the audit trail, with the reason.
    records = [r for r in audit_records(tmp_path) if r.get("incident_id") == incident]
    step = next(r for r in records if r["outcome"] == "refused")
    assert step["action"] == "capture forensics: disk snapshots"  # its first change
    assert "rg-finance" in step["details"]["detail"]
    assert any(r["action"] == "runbook finished" and r["outcome"] == "refused" for r in records)


async def test_alert_for_a_vm_inside_the_scopes_still_remediates(stack: Stack):
    auto_approving(stack)
    incident = await alert_on(stack, VM1)
    state = (await finished(stack, incident)).view.state
    assert state.runbook_result is not None
    assert state.runbook_result.outcome is RunbookOutcome.CONTAINED, state.runbook_result.summary
    assert writes_to(stack.sim, VM1)
    assert writes_to(stack.sim, VM_FIN) == []


# ---- runbooks on their own (time-skipping server), as drills and tests run them -----


@pytest.fixture
async def worker_with(
    ts_env: Any, task_queue: str, tmp_path: Path, azure: Any
) -> AsyncIterator[Callable[..., Settings]]:
    """A worker whose policy file the test writes (`worker_with(remediation=...)`)."""
    settings = Settings(config=policy_file(tmp_path), state_dir=tmp_path, task_queue=task_queue)

    def configure(**changes: Any) -> Settings:
        policy_file(tmp_path, **changes)
        return settings

    async with Worker(
        ts_env.client,
        task_queue=task_queue,
        workflows=[*WORKFLOWS, LockTheGroupOf],
        activities=activities_for(settings, azure),
        # LockTheGroupOf is defined in this test module, which the sandbox
        # would re-import with pytest in it.
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield configure


async def replays(handle: Any) -> None:
    """The patched code replays what it recorded (old histories: test_replay)."""
    history: WorkflowHistory = await handle.fetch_history()
    await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(
        history
    )


async def test_no_scopes_refuses_every_change_but_dry_runs_still_run(
    ts_env, worker_with, sim, started
):
    settings = worker_with(remediation={"scopes": []})
    handle = await start_runbook(
        started,
        ts_env.client,
        settings.task_queue,
        "restart_vm",
        VM2,
        plan=approval_plan(auto_approve=[Risk.MEDIUM]),
    )
    result: RunbookResult = await handle.result()
    assert result.outcome is RunbookOutcome.REFUSED
    assert NO_SCOPES in result.summary
    assert [c for c in sim.journal.calls() if c["mutation"]] == []
    assert [s.status for s in result.steps if s.mutates] == [StepStatus.REFUSED]
    await replays(handle)

    dry = await start_runbook(
        started, ts_env.client, settings.task_queue, "quarantine_vm", VM1, dry_run=True
    )
    planned: RunbookResult = await dry.result()
    assert planned.outcome is RunbookOutcome.PLANNED
    assert [s.name for s in planned.steps if s.status is StepStatus.PLANNED][-1] == (
        "isolate network"
    )
    assert [c for c in sim.journal.calls() if c["mutation"]] == []


async def test_a_scope_that_requires_tags_reads_them_first(ts_env, worker_with, sim, started):
    tagged = {"subscription": SUB, "resource_groups": ["rg-web"], "tags": {"env": "staging"}}
    settings = worker_with(remediation={"scopes": [tagged]})
    refused = await start_runbook(
        started,
        ts_env.client,
        settings.task_queue,
        "restart_vm",
        VM2,
        plan=approval_plan(auto_approve=[Risk.MEDIUM]),
    )
    result: RunbookResult = await refused.result()
    assert result.outcome is RunbookOutcome.REFUSED
    assert "lacks the tags" in result.summary and "env=staging" in result.summary
    read = next(s for s in result.steps if s.name.startswith("read tags of vm-web-2"))
    assert read.status is StepStatus.SUCCEEDED and "env=prod" in (read.detail or "")
    assert [c for c in sim.journal.calls() if c["mutation"]] == []

    tagged["tags"] = {"env": "prod"}
    worker_with(remediation={"scopes": [tagged]})
    admitted = await start_runbook(
        started,
        ts_env.client,
        settings.task_queue,
        "restart_vm",
        VM2,
        plan=approval_plan(auto_approve=[Risk.MEDIUM]),
    )
    result = await admitted.result()
    assert result.outcome is RunbookOutcome.MITIGATED, result.summary
    restarts = [c for c in sim.journal.calls() if c["method"] == "POST" and c["mutation"]]
    assert [c["path"].rsplit("/", 1)[-1] for c in restarts] == ["restart"]
    await replays(admitted)


@workflow.defn(name="lock_the_group_of")
class LockTheGroupOf(Runbook):
    """A team runbook whose change names another resource than the alert's:
    the scope applies to what the change names, not to the alert."""

    spec = RunbookSpec(
        name="lock_the_group_of",
        description="test: lock the resource group given in params",
        risk=Risk.LOW,
        author="tests",
    )

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        group = str(self._inp.params["group"])
        await self.act(
            "lock the group",
            LockActivities.place_lock,
            LockRequest(scope=group, name="stanch-team", level="CanNotDelete", notes="t"),
        )
        return RunbookOutcome.MITIGATED


@pytest.mark.parametrize("group", [FINANCE, f"/subscriptions/{SUB}"], ids=["group", "sub"])
async def test_a_team_runbook_cannot_change_outside_the_scopes(
    ts_env, worker_with, sim, group: str, started: Started
):
    settings = worker_with(remediation={"scopes": WEB_ONLY})
    handle = await start_runbook(
        started,
        ts_env.client,
        settings.task_queue,
        "lock_the_group_of",
        VM1,
        params={"group": group},
    )
    result: RunbookResult = await handle.result()
    assert result.outcome is RunbookOutcome.REFUSED, result.summary
    assert sim.state.locks == {}
    assert [c for c in sim.journal.calls() if c["mutation"]] == []
