"""Resources and their tags, through `azure-mgmt-resource`."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from stanch.activities.azure_clients import AzureClients
from stanch.activities.azure_errors import azure_call, keep_request_id
from stanch.models.azure import (
    ResourceId,
    ResourceRef,
    ResourceSnapshot,
    TagChange,
    TagRemoval,
    TagsResult,
)


class ResourceActivities:
    def __init__(self, azure: AzureClients) -> None:
        self._azure = azure
        self._api_versions: dict[str, str] = {}  # lower-cased type -> newest stable

    async def api_version(self, rid: ResourceId) -> str:
        """Generic resource calls need the provider's api-version; resolved once
        per type and cached for the worker's life (providers change rarely)."""
        key = rid.full_type.lower()
        if key not in self._api_versions:
            async with azure_call(f"resolve api-version of {rid.full_type}"):
                provider = await self._azure.resources(rid.subscription).providers.get(
                    rid.namespace
                )
            for resource_type in provider.resource_types or []:
                if (resource_type.resource_type or "").lower() == rid.type.lower():
                    versions = [v for v in resource_type.api_versions or [] if "preview" not in v]
                    if versions:
                        self._api_versions[key] = sorted(versions, reverse=True)[0]
            if key not in self._api_versions:
                raise ApplicationError(
                    f"provider {rid.namespace} lists no api-version for {rid.type}",
                    type="InvalidRequest",
                    non_retryable=True,
                )
        return self._api_versions[key]

    @activity.defn
    async def get_resource(self, ref: ResourceRef) -> ResourceSnapshot:
        """Read-only: safe to retry."""
        rid = ResourceId.parse(ref.resource_id)
        version = await self.api_version(rid)
        request_ids: list[str] = []
        async with azure_call(f"get {rid.id}"):
            resource = await self._azure.resources(rid.subscription).resources.get_by_id(
                rid.id, api_version=version, cls=keep_request_id(request_ids)
            )
        body = resource.as_dict() if hasattr(resource, "as_dict") else dict(resource)
        return ResourceSnapshot(
            id=body.get("id", rid.id),
            name=body.get("name", rid.name),
            type=body.get("type", rid.full_type),
            location=body.get("location"),
            tags=body.get("tags") or {},
            properties=body.get("properties") or {},
            api_version=version,
            request_id=request_ids[0] if request_ids else None,
        )

    @activity.defn
    async def merge_tags(self, change: TagChange) -> TagsResult:
        """Idempotent: a Merge of the same tags leaves the same tags. Skips the
        write when every tag is already set, so a retry mutates nothing."""
        rid = ResourceId.parse(change.resource_id)
        tags_api = self._azure.resources(rid.subscription).tags
        async with azure_call(f"read tags of {rid.id}"):
            current = (await tags_api.get_at_scope(rid.id)).properties.tags or {}
        if all(current.get(k) == v for k, v in change.tags.items()):
            return TagsResult(tags=current, changed=False, request_id=None)
        request_ids: list[str] = []
        async with azure_call(f"merge tags on {rid.id}"):
            poller = await tags_api.begin_update_at_scope(
                rid.id,
                {"operation": "Merge", "properties": {"tags": change.tags}},
                cls=keep_request_id(request_ids),
                polling_interval=self._azure.poll_seconds,
            )
            result = await poller.result()
        return TagsResult(
            tags=_tags_of(result), changed=True, request_id=request_ids[0] if request_ids else None
        )

    @activity.defn
    async def remove_tags(self, removal: TagRemoval) -> TagsResult:
        """Idempotent: removes only the named tags that are present (Azure's
        Delete matches name and value, so the current values are sent)."""
        rid = ResourceId.parse(removal.resource_id)
        tags_api = self._azure.resources(rid.subscription).tags
        async with azure_call(f"read tags of {rid.id}"):
            current = (await tags_api.get_at_scope(rid.id)).properties.tags or {}
        present = {k: v for k, v in current.items() if k in removal.names}
        if not present:
            return TagsResult(tags=current, changed=False, request_id=None)
        request_ids: list[str] = []
        async with azure_call(f"remove tags from {rid.id}"):
            poller = await tags_api.begin_update_at_scope(
                rid.id,
                {"operation": "Delete", "properties": {"tags": present}},
                cls=keep_request_id(request_ids),
                polling_interval=self._azure.poll_seconds,
            )
            result = await poller.result()
        return TagsResult(
            tags=_tags_of(result), changed=True, request_id=request_ids[0] if request_ids else None
        )


def _tags_of(result: Any) -> dict[str, str]:
    properties = getattr(result, "properties", None)
    return dict(getattr(properties, "tags", None) or {})
