"""azuresim's compute answers checked against Azure's compute specification
(ComputeRP 2024-11-01, the split documents vendored unmodified under specs/:
virtualMachine.json, virtualMachineScaleSet.json, runCommand.json, and the
computeRPCommon.json and Microsoft.Compute/common-types/v1/common.json they
`$ref`): what stanch's compute activities and run_diagnostic call.
VirtualMachines_Get (also with `$expand=instanceView`), _InstanceView, _Restart,
_Deallocate, _Start and _RunCommand on a Linux and a Windows VM;
VirtualMachineScaleSets_Get and _Update (the scale-out); and their errors
(CloudError of common-types v1), a refused write leaving the estate as it was.

A power action is long-running: the POST is accepted with 202 and no body (the
spec's 202 has none), and the final GET of its `Location` answers the POST's
200, which has no schema either: no body.

Run Command is long-running the same way, with `final-state-via: location`:
its final GET answers the POST's 200 schema, a RunCommandResult. Deliberate
divergences, each with its reason:
- The `Azure-AsyncOperation` and `Location` URLs azuresim hands out
  (`.../locations/{location}/operations/{id}`) are not checked against the
  spec: ARM's long-running-operation URLs are opaque to clients and no
  document in the specification describes them; the SDK follows them as given.
- Run Command's errors (409 OperationNotAllowed, Conflict) are not validated:
  `VirtualMachines_RunCommand` declares no error response.
- `VirtualMachineScaleSets_Update` is long-running in the spec; azuresim applies
  it at once and answers 200 with the scale set (`provisioningState`
  Succeeded), an answer the spec allows and the SDK's poller takes as final.
  The scale set's own power actions and instance view, and its VMs' routes,
  are not served (404): stanch calls none of them.
- A VM carries only the properties its world gives it (no hardwareProfile or
  vmId unless seeded): the spec requires none of them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stanch.azuresim.admin import SimAdmin
from stanch.azuresim.api_versions import api_versions
from stanch.azuresim.world import SeedResource
from stanch.testing.estate import RG, SUB, VM1, VM2, VMSS
from stanch.testing.simulator import load_test_world, running_sim
from tests.support.arm_specs import (
    COMPUTE_COMMON,
    COMPUTE_SPECS,
    LOCKS,
    RUN_COMMANDS,
    SCALE_SETS,
    VIRTUAL_MACHINES,
    call,
    clear_journal,
    client,
    served_routes,
)
from tests.support.openapi import Validation, document, operation, response_schema, route

RUN_COMMAND = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
    "Microsoft.Compute/virtualMachines/{vmName}/runCommand"
)
WINDOWS_VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-win-1"
# The long-running-operation URLs azuresim hands out (see the module's docstring).
OPERATIONS = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/"
VM = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
    "Microsoft.Compute/virtualMachines/{vmName}"
)
SCALE_SET = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
    "Microsoft.Compute/virtualMachineScaleSets/{vmScaleSetName}"
)
# What ComputeActivities sends, in this order, and the power state each leaves.
SETTLES_IN = {"restart": "running", "deallocate": "deallocated", "start": "running"}
OPERATIONS_CHECKED = [
    (RUN_COMMANDS, RUN_COMMAND, "post", "VirtualMachines_RunCommand"),
    (VIRTUAL_MACHINES, VM, "get", "VirtualMachines_Get"),
    (VIRTUAL_MACHINES, f"{VM}/instanceView", "get", "VirtualMachines_InstanceView"),
    (VIRTUAL_MACHINES, f"{VM}/restart", "post", "VirtualMachines_Restart"),
    (VIRTUAL_MACHINES, f"{VM}/deallocate", "post", "VirtualMachines_Deallocate"),
    (VIRTUAL_MACHINES, f"{VM}/start", "post", "VirtualMachines_Start"),
    (SCALE_SETS, SCALE_SET, "get", "VirtualMachineScaleSets_Get"),
    (SCALE_SETS, SCALE_SET, "patch", "VirtualMachineScaleSets_Update"),
]


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
    final = finished(http, accepted)
    schema = response_schema(RUN_COMMANDS, RUN_COMMAND, "post", 200)
    assert Validation().check(final.json(), schema) == [], final.json()
    return final.json()


def finished(http: httpx.Client, accepted: httpx.Response) -> httpx.Response:
    """Follow an accepted operation's `Location` until it is done, as the SDK's
    poller does (its `Azure-AsyncOperation` is handed out too); its final 200."""
    location = accepted.headers["Location"]
    assert accepted.headers["Azure-AsyncOperation"]
    deadline = time.monotonic() + 10
    final = http.get(location)
    while final.status_code == 202 and time.monotonic() < deadline:
        time.sleep(float(final.headers.get("Retry-After", "0.1")))
        final = http.get(final.headers.get("Location", location))
    assert final.status_code == 200, final.text
    return final


def test_the_compute_documents_are_at_a_version_azuresim_takes():
    for spec in (RUN_COMMANDS, COMPUTE_COMMON, VIRTUAL_MACHINES):
        assert document(spec)["info"]["version"] in api_versions(
            "Microsoft.Compute/virtualMachines"
        )
    assert document(SCALE_SETS)["info"]["version"] in api_versions(
        "Microsoft.Compute/virtualMachineScaleSets"
    )
    for spec, path, method, operation_id in OPERATIONS_CHECKED:
        assert operation(spec, path, method)["operationId"] == operation_id


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


# ---- virtual machines and scale sets (virtualMachine.json, virtualMachineScaleSet.json) ----


def power_state(http: httpx.Client, vm: str) -> str:
    view = call(http, "GET", f"{vm}/instanceView", 200, specs=COMPUTE_SPECS)
    [power] = [s["code"] for s in view["statuses"] if s["code"].startswith("PowerState/")]
    return str(power)


def test_vm_reads_match_the_spec(sim):
    """What get_power_state and the network runbooks read: the VM, its
    instance view, and the VM with its instance view expanded."""
    clear_journal(sim)
    version = document(VIRTUAL_MACHINES)["info"]["version"]
    with client(sim) as http:
        vm = call(http, "GET", VM1, 200, specs=COMPUTE_SPECS)
        assert vm["id"] == VM1 and vm["properties"]["storageProfile"]["osDisk"]["osType"] == "Linux"
        assert power_state(http, VM1) == "PowerState/running"
        expanded = http.get(VM1, params={"api-version": version, "$expand": "instanceView"})
        assert expanded.status_code == 200
        schema = response_schema(VIRTUAL_MACHINES, VM, "get", 200)
        assert Validation().check(expanded.json(), schema) == []
        codes = [s["code"] for s in expanded.json()["properties"]["instanceView"]["statuses"]]
        assert "PowerState/running" in codes
        missing = call(http, "GET", VM1.replace("vm-web-1", "vm-gone"), 404, specs=COMPUTE_SPECS)
        assert missing["error"]["code"] == "ResourceNotFound"
    served = served_routes(sim, COMPUTE_SPECS)
    assert {r.template for r, _ in served} == {VM, f"{VM}/instanceView"}
    assert all(v == r.version for r, v in served)


def test_vm_power_actions_match_the_spec(sim):
    """restart_vm, deallocate_vm and start_vm: each POST accepted with 202 and
    no body, its operation followed to a final 200 without one, and the VM in
    the power state the action leaves it in."""
    clear_journal(sim)
    with client(sim) as http:
        for action, settled in SETTLES_IN.items():
            spec_route = route(COMPUTE_SPECS, "POST", f"{VM2}/{action}")
            accepted = http.post(f"{VM2}/{action}", params={"api-version": spec_route.version})
            assert accepted.status_code == 202, accepted.text
            assert accepted.content == b"", f"{action}: the spec's 202 has no body"
            assert finished(http, accepted).content == b"", f"{action}: its 200 has no body"
            assert power_state(http, VM2) == f"PowerState/{settled}"
    served = served_routes(sim, COMPUTE_SPECS)
    templates = {r.template for r, _ in served}
    assert templates == {f"{VM}/{action}" for action in SETTLES_IN} | {f"{VM}/instanceView"}
    assert all(v == r.version for r, v in served)


def test_a_power_action_on_a_locked_vm_is_refused_and_changes_nothing(sim):
    """A ReadOnly lock on the VM: deallocate is refused with the spec's error
    (ScopeLocked), no operation is handed out, the VM keeps running."""
    lock = f"{VM2}/providers/Microsoft.Authorization/locks/freeze"
    admin = SimAdmin(sim.url, sim.ca_file)
    with client(sim) as http:
        call(http, "PUT", lock, 201, {"properties": {"level": "ReadOnly"}}, specs=[LOCKS])
        before = admin.state()
        refused = http.post(
            f"{VM2}/deallocate",
            params={"api-version": route(COMPUTE_SPECS, "POST", VM2 + "/deallocate").version},
        )
        assert refused.status_code == 409
        schema = response_schema(VIRTUAL_MACHINES, f"{VM}/deallocate", "post", "default")
        assert Validation().check(refused.json(), schema) == []
        assert refused.json()["error"]["code"] == "ScopeLocked"
        assert "Location" not in refused.headers and "Azure-AsyncOperation" not in refused.headers
        assert admin.state() == before
        assert power_state(http, VM2) == "PowerState/running"
    admin.close()


def test_scale_set_read_and_scale_out_match_the_spec(sim):
    """read_scale_set and scale_scale_set: the scale set, then an update of
    its capacity (the SDK's begin_update sends `{"sku": {"capacity": n}}`)."""
    clear_journal(sim)
    with client(sim) as http:
        before = call(http, "GET", VMSS, 200, specs=COMPUTE_SPECS)
        assert before["sku"]["capacity"] == 3
        updated = call(http, "PATCH", VMSS, 200, {"sku": {"capacity": 5}}, specs=COMPUTE_SPECS)
        assert updated["sku"] == {**before["sku"], "capacity": 5}
        assert updated["properties"]["provisioningState"] == "Succeeded"
        assert call(http, "GET", VMSS, 200, specs=COMPUTE_SPECS)["sku"]["capacity"] == 5
        missing = call(http, "GET", VMSS.replace("vmss-api", "vmss-gone"), 404, specs=COMPUTE_SPECS)
        assert missing["error"]["code"] == "ResourceNotFound"
    served = served_routes(sim, COMPUTE_SPECS)
    assert {(r.template, r.method) for r, _ in served} == {(SCALE_SET, "get"), (SCALE_SET, "patch")}
    assert all(v == r.version for r, v in served)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"sku": {"capacity": "many"}}, "sku.capacity"),
        ({"sku": {"capacity": -1}}, "sku.capacity"),
        ({"sku": {"capacity": 2.5}}, "sku.capacity"),
        ({"sku": {"capacity": True}}, "sku.capacity"),
        ({"sku": {"capacity": 1001}}, "sku.capacity"),
        ({"sku": "5"}, "'sku'"),
        ({"properties": []}, "'properties'"),
        ({"tags": {"owner": 7}}, "tag 'owner'"),
        ([{"sku": {"capacity": 5}}], "request body"),
    ],
)
def test_a_scale_set_update_the_spec_refuses_is_a_400_and_changes_nothing(sim, body, named):
    """Azure refuses a capacity that is not a count of instances (the spec's
    `Sku.capacity` is an int64; a scale set holds at most 1,000) and a body of
    the wrong shape; azuresim used to store it and answer it back."""
    admin = SimAdmin(sim.url, sim.ca_file)
    before = admin.state()
    with client(sim) as http:
        refused = call(http, "PATCH", VMSS, 400, body, specs=COMPUTE_SPECS)
        assert named in refused["error"]["message"]
        assert call(http, "GET", VMSS, 200, specs=COMPUTE_SPECS)["sku"]["capacity"] == 3
    assert admin.state() == before
    admin.close()
