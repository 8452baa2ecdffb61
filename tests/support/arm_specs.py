"""Azure's REST API specifications vendored under tests/azuresim/specs, and
the calls that check azuresim's ARM answers against them: each call goes out
at the api-version of the document that has its route, and its answer must
validate against that operation's response schema (tests/support/openapi.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from stanch.azuresim.admin import SimAdmin, trusting
from tests.support.openapi import Route, Validation, response_schema, route

SPECS = Path(__file__).parents[1] / "azuresim" / "specs" / "specification"
NETWORK = SPECS / "network/resource-manager/Microsoft.Network/stable/2024-05-01"
NSGS = NETWORK / "networkSecurityGroup.json"
NICS = NETWORK / "networkInterface.json"
RESOURCE_MANAGER = SPECS / "resources/resource-manager"
SUBSCRIPTIONS = (
    RESOURCE_MANAGER / "Microsoft.Resources/subscriptions/stable/2022-12-01/subscriptions.json"
)
RESOURCES = RESOURCE_MANAGER / "Microsoft.Resources/resources/stable/2025-04-01/resources.json"
LOCKS = RESOURCE_MANAGER / "Microsoft.Authorization/locks/stable/2020-05-01/locks.json"
WORKSPACES = (
    SPECS / "operationalinsights/resource-manager/Microsoft.OperationalInsights/"
    "OperationalInsights/stable/2025-07-01/Workspaces.json"
)
COMPUTE = SPECS / "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-11-01"
RUN_COMMANDS = COMPUTE / "runCommand.json"
COMPUTE_COMMON = COMPUTE / "computeRPCommon.json"
VIRTUAL_MACHINES = COMPUTE / "virtualMachine.json"
SCALE_SETS = COMPUTE / "virtualMachineScaleSet.json"
# The compute documents with the routes stanch calls (computeRPCommon.json and
# Microsoft.Compute/common-types/v1/common.json hold only the types they $ref).
COMPUTE_SPECS = [VIRTUAL_MACHINES, SCALE_SETS, RUN_COMMANDS]
RESOURCE_HEALTH = (
    SPECS / "resourcehealth/resource-manager/Microsoft.ResourceHealth/ResourceHealth/"
    "stable/2025-05-01/ResourceHealth.json"
)
# The ARM documents: every ARM route azuresim serves for these types must be in one.
ARM_SPECS = [NSGS, NICS, SUBSCRIPTIONS, RESOURCES, LOCKS, WORKSPACES, RESOURCE_HEALTH]
AUTH = {"Authorization": "Bearer anything"}
# ARM's long-running-operation URLs (`Azure-AsyncOperation`, `Location`): opaque
# to clients, in no document of the specification; the SDK follows them as given.
OPERATION_URL = re.compile(r"/providers/[^/]+/locations/[^/]+/operations/", re.IGNORECASE)


def client(sim: Any) -> httpx.Client:
    return httpx.Client(base_url=sim.url, verify=trusting(sim.ca_file), headers=AUTH, timeout=10)


def call(
    http: httpx.Client,
    method: str,
    path: str,
    status: int,
    body: Any = None,
    specs: list[Path] = ARM_SPECS,
    ignore: tuple[str, ...] = (),
) -> Any:
    """One ARM call at the api-version of the vendored document that has its
    route; the answer must have `status` and validate against that status's
    schema (`default`, the error schema, for a 4xx). `ignore`: fnmatch
    patterns of paths in the answer not checked (each a deliberate divergence)."""
    spec_route = route(specs, method, path)
    answer = http.request(method, path, params={"api-version": spec_route.version}, json=body)
    assert answer.status_code == status, f"{method} {path}: {answer.status_code} {answer.text}"
    if not answer.content:
        return None
    schema = response_schema(spec_route.spec, spec_route.template, method, status)
    problems = Validation(ignore=list(ignore)).check(answer.json(), schema)
    assert problems == [], f"{method} {path} ({status}): {problems}"
    return answer.json()


def clear_journal(sim: Any) -> None:
    admin = SimAdmin(sim.url, sim.ca_file)
    admin.clear_journal()
    admin.close()


def served_routes(sim: Any, specs: list[Path] = ARM_SPECS) -> list[tuple[Route, str]]:
    """Each ARM call azuresim answered (not 404/405) since the journal was
    cleared, with the spec route it is an instance of and its api-version."""
    admin = SimAdmin(sim.url, sim.ca_file)
    calls = admin.journal()
    admin.close()
    return [
        (route(specs, c["method"], c["path"]), c["query"]["api-version"])
        for c in calls
        # Log Analytics queries (`/v1/...`) are the data plane, checked on their own.
        if c["status"] not in (404, 405)
        and not c["path"].startswith("/v1/")
        and not OPERATION_URL.search(c["path"])
    ]
