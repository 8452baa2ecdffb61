"""Traffic Manager profiles and their endpoints, as ARM answers them, with a
model of what the probes see.

- **Profiles** (`Microsoft.Network/trafficManagerProfiles`, location
  `global`): GET answers the profile with every endpoint inside
  `properties.endpoints`, PUT creates or replaces it (its endpoint list is the
  whole set), PATCH merges properties (endpoints given are merged by name;
  none is removed), DELETE removes it with its endpoints.
- **Endpoints** (`.../{azureEndpoints|externalEndpoints|nestedEndpoints}/{name}`):
  GET, PUT, PATCH (a partial `properties`), DELETE. Kept as child resources of
  the profile (ids as Azure writes them), so a world seeds them as resources
  and `POST /_admin/world` changes their health like any resource's.
  Priorities and weights are 1..1000, and no two endpoints of a profile share
  a priority (400 BadRequest, as Traffic Manager refuses it).
- **Probes** (`endpointMonitorStatus`, computed at each read): `Inactive` in
  a disabled profile, `Disabled` for a disabled endpoint, else from the
  endpoint's own `health` in the world (Unavailable or Degraded -> Degraded,
  Unknown -> CheckingEndpoint, Stopped -> Stopped) or, for an Azure
  endpoint, its target resource's health (not Available -> Degraded), and
  `CheckingEndpoint` for the world's `operation_seconds` after it is enabled;
  otherwise Online. The profile's `profileMonitorStatus` follows from them.

Everything here passes through the server's faults and journal like any route.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from stanch.azuresim.api_versions import check_api_version
from stanch.azuresim.state import ArmError, Resource, SimState, resource_type

if TYPE_CHECKING:
    from stanch.azuresim.arm import Request

Answer = tuple[int, Any, dict[str, str]]

PROFILE_TYPE = "Microsoft.Network/trafficManagerProfiles"
KINDS = {k.lower(): k for k in ("azureEndpoints", "externalEndpoints", "nestedEndpoints")}
_ENABLED_AT = "_azuresimEnabledAt"  # kept for the CheckingEndpoint window, never answered
_PROBE = {"unavailable": "Degraded", "degraded": "Degraded", "unknown": "CheckingEndpoint"}
_PROBE["stopped"] = "Stopped"


def route(state: SimState, req: Request) -> Answer | None:
    """The answer for a Traffic Manager route, or None when `req` is not one."""
    rtype = (resource_type(req.path) or "").lower()
    if not rtype.startswith(PROFILE_TYPE.lower()):
        return None
    check_api_version(resource_type(req.path) or PROFILE_TYPE, req.query["api-version"])
    segs = req.segments
    if len(segs) == 8:
        return _profile_route(state, req, req.path.rstrip("/"))
    if len(segs) == 10:
        # An endpoint type ARM does not know was refused above (404 InvalidResourceType).
        profile_id = "/" + "/".join(segs[:8])
        return _endpoint_route(state, req, profile_id, KINDS[segs[8].lower()], segs[9])
    raise ArmError(404, "NotFound", f"azuresim does not serve {req.path}")


# ---- profiles ----------------------------------------------------------------------


def _profile_route(state: SimState, req: Request, profile_id: str) -> Answer:
    if req.method == "GET":
        return 200, profile_json(state, state.get(profile_id)), {}
    if req.method == "DELETE":
        if not state.exists(profile_id):
            return 204, None, {}
        state.check_locks(profile_id, "delete")
        state.delete(profile_id)
        return 200, None, {}
    body = req.body if isinstance(req.body, dict) else {}
    props = dict(body.get("properties") or {})
    endpoints = props.pop("endpoints", None)
    if req.method == "PUT":
        created = not state.exists(profile_id)
        if created:
            state.require_group_of(profile_id)
        state.check_locks(profile_id, "write")
        _check_routing(props)
        for existing in _endpoints(state, profile_id) if endpoints is not None else []:
            state.delete(existing.id)  # the PUT's list is the whole set
        resource, _ = state.put(profile_id, "global", dict(body.get("tags") or {}), props)
        for endpoint in endpoints or []:
            _put_endpoint(state, resource, endpoint, merge=False)
        return (201 if created else 200), profile_json(state, resource), {}
    if req.method == "PATCH":
        resource = state.get(profile_id)
        state.check_locks(profile_id, "write")
        merged = {**resource.properties, **props}
        _check_routing(merged)
        resource.properties = merged
        if "tags" in body:
            resource.tags = dict(body.get("tags") or {})
        for endpoint in endpoints or []:
            _put_endpoint(state, resource, endpoint, merge=True)
        return 200, profile_json(state, resource), {}
    raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on {req.path}")


def _check_routing(props: dict[str, Any]) -> None:
    method = props.get("trafficRoutingMethod")
    known = ("Performance", "Priority", "Weighted", "Geographic", "MultiValue", "Subnet")
    if method not in known:
        raise ArmError(
            400,
            "BadRequest",
            f"The traffic routing method '{method}' is invalid. Valid values: {', '.join(known)}.",
        )


def profile_json(state: SimState, profile: Resource) -> dict[str, Any]:
    endpoints = [endpoint_json(state, profile, e) for e in _endpoints(state, profile.id)]
    props = {k: v for k, v in copy.deepcopy(profile.properties).items() if k != _ENABLED_AT}
    props.setdefault("profileStatus", "Enabled")
    dns = props.setdefault("dnsConfig", {"relativeName": profile.name, "ttl": 30})
    dns["fqdn"] = f"{dns.get('relativeName') or profile.name}.trafficmanager.net"
    monitor = props.setdefault("monitorConfig", {"protocol": "HTTPS", "port": 443, "path": "/"})
    monitor["profileMonitorStatus"] = _profile_monitor_status(props, endpoints)
    props["endpoints"] = endpoints
    return {
        "id": profile.id,
        "name": profile.name,
        "type": PROFILE_TYPE,
        "location": "global",
        "tags": dict(profile.tags),
        "properties": props,
    }


def _profile_monitor_status(props: dict[str, Any], endpoints: list[dict[str, Any]]) -> str:
    if props.get("profileStatus") == "Disabled":
        return "Disabled"
    seen = {e["properties"]["endpointMonitorStatus"] for e in endpoints}
    if "Online" in seen:
        return "Online"
    if "CheckingEndpoint" in seen:
        return "CheckingEndpoints"
    if seen and seen <= {"Disabled", "Inactive"}:
        return "Inactive"
    return "Degraded"


# ---- endpoints ---------------------------------------------------------------------


def _endpoints(state: SimState, profile_id: str) -> list[Resource]:
    prefix = profile_id.rstrip("/").lower() + "/"
    found = [
        r
        for k, r in state.resources.items()
        if k.startswith(prefix) and k[len(prefix) :].split("/")[0] in KINDS
    ]
    return sorted(found, key=lambda r: (r.properties.get("priority") or 0, r.name.lower()))


def _endpoint_route(state: SimState, req: Request, profile_id: str, kind: str, name: str) -> Answer:
    profile = state.get(profile_id)
    endpoint_id = f"{profile.id}/{kind}/{name}"
    if req.method == "GET":
        return 200, endpoint_json(state, profile, state.get(endpoint_id)), {}
    if req.method == "DELETE":
        if not state.exists(endpoint_id):
            return 204, None, {}
        state.check_locks(endpoint_id, "delete")
        state.delete(endpoint_id)
        return 200, None, {}
    if req.method in ("PUT", "PATCH"):
        if req.method == "PATCH":
            state.get(endpoint_id)  # 404 for an endpoint that is not there
        body = req.body if isinstance(req.body, dict) else {}
        created = not state.exists(endpoint_id)
        endpoint = _put_endpoint(
            state, profile, {**body, "name": name, "type": kind}, merge=req.method == "PATCH"
        )
        return (201 if created else 200), endpoint_json(state, profile, endpoint), {}
    raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on {req.path}")


def _put_endpoint(
    state: SimState, profile: Resource, body: dict[str, Any], *, merge: bool
) -> Resource:
    """Create, replace or merge one endpoint, checked as Traffic Manager checks it."""
    name = str(body.get("name") or "")
    kind = KINDS.get(str(body.get("type") or "").rsplit("/", 1)[-1].lower())
    if not name or kind is None:
        raise ArmError(
            400, "BadRequest", f"an endpoint needs a name and a type (got {name!r}, {kind!r})"
        )
    endpoint_id = f"{profile.id}/{kind}/{name}"
    state.check_locks(endpoint_id, "write")
    existing = state.resources.get(endpoint_id.lower())
    given = {
        k: v
        for k, v in dict(body.get("properties") or {}).items()
        if k not in ("endpointMonitorStatus", _ENABLED_AT)  # the probes' to say
    }
    before = dict(existing.properties) if existing and merge else {}
    props = {**before, **given}
    props.setdefault("endpointStatus", "Enabled")
    _validate_endpoint(state, profile, endpoint_id, props)
    was_enabled = existing is not None and existing.properties.get("endpointStatus") == "Enabled"
    if props["endpointStatus"] == "Enabled" and not was_enabled:
        props[_ENABLED_AT] = time.time()  # the probes take a moment to see it
    resource, _ = state.put(endpoint_id, "global", {}, props)
    return resource


def _validate_endpoint(
    state: SimState, profile: Resource, endpoint_id: str, props: dict[str, Any]
) -> None:
    name = endpoint_id.rsplit("/", 1)[-1]
    if props["endpointStatus"] not in ("Enabled", "Disabled"):
        raise ArmError(
            400,
            "BadRequest",
            f"The endpoint status '{props['endpointStatus']}' of endpoint '{name}' is invalid. "
            "Valid values: Enabled, Disabled.",
        )
    for field in ("priority", "weight"):
        value = props.get(field)
        if value is not None and (not isinstance(value, int) or not 1 <= value <= 1000):
            raise ArmError(
                400,
                "BadRequest",
                f"The {field} of endpoint '{name}' must be an integer between 1 and 1000 "
                f"(got {value!r}).",
            )
    priority = props.get("priority")
    for other in _endpoints(state, profile.id):
        if other.id.lower() != endpoint_id.lower() and other.properties.get("priority") == priority:
            if priority is not None:
                raise ArmError(
                    400,
                    "BadRequest",
                    f"Endpoint '{name}' has priority {priority}, which endpoint '{other.name}' "
                    "already has. Each endpoint of a profile must have a distinct priority.",
                )


def endpoint_json(state: SimState, profile: Resource, endpoint: Resource) -> dict[str, Any]:
    props = {k: v for k, v in copy.deepcopy(endpoint.properties).items() if k != _ENABLED_AT}
    props["endpointMonitorStatus"] = _monitor_status(state, profile, endpoint)
    kind = endpoint.id.rstrip("/").split("/")[-2]
    return {
        "id": endpoint.id,
        "name": endpoint.name,
        "type": f"{PROFILE_TYPE}/{kind}",
        "properties": props,
    }


def _monitor_status(state: SimState, profile: Resource, endpoint: Resource) -> str:
    """What Traffic Manager's probes say of `endpoint` now."""
    if profile.properties.get("profileStatus") == "Disabled":
        return "Inactive"
    if endpoint.properties.get("endpointStatus") == "Disabled":
        return "Disabled"
    said = _PROBE.get(endpoint.health.lower())
    if said is not None:
        return said
    target = state.resources.get(str(endpoint.properties.get("targetResourceId") or "").lower())
    if target is not None and target.health != "Available":
        return "Degraded"
    enabled_at = float(endpoint.properties.get(_ENABLED_AT) or 0)
    if time.time() < enabled_at + state.world.operation_seconds:
        return "CheckingEndpoint"
    return "Online"
