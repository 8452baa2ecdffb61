"""Run Command on a virtual machine, as Azure answers it.

`POST .../virtualMachines/{vm}/runCommand` with `{"commandId", "script": [...]}`
is accepted with 202 and an `Azure-AsyncOperation` / `Location` pair on the
compute operations route; the operation runs for the world's
`operation_seconds`, and its result (the final GET of `Location`, and
`properties.output` of the status) is a RunCommandResult:
`{"value": [{"code", "level", "displayStatus", "message"}]}`. A Linux VM
answers with one `ProvisioningState/succeeded` status whose message holds
`[stdout]` and `[stderr]`; a Windows VM with `ComponentStatus/StdOut/succeeded`
and `ComponentStatus/StdErr/succeeded`, as Azure's do. Nothing runs: the output
names the VM and each line that would have run.

Refused as Azure refuses: a VM that is not running (409 OperationNotAllowed), a
second command while one runs on the same VM (409 Conflict), an unknown
command id or one for the other OS (400), a ReadOnly lock (409 ScopeLocked).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stanch.azuresim.state import ArmError, Operation, Resource, SimState

if TYPE_CHECKING:
    from stanch.azuresim.arm import Request

SCRIPT_COMMANDS = {"RunShellScript": "Linux", "RunPowerShellScript": "Windows"}
OUTPUT_LIMIT = 4096  # Azure keeps the last 4 KB of each stream


@dataclass
class RunCommandOperation(Operation):
    vm_id: str = ""
    result: dict[str, Any] = field(default_factory=dict)


def start_run_command(
    state: SimState, req: Request, vm: Resource
) -> tuple[int, Any, dict[str, str]]:
    """The answer to the POST: (status, body, headers)."""
    state.check_locks(vm.id, "write")
    body = req.body if isinstance(req.body, dict) else {}
    command_id = str(body.get("commandId") or "")
    os_type = _os_type(vm)
    if command_id not in SCRIPT_COMMANDS:
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value '{command_id}' of parameter 'commandId' is not valid. Valid values: "
            f"{', '.join(SCRIPT_COMMANDS)}.",
        )
    if SCRIPT_COMMANDS[command_id] != os_type:
        raise ArmError(
            400,
            "InvalidParameter",
            f"Run command '{command_id}' is not supported for OS type '{os_type}'.",
        )
    script = body.get("script")
    if not isinstance(script, list) or not all(isinstance(line, str) for line in script):
        raise ArmError(400, "InvalidParameter", "The parameter 'script' must be a list of strings.")
    if vm.power_state != "running":
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Operation 'RunCommand' is not allowed on VM '{vm.name}' since the VM is "
            f"{vm.power_state or 'not running'}.",
        )
    now = time.time()
    for op in state.operations.values():
        if isinstance(op, RunCommandOperation) and op.vm_id.lower() == vm.id.lower():
            if op.status(now) == "InProgress":
                raise ArmError(
                    409,
                    "Conflict",
                    "Run command extension execution is in progress. Please wait for "
                    "completion before invoking a run command.",
                )
    op = RunCommandOperation(
        id=str(uuid.uuid4()),
        done_at=now + state.world.operation_seconds,
        vm_id=vm.id,
        result=_result(vm, os_type, script),
    )
    state.operations[op.id] = op
    sub = vm.id.split("/")[2]
    status_url = (
        f"{req.base_url}/subscriptions/{sub}/providers/Microsoft.Compute/locations/"
        f"{vm.location}/operations/{op.id}?api-version={req.query['api-version']}"
    )
    return 202, None, {"Azure-AsyncOperation": status_url, "Location": status_url + "&monitor=true"}


def final_result(op: Operation) -> dict[str, Any] | None:
    """What the final GET of `Location` answers once the operation is done."""
    return op.result if isinstance(op, RunCommandOperation) else None


def status_properties(op: Operation) -> dict[str, Any]:
    """Extra fields of a finished operation's status body (`properties.output`)."""
    if isinstance(op, RunCommandOperation):
        return {"properties": {"output": op.result}}
    return {}


def _os_type(vm: Resource) -> str:
    profile = vm.properties.get("storageProfile") or {}
    os_disk = profile.get("osDisk") or {}
    return "Windows" if str(os_disk.get("osType", "")).lower() == "windows" else "Linux"


def _result(vm: Resource, os_type: str, script: list[str]) -> dict[str, Any]:
    stdout = "\n".join(f"azuresim: {vm.name} would run: {line}" for line in script)
    stdout = stdout[-OUTPUT_LIMIT:]
    if os_type == "Windows":
        return {
            "value": [
                _status("ComponentStatus/StdOut/succeeded", stdout),
                _status("ComponentStatus/StdErr/succeeded", ""),
            ]
        }
    message = f"Enable succeeded: \n[stdout]\n{stdout}\n\n[stderr]\n"
    return {"value": [_status("ProvisioningState/succeeded", message)]}


def _status(code: str, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "level": "Info",
        "displayStatus": "Provisioning succeeded",
        "message": message,
    }
