"""The simulator's mutable estate: resources, locks, long-running operations.

Ids are stored as first written and looked up lower-cased, as ARM does. All
access goes through one lock: the server is threaded, and the state must stay
consistent for the journal-based assertions tests make.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from stanch.azuresim.errors import ArmError
from stanch.azuresim.world import SeedResource, World

__all__ = ["ArmError", "Operation", "Resource", "SimState", "resource_type"]

SAVED_FORMAT = 1  # of SimState.saved(); a file of another format is refused


@dataclass
class Resource:
    id: str
    location: str
    tags: dict[str, str]
    properties: dict[str, Any]
    power_state: str | None = None
    sku: dict[str, Any] | None = None
    health: str = "Available"
    health_summary: str | None = None
    health_changed: float = field(default_factory=time.time)
    pending: tuple[str, float] | None = None  # (power state when done, done at)

    @property
    def name(self) -> str:
        return self.id.rstrip("/").rsplit("/", 1)[-1]

    @property
    def type(self) -> str:
        return resource_type(self.id) or ""

    def settle(self, now: float) -> None:
        if self.pending and now >= self.pending[1]:
            self.power_state, self.pending = self.pending[0], None

    def arm_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "location": self.location,
            "tags": dict(self.tags),
            "properties": copy.deepcopy(self.properties),
        }
        body["properties"].setdefault("provisioningState", "Succeeded")
        if self.sku is not None:
            body["sku"] = dict(self.sku)
        return body


@dataclass
class Operation:
    id: str
    done_at: float
    started: float = field(default_factory=time.time)

    def status(self, now: float) -> str:
        return "Succeeded" if now >= self.done_at else "InProgress"


def resource_type(resource_id: str) -> str | None:
    """`Microsoft.Network/networkSecurityGroups/securityRules` from a full id."""
    parts = [p for p in resource_id.split("/") if p]
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        return None
    i = len(lowered) - 1 - lowered[::-1].index("providers")
    tail = parts[i + 1 :]
    if len(tail) < 3:
        return None
    return "/".join([tail[0], *tail[1::2]])


class SimState:
    def __init__(self, world: World) -> None:
        self.lock = threading.RLock()
        self.reseed(world)

    def reseed(self, world: World) -> None:
        """Start again from a world: its resources as seeded, no locks, no operations."""
        self.world = world
        self.subscriptions = {s.lower() for s in world.subscriptions}
        self.resources: dict[str, Resource] = {}
        self.locks: dict[str, dict[str, Any]] = {}
        # Role assignments by lower-cased id, as ARM answers them (azuresim/rbac.py).
        self.role_assignments: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, Operation] = {}
        for seed in world.resources:
            self._seed(seed)

    # ---- saving and restoring (azuresim's --state-dir) --------------------------

    def saved(self) -> dict[str, Any]:
        """Everything needed to carry on after a restart, as JSON. Pending power
        actions and operations keep their wall-clock deadlines, so one under way
        when the simulator stopped settles on time after it starts again."""
        return {
            "format": SAVED_FORMAT,
            "world": self.world.model_dump(mode="json"),
            "subscriptions": sorted(self.subscriptions),
            "resources": [dataclasses.asdict(r) for r in self.resources.values()],
            "locks": list(self.locks.values()),
            "role_assignments": list(self.role_assignments.values()),
            "operations": [
                {"kind": type(op).__name__, **dataclasses.asdict(op)}
                for op in self.operations.values()
            ],
        }

    @classmethod
    def restored(cls, saved: dict[str, Any]) -> SimState:
        """The state `saved()` wrote. Raises ValueError (or KeyError, TypeError)
        on anything else: the caller names the file."""
        if saved.get("format") != SAVED_FORMAT:
            raise ValueError(f"format {saved.get('format')!r}, expected {SAVED_FORMAT}")
        state = cls(World.model_validate(saved["world"]).model_copy(update={"resources": []}))
        state.subscriptions = {str(s).lower() for s in saved["subscriptions"]}
        for fields in saved["resources"]:
            pending = fields.pop("pending", None)
            resource = Resource(**fields, pending=tuple(pending) if pending else None)
            state.resources[resource.id.lower()] = resource
        for lock in saved["locks"]:
            state.locks[lock["id"].lower()] = lock
        for assignment in saved.get("role_assignments", []):  # estates saved before RBAC have none
            state.role_assignments[assignment["id"].lower()] = assignment
        kinds = {k.__name__: k for k in _operation_kinds()}
        for fields in saved["operations"]:
            kind = kinds[fields.pop("kind")]
            op = kind(**fields)
            state.operations[op.id] = op
        return state

    # ---- resources ----------------------------------------------------------

    def _seed(self, seed: SeedResource) -> None:
        sub = seed.id.strip("/").split("/")[1]
        self.subscriptions.add(sub.lower())
        rtype = (resource_type(seed.id) or "").lower()
        properties = copy.deepcopy(seed.properties)
        if rtype == "microsoft.compute/virtualmachines":
            properties.setdefault("vmId", str(uuid.uuid5(uuid.NAMESPACE_URL, seed.id.lower())))
            properties.setdefault("hardwareProfile", {"vmSize": "Standard_D2s_v5"})
            if "networkProfile" not in properties:
                group, vm_name = seed.id.split("/providers/")[0], seed.id.rsplit("/", 1)[-1]
                nic_id = f"{group}/providers/Microsoft.Network/networkInterfaces/{vm_name}-nic"
                properties["networkProfile"] = {"networkInterfaces": [{"id": nic_id}]}
                if nic_id.lower() not in self.resources:
                    self.put(nic_id, seed.location, {}, _default_nic(nic_id))
        if rtype == "microsoft.operationalinsights/workspaces":
            # The id its queries answer to (`/v1/workspaces/{customerId}/query`).
            properties.setdefault(
                "customerId", str(uuid.uuid5(uuid.NAMESPACE_URL, seed.id.lower()))
            )
            properties.setdefault("sku", {"name": "PerGB2018"})
            properties.setdefault("retentionInDays", 30)
        self.resources[seed.id.lower()] = Resource(
            id=seed.id,
            location=seed.location,
            tags=dict(seed.tags),
            properties=properties,
            power_state=seed.power_state
            or ("running" if rtype == "microsoft.compute/virtualmachines" else None),
            health=seed.health,
            health_summary=seed.health_summary,
            sku=copy.deepcopy(seed.sku),
        )

    def get(self, resource_id: str) -> Resource:
        resource = self.resources.get(resource_id.rstrip("/").lower())
        if resource is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{resource_type(resource_id) or resource_id}/"
                f"{resource_id.rsplit('/', 1)[-1]}' under resource group was not found.",
            )
        resource.settle(time.time())
        return resource

    def require_scope(self, scope: str) -> None:
        """A lock scope: a subscription, a resource group that holds anything, or a resource."""
        parts = [p.lower() for p in scope.split("/") if p]
        if len(parts) == 2 and parts[1] in self.subscriptions:
            return
        if len(parts) == 4 and parts[2] == "resourcegroups":
            prefix = "/" + "/".join(parts) + "/"
            if any(k.startswith(prefix) for k in self.resources):
                return
            raise ArmError(
                404,
                "ResourceGroupNotFound",
                f"Resource group '{scope.split('/')[-1]}' could not be found.",
            )
        self.get(scope)

    def require_group_of(self, resource_id: str) -> None:
        """A new resource's group must exist (holds anything), as on Azure."""
        group = "/".join(resource_id.split("/")[:5]).lower()
        if not any(k.startswith(group + "/") for k in self.resources):
            raise ArmError(
                404,
                "ResourceGroupNotFound",
                f"Resource group '{resource_id.split('/')[4]}' could not be found.",
            )

    def exists(self, resource_id: str) -> bool:
        return resource_id.rstrip("/").lower() in self.resources

    def put(
        self, resource_id: str, location: str, tags: dict[str, str], properties: dict[str, Any]
    ) -> tuple[Resource, bool]:
        key = resource_id.rstrip("/").lower()
        existing = self.resources.get(key)
        if existing is not None:
            existing.location, existing.tags, existing.properties = location, tags, properties
            return existing, False
        created = Resource(
            id=resource_id.rstrip("/"), location=location, tags=tags, properties=properties
        )
        self.resources[key] = created
        return created, True

    def delete(self, resource_id: str) -> bool:
        key = resource_id.rstrip("/").lower()
        children = [k for k in self.resources if k == key or k.startswith(key + "/")]
        for k in children:
            del self.resources[k]
        for lock_id in [k for k in self.locks if k.startswith(key + "/")]:
            del self.locks[lock_id]
        return bool(children)

    # ---- locks ----------------------------------------------------------------

    def locks_covering(self, scope: str) -> list[dict[str, Any]]:
        """Locks at `scope` or any parent scope (a lock applies to everything below)."""
        target = scope.rstrip("/").lower()
        found = []
        for lock in self.locks.values():
            lock_scope = lock["scope"].rstrip("/").lower()
            if target == lock_scope or target.startswith(lock_scope + "/"):
                found.append(lock)
        return found

    def check_locks(self, scope: str, operation: str) -> None:
        """Refuse as ARM does: `409 ScopeLocked`. CanNotDelete blocks deletes;
        ReadOnly blocks every write."""
        for lock in self.locks_covering(scope):
            level = lock["properties"]["level"]
            if level == "ReadOnly" or (level == "CanNotDelete" and operation == "delete"):
                raise ArmError(
                    409,
                    "ScopeLocked",
                    f"The scope '{scope}' cannot perform {operation} operation because "
                    f"following scope(s) are locked: '{lock['scope']}'. Please remove the "
                    "lock and try again.",
                )

    # ---- long-running operations ----------------------------------------------

    def start_operation(self, resource: Resource, final_state: str, interim: str) -> Operation:
        seconds = self.world.operation_seconds
        op = Operation(id=str(uuid.uuid4()), done_at=time.time() + seconds)
        resource.power_state = interim
        resource.pending = (final_state, op.done_at)
        self.operations[op.id] = op
        return op

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        for r in self.resources.values():
            r.settle(now)
        return {
            "resources": [
                {**r.arm_json(), "powerState": r.power_state, "health": r.health}
                for r in self.resources.values()
            ],
            "locks": list(self.locks.values()),
            "roleAssignments": list(self.role_assignments.values()),
        }


def _operation_kinds() -> list[type[Operation]]:
    """Operation and its subclasses (Run Command's keeps its result)."""
    kinds: list[type[Operation]] = [Operation]
    for kind in kinds:
        kinds.extend(kind.__subclasses__())
    return kinds


def _default_nic(nic_id: str) -> dict[str, Any]:
    return {
        "ipConfigurations": [
            {
                "name": "ipconfig1",
                "id": f"{nic_id}/ipConfigurations/ipconfig1",
                "properties": {"privateIPAddress": "10.0.0.4", "primary": True},
            }
        ],
    }
