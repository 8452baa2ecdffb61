"""Virtual machine power, through `azure-mgmt-compute`."""

from __future__ import annotations

import asyncio
from typing import Any

from azure.mgmt.compute.models import Sku, VirtualMachineScaleSetUpdate
from temporalio import activity

from stanch.activities.azure_clients import AzureClients
from stanch.activities.azure_errors import azure_call, keep_request_id
from stanch.activities.heartbeats import polled
from stanch.models.azure import (
    PowerState,
    ResourceId,
    ResourceRef,
    ScaleRequest,
    ScaleResult,
    VmRef,
)


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

    @activity.defn
    async def read_scale_set(self, ref: ResourceRef) -> ScaleResult:
        """Read-only: the scale set's current capacity."""
        rid = ResourceId.parse(ref.resource_id)
        async with azure_call(f"read {rid.id}"):
            vmss = await self._azure.compute(rid.subscription).virtual_machine_scale_sets.get(
                rid.resource_group, rid.name
            )
        capacity = int(vmss.sku.capacity or 0) if vmss.sku else 0
        return ScaleResult(resource_id=rid.id, previous=capacity, capacity=capacity)

    @activity.defn
    async def scale_scale_set(self, request: ScaleRequest) -> ScaleResult:
        """Idempotent: sets an absolute capacity, so a retry asks for the same
        number, and writes only if the set is not there yet. `previous` (the
        undo's target) is the capacity the caller read before deciding: a retry
        after a worker died past Azure's PUT would otherwise read the new
        capacity as the old one, and the release would not scale back in."""
        rid = ResourceId.parse(request.resource_id)
        sets = self._azure.compute(rid.subscription).virtual_machine_scale_sets
        before = await self.read_scale_set(ResourceRef(resource_id=rid.id))
        previous = before.previous if request.previous is None else request.previous
        if before.previous == request.capacity:
            return ScaleResult(resource_id=rid.id, previous=previous, capacity=request.capacity)
        request_ids: list[str] = []
        async with azure_call(f"scale {rid.id} to {request.capacity}"):
            poller = await sets.begin_update(
                rid.resource_group,
                rid.name,
                VirtualMachineScaleSetUpdate(sku=Sku(capacity=request.capacity)),
                polling_interval=self._azure.poll_seconds,
                cls=keep_request_id(request_ids),
            )
            await polled(poller)
        return ScaleResult(
            resource_id=rid.id,
            previous=previous,
            capacity=request.capacity,
            request_id=request_ids[0] if request_ids else None,
        )

    async def _settled(self, ref: VmRef, current: PowerState) -> PowerState:
        while current.operation_under_way:
            activity.heartbeat()
            await asyncio.sleep(self._azure.poll_seconds)
            current = await self.get_power_state(ref)
        return current

    async def _power_action(self, ref: VmRef, action: str) -> PowerState:
        rid = ResourceId.parse(ref.resource_id)
        machines = self._azure.compute(rid.subscription).virtual_machines
        begin = getattr(machines, f"begin_{action}")
        details = activity.info().heartbeat_details
        token = details[0] if details else None
        if token is None and activity.info().attempt > 1:
            # The previous attempt may have died after Azure accepted the action
            # but before its token was heartbeated. Power operations take
            # minutes, so one still under way is most likely ours: wait for it
            # rather than restart the VM a second time. (A VM that already
            # settled cannot be told apart, and gets the action again.)
            current = await self.get_power_state(ref)
            if current.operation_under_way:
                activity.logger.info(
                    "an operation is under way on %s; not sending %s", rid.id, action
                )
                return await self._settled(ref, current)
        kwargs: dict[str, Any] = {"polling_interval": self._azure.poll_seconds}
        async with azure_call(f"{action} {rid.id}"):
            if token:
                activity.logger.info("resuming the %s Azure already accepted", action)
                kwargs["continuation_token"] = token
            poller = await begin(rid.resource_group, rid.name, **kwargs)
            # The token is the first heartbeat, sent as soon as Azure accepted.
            await polled(poller, poller.continuation_token())
        return await self.get_power_state(ref)
