"""Virtual machine power, through `azure-mgmt-compute`."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity

from activities.azure_clients import AzureClients
from activities.azure_errors import azure_call
from models.azure import PowerState, ResourceId, VmRef

HEARTBEAT_EVERY = timedelta(seconds=5)


class ComputeActivities:
    def __init__(self, azure: AzureClients) -> None:
        self._azure = azure

    @activity.defn
    async def get_power_state(self, ref: VmRef) -> PowerState:
        """Read-only: safe to retry."""
        rid = ResourceId.parse(ref.resource_id)
        async with azure_call(f"read the power state of {rid.id}"):
            view = await self._azure.compute(rid.subscription).virtual_machines.instance_view(
                rid.resource_group, rid.name
            )
        codes = [s.code or "" for s in view.statuses or []]
        power = next((c.split("/", 1)[1] for c in codes if c.startswith("PowerState/")), "unknown")
        provisioning = next(
            (c.split("/", 1)[1] for c in codes if c.startswith("ProvisioningState/")), None
        )
        return PowerState(resource_id=rid.id, power_state=power, provisioning_state=provisioning)

    @activity.defn
    async def restart_vm(self, ref: VmRef) -> PowerState:
        """Restarts once per activity, not once per attempt: the operation's
        continuation token is heartbeated as soon as Azure accepts it, and a
        retried attempt resumes polling that operation instead of restarting
        the VM again."""
        return await self._power_action(ref, "restart")

    @activity.defn
    async def deallocate_vm(self, ref: VmRef) -> PowerState:
        """Idempotent in Azure (deallocating a deallocated VM is a no-op), and
        resumes an accepted operation on retry like restart_vm."""
        return await self._power_action(ref, "deallocate")

    @activity.defn
    async def start_vm(self, ref: VmRef) -> PowerState:
        """Idempotent in Azure (starting a running VM is a no-op)."""
        return await self._power_action(ref, "start")

    async def _power_action(self, ref: VmRef, action: str) -> PowerState:
        rid = ResourceId.parse(ref.resource_id)
        machines = self._azure.compute(rid.subscription).virtual_machines
        begin = getattr(machines, f"begin_{action}")
        details = activity.info().heartbeat_details
        token = details[0] if details else None
        kwargs: dict[str, Any] = {"polling_interval": self._azure.poll_seconds}
        async with azure_call(f"{action} {rid.id}"):
            if token:
                activity.logger.info("resuming the %s Azure already accepted", action)
                kwargs["continuation_token"] = token
            poller = await begin(rid.resource_group, rid.name, **kwargs)
            token = poller.continuation_token()
            activity.heartbeat(token)
            waiting = asyncio.ensure_future(poller.result())
            try:
                while not waiting.done():
                    await asyncio.wait({waiting}, timeout=HEARTBEAT_EVERY.total_seconds())
                    activity.heartbeat(token)
                await waiting
            finally:
                waiting.cancel()
        return await self.get_power_state(ref)
