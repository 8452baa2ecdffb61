"""azuresim's answers checked against Azure's published REST API specifications
(the OpenAPI documents of Azure/azure-rest-api-specs, vendored unmodified under
tests/azuresim/specs/ with their licence), not only against what the SDKs
tolerate: each route azuresim serves for an operation exists in the spec with
that method, the spec's api-version is one azuresim takes, and the body it
answers validates against the spec's response schema (tests/support/openapi.py).

Deliberate divergences, each with its reason:
- Log Analytics `tables[].rows[][]`: the v1 spec types every cell as a string;
  the service (and azure-monitor-query, which parses them) sends JSON numbers
  for long/real columns and null for empty cells. azuresim does as the service.
- A generic read (`Resources_GetById`) is checked against resources.json's
  GenericResource at the resource type's own api-version, not the document's:
  that is how get_resource calls it (the provider's newest stable version).
- Resource Health's errors are not validated: ResourceHealth.json declares a
  bare `{code, message, details}`, but a request for a resource that is not
  there is refused by ARM itself, in ARM's `{"error": {code, message}}` (the
  shape the SDK parses); azuresim answers as ARM does.

Mistakes the specs caught, fixed in azuresim: SecurityRules_List was not served
(404); a lock carried azuresim's own `scope` and a null `notes` (ARM leaves
notes out when none were given); an available resource's health carried a null
`reasonType` (Resource Health leaves it out), and any path under
Microsoft.ResourceHealth was answered with the current status (a history or
event list now gets 404).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stanch.azuresim.admin import SimAdmin
from stanch.azuresim.api_versions import api_versions
from stanch.testing.estate import NIC1, RG, SUB, VM1, VM2, VMSS, WORKSPACE
from tests.support.arm_specs import (
    ARM_SPECS,
    LOCKS,
    NICS,
    NSGS,
    RESOURCE_HEALTH,
    RESOURCES,
    SPECS,
    SUBSCRIPTIONS,
    WORKSPACES,
    call,
    clear_journal,
    client,
    served_routes,
)
from tests.support.openapi import (
    Validation,
    document,
    operation,
    response_schema,
    route,
)

LOGS = (
    SPECS
    / "operationalinsights/data-plane/Microsoft.OperationalInsights/stable/v1/OperationalInsights.json"
)
METRICS = SPECS / "monitor/data-plane/Microsoft.Insights/stable/2024-02-01/metricBatch.json"
WORKSPACE_RESOURCE = (
    f"/subscriptions/{SUB}/resourceGroups/rg-ops/providers/"
    "Microsoft.OperationalInsights/workspaces/law-ops"
)
CELLS_ARE_TYPED = "/tables/*/rows/*"  # see the module's docstring


def test_the_vendored_specs_are_the_ones_named_in_the_readme():
    readme = (Path(__file__).parent / "specs" / "README.md").read_text()
    vendored = sorted(p.relative_to(SPECS.parent).as_posix() for p in SPECS.rglob("*.json"))
    assert vendored, "no spec vendored"
    rows = {line.split("`")[1]: line for line in readme.splitlines() if line.startswith("| `")}
    for path in vendored:
        assert path in rows, f"{path} is not listed in specs/README.md"
        assert re.search(r"`[0-9a-f]{40}`", rows[path]), f"{path}: no commit in its README row"
    assert (Path(__file__).parent / "specs" / "LICENSE").read_text().startswith("The MIT License")


@pytest.mark.parametrize(
    "query",
    ["Heartbeat", "Event | where EventLevelName == 'Error' | take 1", "Event | count"],
)
def test_log_analytics_answers_match_the_spec(sim, query):
    spec_operation = operation(LOGS, "/workspaces/{workspaceId}/query", "post")
    assert spec_operation["operationId"] == "Query_Post"
    assert document(LOGS)["basePath"] == "/v1", "azuresim serves it under /v1"
    with client(sim) as http:
        by_workspace = http.post(f"/v1/workspaces/{WORKSPACE}/query", json={"query": query})
        by_resource = http.post(f"/v1{WORKSPACE_RESOURCE}/query", json={"query": query})
    for answer in (by_workspace, by_resource):
        assert answer.status_code == 200
        schema = response_schema(LOGS, "/workspaces/{workspaceId}/query", "post", 200)
        assert Validation(ignore=[CELLS_ARE_TYPED]).check(answer.json(), schema) == []


def test_log_analytics_errors_match_the_spec(sim):
    with client(sim) as http:
        unknown = http.post(f"/v1/workspaces/{WORKSPACE}/query", json={"query": "NoSuchTable"})
        missing = http.post(
            "/v1/workspaces/00000000-0000-0000-0000-000000000000/query", json={"query": "T"}
        )
    assert (unknown.status_code, missing.status_code) == (400, 404)
    schema = response_schema(LOGS, "/workspaces/{workspaceId}/query", "post", "default")
    for answer in (unknown, missing):
        assert Validation().check(answer.json(), schema) == []


def test_metrics_batch_answers_match_the_spec(sim):
    spec = document(METRICS)
    assert spec["info"]["version"] in api_versions("Microsoft.Insights/metrics")
    assert operation(METRICS, "/subscriptions/{subscriptionId}/metrics:getBatch", "post")
    admin = SimAdmin(sim.url, sim.ca_file)
    # A gap in a series, as a metric with no samples in a minute has.
    admin.amend(metrics={VMSS: {"Percentage CPU": {"unit": "Percent", "values": [40, None, 60]}}})
    admin.close()
    with client(sim) as http:
        answer = http.post(
            f"/subscriptions/{SUB}/metrics:getBatch",
            params={
                "api-version": spec["info"]["version"],
                "metricnamespace": "Microsoft.Compute/virtualMachines",
                "metricnames": "Percentage CPU,Network In",
                "aggregation": "average,maximum",
                "starttime": "2026-12-01T00:00:00Z",
                "endtime": "2026-12-01T01:00:00Z",
            },
            json={"resourceids": [VM1, VMSS]},
        )
    assert answer.status_code == 200
    schema = response_schema(
        METRICS, "/subscriptions/{subscriptionId}/metrics:getBatch", "post", 200
    )
    assert Validation().check(answer.json(), schema) == []


def test_the_validator_reports_what_the_spec_refuses():
    """The checks above can fail: a body the spec refuses gives problems."""
    schema = response_schema(
        METRICS, "/subscriptions/{subscriptionId}/metrics:getBatch", "post", 200
    )
    bad = {
        "values": [
            {
                "starttime": "x",
                "value": [
                    {
                        "id": "m",
                        "type": "t",
                        "name": {"value": "n"},
                        "unit": "Percent",
                        "timeseries": [{"data": [{"timeStamp": "yesterday", "average": None}]}],
                        "colour": "red",
                    }
                ],
            }
        ]
    }
    problems = Validation().check(bad, schema)
    assert problems == [
        "/values/0/endtime: required by the spec, missing",
        "/values/0/value/0/timeseries/0/data/0/timeStamp: 'yesterday' is not an RFC 3339 date-time",
        "/values/0/value/0/timeseries/0/data/0/average: null where the spec has no x-nullable",
        "/values/0/value/0/colour: not in the spec",
    ]


# ---- Microsoft.Network (2024-05-01) ---------------------------------------------------

NSG = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-spec"
ALLOW_HTTPS = {
    "name": "allow-https",
    "properties": {
        "protocol": "Tcp",
        "access": "Allow",
        "direction": "Inbound",
        "priority": 100,
        "sourceAddressPrefix": "*",
        "sourcePortRange": "*",
        "destinationAddressPrefix": "*",
        "destinationPortRange": "443",
    },
}
BLOCK_ONE_ADDRESS = {
    "properties": {
        "description": "stanch: block 203.0.113.7 (incident inc-spec)",
        "protocol": "*",
        "access": "Deny",
        "direction": "Inbound",
        "priority": 200,
        "sourceAddressPrefix": "203.0.113.7/32",
        "sourcePortRange": "*",
        "destinationAddressPrefix": "*",
        "destinationPortRanges": ["22", "3389"],
    }
}


def test_the_network_documents_are_at_a_version_azuresim_takes():
    for spec in (NSGS, NICS):
        assert document(spec)["info"]["version"] in api_versions(
            "Microsoft.Network/networkSecurityGroups"
        )
    assert document(NICS)["info"]["version"] in api_versions("Microsoft.Network/networkInterfaces")
    assert document(NSGS)["info"]["version"] in api_versions(
        "Microsoft.Network/networkSecurityGroups/securityRules"
    )


def test_nsg_and_security_rule_answers_match_the_spec(sim):
    """What quarantine, block_ip and their undo call: NSG put/get/delete,
    security rule put/get/list/delete, with the statuses the spec names."""
    rule = f"{NSG}/securityRules/deny-203-0-113-7"
    SimAdmin(sim.url, sim.ca_file).clear_journal()
    with client(sim) as http:
        created = call(
            http,
            "PUT",
            NSG,
            201,
            {"location": "westeurope", "properties": {"securityRules": [ALLOW_HTTPS]}},
        )
        assert created["properties"]["securityRules"][0]["name"] == "allow-https"
        call(
            http,
            "PUT",
            NSG,
            200,
            {
                "location": "westeurope",
                "tags": {"owner": "sre"},
                "properties": created["properties"],
            },
        )
        call(http, "GET", NSG, 200)
        call(http, "PUT", rule, 201, BLOCK_ONE_ADDRESS)
        call(http, "PUT", rule, 200, BLOCK_ONE_ADDRESS)  # a retry of the same rule
        got = call(http, "GET", rule, 200)
        assert got["properties"]["sourceAddressPrefix"] == "203.0.113.7/32"
        listed = call(http, "GET", f"{NSG}/securityRules", 200)
        assert sorted(r["name"] for r in listed["value"]) == ["allow-https", "deny-203-0-113-7"]
        call(http, "DELETE", rule, 200)
        assert http.delete(rule, params={"api-version": "2024-05-01"}).status_code == 204
        call(http, "GET", rule, 404)
        call(http, "GET", f"{RG}/providers/Microsoft.Network/networkSecurityGroups/none", 404)
        call(http, "DELETE", NSG, 200)
    for spec_route, version in served_routes(sim):
        assert spec_route.spec == NSGS and version == spec_route.version


def test_nic_answers_match_the_spec(sim):
    """What isolate and its undo call: the VM's NIC read, then written back
    with an NSG attached (as the SDK sends it, the NIC it read plus the NSG)."""
    SimAdmin(sim.url, sim.ca_file).clear_journal()
    with client(sim) as http:
        nic = call(http, "GET", NIC1, 200)
        call(http, "PUT", NSG, 201, {"location": "westeurope", "properties": {}})
        nic["properties"]["networkSecurityGroup"] = {"id": NSG}
        attached = call(http, "PUT", NIC1, 200, nic)
        assert attached["properties"]["networkSecurityGroup"]["id"] == NSG
        call(http, "DELETE", NSG, 400)  # in use: Azure's error, in the spec's error shape
        del nic["properties"]["networkSecurityGroup"]
        call(http, "PUT", NIC1, 200, nic)
        call(http, "DELETE", NSG, 200)
    served = served_routes(sim)
    assert {r.spec for r, _ in served} == {NSGS, NICS}
    assert all(version == r.version for r, version in served)


# ---- Microsoft.Resources and Microsoft.Authorization ------------------------------------
# Their errors are not validated: subscriptions.json and resources.json `$ref` the
# common types v5 and v1 for them, not vendored (locks' v2 is, and its errors are).


def test_the_resources_documents_are_at_versions_azuresim_takes():
    assert document(SUBSCRIPTIONS)["info"]["version"] in api_versions(
        "Microsoft.Resources/subscriptions"
    )
    version = document(RESOURCES)["info"]["version"]
    for kind in ("resourceGroups", "subscriptions/resources", "subscriptions/providers"):
        assert version in api_versions(f"Microsoft.Resources/{kind}"), kind
    assert document(LOCKS)["info"]["version"] in api_versions("Microsoft.Authorization/locks")


def test_an_authors_first_calls_match_the_spec(sim):
    """Subscriptions, providers, resource groups, resources with `$filter` and
    `$top` paging, a resource by id: what the scaffold and its author call first."""
    SimAdmin(sim.url, sim.ca_file).clear_journal()
    with client(sim) as http:
        subscriptions = call(http, "GET", "/subscriptions", 200)
        assert [s["subscriptionId"] for s in subscriptions["value"]] == [SUB]
        call(http, "GET", f"/subscriptions/{SUB}", 200)
        providers = call(http, "GET", f"/subscriptions/{SUB}/providers", 200)
        assert "Microsoft.Compute" in {p["namespace"] for p in providers["value"]}
        call(http, "GET", f"/subscriptions/{SUB}/providers/Microsoft.Network", 200)
        groups = call(http, "GET", f"/subscriptions/{SUB}/resourcegroups", 200)
        assert {"rg-web", "rg-ops"} <= {g["name"] for g in groups["value"]}
        call(http, "GET", RG, 200)
        everything = call(http, "GET", f"/subscriptions/{SUB}/resources", 200)
        assert VM1 in {r["id"] for r in everything["value"]}
        by_type = http.get(
            f"/subscriptions/{SUB}/resources",
            params={
                "api-version": document(RESOURCES)["info"]["version"],
                "$filter": "resourceType eq 'Microsoft.Compute/virtualMachines'",
                "$top": "1",
            },
        )
        assert by_type.status_code == 200
        schema = response_schema(RESOURCES, "/subscriptions/{subscriptionId}/resources", "get", 200)
        assert Validation().check(by_type.json(), schema) == []
        assert len(by_type.json()["value"]) == 1 and "nextLink" in by_type.json()
        call(http, "GET", f"{RG}/resources", 200)
        # Resources_GetById: how get_resource reads any type, at the provider's version.
        vm = http.get(
            VM1, params={"api-version": api_versions("Microsoft.Compute/virtualMachines")[0]}
        )
        assert vm.status_code == 200
        generic = response_schema(RESOURCES, "/{resourceId}", "get", 200)
        assert Validation().check(vm.json(), generic) == []
    served = served_routes(sim)
    assert {r.spec for r, _ in served} == {SUBSCRIPTIONS, RESOURCES}
    assert {r.template for r, _ in served if r.spec == SUBSCRIPTIONS} == {
        "/subscriptions",
        "/subscriptions/{subscriptionId}",
    }
    # The generic read takes the resource type's version, not Microsoft.Resources'.
    assert all(version == r.version for r, version in served if r.template != "/{resourceId}")


def test_tags_and_locks_at_resource_scope_match_the_spec(sim):
    """What tag_resource and quarantine's lock call: tags at scope (get, merge,
    delete by name) and a management lock by scope (put, get, list, delete)."""
    lock = f"{VM1}/providers/Microsoft.Authorization/locks/stanch-quarantine"
    tags = f"{VM1}/providers/Microsoft.Resources/tags/default"
    SimAdmin(sim.url, sim.ca_file).clear_journal()
    with client(sim) as http:
        assert call(http, "GET", tags, 200)["properties"]["tags"]["service"] == "web"
        merged = call(
            http,
            "PATCH",
            tags,
            200,
            {"operation": "Merge", "properties": {"tags": {"stanch": "x"}}},
        )
        assert merged["properties"]["tags"]["stanch"] == "x"
        call(
            http,
            "PATCH",
            tags,
            200,
            {"operation": "Delete", "properties": {"tags": {"stanch": "x"}}},
        )
        call(http, "GET", lock, 404)  # LockNotFound, in the spec's error shape
        body = {"properties": {"level": "CanNotDelete", "notes": "stanch: inc-spec"}}
        created = call(http, "PUT", lock, 201, body)
        assert created["properties"]["level"] == "CanNotDelete"
        call(http, "PUT", lock, 200, {"properties": {"level": "CanNotDelete"}})  # a retry
        call(http, "GET", lock, 200)
        listed = call(http, "GET", f"{VM1}/providers/Microsoft.Authorization/locks", 200)
        assert [lk["name"] for lk in listed["value"]] == ["stanch-quarantine"]
        call(http, "DELETE", lock, 200)
        call(http, "DELETE", lock, 204)
    served = served_routes(sim)
    assert {r.spec for r, _ in served} == {RESOURCES, LOCKS}
    assert all(version == r.version for r, version in served)


def test_a_request_is_matched_to_the_operation_arm_would_route_it_to():
    """The route check can fail: a path no vendored document has is refused,
    and an extension resource is not mistaken for a generic resource."""
    lock = f"{VM1}/providers/Microsoft.Authorization/locks/any"
    assert route(ARM_SPECS, "GET", lock).template == (
        "/{scope}/providers/Microsoft.Authorization/locks/{lockName}"
    )
    assert route(ARM_SPECS, "GET", NSG).spec == NSGS
    assert route(ARM_SPECS, "GET", VM1).template == "/{resourceId}"
    with pytest.raises(KeyError, match="no vendored spec has POST"):
        route(ARM_SPECS, "POST", f"/subscriptions/{SUB}/nowhere")


# ---- Log Analytics workspaces (2025-07-01) and Resource Health (2025-05-01) --------------


def test_the_monitoring_documents_are_at_versions_azuresim_takes():
    assert document(WORKSPACES)["info"]["version"] in api_versions(
        "Microsoft.OperationalInsights/workspaces"
    )
    # The version azure-mgmt-resourcehealth sends: the one stanch's calls use.
    assert (
        document(RESOURCE_HEALTH)["info"]["version"]
        == api_versions("Microsoft.ResourceHealth/availabilityStatuses")[0]
    )


def test_a_workspace_resource_matches_the_spec_and_its_customer_id_answers_queries(sim):
    """Workspaces_Get: a Workspace (a TrackedResource); its `properties.customerId`
    is the id Log Analytics queries answer to (`/v1/workspaces/{customerId}/query`)."""
    clear_journal(sim)
    with client(sim) as http:
        workspace = call(http, "GET", WORKSPACE_RESOURCE, 200)
        missing = WORKSPACE_RESOURCE.rsplit("/", 1)[0] + "/law-none"
        call(http, "GET", missing, 404)  # ResourceNotFound, in the spec's error shape
        customer_id = workspace["properties"]["customerId"]
        assert customer_id == WORKSPACE
        query = http.post(f"/v1/workspaces/{customer_id}/query", json={"query": "Heartbeat"})
        assert query.status_code == 200 and query.json()["tables"][0]["rows"]
    served = served_routes(sim)
    assert {(r.spec, r.template) for r, _ in served} == {
        (
            WORKSPACES,
            "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}/providers/"
            "Microsoft.OperationalInsights/workspaces/{workspaceName}",
        )
    }
    assert all(version == r.version for r, version in served)


def test_resource_health_answers_match_the_spec(sim):
    """AvailabilityStatuses_GetByResource, what get_availability calls: a VM
    Resource Health sees as unavailable (with the reason) and one available
    (no reasonType: Azure leaves it out, never null)."""
    current = "/providers/Microsoft.ResourceHealth/availabilityStatuses/current"
    clear_journal(sim)
    with client(sim) as http:
        failing = call(http, "GET", VM1 + current, 200)
        assert failing["properties"]["availabilityState"] == "Unavailable"
        assert failing["properties"]["reasonType"] == "Unplanned"
        assert failing["id"] == VM1 + current and failing["name"] == "current"
        healthy = call(http, "GET", VM2 + current, 200)
        assert healthy["properties"]["availabilityState"] == "Available"
        assert "reasonType" not in healthy["properties"]
        # What azuresim does not serve is refused, not answered with one status.
        history = VM1 + "/providers/Microsoft.ResourceHealth/availabilityStatuses"
        version = document(RESOURCE_HEALTH)["info"]["version"]
        assert http.get(history, params={"api-version": version}).status_code == 404
    served = served_routes(sim)
    assert {r.template for r, _ in served} == {
        "/{resourceUri}/providers/Microsoft.ResourceHealth/availabilityStatuses/current"
    }
    assert all(r.spec == RESOURCE_HEALTH and version == r.version for r, version in served)
