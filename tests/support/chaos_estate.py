"""The estate the chaos suite remediates: azuresim with one failing VM per
trial, the alerts that open incidents about them, the policies that bind
`quarantine_vm` to them, and what "each write exactly once" means in
azuresim's journal."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from stanch.azuresim import AzureSim, load_world
from stanch.azuresim.admin import SimAdmin
from stanch.azuresim.world import SeedResource
from stanch.client.alerts import record_alert
from stanch.client.ids import workflow_id_for
from stanch.client.incidents import IncidentDetail, fetch_incident, list_incidents, listing_query
from stanch.models.alert import CommonAlert
from stanch.testing.estate import DEMO_ALERT, SUB, WORLD
from stanch.testing.started import Started

CHAOS_RG = f"/subscriptions/{SUB}/resourceGroups/rg-chaos"
# An incident no runbook is bound to.
STORAGE = f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Storage/storageAccounts/stwebprod"

BINDING = {"runbook": "quarantine_vm", "match": {"resource_ids": ["*/virtualmachines/vm-chaos-*"]}}
# High risk approved by policy: no human in the loop while processes die.
AUTO_APPROVED = {"approvals": {"auto_approve": ["high"]}, "runbooks": [BINDING]}
# carol (an approver) must say yes; nobody is paged again for hours.
NEEDS_APPROVAL = {"approvals": {"tiers": [{"timeout": "4h"}]}, "runbooks": [BINDING]}


def chaos_vm(trial: int) -> str:
    # Zero-padded, so no VM's name is a prefix of another's in journal paths.
    return f"{CHAOS_RG}/providers/Microsoft.Compute/virtualMachines/vm-chaos-{trial:04d}"


def start_chaos_sim(directory: Path, vms: int) -> AzureSim:
    """examples/world.yaml plus one failing VM per trial (the `sim` fixture has a
    single one): concurrent trials never share a NIC, and each trial's journal
    entries are told apart by its VM's name."""
    world = load_world(WORLD)
    world.operation_seconds = 0.3
    world.resources += [
        SeedResource(
            id=chaos_vm(i),
            tags={"service": "web", "env": "chaos"},
            health="Unavailable",
            health_summary="The virtual machine is unresponsive (chaos trial).",
        )
        for i in range(vms)
    ]
    return AzureSim(world, state_dir=directory).start()


def health_alert(resource: str, rule: str) -> dict[str, Any]:
    """The demo's Resource Health alert, for `resource`, under a rule of its own
    (so a new incident), with a fresh alertId (a new alert instance)."""
    body: dict[str, Any] = json.loads(DEMO_ALERT.read_text())
    essentials = body["data"]["essentials"]
    essentials["alertId"] = (
        f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/{uuid.uuid4()}"
    )
    essentials["alertRule"] = rule
    essentials["alertTargetIDs"] = [resource.lower()]
    essentials["configurationItems"] = [resource.rsplit("/", 1)[-1]]
    return body


def applied_mutations(calls: Iterable[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """How many times azuresim carried out each state-changing call, per
    (method, lower-cased path).

    "Exactly once" is about what the estate saw, not how often an activity ran:
    - reads (GET, and the Log Analytics / metrics queries, which are POSTs) never
      count, so a retried activity may read before it writes as often as it likes;
    - a mutation counts when the simulator applied it: answered below 400, or
      applied with its answer lost (status None, `applied`);
    - an answer made up by an injected fault (429, 5xx) changed nothing, and a
      refusal from the route itself (409 ScopeLocked, 404) neither, so a retry
      after either is the first application, not a second.
    Re-sending the same PUT counts twice even though it leaves the same state:
    on Azure each write is an Activity Log event and a new etag, and it would
    silently undo whatever a responder changed in between (a forensic allow rule
    on the quarantine NSG, a lock raised to ReadOnly)."""
    return Counter(
        (c["method"], c["path"].lower())
        for c in calls
        if c["mutation"] and c["applied"] and (c["status"] is None or c["status"] < 400)
    )


def duplicates(counts: Counter[tuple[str, str]]) -> int:
    return sum(n - 1 for n in counts.values() if n > 1)


@dataclass
class Estate:
    """azuresim, its admin API over TLS, and the settings a stanch process needs."""

    sim: AzureSim
    admin: SimAdmin
    temporal: str
    config: Path
    task_queue: str = "chaos"

    def settings(self, task_queue: str | None = None) -> dict[str, Any]:
        """STANCH_* settings of a worker or gateway on this estate."""
        return {
            "temporal_address": self.temporal,
            "task_queue": task_queue or self.task_queue,
            "config": self.config,
            "azure_endpoint": self.sim.url,
            "azure_ca_file": self.sim.ca_file,
            "azure_poll_seconds": 0.05,
        }

    async def journal(self, since: int = 0) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.admin.journal, since)

    async def last_seq(self) -> int:
        calls = await self.journal()
        return int(calls[-1]["seq"]) if calls else 0

    async def trial_calls(self, trial: int, incident: str, since: int) -> list[dict[str, Any]]:
        """A trial's calls: those on its VM (and NIC, tags, lock) or its quarantine NSG."""
        names = (chaos_vm(trial).rsplit("/", 1)[-1], f"stanch-quarantine-{incident}")
        return [c for c in await self.journal(since) if any(n in c["path"].lower() for n in names)]

    async def quarantine_writes(
        self, trial: int, incident: str, since: int
    ) -> tuple[int, str | None]:
        """(writes applied more than once, what is wrong) for a finished quarantine:
        exactly its four writes (tag, lock, NSG, NIC), each applied once, nothing else."""
        counts = applied_mutations(await self.trial_calls(trial, incident, since))
        extra = duplicates(counts)
        if set(counts) == quarantine_writes(trial, incident) and not extra:
            return 0, None
        applied = {f"{m} .../{p.rsplit('/providers/', 1)[-1]}": n for (m, p), n in counts.items()}
        return extra, f"trial {trial}: writes applied {applied}"


def quarantine_writes(trial: int, incident: str) -> set[tuple[str, str]]:
    vm = chaos_vm(trial)
    group = vm.split("/providers/")[0]
    network = f"{group}/providers/Microsoft.Network"
    return {
        (method, path.lower())
        for method, path in (
            ("PATCH", f"{vm}/providers/Microsoft.Resources/tags/default"),
            ("PUT", f"{vm}/providers/Microsoft.Authorization/locks/stanch-{incident}"),
            ("PUT", f"{network}/networkSecurityGroups/stanch-quarantine-{incident}"),
            ("PUT", f"{network}/networkInterfaces/{vm.rsplit('/', 1)[-1]}-nic"),
        )
    }


# ---- incidents --------------------------------------------------------------------


async def open_incident(client: Client, task_queue: str, body: dict[str, Any]) -> str:
    """As the gateway does it: one signal-with-start, durable when it returns."""
    recorded = await record_alert(client, task_queue, CommonAlert.model_validate(body))
    return recorded.incident_id


async def open_tracked_incident(
    started: Started, client: Client, task_queue: str, body: dict[str, Any]
) -> str:
    """On the shared session server: terminated after the test (`started`), so
    its timers do not outlive the test."""
    incident = await open_incident(client, task_queue, body)
    started.add(client.get_workflow_handle(workflow_id_for(incident)))
    return incident


async def runbook_finished(client: Client, incident: str) -> IncidentDetail | None:
    detail = await fetch_incident(client, incident)
    # The incident keeps the runbook's result once the runbook has finished.
    return detail if detail.view.state.runbook_result is not None else None


async def approval_pending(client: Client, incident: str) -> bool:
    return bool((await fetch_incident(client, incident)).view.state.pending_approvals)


async def paged(client: Client, incident: str) -> bool:
    return any(e.kind == "paged" for e in (await fetch_incident(client, incident)).timeline)


async def listed_ids(client: Client, expected: set[str]) -> set[str] | None:
    """Visibility is eventually consistent: None until every expected id shows."""
    page = await list_incidents(client, listing_query(running_only=True), page_size=200)
    ids = {r.incident_id for r in page.incidents}
    return ids if expected <= ids else None
