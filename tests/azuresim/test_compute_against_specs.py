"""azuresim's Run Command checked against Azure's compute specification
(ComputeRP 2024-11-01, the split documents: runCommand.json and the
computeRPCommon.json it `$ref`s, vendored unmodified under specs/): what
run_diagnostic calls, `VirtualMachines_RunCommand`, on a Linux and a Windows VM.

The operation is long-running with `final-state-via: location`: the POST is
accepted with 202 (no body, as the spec's 202 has none), and the final GET of
its `Location` answers the POST's 200 schema, a RunCommandResult. Deliberate
divergences, each with its reason:
- The `Azure-AsyncOperation` and `Location` URLs azuresim hands out
  (`.../locations/{location}/operations/{id}`) are not checked against the
  spec: ARM's long-running-operation URLs are opaque to clients and no
  document in the specification describes them; the SDK follows them as given.
- Run Command's errors (409 OperationNotAllowed, Conflict) are not validated:
  `VirtualMachines_RunCommand` declares no error response.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stanch.azuresim.api_versions import api_versions
from stanch.azuresim.world import SeedResource
from stanch.testing.simulator import load_test_world, running_sim
from tests.support.arm_specs import (
    COMPUTE_COMMON,
    RUN_COMMANDS,
    clear_journal,
    client,
    served_routes,
)
from tests.support.estate import RG, SUB, VM2
from tests.support.openapi import Validation, document, operation, response_schema, route

RUN_COMMAND = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
    "Microsoft.Compute/virtualMachines/{vmName}/runCommand"
)
WINDOWS_VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-win-1"
# The long-running-operation URLs azuresim hands out (see the module's docstring).
OPERATIONS = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/"


def run_command(http: httpx.Client, vm: str, command_id: str, script: list[str]) -> Any:
    """POST runCommand at the document's api-version, then follow `Location`
    until the operation is done, as the SDK's poller does; the final answer
    must validate against the POST's 200 schema."""
    version = document(RUN_COMMANDS)["info"]["version"]
    accepted = http.post(
        f"{vm}/runCommand",
        params={"api-version": version},
        json={"commandId": command_id, "script": script},
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.content == b"", "the spec's 202 has no body"
    location = accepted.headers["Location"]
    assert accepted.headers["Azure-AsyncOperation"]
    deadline = time.monotonic() + 10
    final = http.get(location)
    while final.status_code == 202 and time.monotonic() < deadline:
        time.sleep(float(final.headers.get("Retry-After", "0.1")))
        final = http.get(final.headers.get("Location", location))
    assert final.status_code == 200, final.text
    schema = response_schema(RUN_COMMANDS, RUN_COMMAND, "post", 200)
    assert Validation().check(final.json(), schema) == [], final.json()
    return final.json()


def test_the_compute_documents_are_at_a_version_azuresim_takes():
    for spec in (RUN_COMMANDS, COMPUTE_COMMON):
        assert document(spec)["info"]["version"] in api_versions(
            "Microsoft.Compute/virtualMachines"
        )
    assert operation(RUN_COMMANDS, RUN_COMMAND, "post")["operationId"] == (
        "VirtualMachines_RunCommand"
    )


def test_run_command_on_a_linux_vm_matches_the_spec(sim):
    clear_journal(sim)
    with client(sim) as http:
        result = run_command(http, VM2, "RunShellScript", ["uptime", "df -h"])
    [status] = result["value"]
    assert status["code"] == "ProvisioningState/succeeded"
    assert "[stdout]" in status["message"] and "df -h" in status["message"]
    served = served_routes(sim, [RUN_COMMANDS])
    assert [(r.template, v == r.version) for r, v in served] == [(RUN_COMMAND, True)]


def test_run_command_on_a_windows_vm_matches_the_spec(tmp_path: Path):
    world = load_test_world()
    world.resources.append(
        SeedResource(
            id=WINDOWS_VM,
            location="westeurope",
            properties={"storageProfile": {"osDisk": {"osType": "Windows"}}},
        )
    )
    with running_sim(world, tmp_path / "azuresim") as sim, client(sim) as http:
        result = run_command(http, WINDOWS_VM, "RunPowerShellScript", ["Get-Service"])
    codes = [s["code"] for s in result["value"]]
    assert codes == ["ComponentStatus/StdOut/succeeded", "ComponentStatus/StdErr/succeeded"]


def test_a_run_command_route_no_document_has_is_refused():
    """The route check can fail: azuresim's operation URL is in no document."""
    assert route([RUN_COMMANDS], "POST", f"{VM2}/runCommand").template == RUN_COMMAND
    with pytest.raises(KeyError, match="no vendored spec has GET"):
        route([RUN_COMMANDS], "GET", f"{OPERATIONS}westeurope/operations/x")
