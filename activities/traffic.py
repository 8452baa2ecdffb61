"""Traffic Manager endpoints, through `azure-mgmt-trafficmanager`: read a
profile, bring its endpoints to given values (a failover, or its release),
and ask whether an endpoint serves.

Every write is one PATCH of one value of one endpoint, planned from a read
made in the same attempt (models/traffic.py): a retry after any fault reads
again and writes only what is still missing, so it ends where one clean
attempt would. Nothing here deletes an endpoint or a profile.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import httpx
from azure.mgmt.trafficmanager.models import Endpoint, EndpointProperties
from temporalio import activity
from temporalio.exceptions import ApplicationError

from stanch.activities.azure_clients import AzureClients
from stanch.activities.azure_errors import azure_call, keep_request_id
from stanch.activities.heartbeats import heartbeating
from stanch.models.azure import ResourceId
from stanch.models.traffic import (
    ONLINE,
    EndpointChange,
    EndpointChangeResult,
    ProfileRef,
    ServingCheck,
    ServingStatus,
    TrafficEndpoint,
    TrafficProfile,
    endpoint_writes,
    unmet,
)

PROBE_TIMEOUT = 10.0  # seconds: a secondary slower than this does not serve


class TrafficActivities:
    def __init__(self, azure: AzureClients) -> None:
        self._azure = azure

    @activity.defn
    async def read_traffic_profile(self, ref: ProfileRef) -> TrafficProfile:
        """Read-only: the profile, its routing method and every endpoint with
        its priority, weight, status and what the probes say of it."""
        return await self._read(ResourceId.parse(ref.profile_id), [])

    @activity.defn
    async def set_endpoints(self, change: EndpointChange) -> EndpointChangeResult:
        """Idempotent: reads the profile, writes only the values it does not
        hold yet (in the order models/traffic.py plans), then reads it again
        to confirm. The failover and its undo are both this activity."""
        rid = ResourceId.parse(change.profile_id)
        request_ids: list[str] = []
        profile = await self._read(rid, request_ids)
        try:
            writes = endpoint_writes(profile, change.settings)
        except ValueError as e:
            raise ApplicationError(str(e), type="InvalidRequest", non_retryable=True) from None
        endpoints = self._azure.traffic_manager(rid.subscription).endpoints
        for write in writes:
            async with azure_call(f"set {write.describe()} in {rid.name}"):
                await heartbeating(
                    endpoints.update(
                        rid.resource_group,
                        rid.name,
                        write.kind,
                        write.name,
                        Endpoint(properties=EndpointProperties({write.field: write.value})),
                        cls=keep_request_id(request_ids),
                    ),
                    write.describe(),
                )
        missing = unmet(await self._read(rid, []), change.settings)
        if missing:
            # Someone else is changing the same endpoints: retrying would fight them.
            raise ApplicationError(
                f"{rid.name} does not hold what was written: {', '.join(missing)}",
                type="EndpointsChanged",
                non_retryable=True,
            )
        return EndpointChangeResult(
            profile_id=rid.id,
            writes=writes,
            settings=change.settings,
            previous=change.previous,
            request_ids=request_ids,
        )

    @activity.defn
    async def check_endpoint_serving(self, check: ServingCheck) -> ServingStatus:
        """Read-only: the endpoint serves when Traffic Manager's probes say it
        is Online and, if a probe URL is given, the URL answers 2xx or 3xx."""
        profile = await self._read(ResourceId.parse(check.profile_id), [])
        try:
            endpoint = profile.endpoint(check.endpoint)
        except ValueError as e:
            raise ApplicationError(str(e), type="InvalidRequest", non_retryable=True) from None
        status = ServingStatus(
            endpoint=endpoint.name,
            monitor_status=endpoint.monitor_status,
            endpoint_status=endpoint.endpoint_status,
            serving=endpoint.monitor_status == ONLINE,
        )
        if check.probe_url is not None:
            status = await _probed(status, check.probe_url)
        return status

    async def _read(self, rid: ResourceId, request_ids: list[str]) -> TrafficProfile:
        async with azure_call(f"read Traffic Manager profile {rid.id}"):
            profile = await heartbeating(
                self._azure.traffic_manager(rid.subscription).profiles.get(
                    rid.resource_group, rid.name, cls=keep_request_id(request_ids)
                )
            )
        return _profile(rid, profile, request_ids)


def _profile(rid: ResourceId, profile: Any, request_ids: list[str]) -> TrafficProfile:
    props = profile.properties
    dns = props.dns_config if props else None
    monitor = props.monitor_config if props else None
    return TrafficProfile(
        profile_id=profile.id or rid.id,
        name=profile.name or rid.name,
        routing_method=_text(props.traffic_routing_method) or "" if props else "",
        profile_status=_text(props.profile_status) or "Enabled" if props else "Enabled",
        monitor_status=_text(monitor.profile_monitor_status) if monitor else None,
        fqdn=dns.fqdn if dns else None,
        endpoints=[_endpoint(e) for e in (props.endpoints or [] if props else [])],
        request_id=request_ids[-1] if request_ids else None,
    )


def _endpoint(endpoint: Any) -> TrafficEndpoint:
    props = endpoint.properties
    # `Microsoft.Network/trafficManagerProfiles/azureEndpoints`: the kind is its last part.
    kind = str(endpoint.type or "").rsplit("/", 1)[-1]
    kind = {k.lower(): k for k in ("azureEndpoints", "externalEndpoints", "nestedEndpoints")}.get(
        kind.lower(), "externalEndpoints"
    )
    return TrafficEndpoint(
        name=endpoint.name,
        kind=kind,
        target=props.target,
        target_resource_id=props.target_resource_id,
        location=props.endpoint_location,
        endpoint_status=_text(props.endpoint_status) or "Enabled",
        monitor_status=_text(props.endpoint_monitor_status),
        priority=props.priority,
        weight=props.weight,
    )


def _text(value: Any) -> str | None:
    """An SDK enum or string as the text Azure sent."""
    if value is None:
        return None
    return str(value.value) if isinstance(value, Enum) else str(value)


async def _probed(status: ServingStatus, url: str) -> ServingStatus:
    """The secondary's own answer, as a user would get it."""
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT, follow_redirects=False) as http:
            answer = await heartbeating(http.get(url))
    except httpx.HTTPError as e:
        return status.model_copy(update={"probe_error": type(e).__name__, "serving": False})
    answered = 200 <= answer.status_code < 400
    return status.model_copy(
        update={"probe_status": answer.status_code, "serving": status.serving and answered}
    )
