"""Resource Health, through `azure-mgmt-resourcehealth`: does Azure itself see
the resource as unavailable?"""

from __future__ import annotations

from temporalio import activity

from stanch.activities.azure_clients import AzureClients
from stanch.activities.azure_errors import azure_call
from stanch.models.azure import Availability, ResourceId, ResourceRef


class HealthActivities:
    def __init__(self, azure: AzureClients) -> None:
        self._azure = azure

    @activity.defn
    async def get_availability(self, ref: ResourceRef) -> Availability:
        """Read-only: safe to retry."""
        rid = ResourceId.parse(ref.resource_id)
        async with azure_call(f"read the health of {rid.id}"):
            status = await self._azure.health(
                rid.subscription
            ).availability_statuses.get_by_resource(rid.id)
        props = status.properties
        state = getattr(props, "availability_state", None) if props else None
        return Availability(
            resource_id=rid.id,
            state=str(getattr(state, "value", state) or "Unknown"),
            summary=getattr(props, "summary", None),
            reason_type=getattr(props, "reason_type", None),
            occurred_at=getattr(props, "occured_time", None),  # sic: the API's spelling
        )
