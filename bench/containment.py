"""Alert to containment: from POST /alerts to the first containment change
azuresim receives (the quarantine tag on the failed VM), for a policy that
auto-approves quarantine_vm.

Baseline: the same quarantine_vm runbook started directly through the SDK,
timed from the start call to the same first change. That is the runbook's own
chain (Resource Health check, evidence capture, the auto-approved gate, the
kill-switch check, the tag), so the difference is what stanch's incident layer
adds on top: HTTP intake, the incident workflow, loading the response plan and
starting the runbook as a child.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.alerts import vm_down_alert, vm_id, world
from bench.incidents import state, terminate
from bench.lab import Lab
from bench.stack import TOKEN, Services, policy, running
from bench.stats import Table, at_most, median, ms, percentile, ratio
from stanch.azuresim.admin import SimAdmin
from stanch.client.ids import as_incident_id
from stanch.models.config import ApprovalPolicy
from stanch.models.incident import IncidentStatus
from stanch.models.risk import Risk
from stanch.models.runbook import ApprovalPlan, RunbookInput, RunbookResult
from stanch.workflows.incident import IncidentWorkflow

THROUGH_STANCH = "alert → gateway → incident → quarantine_vm"
DIRECT = "quarantine_vm started directly (baseline)"
WARM_UP = 1


# Where the time goes on the way through stanch, from the incident's timeline.
SEGMENTS = {
    "opened": "POST to incident opened",
    "plan_loaded": "response plan loaded",
    "runbook_started": "runbook started",
    "first_change": "first change at Azure",
}


@dataclass
class Trials:
    latencies: dict[str, list[list[float]]] = field(
        default_factory=lambda: {THROUGH_STANCH: [], DIRECT: []}
    )
    segments: dict[str, list[float]] = field(default_factory=dict)


async def run(lab: Lab, trials: int) -> list[Table]:
    workdir = lab.scratch("containment")
    count = (trials * lab.repeats + WARM_UP) * 2
    names = vms_names(count)
    vms = iter(names)
    plan = policy(
        workdir / "pages.jsonl",
        approvals={"auto_approve": ["high"], "tiers": [{"timeout": "1h"}]},
        runbooks=[
            {
                "runbook": "quarantine_vm",
                "match": {"resource_ids": ["*/virtualmachines/vm-web-bench-*"]},
            }
        ],
    )
    async with running(lab.server, lab.client, workdir, plan, world(names)) as services:
        assert services.sim is not None and services.sim.admin is not None
        admin = services.sim.admin
        opened: list[str] = []
        results = Trials()
        for repeat in range(lab.repeats + 1):
            rounds = WARM_UP if repeat == 0 else trials
            through: list[float] = []
            direct: list[float] = []
            for _ in range(rounds):
                latency, workflow_id, segments = await through_stanch(
                    lab, services, admin, next(vms)
                )
                through.append(latency)
                opened.append(workflow_id)
                if repeat > 0:
                    for name, seconds in segments.items():
                        results.segments.setdefault(name, []).append(seconds)
                direct.append(await started_directly(lab, services, admin, next(vms)))
            if repeat > 0:  # the first round warms caches and connections
                results.latencies[THROUGH_STANCH].append(through)
                results.latencies[DIRECT].append(direct)
        await terminate(lab.client, opened)
    return [table(lab, trials, results)]


def vms_names(count: int) -> list[str]:
    return [f"vm-web-bench-{i:03d}" for i in range(count)]


async def first_change(admin: SimAdmin, vm: str, since: int, timeout: float = 120) -> float:
    """When azuresim received the first mutation of `vm` (its journal's clock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for call in await asyncio.to_thread(admin.journal, since):
            if call["mutation"] and f"/{vm}/" in call["path"].lower() + "/":
                return float(call["at"])
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no containment change on {vm} within {timeout:.0f} s")


def last_seq(admin: SimAdmin) -> int:
    calls = admin.journal()
    return int(calls[-1]["seq"]) if calls else 0


async def through_stanch(
    lab: Lab, services: Services, admin: SimAdmin, vm: str
) -> tuple[float, str, dict[str, float]]:
    since = await asyncio.to_thread(last_seq, admin)
    body = json.dumps(vm_down_alert(f"vm-down-{uuid.uuid4().hex[:8]}", vm_id(vm)))
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        sent = time.time()
        async with http.post(f"{services.url}/alerts", data=body, headers=headers) as response:
            answer: dict[str, Any] = await response.json()
            if response.status != 202:
                raise RuntimeError(f"intake refused the alert: {response.status} {answer}")
    changed = await first_change(admin, vm, since)
    workflow_id = str(answer["workflow_id"])
    await _contained(lab, workflow_id)  # the next trial starts on a quiet worker
    return changed - sent, workflow_id, await _segments(lab, workflow_id, sent, changed)


async def _segments(lab: Lab, workflow_id: str, sent: float, changed: float) -> dict[str, float]:
    """Each milestone's time since the previous one (workflow time is the
    server's clock: the same machine's as ours)."""
    entries = await lab.client.get_workflow_handle(workflow_id).query(IncidentWorkflow.timeline)
    at = {e.kind: e.at.timestamp() for e in reversed(entries)}
    at["first_change"] = changed
    segments: dict[str, float] = {}
    previous = sent
    for kind in SEGMENTS:
        if kind in at:
            segments[kind] = at[kind] - previous
            previous = at[kind]
    return segments


async def _contained(lab: Lab, workflow_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            await state(lab.client, as_incident_id(workflow_id))
        ).state.status is IncidentStatus.CONTAINED:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{workflow_id} not contained within {timeout:.0f} s")


async def started_directly(lab: Lab, services: Services, admin: SimAdmin, vm: str) -> float:
    since = await asyncio.to_thread(last_seq, admin)
    incident = f"bench{uuid.uuid4().hex[:10]}"
    sent = time.time()
    handle = await lab.client.start_workflow(
        "quarantine_vm",
        RunbookInput(
            incident_id=incident,
            resource_id=vm_id(vm),
            approval=ApprovalPlan(
                policy=ApprovalPolicy(auto_approve=[Risk.HIGH]),
                approvers=["carol", "dave"],
                on_call=["alice"],
                roster=["alice", "bob", "carol", "dave"],
            ),
            title=f"{vm} unavailable",
        ),
        id=f"runbook-{incident}",
        task_queue=services.task_queue,
        result_type=RunbookResult,
    )
    changed = await first_change(admin, vm, since)
    await handle.result()
    return changed - sent


def table(lab: Lab, trials: int, results: Trials) -> Table:
    result = Table(
        f"Alert to containment: {trials} sequential incidents per run, quarantine_vm "
        f"auto-approved (median of {lab.repeats} runs)",
        ["path", "p50", "p99", "vs baseline (p50)", "fastest", "slowest"],
    )
    p50s = {
        name: median([percentile(run, 50) for run in results.latencies[name]])
        for name in (THROUGH_STANCH, DIRECT)
    }
    base = p50s[DIRECT]
    for name in (THROUGH_STANCH, DIRECT):
        runs = results.latencies[name]
        every = [latency for run in runs for latency in run]
        result.add(
            name,
            ms(p50s[name]),
            ms(median([percentile(run, 99) for run in runs])),
            ratio(p50s[name], base),
            ms(min(every)),
            ms(max(every)),
        )
    breakdown = ", ".join(
        f"{label} +{ms(median(results.segments[kind]))}"
        for kind, label in SEGMENTS.items()
        if kind in results.segments
    )
    result.targets.append(
        at_most(
            "alert → first containment write p50 vs the runbook started directly",
            p50s[THROUGH_STANCH] / base,
            1.25,
        )
    )
    result.notes.append(f"Through stanch, median step by step: {breakdown}.")
    result.notes.append(
        f"p99 of {trials} trials is the slowest of them; the fastest and slowest are over all "
        f"{trials * lab.repeats} trials. The clock stops at azuresim's journal entry for "
        "the first mutation of the VM (the quarantine tag)."
    )
    return result
