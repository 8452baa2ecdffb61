"""Listing a resource group's VMs, and a subscription's (the last stop's note:
`virtual_machines.list(rg)` answered `InvalidResourceNamespace ''`). With
azure-mgmt-compute over TLS, as an author's first script would call them:
VirtualMachines_List and _ListAll answer each VM as its GET does, only that
group's or every group's, paged like azuresim's other lists, and the answers
validate against Azure's compute specification."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from stanch.azuresim import AzureSim
from stanch.azuresim.world import SeedResource
from stanch.testing.estate import RG, SUB, VM1, VM2, VMSS
from stanch.testing.simulator import load_test_world, running_sim
from tests.support.arm_specs import COMPUTE_SPECS, call, client
from tests.support.sync_sdk import arm_client

OPS_VM = f"/subscriptions/{SUB}/resourceGroups/rg-ops/providers/Microsoft.Compute/virtualMachines/vm-ops-1"
IN_GROUP = f"{RG}/providers/Microsoft.Compute/virtualMachines"
IN_SUBSCRIPTION = f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines"


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[AzureSim]:
    """The packaged world, and a VM in a second group: a group's list must
    leave it out, the subscription's must hold it."""
    world = load_test_world()
    world.resources.append(
        SeedResource(
            id=OPS_VM,
            location="westeurope",
            properties={"storageProfile": {"osDisk": {"osType": "Linux", "createOption": "Empty"}}},
        )
    )
    with running_sim(world, tmp_path / "azuresim") as sim:
        yield sim


def test_the_sdk_lists_a_groups_vms_and_the_subscriptions(estate: AzureSim):
    with arm_client(ComputeManagementClient, estate, SUB) as compute:
        in_group = list(compute.virtual_machines.list("rg-web"))
        assert sorted(str(vm.id) for vm in in_group) == [VM1, VM2]
        # Each VM whole, as its GET answers it (the SDK's model of each, compared).
        for vm in in_group:
            assert vm.as_dict() == compute.virtual_machines.get("rg-web", str(vm.name)).as_dict()
        assert {vm.storage_profile.os_disk.os_type for vm in in_group} == {"Linux"}

        everywhere = {str(vm.id) for vm in compute.virtual_machines.list_all()}
        assert everywhere == {VM1, VM2, OPS_VM}, "every group's VMs, no scale set"
        assert VMSS not in everywhere
        assert [str(vm.id) for vm in compute.virtual_machines.list("RG-OPS")] == [OPS_VM]

        with pytest.raises(ResourceNotFoundError) as missing:
            list(compute.virtual_machines.list("rg-nowhere"))
        assert missing.value.error is not None
        assert missing.value.error.code == "ResourceGroupNotFound"

    # The same VMs the generic listing finds by type.
    with arm_client(ResourceManagementClient, estate, SUB) as resources:
        by_type = resources.resources.list(
            filter="resourceType eq 'Microsoft.Compute/virtualMachines'"
        )
        assert {str(r.id) for r in by_type} == everywhere


def test_vm_lists_match_the_spec_and_page(estate: AzureSim):
    with client(estate) as http:
        for path, expected in (
            (IN_GROUP, [VM1, VM2]),
            (IN_SUBSCRIPTION, sorted([VM1, VM2, OPS_VM])),
        ):
            listed = call(http, "GET", path, 200, specs=COMPUTE_SPECS)
            assert sorted(vm["id"] for vm in listed["value"]) == expected
            assert "nextLink" not in listed

            # One at a time, `nextLink` carrying the query, as azuresim's other lists page.
            version = {"api-version": "2024-11-01", "$top": "1"}
            page = http.get(path, params=version).json()
            seen = [vm["id"] for vm in page["value"]]
            while "nextLink" in page:
                assert page["nextLink"].startswith(estate.url) and "%24top=1" in page["nextLink"]
                page = http.get(page["nextLink"]).json()
                assert len(page["value"]) == 1
                seen += [vm["id"] for vm in page["value"]]
            assert seen == [vm["id"] for vm in listed["value"]]

        missing = call(
            http, "GET", IN_GROUP.replace("rg-web", "rg-nowhere"), 404, specs=COMPUTE_SPECS
        )
        assert missing["error"]["code"] == "ResourceGroupNotFound"
        # An api-version the compute provider never had is ARM's 400, not a list.
        refused = http.get(IN_GROUP, params={"api-version": "1999-01-01"})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "NoRegisteredProviderFound"
        # A list is read, never written.
        assert http.put(IN_GROUP, params={"api-version": "2024-11-01"}, json={}).status_code == 405


def test_a_write_through_the_sdk_shows_in_the_list(estate: AzureSim):
    with arm_client(ComputeManagementClient, estate, SUB) as compute:
        vm = compute.virtual_machines.get("rg-web", "vm-web-2")
        vm.tags = {**(vm.tags or {}), "owner": "payments"}
        compute.virtual_machines.begin_create_or_update("rg-web", "vm-web-2", vm).result()
        listed = {str(v.id): v for v in compute.virtual_machines.list("rg-web")}
        assert (listed[VM2].tags or {}).get("owner") == "payments"
        with pytest.raises(HttpResponseError):  # the list is a GET, not a collection to post to
            compute.virtual_machines.begin_create_or_update("rg-web", "", vm).result()
