"""What an author's first calls list: subscriptions, resource providers with
their types and api-versions, resource groups, resources (with `$filter`,
`$top` and `nextLink` paging, as ARM pages them), and one provider's type
(`virtual_machines.list(rg)`, `list_all()`)."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from stanch.azuresim import resource_filter
from stanch.azuresim.api_versions import API_VERSIONS
from stanch.azuresim.errors import ArmError
from stanch.azuresim.state import SimState

if TYPE_CHECKING:
    from stanch.azuresim.arm import Request

LOCATION = "West Europe"  # display name, as providers list locations
# Namespaces whose types ARM serves itself: not listed as resource providers.
_ARM_ITSELF = {"microsoft.resources", "microsoft.insights"}


# ---- subscriptions ----------------------------------------------------------------


def subscription(state: SimState, subscription_id: str) -> dict[str, Any]:
    if subscription_id.lower() not in state.subscriptions:
        raise ArmError(
            404, "SubscriptionNotFound", f"The subscription '{subscription_id}' could not be found."
        )
    sub = subscription_id.lower()
    return {
        "id": f"/subscriptions/{sub}",
        "subscriptionId": sub,
        "tenantId": state.world.tenant_id,
        "displayName": f"azuresim {sub[:8]}",
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "tags": {},
    }


def subscriptions(state: SimState, req: Request) -> dict[str, Any]:
    items = [subscription(state, s) for s in sorted(state.subscriptions)]
    return page(items, req)


# ---- resource providers ------------------------------------------------------------


def provider(subscription_id: str, namespace: str) -> dict[str, Any]:
    for ns, types in API_VERSIONS.items():
        if ns.lower() == namespace.lower() and ns.lower() not in _ARM_ITSELF:
            return {
                "id": f"/subscriptions/{subscription_id}/providers/{ns}",
                "namespace": ns,
                "registrationState": "Registered",
                "registrationPolicy": "RegistrationRequired",
                "resourceTypes": [
                    {"resourceType": t, "locations": [LOCATION], "apiVersions": list(v)}
                    for t, v in types.items()
                ],
            }
    raise ArmError(
        404,
        "InvalidResourceNamespace",
        f"The resource namespace '{namespace}' is invalid.",
    )


def providers(subscription_id: str, req: Request) -> dict[str, Any]:
    items = [provider(subscription_id, ns) for ns in API_VERSIONS if ns.lower() not in _ARM_ITSELF]
    return page(items, req)


# ---- resource groups and resources -------------------------------------------------


def group_names(state: SimState, subscription_id: str) -> dict[str, str]:
    """Resource groups (lower-cased name -> name as first written): a group
    exists while it holds a resource."""
    prefix = f"/subscriptions/{subscription_id}/resourcegroups/".lower()
    groups: dict[str, str] = {}
    for r in state.resources.values():
        if r.id.lower().startswith(prefix):
            name = r.id.split("/")[4]
            groups.setdefault(name.lower(), name)
    return groups


def resource_group(subscription_id: str, name: str) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{subscription_id}/resourceGroups/{name}",
        "name": name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": "westeurope",
        "properties": {"provisioningState": "Succeeded"},
    }


def resources(
    state: SimState, req: Request, subscription_id: str, group: str | None = None
) -> dict[str, Any]:
    """A subscription's or a group's top-level resources as Resources_List
    answers: no `properties` (that takes a GET of each), filtered, paged."""
    chosen = resource_filter.parse(req.query.get("$filter"))
    prefix = f"/subscriptions/{subscription_id}/resourcegroups/".lower()
    items = []
    for r in state.resources.values():
        if not r.id.lower().startswith(prefix) or r.type.count("/") != 1:
            continue
        if group is not None and r.id.split("/")[4].lower() != group.lower():
            continue
        item: dict[str, Any] = {
            "id": r.id,
            "name": r.name,
            "type": r.type,
            "location": r.location,
            "tags": dict(r.tags),
        }
        if r.sku is not None:
            item["sku"] = dict(r.sku)
        if chosen.matches({**item, "resourceGroup": r.id.split("/")[4]}):
            if chosen.by_tag:
                del item["tags"]
            items.append(item)
    return page(items, req)


def of_type(
    state: SimState, req: Request, subscription_id: str, type_: str, group: str | None = None
) -> dict[str, Any]:
    """A provider's own list of one type (VirtualMachines_List in a group,
    VirtualMachines_ListAll in the subscription): each resource whole, as a
    GET of it answers (without the instance view), paged."""
    scope = f"/subscriptions/{subscription_id}/resourcegroups/".lower()
    if group is not None:
        scope += f"{group.lower()}/"
    items = [
        r.arm_json()
        for r in state.resources.values()
        if r.id.lower().startswith(scope) and r.type.lower() == type_.lower()
    ]
    return page(items, req)


# ---- paging ------------------------------------------------------------------------


def page(items: list[dict[str, Any]], req: Request) -> dict[str, Any]:
    """`$top` items from the `$skiptoken` on, and a `nextLink` carrying the
    same query (api-version, $filter, $top) to the rest, as ARM pages."""
    try:
        top = int(req.query["$top"]) if "$top" in req.query else None
        start = int(req.query.get("$skiptoken", "0"))
    except ValueError:
        raise ArmError(
            400, "InvalidQueryParameterValue", "$top and $skiptoken must be integers."
        ) from None
    if top is not None and top < 1:
        raise ArmError(400, "InvalidQueryParameterValue", f"$top must be positive, got {top}.")
    end = len(items) if top is None else start + top
    body: dict[str, Any] = {"value": items[start:end]}
    if end < len(items):
        query = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        query["$skiptoken"] = str(end)
        body["nextLink"] = f"{req.base_url}{req.path}?{urllib.parse.urlencode(query)}"
    return body
