"""The api-versions Azure documents for each resource type azuresim serves, and
Azure's own answer to any other.

The lists are the version folders of Azure's REST API specifications
(azure-rest-api-specs, `specification/<service>/resource-manager/<namespace>/
{stable,preview}/<version>/`), as Microsoft Learn's "allversions" pages list
them, up to the versions the pinned SDKs send (azure-mgmt-compute 39 sends
2026-04-01, azure-mgmt-network 33.1 sends 2026-03-01). Newest first, as ARM's
provider listing orders them. tests/azuresim/test_against_specs.py checks the
vendored specifications' versions are here.
"""

from __future__ import annotations

import re

from stanch.azuresim.errors import ArmError

# One resource provider release covers every type it serves (virtualMachines,
# virtualMachineScaleSets, locations/operations share Microsoft.Compute's).
COMPUTE = (
    "2026-04-01", "2026-03-01", "2025-11-01", "2025-04-01", "2024-11-01", "2024-07-01",
    "2024-03-01", "2023-09-01", "2023-07-01", "2023-03-01", "2022-11-01", "2022-08-01",
    "2022-03-01", "2021-11-01", "2021-07-01", "2021-04-01", "2021-03-01", "2020-12-01",
    "2020-06-01", "2019-12-01", "2019-07-01", "2019-03-01", "2018-10-01", "2018-06-01",
    "2018-04-01", "2017-12-01", "2017-03-30", "2016-04-30-preview", "2016-03-30",
    "2015-06-15", "2015-05-01-preview",
)  # fmt: skip
# Managed Run Command (virtualMachines/runCommands) came with 2020-06-01; the
# older `runCommand` action takes the virtual machine's versions.
COMPUTE_RUN_COMMANDS = COMPUTE[: COMPUTE.index("2020-06-01") + 1]
# Disks and snapshots are the disk RP's, released on their own dates
# (azure-mgmt-compute 39 sends 2026-03-02 for them).
DISKS = (
    "2026-03-02", "2025-01-02", "2024-03-02", "2023-10-02", "2023-04-02", "2023-01-02",
    "2022-07-02", "2022-03-02", "2021-12-01", "2021-08-01", "2021-04-01", "2020-12-01",
    "2020-09-30", "2020-06-30", "2020-05-01", "2019-11-01", "2019-07-01", "2019-03-01",
    "2018-09-30", "2018-06-01", "2018-04-01", "2017-03-30", "2016-04-30-preview",
)  # fmt: skip

NETWORK = (
    "2026-03-01", "2026-01-01", "2025-09-01", "2025-07-01", "2025-05-01", "2025-03-01",
    "2025-01-01", "2024-10-01", "2024-07-01", "2024-05-01", "2024-03-01", "2024-01-01",
    "2023-11-01", "2023-09-01", "2023-06-01", "2023-05-01", "2023-04-01", "2023-02-01",
    "2022-11-01", "2022-09-01", "2022-07-01", "2022-05-01", "2022-01-01", "2021-08-01",
    "2021-05-01", "2021-03-01", "2021-02-01", "2020-11-01", "2020-08-01", "2020-07-01",
    "2020-06-01", "2020-05-01", "2020-04-01", "2020-03-01", "2019-12-01", "2019-11-01",
    "2019-09-01", "2019-08-01", "2019-07-01", "2019-06-01", "2019-04-01", "2019-02-01",
    "2018-12-01", "2018-11-01", "2018-10-01", "2018-08-01", "2018-07-01", "2018-06-01",
    "2018-04-01", "2018-02-01", "2018-01-01", "2017-11-01", "2017-10-01", "2017-09-01",
    "2017-08-01", "2017-06-01", "2017-03-01", "2016-12-01", "2016-11-01", "2016-10-01",
    "2016-09-01", "2016-08-01", "2016-07-01", "2016-06-01", "2016-03-30", "2015-06-15",
    "2015-05-01-preview",
)  # fmt: skip

# Microsoft.Resources: resource groups, resources, providers, tags.
RESOURCES = (
    "2025-04-01", "2025-03-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01",
    "2022-09-01", "2021-04-01", "2021-01-01", "2020-10-01", "2020-08-01", "2020-06-01",
    "2019-10-01", "2019-08-01", "2019-07-01", "2019-05-10", "2019-05-01", "2019-03-01",
    "2018-05-01", "2018-02-01", "2017-05-10", "2016-09-01", "2016-07-01", "2016-02-01",
    "2015-11-01", "2015-01-01", "2014-04-01-preview",
)  # fmt: skip
# Tags as an extension resource (`{scope}/providers/Microsoft.Resources/tags/default`).
TAGS = RESOURCES[: RESOURCES.index("2019-10-01") + 1]
SUBSCRIPTIONS = (
    "2022-12-01", "2021-01-01", "2020-01-01", "2019-11-01", "2019-06-01", "2018-06-01",
    "2016-06-01", "2015-11-01", "2014-04-01-preview",
)  # fmt: skip
LOCKS = ("2020-05-01", "2017-04-01", "2016-09-01", "2015-01-01")
WORKSPACES = (
    "2025-07-01", "2025-02-01", "2023-09-01", "2022-10-01", "2021-12-01-preview", "2021-06-01",
    "2020-10-01", "2020-08-01", "2020-03-01-preview", "2017-03-15-preview",
    "2015-11-01-preview", "2015-03-20",
)  # fmt: skip
RESOURCE_HEALTH = (
    "2025-05-01", "2024-02-01", "2023-10-01-preview", "2022-10-01", "2020-05-01",
    "2018-08-01", "2018-07-01", "2017-07-01", "2015-01-01",
)  # fmt: skip
# Traffic Manager is Microsoft.Network's, released on its own dates
# (azure-mgmt-trafficmanager 2.0 sends 2026-09-01); endpoints take the profile's.
TRAFFIC_MANAGER = (
    "2026-09-01", "2022-04-01", "2022-04-01-preview", "2018-08-01", "2018-04-01",
    "2018-03-01", "2018-02-01", "2017-09-01-preview", "2017-05-01", "2017-03-01",
    "2015-11-01", "2015-04-28-preview",
)  # fmt: skip
METRICS_BATCH = ("2024-02-01", "2023-10-01", "2023-05-01-preview")
# Microsoft.Authorization's role-based access control (azure-mgmt-authorization 4
# sends 2022-04-01 for both).
ROLE_ASSIGNMENTS = (
    "2022-04-01", "2020-10-01-preview", "2020-08-01-preview", "2020-04-01-preview",
    "2020-03-01-preview", "2018-09-01-preview", "2018-01-01-preview", "2017-10-01-preview",
    "2015-07-01",
)  # fmt: skip
ROLE_DEFINITIONS = ("2022-05-01-preview", "2022-04-01", "2018-01-01-preview", "2015-07-01")

# Types azuresim serves, per namespace, with their versions. Storage, Web and
# Sql appear in worlds as resources to read; their newest stable versions do.
API_VERSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "Microsoft.Compute": {
        "virtualMachines": COMPUTE,
        "virtualMachines/runCommands": COMPUTE_RUN_COMMANDS,
        "disks": DISKS,
        "snapshots": DISKS,
        "locations/diskOperations": DISKS,
        "virtualMachineScaleSets": COMPUTE,
        "locations": COMPUTE,
        "locations/operations": COMPUTE,
    },
    "Microsoft.Network": {
        "networkInterfaces": NETWORK,
        "networkSecurityGroups": NETWORK,
        "networkSecurityGroups/securityRules": NETWORK,
        "virtualNetworks": NETWORK,
        "networkWatchers": NETWORK,
        "networkWatchers/packetCaptures": NETWORK,
        "trafficManagerProfiles": TRAFFIC_MANAGER,
        "trafficManagerProfiles/azureEndpoints": TRAFFIC_MANAGER,
        "trafficManagerProfiles/externalEndpoints": TRAFFIC_MANAGER,
        "trafficManagerProfiles/nestedEndpoints": TRAFFIC_MANAGER,
        "locations/operations": NETWORK,
    },
    "Microsoft.Resources": {
        "subscriptions": SUBSCRIPTIONS,
        "resourceGroups": RESOURCES,
        "resources": RESOURCES,
        "subscriptions/resources": RESOURCES,
        "subscriptions/providers": RESOURCES,
        "subscriptions/resourceGroups": RESOURCES,
        "tags": TAGS,
    },
    "Microsoft.Authorization": {
        "locks": LOCKS,
        "roleAssignments": ROLE_ASSIGNMENTS,
        "roleDefinitions": ROLE_DEFINITIONS,
    },
    "Microsoft.OperationalInsights": {"workspaces": WORKSPACES},
    "Microsoft.ResourceHealth": {"availabilityStatuses": RESOURCE_HEALTH},
    "Microsoft.Insights": {"metrics": METRICS_BATCH},
    "Microsoft.Storage": {"storageAccounts": ("2025-01-01", "2024-01-01", "2023-05-01")},
    "Microsoft.Web": {"sites": ("2024-11-01", "2024-04-01", "2023-12-01")},
    "Microsoft.Sql": {
        "servers": ("2023-08-01", "2021-11-01"),
        "servers/databases": ("2023-08-01", "2021-11-01"),
    },
}

# ARM's shape of an api-version: a date, optionally with a suffix such as -preview.
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-[A-Za-z0-9]+)*$")


def namespace_of(type_: str) -> tuple[str, dict[str, tuple[str, ...]]] | None:
    namespace = type_.partition("/")[0].lower()
    for ns, types in API_VERSIONS.items():
        if ns.lower() == namespace:
            return ns, types
    return None


def api_versions(type_: str) -> tuple[str, ...]:
    """The versions of `Namespace/type[/child]` (any case); empty if unknown."""
    found = namespace_of(type_)
    if found is None:
        return ()
    rest = type_.partition("/")[2].lower()
    return next((v for t, v in found[1].items() if t.lower() == rest), ())


def check_api_version(type_: str, version: str, location: str = "westeurope") -> None:
    """Refuse an api-version the way ARM does.

    Microsoft.Resources and Microsoft.Authorization are ARM's own: an unknown
    version there is `400 InvalidApiVersionParameter`. A resource provider's
    type answers `400 NoRegisteredProviderFound` (with the versions and
    locations it has), an unknown type `404 InvalidResourceType`, an unknown
    namespace `404 InvalidResourceNamespace`.
    """
    found = namespace_of(type_)
    versions = api_versions(type_)
    if found is not None and version in versions:
        return
    if found is None:
        raise ArmError(
            404,
            "InvalidResourceNamespace",
            f"The resource namespace '{type_.partition('/')[0]}' is invalid.",
        )
    namespace = found[0]
    if not versions:
        raise ArmError(
            404,
            "InvalidResourceType",
            f"The resource type '{type_.partition('/')[2]}' could not be found in the "
            f"namespace '{namespace}' for api version '{version}'.",
        )
    if namespace in ("Microsoft.Resources", "Microsoft.Authorization") or not _VERSION.match(
        version
    ):
        raise ArmError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are "
            f"'{','.join(versions)}'. The supported locations are ', {location}'.",
        )
    raise ArmError(
        400,
        "NoRegisteredProviderFound",
        f"No registered resource provider found for location '{location}' and API version "
        f"'{version}' for type '{type_.partition('/')[2]}'. The supported api-versions are "
        f"'{', '.join(versions)}'. The supported locations are '{location}'.",
    )
