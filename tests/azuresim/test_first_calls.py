"""The calls a runbook author makes first (issue 13 item 7, review §2-§4), with
Azure's own SDK clients over TLS: which subscriptions, what is in them (by type,
by tag, page by page), which providers and api-versions, and the workspace whose
customerId the logs queries take. Refusals are Azure's error codes."""

from __future__ import annotations

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.subscriptions import SubscriptionClient
from azure.monitor.query import LogsQueryClient, LogsQueryResult

from stanch.azuresim.admin import trusting
from stanch.azuresim.api_versions import API_VERSIONS, COMPUTE, NETWORK, api_versions
from stanch.testing.estate import RG, SUB, VM1, VM2, VMSS, WORKSPACE
from tests.support.sync_sdk import StaticToken, arm_client

WORKSPACE_RESOURCE = (
    f"/subscriptions/{SUB}/resourceGroups/rg-ops/providers/"
    "Microsoft.OperationalInsights/workspaces/law-ops"
)
AUTH = {"Authorization": "Bearer anything"}


def code(error: HttpResponseError) -> str | None:
    return error.error.code if error.error else None


def raw(sim) -> httpx.Client:
    return httpx.Client(base_url=sim.url, verify=trusting(sim.ca_file), headers=AUTH, timeout=10)


def test_subscription_client_lists_and_gets_the_subscription(sim):
    with arm_client(SubscriptionClient, sim) as client:
        listed = list(client.subscriptions.list())
        assert [s.subscription_id for s in listed] == [SUB]
        assert listed[0].state == "Enabled" and listed[0].display_name
        assert client.subscriptions.get(SUB).id == f"/subscriptions/{SUB}"
        with pytest.raises(ResourceNotFoundError) as missing:
            client.subscriptions.get("00000000-0000-0000-0000-00000000dead")
        assert code(missing.value) == "SubscriptionNotFound"


def test_resources_filtered_by_type_and_tags_as_azure_allows(sim):
    with arm_client(ResourceManagementClient, sim, SUB) as client:
        everything = {str(r.id) for r in client.resources.list()}
        assert {VM1, VM2, VMSS, WORKSPACE_RESOURCE} <= everything
        assert not any("/securityRules/" in r or "/ipConfigurations/" in r for r in everything)

        vms = client.resources.list(filter="resourceType eq 'Microsoft.Compute/virtualMachines'")
        assert {r.id for r in vms} == {VM1, VM2}
        lowered = client.resources.list(
            filter="resourcetype eq 'microsoft.compute/VIRTUALMACHINES'"
        )
        assert {r.id for r in lowered} == {VM1, VM2}, "types compare case-insensitively"

        api = client.resources.list(filter="tagName eq 'service' and tagValue eq 'api'")
        tagged = list(api)
        assert [r.id for r in tagged] == [VMSS]
        assert tagged[0].tags is None, "Azure leaves tags out of a listing filtered by tag"
        assert {r.id for r in client.resources.list(filter="tagName eq 'env'")} >= {VM1, VM2, VMSS}
        assert {r.id for r in client.resources.list(filter="startswith(tagName, 'serv')")} == {
            VM1,
            VM2,
            VMSS,
        }

        combined = client.resources.list(
            filter="substringof('web', name) and resourceType eq 'Microsoft.Compute/virtualMachines'"
        )
        assert {r.id for r in combined} == {VM1, VM2}
        either = client.resources.list(filter="name eq 'vm-web-1' or name eq 'vmss-api'")
        assert {r.id for r in either} == {VM1, VMSS}

        for refused in (
            "tagName eq 'service' and resourceType eq 'Microsoft.Compute/virtualMachines'",
            "powerState eq 'running'",
            "name gt 'a'",
        ):
            with pytest.raises(HttpResponseError) as bad:
                list(client.resources.list(filter=refused))
            assert bad.value.status_code == 400
            assert code(bad.value) == "InvalidFilterInQueryString", refused


def test_listings_page_with_top_and_next_link(sim):
    with raw(sim) as http:
        first = http.get(
            f"/subscriptions/{SUB}/resources", params={"api-version": "2025-04-01", "$top": "2"}
        ).json()
        assert len(first["value"]) == 2 and first["nextLink"].startswith(sim.url)
        seen = [r["id"] for r in first["value"]]
        link = first["nextLink"]
        while link:
            page = http.get(link).json()
            assert len(page["value"]) <= 2
            seen += [r["id"] for r in page["value"]]
            link = page.get("nextLink")
    with arm_client(ResourceManagementClient, sim, SUB) as client:
        assert seen == [r.id for r in client.resources.list()], "pages add up to the listing"
        # The SDK follows nextLink itself; a group's listing is the same listing, narrowed.
        paged = [r.id for r in client.resources.list(top=1)]
        assert paged == seen
        in_group = [r.id for r in client.resources.list_by_resource_group("rg-web", top=1)]
        assert in_group == [r for r in seen if r.lower().startswith(RG.lower() + "/")]
        assert [g.name for g in client.resource_groups.list(top=1)] == ["rg-web", "rg-ops"]


def test_providers_list_their_types_and_api_versions(sim):
    with arm_client(ResourceManagementClient, sim, SUB) as client:
        namespaces = {p.namespace for p in client.providers.list()}
        assert {"Microsoft.Compute", "Microsoft.Network", "Microsoft.OperationalInsights"} <= (
            namespaces
        )
        compute = client.providers.get("microsoft.compute")
        types = {t.resource_type: t.api_versions for t in compute.resource_types or []}
        assert types["virtualMachines"] == list(COMPUTE)
        assert compute.id == f"/subscriptions/{SUB}/providers/Microsoft.Compute"
        with pytest.raises(HttpResponseError) as unknown:
            client.providers.get("Microsoft.Nothing")
        assert code(unknown.value) == "InvalidResourceNamespace"


def test_every_documented_api_version_is_served_and_others_get_azures_error(sim):
    with raw(sim) as http:
        for version in (*COMPUTE, "2015-06-15"):
            assert http.get(VM1, params={"api-version": version}).status_code == 200, version
        nsg = f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-versions"
        for version in NETWORK[:3]:
            put = http.put(nsg, params={"api-version": version}, json={"location": "westeurope"})
            assert put.status_code in (200, 201), version

        unknown = http.get(VM1, params={"api-version": "2019-01-01"})
        assert unknown.status_code == 400
        error = unknown.json()["error"]
        assert error["code"] == "NoRegisteredProviderFound"
        assert "for type 'virtualMachines'" in error["message"]
        assert "2026-04-01" in error["message"] and "westeurope" in error["message"]

        groups = http.get(
            f"/subscriptions/{SUB}/resourcegroups", params={"api-version": "2026-04-01"}
        )
        assert groups.status_code == 400
        assert groups.json()["error"]["code"] == "InvalidApiVersionParameter"
        assert "The api-version '2026-04-01' is invalid" in groups.json()["error"]["message"]

        garbled = http.get(VM1, params={"api-version": "latest"})
        assert (garbled.status_code, garbled.json()["error"]["code"]) == (
            400,
            "InvalidApiVersionParameter",
        )
        no_type = http.get(
            f"{RG}/providers/Microsoft.Compute/fooBars/x", params={"api-version": "2026-04-01"}
        )
        assert (no_type.status_code, no_type.json()["error"]["code"]) == (
            404,
            "InvalidResourceType",
        )
        lock = http.get(
            f"{VM1}/providers/Microsoft.Authorization/locks", params={"api-version": "2021-01-01"}
        )
        assert lock.json()["error"]["code"] == "InvalidApiVersionParameter"


def test_the_table_covers_every_type_azuresim_serves():
    for type_ in (
        "Microsoft.Compute/virtualMachines",
        "Microsoft.Compute/virtualMachines/runCommands",
        "Microsoft.Compute/virtualMachineScaleSets",
        "Microsoft.Compute/locations/operations",
        "Microsoft.Network/networkInterfaces",
        "Microsoft.Network/networkSecurityGroups",
        "Microsoft.Network/networkSecurityGroups/securityRules",
        "Microsoft.Authorization/locks",
        "Microsoft.Resources/tags",
        "Microsoft.Resources/resourceGroups",
        "Microsoft.Resources/subscriptions",
        "Microsoft.OperationalInsights/workspaces",
        "Microsoft.ResourceHealth/availabilityStatuses",
        "Microsoft.Insights/metrics",
    ):
        versions = api_versions(type_)
        assert versions and list(versions) == sorted(versions, reverse=True), type_
    assert all(isinstance(v, tuple) for types in API_VERSIONS.values() for v in types.values())


def test_the_workspace_resource_names_the_id_its_queries_answer_to(sim):
    with arm_client(ResourceManagementClient, sim, SUB) as client:
        workspace = client.resources.get_by_id(WORKSPACE_RESOURCE, api_version="2025-02-01")
    customer_id = (workspace.properties or {})["customerId"]
    assert customer_id == WORKSPACE
    logs = LogsQueryClient(
        StaticToken(), endpoint=sim.url, connection_verify=str(sim.ca_file), retry_total=0
    )
    by_id = logs.query_workspace(customer_id, "Event | count", timespan=None)
    by_resource = logs.query_resource(WORKSPACE_RESOURCE, "Event | count", timespan=None)
    assert isinstance(by_id, LogsQueryResult) and isinstance(by_resource, LogsQueryResult)
    assert by_id.tables[0].rows[0][0] == by_resource.tables[0].rows[0][0] == 2
    logs.close()
