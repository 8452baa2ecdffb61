"""Role-based access control: role definitions (Azure's built-in ones, by
their real ids), role assignments at any scope, and their effect on what a
principal may read.

Who calls: azuresim accepts any bearer token, and a token that is not a JWT
(the static token stanch's workers use against it) stays unrestricted, as the
workers' identity is in the tests. A JWT carrying an `oid` claim (Entra's
object id; unsigned is fine here, azuresim checks no signatures) is that
principal: every ARM read, Log Analytics query and metrics batch it makes is
allowed only under a scope where one of its role assignments grants the
action, as Azure answers otherwise (403 AuthorizationFailed). `guest_token`
makes such a token for tests and drills.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
from datetime import UTC, datetime
from typing import Any

from stanch.azuresim.api_versions import check_api_version
from stanch.azuresim.arm import Request, Response
from stanch.azuresim.state import ArmError, SimState, resource_type

_PROVIDER = re.compile(
    r"/providers/microsoft\.authorization/(roleassignments|roledefinitions)(/|$)"
)


def _role(
    guid: str, name: str, description: str, actions: list[str], not_actions: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "name": guid,
        "roleName": name,
        "description": description,
        "actions": actions,
        "notActions": list(not_actions),
    }


# Azure's built-in roles (ids and actions as `az role definition list` shows them).
BUILT_IN_ROLES = [
    _role(
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "Owner",
        "Grants full access to manage all resources, including the ability to assign roles.",
        ["*"],
    ),
    _role(
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "Contributor",
        "Grants full access to manage all resources, but does not allow you to assign roles.",
        ["*"],
        ("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write"),
    ),
    _role(
        "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        "Reader",
        "View all resources, but does not allow you to make any changes.",
        ["*/read"],
    ),
    _role(
        "43d0d8ad-25c7-4714-9337-8ba259a9fe05",
        "Monitoring Reader",
        "Can read all monitoring data (metrics, logs, etc.).",
        ["*/read", "Microsoft.OperationalInsights/workspaces/search/action", "Microsoft.Support/*"],
    ),
    _role(
        "73c42c96-874c-492b-b04d-ab87d138a893",
        "Log Analytics Reader",
        "Can view and search all monitoring data as well as view monitoring settings.",
        [
            "*/read",
            "Microsoft.OperationalInsights/workspaces/analytics/query/action",
            "Microsoft.OperationalInsights/workspaces/search/action",
            "Microsoft.Support/*",
        ],
        ("Microsoft.OperationalInsights/workspaces/sharedKeys/read",),
    ),
    _role(
        "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
        "Virtual Machine Contributor",
        "Lets you manage virtual machines, but not access to them.",
        ["Microsoft.Compute/virtualMachines/*", "Microsoft.Resources/*/read", "*/read"],
    ),
]


def guest_token(principal_id: str) -> str:
    """An (unsigned) access token for `principal_id`, as Entra would carry its object id."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'oid': principal_id})}."


def caller(headers: dict[str, str]) -> str | None:
    """The principal a bearer token names (lower-cased), or None for a token
    that names nobody (unrestricted, as the workers' own identity)."""
    token = headers.get("authorization", "")[len("bearer ") :].strip()
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    oid = claims.get("oid") if isinstance(claims, dict) else None
    return oid.lower() if isinstance(oid, str) and oid else None


def is_rbac_path(path: str) -> bool:
    return bool(_PROVIDER.search(path.lower()))


# ---- the routes -------------------------------------------------------------------


def handle_rbac(state: SimState, req: Request) -> Response:
    low = req.path.lower()
    at = low.rindex("/providers/microsoft.authorization/")
    scope = req.path[:at] or "/"
    rest = [p for p in req.path[at:].split("/") if p][2:]
    kind = rest[0].lower()
    name = rest[1] if len(rest) > 1 else None
    if kind == "roledefinitions":
        check_api_version("Microsoft.Authorization/roleDefinitions", req.query["api-version"])
        return _definitions(state, req, scope, name)
    check_api_version("Microsoft.Authorization/roleAssignments", req.query["api-version"])
    _require_scope(state, scope)
    if name is None:
        if req.method != "GET":
            raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on {req.path}")
        return Response(200, {"value": _listed(state, scope, req.query.get("$filter", ""))})
    assignment_id = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
    key = assignment_id.lower()
    if req.method == "GET":
        if key not in state.role_assignments:
            raise ArmError(
                404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found."
            )
        return Response(200, state.role_assignments[key])
    if req.method == "DELETE":
        gone = state.role_assignments.pop(key, None)
        return Response(200, gone) if gone else Response(204)
    if req.method == "PUT":
        return _create(state, req, scope, name, assignment_id)
    raise ArmError(405, "MethodNotAllowed", f"{req.method} is not supported on role assignments")


def _require_scope(state: SimState, scope: str) -> None:
    if scope == "/":
        return
    state.require_scope(scope)


def _create(state: SimState, req: Request, scope: str, name: str, assignment_id: str) -> Response:
    body = req.body if isinstance(req.body, dict) else {}
    props = body.get("properties") or {}
    definition = str(props.get("roleDefinitionId") or "")
    principal = str(props.get("principalId") or "")
    if not re.fullmatch(r"[0-9a-fA-F-]{36}", name):
        raise ArmError(
            400, "InvalidRoleAssignmentId", f"The role assignment ID '{name}' is not valid."
        )
    if not principal:
        raise ArmError(400, "InvalidPrincipalId", "A valid principal ID must be specified.")
    if _definition(definition) is None:
        raise ArmError(
            400,
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{definition.rsplit('/', 1)[-1]}' "
            "does not exist.",
        )
    key = assignment_id.lower()
    held = state.role_assignments.get(key)
    same = {"roleDefinitionId": definition.lower(), "principalId": principal.lower()}
    if held is not None:
        was = held["properties"]
        if {
            "roleDefinitionId": was["roleDefinitionId"].lower(),
            "principalId": was["principalId"].lower(),
        } != same:
            raise ArmError(
                409,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        return Response(200, held)  # the same assignment again: a retried create
    for other in state.role_assignments.values():
        p = other["properties"]
        if (
            p["scope"].lower() == scope.lower()
            and p["principalId"].lower() == principal.lower()
            and _guid(p["roleDefinitionId"]) == _guid(definition)
        ):
            raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    state.role_assignments[key] = {
        "id": assignment_id,
        "name": name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": definition,
            "principalId": principal,
            "principalType": props.get("principalType") or "User",
            "scope": scope,
            "condition": props.get("condition"),
            "conditionVersion": props.get("conditionVersion"),
            "createdOn": now,
            "updatedOn": now,
            "createdBy": None,
            "updatedBy": None,
            "delegatedManagedIdentityResourceId": None,
            "description": props.get("description"),
        },
    }
    return Response(201, state.role_assignments[key])


def _listed(state: SimState, scope: str, filter_: str) -> list[dict[str, Any]]:
    """At and above `scope` (inherited), and below it unless `atScope()`."""
    wanted = re.search(r"principalId\s+eq\s+'([^']+)'", filter_, re.IGNORECASE)
    at_scope = "atscope()" in filter_.lower().replace(" ", "")
    found = []
    for assignment in state.role_assignments.values():
        p = assignment["properties"]
        if wanted and p["principalId"].lower() != wanted.group(1).lower():
            continue
        if covers(p["scope"], scope) or (not at_scope and covers(scope, p["scope"])):
            found.append(assignment)
    return found


def _definitions(state: SimState, req: Request, scope: str, name: str | None) -> Response:
    if req.method != "GET":
        raise ArmError(405, "MethodNotAllowed", "role definitions are read-only in azuresim")
    prefix = scope if scope.lower().startswith("/subscriptions/") else ""
    subscription = "/".join(prefix.split("/")[:3]) if prefix else ""
    listed = [_definition_json(role, subscription) for role in BUILT_IN_ROLES]
    if name is not None:
        found = next((d for d in listed if d["name"].lower() == name.lower()), None)
        if found is None:
            raise ArmError(404, "RoleDefinitionDoesNotExist", "The role definition does not exist.")
        return Response(200, found)
    wanted = re.search(r"roleName\s+eq\s+'([^']+)'", req.query.get("$filter", ""), re.IGNORECASE)
    if wanted:
        name_wanted = wanted.group(1).lower()
        listed = [d for d in listed if d["properties"]["roleName"].lower() == name_wanted]
    return Response(200, {"value": listed})


def _definition_json(role: dict[str, Any], subscription: str) -> dict[str, Any]:
    return {
        "id": f"{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role['name']}",
        "name": role["name"],
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role["roleName"],
            "type": "BuiltInRole",
            "description": role["description"],
            "assignableScopes": ["/"],
            "permissions": [
                {
                    "actions": role["actions"],
                    "notActions": role["notActions"],
                    "dataActions": [],
                    "notDataActions": [],
                }
            ],
        },
    }


def _guid(definition_id: str) -> str:
    return definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


def _definition(definition_id: str) -> dict[str, Any] | None:
    return next((r for r in BUILT_IN_ROLES if r["name"] == _guid(definition_id)), None)


def covers(outer: str, inner: str) -> bool:
    """Does scope `outer` hold `inner` (the same, or an ancestor on a segment boundary)?"""
    o, i = outer.lower().rstrip("/"), inner.lower().rstrip("/")
    return o == "" or i == o or i.startswith(o + "/")


# ---- the effect: what a principal may do ------------------------------------------


def authorize(state: SimState, principal: str, req: Request) -> None:
    """Raise 403 unless one of `principal`'s role assignments grants this request."""
    for scope, action in _wanted(state, req):
        if not _granted(state, principal, scope, action):
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client '{principal}' with object id '{principal}' does not have "
                f"authorization to perform action '{action}' over scope '{scope}' or the "
                "scope is invalid. If access was recently granted, please refresh your "
                "credentials.",
            )


def _wanted(state: SimState, req: Request) -> list[tuple[str, str]]:
    """(scope, action) pairs this request needs."""
    low = req.path.lower()
    if low.startswith("/v1/"):
        segs = req.segments
        if len(segs) >= 3 and segs[1].lower() == "workspaces":
            workspace = _workspace_resource(state, segs[2])
            return [(workspace or req.path, "Microsoft.OperationalInsights/workspaces/query/read")]
        return [("/" + "/".join(segs[1:-1]), "Microsoft.Insights/logs/read")]
    if low.endswith("metrics:getbatch"):
        body = req.body if isinstance(req.body, dict) else {}
        ids = body.get("resourceids") or []
        return [(str(i), "Microsoft.Insights/metrics/read") for i in ids] or [
            (req.path, "Microsoft.Insights/metrics/read")
        ]
    path = req.path
    rtype = resource_type(req.path) or "Microsoft.Resources/subscriptions/resourceGroups"
    if is_rbac_path(req.path):
        path = req.path[: low.rindex("/providers/microsoft.authorization/")] or "/"
        kind = "roleDefinitions" if "/roledefinitions" in low else "roleAssignments"
        rtype = f"Microsoft.Authorization/{kind}"
    verb = {"GET": "read", "HEAD": "read", "DELETE": "delete", "POST": "action"}.get(
        req.method, "write"
    )
    return [(path, f"{rtype}/{verb}")]


def _workspace_resource(state: SimState, customer_id: str) -> str | None:
    for resource in state.resources.values():
        if str(resource.properties.get("customerId") or "").lower() == customer_id.lower():
            return resource.id
    return None


def _granted(state: SimState, principal: str, scope: str, action: str) -> bool:
    for assignment in state.role_assignments.values():
        p = assignment["properties"]
        if p["principalId"].lower() != principal or not covers(p["scope"], scope):
            continue
        role = _definition(p["roleDefinitionId"])
        if role is None:
            continue
        if any(_matches(a, action) for a in role["actions"]) and not any(
            _matches(n, action) for n in role["notActions"]
        ):
            return True
    return False


def _matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())
