"""Management locks, through `azure-mgmt-resource-locks`: how quarantine keeps
evidence from being deleted."""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.resource.locks.models import ManagementLockObject
from temporalio import activity

from stanch.activities.azure_clients import AzureClients
from stanch.activities.azure_errors import azure_call, keep_request_id
from stanch.models.azure import LockRemoval, LockRequest, LockResult, Removal


def _subscription(scope: str) -> str:
    parts = [p for p in scope.split("/") if p]
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise ValueError(f"lock scope must start with /subscriptions/<id>: {scope!r}")
    return parts[1]


class LockActivities:
    def __init__(self, azure: AzureClients) -> None:
        self._azure = azure

    @activity.defn
    async def place_lock(self, request: LockRequest) -> LockResult:
        """Idempotent, and writes at most once: the lock is named after the
        incident (`stanch-<incident>`) and read before it is written. A worker
        can die after Azure applied the PUT but before the activity completed
        (the chaos suite kills it there); its retry finds the lock in place and
        leaves it alone rather than PUT it again, which on Azure is a second
        write in the Activity Log and would overwrite whatever a responder
        changed on the lock in between."""
        scope = request.scope.rstrip("/")
        locks = self._azure.locks(_subscription(scope)).management_locks
        async with azure_call(f"read lock {request.name} on {scope}"):
            try:
                existing = await locks.get_by_scope(scope, request.name)
            except ResourceNotFoundError:
                existing = None
        if existing is not None and _text(existing.level) == request.level:
            return LockResult(id=existing.id, level=request.level, request_id=None)
        request_ids: list[str] = []
        async with azure_call(f"lock {scope}"):
            lock = await locks.create_or_update_by_scope(
                scope,
                request.name,
                ManagementLockObject(level=request.level, notes=request.notes),
                cls=keep_request_id(request_ids),
            )
        return LockResult(
            id=lock.id, level=lock.level, request_id=request_ids[0] if request_ids else None
        )

    @activity.defn
    async def remove_lock(self, removal: LockRemoval) -> Removal:
        """Idempotent: deleting a lock that is already gone reports removed=False."""
        locks = self._azure.locks(_subscription(removal.scope)).management_locks
        request_ids: list[str] = []
        async with azure_call(f"unlock {removal.scope}"):
            try:
                await locks.get_by_scope(removal.scope, removal.name)
            except ResourceNotFoundError:
                return Removal(removed=False)
            await locks.delete_by_scope(
                removal.scope, removal.name, cls=keep_request_id(request_ids)
            )
        return Removal(removed=True, request_id=request_ids[0] if request_ids else None)


def _text(value: object) -> str:
    """SDK enums or plain strings, as ARM sent them."""
    return str(getattr(value, "value", value))
