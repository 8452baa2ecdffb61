"""Azure Resource Manager routes: providers, resource groups, generic resources
by id, tags, locks, NSGs and their rules, NICs, VM power actions with
`Azure-AsyncOperation`, Resource Health (forensics and Traffic Manager have
modules of their own)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stanch.azuresim import forensics, listing, traffic_manager
from stanch.azuresim.api_versions import check_api_version
from stanch.azuresim.resource_body import checked_body
from stanch.azuresim.run_command import final_result, start_run_command, status_properties
from stanch.azuresim.state import ArmError, Resource, SimState, resource_type


@dataclass
class Request:
    method: str
    path: str  # percent-decoded, `//` collapsed, original case
    query: dict[str, str]  # keys lower-cased
    body: Any
    base_url: str  # https://host:port, for URLs the SDK must follow

    @property
    def segments(self) -> list[str]:
        return [p for p in self.path.split("/") if p]


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def handle_arm(state: SimState, req: Request) -> Response:
    if "api-version" not in req.query:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    version = req.query["api-version"]
    segs = req.segments
    low = [s.lower() for s in segs]
    if not segs or low[0] != "subscriptions":
        raise ArmError(404, "InvalidResourceType", f"no route for {req.path}")
    if len(segs) == 1:
        check_api_version("Microsoft.Resources/subscriptions", version)
        return _read(req, lambda: listing.subscriptions(state, req))
    if low[1] not in state.subscriptions:
        raise ArmError(
            404, "SubscriptionNotFound", f"The subscription '{segs[1]}' could not be found."
        )
    if len(segs) == 2:
        check_api_version("Microsoft.Resources/subscriptions", version)
        return _read(req, lambda: listing.subscription(state, segs[1]))

    extension = _extension(low)
    if extension is not None:
        i, kind = extension
        scope = "/" + "/".join(segs[:i])
        rest = segs[i + 2 :]
        if kind == "microsoft.resources" and [r.lower() for r in rest] == ["tags", "default"]:
            check_api_version("Microsoft.Resources/tags", version)
            return _tags(state, req, scope)
        if kind == "microsoft.authorization" and rest and rest[0].lower() == "locks":
            check_api_version("Microsoft.Authorization/locks", version)
            return _locks(state, req, scope, rest[1] if len(rest) > 1 else None)
        if kind == "microsoft.resourcehealth":
            check_api_version("Microsoft.ResourceHealth/availabilityStatuses", version)
            if [r.lower() for r in rest] != ["availabilitystatuses", "current"]:
                # Only the current status is served: a history or an event list
                # answered with one status would mislead a caller.
                raise ArmError(404, "NotFound", f"azuresim does not serve {req.path}")
            return _read(req, lambda: _health(state, scope))

    if len(low) == 3 and low[2] in ("resources", "providers", "resourcegroups"):
        check_api_version(f"Microsoft.Resources/subscriptions/{low[2]}", version)
        if low[2] == "resources":
            return _read(req, lambda: listing.resources(state, req, segs[1]))
        if low[2] == "providers":
            return _read(req, lambda: listing.providers(segs[1], req))
        return _read(req, lambda: _group_list(state, req, segs[1]))
    if len(low) == 4 and low[2] == "providers":
        check_api_version("Microsoft.Resources/subscriptions/providers", version)
        return _read(req, lambda: listing.provider(segs[1], segs[3]))
    if len(low) in (4, 5) and low[2] == "resourcegroups":
        check_api_version("Microsoft.Resources/resourceGroups", version)
        if len(low) == 4:
            return _read(req, lambda: _group(state, segs[1], segs[3]))
        if low[4] == "resources":
            _group(state, segs[1], segs[3])  # 404 for a group that is not there
            return _read(req, lambda: listing.resources(state, req, segs[1], segs[3]))
    if len(low) == 8 and low[2:4] == ["providers", "microsoft.compute"] and low[6] == "operations":
        check_api_version("Microsoft.Compute/locations/operations", version)
        return _operation(state, req, segs[7])
    # Snapshots, boot diagnostics, packet captures: azuresim/forensics.py.
    if (forensic := forensics.route(state, req)) is not None:
        return Response(*forensic)
    # Traffic Manager profiles and endpoints: azuresim/traffic_manager.py.
    if (traffic := traffic_manager.route(state, req)) is not None:
        return Response(*traffic)
    # A provider's list of one type: in a group, or in the whole subscription.
    in_group = len(low) == 7 and low[2] == "resourcegroups" and low[4] == "providers"
    if in_group or (len(low) == 5 and low[2] == "providers"):
        type_ = f"{segs[-2]}/{segs[-1]}"
        check_api_version(type_, version)
        group = segs[3] if in_group else None
        if group is not None:
            _group(state, segs[1], group)  # 404 for a group that is not there
        return _read(req, lambda: listing.of_type(state, req, segs[1], type_, group))
    return _resource(state, req)


def _read(req: Request, answer: Callable[[], dict[str, Any]]) -> Response:
    """A listing or a read: GET only, as on ARM."""
    if req.method != "GET":
        raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on {req.path}")
    return Response(200, answer())


def _extension(low: list[str]) -> tuple[int, str] | None:
    """Where a scope ends and an extension resource begins (tags, locks, health)."""
    for i in range(len(low) - 2, -1, -1):
        if low[i] == "providers" and low[i + 1] in (
            "microsoft.resources",
            "microsoft.authorization",
            "microsoft.resourcehealth",
        ):
            return i, low[i + 1]
    return None


def _group(state: SimState, subscription_id: str, name: str) -> dict[str, Any]:
    groups = listing.group_names(state, subscription_id)
    if name.lower() not in groups:
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
    return listing.resource_group(subscription_id, groups[name.lower()])


def _group_list(state: SimState, req: Request, subscription_id: str) -> dict[str, Any]:
    groups = listing.group_names(state, subscription_id).values()
    return listing.page([listing.resource_group(subscription_id, n) for n in groups], req)


# ---- generic resources ----------------------------------------------------------


_VM_ACTIONS = {  # action -> (state while running, final state)
    "restart": ("starting", "running"),
    "start": ("starting", "running"),
    "deallocate": ("deallocating", "deallocated"),
    "poweroff": ("stopping", "stopped"),
}


def _resource(state: SimState, req: Request) -> Response:
    segs = req.segments
    low = [s.lower() for s in segs]
    rtype = (resource_type(req.path) or "").lower()
    # VM actions and views: .../virtualMachines/{vm}/{action}
    if len(low) == 9 and low[5:7] == ["microsoft.compute", "virtualmachines"]:
        check_api_version("Microsoft.Compute/virtualMachines", req.query["api-version"])
        vm_id = "/" + "/".join(segs[:8])
        return _vm_action(state, req, vm_id, low[8])
    if rtype.startswith("microsoft.network/networksecuritygroups/securityrules"):
        return _security_rule(state, req)

    _check_api_version(req, rtype)
    resource_id = req.path.rstrip("/")
    if req.method == "GET":
        return Response(200, _read_resource(state.get(resource_id), req))
    if req.method == "DELETE":
        if not state.exists(resource_id):
            return Response(204)
        state.check_locks(resource_id, "delete")
        if rtype == "microsoft.network/networksecuritygroups":
            _check_nsg_unused(state, resource_id)
        state.delete(resource_id)
        return Response(200)
    if req.method in ("PUT", "PATCH"):
        body = checked_body(req.body, rtype)  # a 400 before anything is written
        exists = state.exists(resource_id)
        if exists:
            state.check_locks(resource_id, "write")
            current = state.get(resource_id)
        elif req.method == "PATCH":
            state.get(resource_id)  # 404
        else:
            state.require_group_of(resource_id)
            state.check_locks(resource_id, "write")
        if req.method == "PATCH":
            assert current is not None
            properties = {**current.properties, **(body.get("properties") or {})}
            tags = body.get("tags", current.tags)
            location = current.location
        else:
            properties = dict(body.get("properties") or {})
            tags = body.get("tags") or {}
            location = body.get("location") or "westeurope"
        if rtype == "microsoft.network/networksecuritygroups":
            _validate_rules(properties.get("securityRules") or [], resource_id)
            for rule in properties.get("securityRules") or []:
                rule.setdefault("id", f"{resource_id}/securityRules/{rule.get('name')}")
        resource, created = state.put(resource_id, location, tags, properties)
        if isinstance(body.get("sku"), dict):
            resource.sku = {**(resource.sku or {}), **body["sku"]}
        return Response(201 if created else 200, resource.arm_json())
    raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on {req.path}")


def _read_resource(resource: Resource, req: Request) -> dict[str, Any]:
    body = resource.arm_json()
    # VirtualMachines_Get with `$expand=instanceView` carries the instance view
    # in its properties, as VirtualMachines_InstanceView answers it.
    expand = req.query.get("$expand", "").lower()
    if resource.type.lower() == "microsoft.compute/virtualmachines" and expand == "instanceview":
        body["properties"]["instanceView"] = _instance_view(resource)
    return body


def _check_nsg_unused(state: SimState, nsg_id: str) -> None:
    for r in state.resources.values():
        attached = (r.properties.get("networkSecurityGroup") or {}).get("id", "")
        if attached.lower() == nsg_id.lower():
            raise ArmError(
                400,
                "InUseNetworkSecurityGroupCannotBeDeleted",
                f"Network security group {nsg_id} cannot be deleted because it is in use by "
                f"the following resources: {r.id}.",
            )


def _check_api_version(req: Request, rtype: str) -> None:
    check_api_version(resource_type(req.path) or rtype, req.query["api-version"])


def _validate_rules(rules: list[dict[str, Any]], nsg_id: str) -> None:
    seen: dict[tuple[str, int], str] = {}
    for rule in rules:
        props = rule.get("properties") or {}
        key = (str(props.get("direction", "")).lower(), int(props.get("priority", 0)))
        if not 100 <= key[1] <= 4096:
            raise ArmError(
                400,
                "SecurityRuleInvalidPriority",
                f"Security rule {rule.get('name')} has invalid priority {key[1]}. "
                "Value provided: must be between 100 and 4096.",
            )
        if key in seen and seen[key] != rule.get("name"):
            raise ArmError(
                400,
                "SecurityRuleConflict",
                f"Security rule {rule.get('name')} conflicts with rule {seen[key]}. Rules "
                "cannot have the same Priority and Direction.",
            )
        seen[key] = str(rule.get("name"))


def _security_rule(state: SimState, req: Request) -> Response:
    _check_api_version(req, "microsoft.network/networksecuritygroups/securityrules")
    if req.path.rstrip("/").lower().endswith("/securityrules"):  # SecurityRules_List
        nsg = state.get(req.path.rstrip("/").rsplit("/", 1)[0])
        rules_json = [_rule_json(r) for r in nsg.properties.get("securityRules") or []]
        return _read(req, lambda: {"value": rules_json})
    nsg_id, _, rule_name = req.path.rstrip("/").rpartition("/securityRules/")
    if not rule_name:
        nsg_id, _, rule_name = req.path.rstrip("/").lower().rpartition("/securityrules/")
    nsg = state.get(nsg_id)
    rules: list[dict[str, Any]] = nsg.properties.setdefault("securityRules", [])
    existing = next((r for r in rules if r.get("name", "").lower() == rule_name.lower()), None)
    rule_id = f"{nsg.id}/securityRules/{rule_name}"
    if req.method == "GET":
        if existing is None:
            raise ArmError(404, "NotFound", f"Security rule {rule_name} not found.")
        return Response(200, _rule_json(existing))
    if req.method == "DELETE":
        if existing is None:
            return Response(204)
        state.check_locks(rule_id, "delete")
        rules.remove(existing)
        return Response(200)
    if req.method == "PUT":
        state.check_locks(rule_id, "write")
        body = req.body if isinstance(req.body, dict) else {}
        rule = {"name": rule_name, "id": rule_id, "properties": dict(body.get("properties") or {})}
        candidate = [r for r in rules if r is not existing] + [rule]
        _validate_rules(candidate, nsg.id)
        if existing is not None:
            rules[rules.index(existing)] = rule
        else:
            rules.append(rule)
        return Response(200 if existing else 201, _rule_json(rule))
    raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on {req.path}")


def _rule_json(rule: dict[str, Any]) -> dict[str, Any]:
    body = {**rule, "type": "Microsoft.Network/networkSecurityGroups/securityRules"}
    body["properties"] = {**rule["properties"], "provisioningState": "Succeeded"}
    return body


def _vm_action(state: SimState, req: Request, vm_id: str, action: str) -> Response:
    vm = state.get(vm_id)
    if action == "instanceview" and req.method == "GET":
        return Response(200, _instance_view(vm))
    if action == "runcommand" and req.method == "POST":
        return Response(*start_run_command(state, req, vm))
    if action in _VM_ACTIONS and req.method == "POST":
        state.check_locks(vm_id, "write")
        interim, final = _VM_ACTIONS[action]
        if action == "start" and vm.power_state == "running":
            return Response(200)
        op = state.start_operation(vm, final, interim)
        sub = vm.id.split("/")[2]
        status_url = (
            f"{req.base_url}/subscriptions/{sub}/providers/Microsoft.Compute/locations/"
            f"{vm.location}/operations/{op.id}?api-version={req.query['api-version']}"
        )
        return Response(
            202,
            None,
            {"Azure-AsyncOperation": status_url, "Location": status_url + "&monitor=true"},
        )
    raise ArmError(404, "NotFound", f"no VM action {action!r}")


def _instance_view(vm: Resource) -> dict[str, Any]:
    power = vm.power_state or "unknown"
    display = {
        "running": "VM running",
        "deallocated": "VM deallocated",
        "stopped": "VM stopped",
        "starting": "VM starting",
        "deallocating": "VM deallocating",
        "stopping": "VM stopping",
    }.get(power, power)
    # As on Azure: the VM is "updating" while a power action is carried out.
    provisioning = "updating" if power in {"starting", "deallocating", "stopping"} else "succeeded"
    return {
        "computerName": vm.name,
        "statuses": [
            {
                "code": f"ProvisioningState/{provisioning}",
                "level": "Info",
                "displayStatus": f"Provisioning {provisioning}",
            },
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": display},
        ],
    }


def _operation(state: SimState, req: Request, op_id: str) -> Response:
    op = state.operations.get(op_id)
    if op is None:
        raise ArmError(404, "NotFound", f"operation {op_id} not found")
    status = op.status(time.time())
    if req.query.get("monitor") == "true":
        if status == "InProgress":
            return Response(
                202,
                None,
                {
                    "Location": f"{req.base_url}{req.path}?api-version="
                    f"{req.query['api-version']}&monitor=true"
                },
            )
        return Response(200, final_result(op))
    body: dict[str, Any] = {"name": op.id, "status": status, "startTime": _iso(op.started)}
    if status == "Succeeded":
        body["endTime"] = _iso(op.done_at)
        body.update(status_properties(op))
    return Response(200, body)


# ---- tags, locks, health ----------------------------------------------------------


def _tags(state: SimState, req: Request, scope: str) -> Response:
    resource = state.get(scope)
    if req.method != "GET":
        state.check_locks(scope, "write")
        body = req.body if isinstance(req.body, dict) else {}
        tags = dict((body.get("properties") or {}).get("tags") or {})
        if req.method == "PUT":
            resource.tags = tags
        elif req.method == "PATCH":
            operation = str(body.get("operation", "")).lower()
            if operation == "merge":
                resource.tags = {**resource.tags, **tags}
            elif operation == "replace":
                resource.tags = tags
            elif operation == "delete":
                # Delete removes the given names (when their values match, as ARM does).
                resource.tags = {
                    k: v for k, v in resource.tags.items() if k not in tags or tags[k] != v
                }
            else:
                raise ArmError(
                    400, "InvalidTagOperation", "operation must be Merge, Replace or Delete"
                )
        elif req.method == "DELETE":
            resource.tags = {}
            return Response(200)
    return Response(
        200,
        {
            "id": f"{resource.id}/providers/Microsoft.Resources/tags/default",
            "name": "default",
            "type": "Microsoft.Resources/tags",
            "properties": {"tags": dict(resource.tags)},
        },
    )


def _locks(state: SimState, req: Request, scope: str, name: str | None) -> Response:
    state.require_scope(scope)
    if name is None:
        return Response(200, {"value": [_lock_json(lock) for lock in state.locks_covering(scope)]})
    lock_id = f"{scope}/providers/Microsoft.Authorization/locks/{name}"
    key = lock_id.lower()
    if req.method == "GET":
        if key not in state.locks:
            raise ArmError(404, "LockNotFound", f"The lock '{name}' could not be found.")
        return Response(200, _lock_json(state.locks[key]))
    if req.method == "DELETE":
        # Locks never block managing locks; the permission does.
        return Response(200 if state.locks.pop(key, None) else 204)
    if req.method == "PUT":
        body = req.body if isinstance(req.body, dict) else {}
        props = body.get("properties") or {}
        if props.get("level") not in ("CanNotDelete", "ReadOnly"):
            raise ArmError(400, "LockLevelInvalid", "level must be CanNotDelete or ReadOnly")
        created = key not in state.locks
        state.locks[key] = {
            "id": lock_id,
            "name": name,
            "type": "Microsoft.Authorization/locks",
            "scope": scope,
            # As ARM answers: no `notes` when none were given (never null).
            "properties": {
                "level": props["level"],
                **({"notes": props["notes"]} if props.get("notes") is not None else {}),
                "owners": props.get("owners") or [],
            },
        }
        return Response(201 if created else 200, _lock_json(state.locks[key]))
    raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on locks")


def _lock_json(lock: dict[str, Any]) -> dict[str, Any]:
    """A lock as ARM answers it: without the scope azuresim keeps it under."""
    return {k: v for k, v in lock.items() if k != "scope"}


def _health(state: SimState, scope: str) -> dict[str, Any]:
    resource = state.get(scope)
    available = resource.health == "Available"
    properties: dict[str, Any] = {
        "availabilityState": resource.health,
        "title": resource.health,
        "summary": resource.health_summary
        or (
            "There aren't any known Azure platform problems affecting this resource."
            if available
            else "The resource is not available."
        ),
        "occuredTime": _iso(resource.health_changed),
        "reportedTime": _iso(time.time()),
    }
    if not available:
        # Left out when available (never null), as Resource Health answers.
        properties["reasonType"] = "Unplanned"
    return {
        "id": f"{resource.id}/providers/Microsoft.ResourceHealth/availabilityStatuses/current",
        "name": "current",
        "type": "Microsoft.ResourceHealth/AvailabilityStatuses",
        "location": resource.location,
        "properties": properties,
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def request_id() -> str:
    return str(uuid.uuid4())
