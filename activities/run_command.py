"""Diagnostic scripts on a VM through Azure Run Command, kept as evidence.

Only scripts named in models/run_command.py run; the request names one, never
a command line. The output is kept in the evidence store under the incident,
the VM and the step, and its SHA-256 reaches the audit trail like any
evidence (the runbook kit records it for an EvidenceRef result).

Once per step, not once per attempt: a retry that finds the evidence already
kept returns it without touching Azure, and a retry that finds Azure's
operation token heartbeated by the attempt before resumes polling it instead of
running the script again. An attempt that died before Azure answered may run it
once more: the scripts are read-only, and Azure refuses a second command while
one is running (409 Conflict), which is retried here until the first one ends.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute.models import RunCommandInput, RunCommandResult
from temporalio import activity
from temporalio.exceptions import ApplicationError

from stanch.activities.azure_clients import AzureClients
from stanch.activities.azure_errors import INVALID_REQUEST, azure_call
from stanch.activities.heartbeats import heartbeating, polled
from stanch.models.azure import ResourceId
from stanch.models.run_command import DiagnosticEvidence, DiagnosticRequest
from stanch.stores.evidence import EvidenceConflict, EvidenceKeeper

# Another command is still running on the VM (perhaps an earlier attempt's):
# wait for it, it ends within Run Command's 90-minute limit.
RUN_COMMAND_BUSY = "RunCommandBusy"
BUSY_RETRY = timedelta(seconds=15)


class RunCommandActivities:
    def __init__(self, azure: AzureClients, store: EvidenceKeeper) -> None:
        self._azure = azure
        self._store = store

    @activity.defn
    async def run_diagnostic(self, request: DiagnosticRequest) -> DiagnosticEvidence:
        try:
            script = request.checked()
            rid = ResourceId.parse(request.resource_id)
        except ValueError as e:
            raise ApplicationError(str(e), type=INVALID_REQUEST, non_retryable=True) from None
        if not rid.is_type("Microsoft.Compute/virtualMachines"):
            raise ApplicationError(
                f"resource_id: Run Command runs on virtual machines, not {rid.full_type}",
                type=INVALID_REQUEST,
                non_retryable=True,
            )
        name = request.evidence_name()
        # The stores block (disk, or the Storage SDK's HTTP): off the event loop.
        where = f"evidence {name} of incident {request.incident_id}"
        async with azure_call(f"read {where}"):
            kept = await heartbeating(
                asyncio.to_thread(self._store.find, request.incident_id, name)
            )
        if kept is not None:
            return DiagnosticEvidence(
                **kept.model_dump(), script=script.name, resource_id=rid.id, reused=True
            )
        command = RunCommandInput(command_id=script.command_id, script=list(script.script))
        result = await self._run(rid, command)
        statuses = [
            {
                "code": s.code,
                "level": str(getattr(s.level, "value", s.level)) if s.level else None,
                "display_status": s.display_status,
                "message": s.message,
            }
            for s in result.value or []
        ]
        bundle: dict[str, Any] = {
            "incident_id": request.incident_id,
            "captured_at": datetime.now(UTC).isoformat(),
            "resource_id": rid.id,
            "script": script.name,
            "command_id": script.command_id,
            "lines": script.script,
            "output": statuses,
        }
        try:
            async with azure_call(f"keep {where}"):
                ref = await heartbeating(
                    asyncio.to_thread(self._store.keep, request.incident_id, name, bundle)
                )
        except EvidenceConflict as e:
            # Two attempts raced (a worker cut off, not dead): the first kept counts.
            activity.logger.warning("%s; the first run's output counts", e)
            ref = e.kept
        return DiagnosticEvidence(
            **ref.model_dump(),
            script=script.name,
            resource_id=rid.id,
            status=statuses[0]["code"] if statuses else None,
        )

    async def _run(self, rid: ResourceId, command: RunCommandInput) -> RunCommandResult:
        machines = self._azure.compute(rid.subscription).virtual_machines
        details = activity.info().heartbeat_details
        token = details[0] if details else None
        kwargs: dict[str, Any] = {"polling_interval": self._azure.poll_seconds}
        if token:
            activity.logger.info("resuming the Run Command Azure already accepted")
            kwargs["continuation_token"] = token
        async with azure_call(f"run {command.command_id} on {rid.id}"):
            try:
                poller = await machines.begin_run_command(
                    rid.resource_group, rid.name, command, **kwargs
                )
            except HttpResponseError as e:
                if e.status_code == 409 and _code(e) == "Conflict":
                    raise ApplicationError(
                        f"{rid.name}: another Run Command is still running ({e.reason}); "
                        "waiting for it to end",
                        type=RUN_COMMAND_BUSY,
                        next_retry_delay=BUSY_RETRY,
                    ) from None
                raise
            token = poller.continuation_token()
            # The token is the progress a retry resumes from (see _run's start).
            result: RunCommandResult = await polled(poller, token)
        return result


def _code(error: HttpResponseError) -> str | None:
    return getattr(getattr(error, "error", None), "code", None)
