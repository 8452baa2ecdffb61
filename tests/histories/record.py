"""Records the workflow histories replayed by tests/workflows/test_replay.py.

Run `python -m tests.histories.record [NAME...]` after a deliberate, patched
change to a workflow, and commit the new files beside the old ones: old
histories must keep replaying, since incidents recorded by them may still be
running somewhere. NAMEs pick what to record (a group, or one history's name:
`runbook_restart_vm`), so adding one history rewrites no other; `--to DIR`
writes into DIR instead of here. Runbooks are driven by stanch.testing's
recording core (`stanch runbook record` for teams): every gate approved as the
on-call API would forward an approver's decision.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from stanch.azuresim import AzureSim
from stanch.client import search_attributes
from stanch.harness.binaries import installed
from stanch.models.alert import MonitorCondition
from stanch.models.incident import Acknowledge, AddNote, AssignRole, Resolve, Role, UpdateResult
from stanch.models.postmortem import PostmortemRequest
from stanch.models.settings import Settings
from stanch.stores.postmortem import render_postmortem
from stanch.testing.decisions import decide
from stanch.testing.started import Started
from stanch.worker import WORKFLOWS, activities_for
from stanch.workflows.incident import IncidentWorkflow
from tests.support.incidents import alert_event, open_incident, pile_up
from tests.support.plans import policy_file

HERE = Path(__file__).parent
OUT = HERE  # where histories are written (`--to DIR`)
# What a run of this script without names records, and every name it takes.
RUNBOOK_HISTORIES = (
    "runbook_quarantine_vm",
    "runbook_release",
    "runbook_restart_vm",
    "runbook_scale_out_vmss",
    "runbook_verify_recovery",
    "incident_with_quarantine",
)
# Each recorded on an estate of its own (block_ip attaches an NSG to a NIC).
ESTATE_HISTORIES = ("runbook_block_ip", "runbook_failover", "access_grant", "communications")
DEFAULT = {
    "incident_lifecycle",
    *RUNBOOK_HISTORIES,
    *ESTATE_HISTORIES,
    "incident_storm_dev_server",
    "incident_grouped_quiet_hours",
    "incident_paced_pile",
}
NAMES = {*DEFAULT, "runbooks", "bounded", "encrypted"}


async def save(handle: WorkflowHandle[object, object], name: str) -> None:
    history = await handle.fetch_history()
    (OUT / name).parent.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(history.to_json())
    # Replays must run under the recorded workflow id: ids derived from it
    # (child workflows) are part of what is checked.
    ids_file = OUT / "workflow_ids.json"
    ids = json.loads(ids_file.read_text()) if ids_file.exists() else {}
    ids[name] = handle.id
    ids_file.write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")
    print(f"wrote {name}.json ({len(history.events)} events)")


async def lifecycle(client: Client, env: WorkflowEnvironment, config: Path) -> None:
    """Escalation to tier 2, ack, roles, note, a repeat, resolve, reopen, close."""
    queue = f"record-{uuid.uuid4()}"
    started = Started()  # the incident closes (handle.result()) before it is saved
    async with Worker(
        client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=activities_for(Settings(config=config, state_dir=config.parent)),
    ):
        handle = await open_incident(started, client, queue, "lifecycle0000000000")
        await env.sleep(timedelta(minutes=20))
        await decide(
            handle, "acknowledge", Acknowledge(by="bob"), env=env, result_type=UpdateResult
        )
        await decide(
            handle,
            "assign_role",
            AssignRole(by="bob", role=Role.INCIDENT_COMMANDER, assignee="carol"),
            env=env,
            result_type=UpdateResult,
        )
        await decide(
            handle, "add_note", AddNote(by="carol", text="on it"), env=env, result_type=UpdateResult
        )
        await handle.signal(IncidentWorkflow.add_alert, alert_event("a2"))
        await decide(handle, "resolve", Resolve(by="carol"), env=env, result_type=UpdateResult)
        await env.sleep(timedelta(minutes=5))
        await handle.signal(IncidentWorkflow.add_alert, alert_event("a3"))  # reopens
        await env.sleep(timedelta(minutes=1))
        await handle.signal(
            IncidentWorkflow.add_alert, alert_event("a3", MonitorCondition.RESOLVED)
        )
        await env.sleep(timedelta(hours=1))
        await handle.result()
        await save(handle, "incident_lifecycle")


async def grouped_quiet_hours(env: WorkflowEnvironment, tmp: Path) -> None:
    """A grouped incident (three VMs of one service) opened inside its
    service's maintenance window: the page held, one part resolved in the
    window, the page at its end, the last parts resolved, closed."""
    from stanch.models.alert import AlertBatch

    vm = "/subscriptions/s/resourcegroups/rg-app/providers/microsoft.compute/virtualmachines/vm{}"
    now = await env.get_current_time()
    window = {
        "service": "app",
        "start": (now - timedelta(minutes=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
    }
    app = {"name": "app", "escalation_policy": "default", "match": {"resource_groups": ["rg-app"]}}
    config = policy_file(tmp, services=[app], maintenance=[window])
    queue = f"record-{uuid.uuid4()}"
    started = Started()
    parts = [alert_event(f"p{n}", targets=[vm.format(n)]) for n in (1, 2, 3)]
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=activities_for(Settings(config=config, state_dir=tmp)),
    ):
        handle = await open_incident(started, env.client, queue, "grp-recorded0000000000", parts[0])
        await handle.signal(IncidentWorkflow.add_alerts, AlertBatch(alerts=parts[1:]))
        await env.sleep(timedelta(minutes=30))
        resolved = [p.model_copy(update={"condition": MonitorCondition.RESOLVED}) for p in parts]
        await handle.signal(IncidentWorkflow.add_alert, resolved[0])
        await env.sleep(timedelta(minutes=45))  # past the window: paged
        await handle.signal(IncidentWorkflow.add_alerts, AlertBatch(alerts=resolved[1:]))
        await env.sleep(timedelta(hours=1))
        await handle.result()
        await save(handle, "incident_grouped_quiet_hours")


async def storm_with_search_attributes(client: Client, config: Path) -> None:
    """Repeated alerts and a severity rise on the dev server, with search attributes."""
    from stanch.client.alerts import record_alert  # the real intake path
    from stanch.models.alert import CommonAlert
    from stanch.models.severity import Severity

    queue = f"record-{uuid.uuid4()}"
    sample = HERE.parents[1] / "examples/alerts/test_action_metric_static_threshold.json"
    async with Worker(
        client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=activities_for(Settings(config=config, state_dir=config.parent)),
    ):
        alert = CommonAlert.model_validate_json(sample.read_text())
        alert.data.essentials.alert_rule = f"record-{uuid.uuid4().hex[:6]}"
        first = await record_alert(client, queue, alert)
        for i in range(12):
            repeat = alert.model_copy(deep=True)
            repeat.data.essentials.alert_id = f"instance-{i}"
            repeat.data.essentials.severity = Severity.SEV1 if i == 6 else Severity.SEV4
            await record_alert(client, queue, repeat)
        handle = client.get_workflow_handle(first.workflow_id)
        await asyncio.sleep(2)
        await decide(handle, "acknowledge", Acknowledge(by="alice"), result_type=UpdateResult)
        await handle.terminate("recorded")
        await save(handle, "incident_storm_dev_server")


async def paced_pile(client: Client, config: Path) -> None:
    """Alerts that piled up while no worker ran, applied a workflow task's
    worth at a time (tests/workflows/test_paced_alerts.py)."""
    from stanch.harness.waiting import eventually
    from stanch.workflows.incident import ALERTS_PER_TASK

    queue = f"record-{uuid.uuid4()}"
    activities = activities_for(Settings(config=config, state_dir=config.parent))
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=activities):
        handle = await open_incident(Started(), client, queue, f"record-{uuid.uuid4().hex[:8]}")
        await asyncio.sleep(2)
    pile = [alert_event(alert_id=f"piled-{i}") for i in range(2 * ALERTS_PER_TASK + 500)]
    await pile_up(handle, pile)
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=activities):

        async def applied() -> bool:
            return (await handle.query(IncidentWorkflow.state)).state.alert_count > len(pile)

        await eventually(applied, timeout=60, what="the pile applied")
        await handle.terminate("recorded")
    await save(handle, "incident_paced_pile")


async def runbooks(env: WorkflowEnvironment, tmp: Path, wanted: set[str]) -> None:
    """The built-in runbooks `wanted` names, against azuresim, and an incident
    that ran one."""
    from stanch.activities.azure_clients import AzureClients
    from stanch.azuresim import AzureSim, load_world
    from stanch.models.runbook import ApprovalDecision, RunbookView
    from stanch.testing.estate import VM1, VM2, WORLD
    from stanch.testing.record import approve_every_gate
    from stanch.testing.runbooks import start_runbook
    from tests.support.plans import REMEDIATION

    world = load_world(WORLD)
    world.operation_seconds = 0.2
    sim = AzureSim(world, state_dir=tmp / "sim").start()
    azure = AzureClients(
        Settings(azure_endpoint=sim.url, azure_ca_file=sim.ca_file, azure_poll_seconds=0.05)
    )
    settings = Settings(config=policy_file(tmp, **REMEDIATION), state_dir=tmp)
    queue = f"record-{uuid.uuid4()}"
    client = env.client
    started = Started()
    try:
        async with Worker(
            client,
            task_queue=queue,
            workflows=WORKFLOWS,
            activities=activities_for(settings, azure),
        ):
            # release undoes what quarantine_vm applied: recorded together.
            if wanted & {"runbook_quarantine_vm", "runbook_release"}:
                quarantine = await start_runbook(
                    started, client, queue, "quarantine_vm", VM1, incident_id="hist1"
                )
                contained = await approve_every_gate(env, quarantine)
                await save(quarantine, "runbook_quarantine_vm")
                release = await start_runbook(
                    started,
                    client,
                    queue,
                    "release",
                    VM1,
                    requested_by="carol",
                    incident_id="hist1",
                    params={
                        "runbook": "quarantine_vm",
                        "applied": [u.model_dump() for u in contained.applied],
                    },
                )
                await approve_every_gate(env, release)
                await save(release, "runbook_release")

            from stanch.testing.estate import VMSS

            for name, runbook, target, params in (
                ("runbook_restart_vm", "restart_vm", VM2, {}),
                ("runbook_scale_out_vmss", "scale_out_vmss", VMSS, {}),
                (
                    "runbook_verify_recovery",
                    "verify_recovery",
                    VM1,
                    {"every": 600, "deadline": 1800},
                ),
            ):
                if name in wanted:
                    handle = await start_runbook(
                        started, client, queue, runbook, target, params=params
                    )
                    await approve_every_gate(env, handle)
                    await save(handle, name)

            if "incident_with_quarantine" not in wanted:
                return
            incident = await open_incident(
                started,
                client,
                queue,
                "withrunbook00000000",
                alert_event("r1", rule="vm-down", targets=[VM1.lower()]),
            )
            await env.sleep(timedelta(seconds=1))
            for _ in range(200):
                view = (await incident.query(IncidentWorkflow.state)).state.runbook
                if view is not None and view.pending is not None:
                    break
                await asyncio.sleep(0.05)
            assert view is not None
            child = client.get_workflow_handle(view.workflow_id)
            await decide(
                child,
                "approve",
                ApprovalDecision(step="isolate", by="carol"),
                env=env,
                result_type=RunbookView,
            )
            await child.result()
            # A runbook under an incident reports to it (a standalone one does not).
            await save(child, "runbook_quarantine_vm_under_incident")
            await decide(
                incident, "resolve", Resolve(by="carol"), env=env, result_type=UpdateResult
            )
            await env.sleep(timedelta(hours=1))
            await incident.result()
            await save(incident, "incident_with_quarantine")
            state = (await incident.query(IncidentWorkflow.state)).state
            timeline = await incident.query(IncidentWorkflow.timeline)
            golden = OUT.parent / "golden" if OUT == HERE else OUT / "golden"
            golden.mkdir(exist_ok=True)
            detail = PostmortemRequest(state=state, timeline=timeline)
            (golden / "incident_with_quarantine.json").write_text(detail.model_dump_json(indent=1))
            (golden / "incident_with_quarantine.postmortem.md").write_text(
                render_postmortem(state, timeline)
            )
    finally:
        await started.terminate_all()
        await azure.close()
        sim.stop()


@asynccontextmanager
async def estate_worker(
    env: WorkflowEnvironment, tmp: Path, config: Path
) -> AsyncIterator[tuple[AzureSim, str]]:
    """A worker with every workflow over a fresh azuresim of the tests' world,
    under `config`; yields the simulator and the worker's task queue."""
    from stanch.testing.estate import WORLD
    from stanch.testing.simulator import azure_clients, load_test_world, running_sim

    with running_sim(load_test_world(WORLD), tmp / "sim") as sim:
        async with azure_clients(sim) as azure:
            queue = f"record-{uuid.uuid4()}"
            settings = Settings(config=config, state_dir=tmp)
            async with Worker(
                env.client,
                task_queue=queue,
                workflows=WORKFLOWS,
                activities=activities_for(settings, azure),
            ):
                yield sim, queue


async def block_ip(env: WorkflowEnvironment, tmp: Path) -> None:
    """block_ip for the address a log alert's dimensions name: evidence, the
    gate approved, the deny rule added to the NSG on the VM's NIC."""
    from stanch.models.runbook import RunbookOutcome
    from stanch.testing.estate import RG, VM2
    from stanch.testing.record import approve_every_gate
    from stanch.testing.runbooks import start_runbook
    from tests.support.nsg import attach_to_nic, team_nsg

    started = Started()
    async with estate_worker(env, tmp, policy_file(tmp)) as (sim, queue):
        nic = f"{RG}/providers/Microsoft.Network/networkInterfaces/vm-web-2-nic"
        attach_to_nic(sim, nic, team_nsg(sim))
        try:
            handle = await start_runbook(
                started,
                env.client,
                queue,
                "block_ip",
                VM2,
                incident_id="histblock",
                params={"port": 22},
                dimensions={"ClientIP": "203.0.113.7", "_ResourceId": VM2.lower()},
            )
            result = await approve_every_gate(env, handle)
            assert result.outcome is RunbookOutcome.CONTAINED, result.summary
            await save(handle, "runbook_block_ip")
        finally:
            await started.terminate_all()


async def failover(env: WorkflowEnvironment, tmp: Path) -> None:
    """failover of tm-web (its primary not Online in the world): evidence, the
    high-risk gate approved, traffic moved, the secondary seen serving."""
    from stanch.models.runbook import RunbookOutcome
    from stanch.testing.estate import RG
    from stanch.testing.record import approve_every_gate
    from stanch.testing.runbooks import start_runbook

    profile = f"{RG}/providers/Microsoft.Network/trafficManagerProfiles/tm-web"
    started = Started()
    async with estate_worker(env, tmp, policy_file(tmp)) as (_, queue):
        try:
            handle = await start_runbook(
                started, env.client, queue, "failover", profile, incident_id="histfailover"
            )
            result = await approve_every_gate(env, handle)
            assert result.outcome is RunbookOutcome.MITIGATED, result.summary
            await save(handle, "runbook_failover")
        finally:
            await started.terminate_all()


async def access_grant(env: WorkflowEnvironment, tmp: Path) -> None:
    """A vendor's emergency access on an open incident: asked for by alice,
    approved by carol, granted, expired after its two hours and revoked."""
    from stanch.models.access_grant import GrantStatus
    from stanch.models.runbook import RunbookOutcome, RunbookResult
    from stanch.testing.decisions import approve
    from stanch.testing.worker import until_gate
    from tests.support.access import (
        access_policy_file,
        ask_for_access,
        grant_of,
        grant_result,
        until_status,
    )

    started = Started()
    async with estate_worker(env, tmp, access_policy_file(tmp)) as (_, queue):
        try:
            await open_incident(started, env.client, queue, "accessgrant000000000")
            grant = await ask_for_access(env, queue, "accessgrant000000000")
            handle = started.add(
                env.client.get_workflow_handle(grant.workflow_id, result_type=RunbookResult)
            )
            step = f"access-{grant.grant_id}"
            await until_gate(handle, step)
            await approve(handle, step, "carol", env=env)
            await until_status(handle, GrantStatus.ACTIVE)
            result = await grant_result(env, handle)  # skips the two hours
            assert result.outcome is RunbookOutcome.RELEASED, result.summary
            revoked = await grant_of(handle)
            assert revoked.status is GrantStatus.REVOKED, revoked.status
            await save(handle, "access_grant")
        finally:
            await started.terminate_all()


async def communications(env: WorkflowEnvironment, tmp: Path) -> None:
    """An incident's communications: carol (its comms lead) posts an update,
    delivered to the execs' webhook with the automatic ones, until the
    incident closes and the closing update is delivered."""
    from stanch.harness.plans import ROSTER
    from stanch.harness.waiting import eventually
    from stanch.models.config import ApiRole
    from stanch.models.status_updates import CommsView, PostUpdate, StatusUpdate, comms_workflow_id
    from stanch.workflows.communications import CommunicationsWorkflow
    from tests.support.webhooks import Receiver

    receiver = Receiver()
    roster = [dict(p) for p in ROSTER]
    roster[2]["roles"] = ["approver", "comms"]  # carol
    execs = {"name": "execs", "members": [f"webhook:{receiver.url}/execs"], "severities": ["Sev2"]}
    config = policy_file(tmp, roster=roster, communications={"groups": [execs]})
    started = Started()
    try:
        async with estate_worker(env, tmp, config) as (_, queue):
            incident = await open_incident(started, env.client, queue, "comms000000000000000")
            comms = env.client.get_workflow_handle(
                comms_workflow_id(incident.id), result_type=CommsView
            )

            async def ready() -> bool:
                try:
                    return (await comms.query(CommunicationsWorkflow.view)).ready
                except Exception:
                    return False  # not started yet

            await eventually(ready, what="the communications workflow")
            post = PostUpdate(by="carol", text="Checkout is slow; a fix is rolling out")
            await decide(
                comms,
                "post_update",
                post,
                env=env,
                role=ApiRole.RESPONDER,
                result_type=StatusUpdate,
            )

            async def delivered() -> bool:
                updates = (await comms.query(CommunicationsWorkflow.view)).updates
                return any(u.text == post.text and u.delivered == 1 for u in updates)

            await eventually(delivered, what="carol's update delivered")
            await decide(
                incident, "resolve", Resolve(by="carol"), env=env, result_type=UpdateResult
            )
            await incident.result()  # skips time through the reopen window: it closes
            await comms.result()  # ends once the closing update is delivered
            await save(comms, "communications")
    finally:
        await started.terminate_all()
        receiver.close()


async def bounded_storm(client: Client, config: Path) -> None:
    """A flapping alert whose timeline folds, on the dev server with a low
    history limit: the run that continues as new carrying a bounded state, and
    the run it continued into."""
    from stanch.client.alerts import record_alert
    from stanch.models.alert import AlertBatch, AlertEvent, CommonAlert
    from stanch.workflows.timeline import FOLDED, OPENING_KEPT

    queue = f"record-{uuid.uuid4()}"
    sample = HERE.parents[1] / "examples/alerts/test_action_metric_static_threshold.json"
    async with Worker(
        client,
        task_queue=queue,
        workflows=WORKFLOWS,
        activities=activities_for(Settings(config=config, state_dir=config.parent)),
    ):
        alert = CommonAlert.model_validate_json(sample.read_text())
        alert.data.essentials.alert_rule = f"record-bounded-{uuid.uuid4().hex[:6]}"
        first = await record_alert(client, queue, alert)
        handle = client.get_workflow_handle(first.workflow_id)
        opened = (await handle.describe()).run_id
        event = alert.to_event()
        long_id = "/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/" + "x" * 300

        def flap(i: int) -> list[AlertEvent]:
            fired = event.model_copy(update={"alert_id": f"flap-{i}"})
            return [fired, fired.model_copy(update={"condition": MonitorCondition.RESOLVED})]

        for wave in range(12):  # past the history limit, folding the timeline as it goes
            alerts = [a for i in range(wave * 100, wave * 100 + 100) for a in flap(i)]
            alerts.append(event.model_copy(update={"alert_id": long_id}))  # kept as a hash
            alerts.append(event.model_copy(update={"alert_id": f"open-{wave}"}))
            await handle.signal(IncidentWorkflow.add_alerts, AlertBatch(alerts=alerts))
        for _ in range(300):
            if (await handle.describe()).run_id != opened:
                break
            await asyncio.sleep(0.1)
        continued = client.get_workflow_handle(first.workflow_id)
        await asyncio.sleep(2)  # a recording, not a test: let the last waves land
        entries = await continued.query(IncidentWorkflow.timeline)
        assert entries[OPENING_KEPT].kind == FOLDED, "the timeline never folded"
        await handle.signal(
            IncidentWorkflow.add_alert,
            event.model_copy(
                update={"alert_id": "open-11", "condition": MonitorCondition.RESOLVED}
            ),
        )
        await asyncio.sleep(1)
        await save(
            client.get_workflow_handle(first.workflow_id, run_id=opened), "incident_bounded_storm"
        )
        await continued.terminate("recorded")
        await save(continued, "incident_bounded_storm_continued")


async def encrypted(tmp: Path) -> None:
    """An incident whose every payload is sealed (client/codec.py) under the
    test key of tests/support/encryption.py: a page, an ack, a note naming a
    person, a resolve and the close. Saved under encrypted/, where only
    tests/client/test_codec.py replays it, with that key."""
    from stanch.client.connection import data_converter
    from tests.support.encryption import recorded_keys_file

    converter = data_converter(Settings(payload_keys_file=recorded_keys_file(tmp)))
    config = policy_file(tmp)
    queue = f"record-{uuid.uuid4()}"
    async with (
        await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=installed("temporal-test-server"),
            data_converter=converter,
        ) as env,
        Worker(
            env.client,
            task_queue=queue,
            workflows=WORKFLOWS,
            activities=activities_for(Settings(config=config, state_dir=tmp)),
        ),
    ):
        alert = alert_event("e1", rule="Checkout latency above 2s")
        handle = await open_incident(Started(), env.client, queue, "encrypted00000000000", alert)
        await env.sleep(timedelta(minutes=20))
        await decide(
            handle, "acknowledge", Acknowledge(by="bob"), env=env, result_type=UpdateResult
        )
        note = AddNote(by="bob", text="Zed Quinlan from payments called")
        await decide(handle, "add_note", note, env=env, result_type=UpdateResult)
        await decide(handle, "resolve", Resolve(by="bob"), env=env, result_type=UpdateResult)
        await handle.signal(
            IncidentWorkflow.add_alert,
            alert_event("e1", MonitorCondition.RESOLVED, rule="Checkout latency above 2s"),
        )
        await env.sleep(timedelta(hours=1))
        await handle.result()
        await save(handle, "encrypted/incident_lifecycle")


async def main(only: set[str]) -> None:
    if "encrypted" in only:
        with tempfile.TemporaryDirectory() as tmp:
            await encrypted(Path(tmp))
        only = only - {"encrypted"}
        if not only:
            return
    unknown = only - NAMES
    if unknown:
        raise SystemExit(f"unknown: {', '.join(sorted(unknown))}; choose from {sorted(NAMES)}")
    if "runbooks" in only:
        only = (only - {"runbooks"}) | set(RUNBOOK_HISTORIES) | set(ESTATE_HISTORIES[:2])
    if "bounded" in only:
        with tempfile.TemporaryDirectory() as tmp:
            async with await WorkflowEnvironment.start_local(
                dev_server_existing_path=installed("temporal"),
                data_converter=pydantic_data_converter,
                search_attributes=search_attributes.ALL,
                dev_server_extra_args=[
                    "--dynamic-config-value",
                    "limit.historyCount.suggestContinueAsNew=40",
                ],
            ) as env:
                await bounded_storm(env.client, policy_file(Path(tmp)))
        only = only - {"bounded"}
        if not only:
            return
    wanted = only or DEFAULT
    with tempfile.TemporaryDirectory() as tmp:
        config = policy_file(Path(tmp))
        async with await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=installed("temporal-test-server"),
            data_converter=pydantic_data_converter,
        ) as env:
            if "incident_lifecycle" in wanted:
                await lifecycle(env.client, env, config)
            if wanted & set(RUNBOOK_HISTORIES):
                await runbooks(env, Path(tmp), wanted)
            for name, record in zip(
                ESTATE_HISTORIES, (block_ip, failover, access_grant, communications), strict=True
            ):
                if name in wanted:
                    estate = Path(tmp) / name
                    estate.mkdir()
                    await record(env, estate)
            if "incident_grouped_quiet_hours" in wanted:
                (Path(tmp) / "grouped").mkdir()
                await grouped_quiet_hours(env, Path(tmp) / "grouped")
        if not wanted & {"incident_storm_dev_server", "incident_paced_pile"}:
            return
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=installed("temporal"),
            data_converter=pydantic_data_converter,
            search_attributes=search_attributes.ALL,
        ) as env:
            if "incident_storm_dev_server" in wanted:
                await storm_with_search_attributes(env.client, config)
            if "incident_paced_pile" in wanted:
                await paced_pile(env.client, config)


if __name__ == "__main__":
    import sys

    # `python -m tests.histories.record runbook_restart_vm` records only that one;
    # `--to DIR` writes into DIR.
    args = sys.argv[1:]
    if args[:1] == ["--to"]:
        OUT = Path(args[1]).resolve()
        args = args[2:]
    asyncio.run(main(set(args)))
