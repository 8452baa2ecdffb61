"""Traffic Manager activities with the real SDK client against azuresim: a
failover and its undo write exactly the planned PATCHes and end where they
started; a retry after a fault (refused, or applied with its answer lost)
ends where a clean run does; a Weighted profile fails over by disabling the
primary; serving means Online (and the probe URL answering)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.trafficmanager.models import Endpoint, EndpointProperties, Profile
from temporalio.exceptions import ApplicationError

from stanch.activities.azure_clients import AzureClients
from stanch.activities.traffic import TrafficActivities
from stanch.azuresim import AzureSim
from stanch.azuresim.amend import Amendment, ResourceChange, amend
from stanch.azuresim.faults import Fault
from stanch.harness.waiting import eventually
from stanch.models.traffic import (
    EndpointChange,
    ProfileRef,
    ServingCheck,
    TrafficProfile,
    failover_settings,
)
from stanch.testing.estate import RG, SUB
from tests.support.probe_target import probe_target

PROFILE = f"{RG}/providers/Microsoft.Network/trafficManagerProfiles/tm-web"
WEST = f"{PROFILE}/externalEndpoints/web-westeurope"
NORTH = f"{PROFILE}/externalEndpoints/web-northeurope"
WEIGHTED = f"{RG}/providers/Microsoft.Network/trafficManagerProfiles/tm-api"


def endpoint_writes(sim: AzureSim, since: int = 0) -> list[tuple[str, str, Any]]:
    """(endpoint, field, value) of every endpoint write azuresim applied, in order."""
    found = []
    for call in sim.journal.calls(since):
        if call["mutation"] and call["applied"] and call["status"] in (200, 201, None):
            (field, value), *_ = call["body"]["properties"].items()
            found.append((call["path"].rsplit("/", 1)[-1], field, value))
    return found


def held(profile: TrafficProfile) -> dict[str, tuple[str, int | None, int | None]]:
    return {e.name: (e.endpoint_status, e.priority, e.weight) for e in profile.endpoints}


async def failover_change(traffic: TrafficActivities, profile_id: str = PROFILE) -> EndpointChange:
    profile = await traffic.read_traffic_profile(ProfileRef(profile_id=profile_id))
    primary, secondary = (
        ("web-westeurope", "web-northeurope")
        if profile_id == PROFILE
        else ("api-westeurope", "api-northeurope")
    )
    settings, previous = failover_settings(profile, primary, secondary)
    return EndpointChange(
        profile_id=profile_id, incident_id="inc1", settings=settings, previous=previous
    )


async def test_a_priority_failover_and_its_undo_write_exactly_the_plan(
    azure: AzureClients, sim: AzureSim
):
    traffic = TrafficActivities(azure)
    before = await traffic.read_traffic_profile(ProfileRef(profile_id=PROFILE))
    assert before.routing_method == "Priority"
    assert held(before) == {
        "web-westeurope": ("Enabled", 1, 1),
        "web-northeurope": ("Enabled", 2, 1),
    }
    assert before.endpoint("web-westeurope").monitor_status == "Degraded"
    change = await failover_change(traffic)

    moved = await traffic.set_endpoints(change)
    # Priorities are distinct in a profile: the primary steps aside first,
    # which already sends traffic to the secondary.
    assert endpoint_writes(sim) == [
        ("web-westeurope", "priority", 3),
        ("web-northeurope", "priority", 1),
        ("web-westeurope", "priority", 2),
    ]
    assert [w.describe() for w in moved.writes] == [
        "web-westeurope.priority=3",
        "web-northeurope.priority=1",
        "web-westeurope.priority=2",
    ]
    after = await traffic.read_traffic_profile(ProfileRef(profile_id=PROFILE))
    assert after.first_by_priority() is not None
    assert after.first_by_priority().name == "web-northeurope"  # type: ignore[union-attr]

    again = await traffic.set_endpoints(change)
    assert again.writes == [], "set-to-value: a second run writes nothing"

    mark = sim.journal.calls()[-1]["seq"]
    await traffic.set_endpoints(change.undo())
    assert endpoint_writes(sim, mark) == [
        ("web-northeurope", "priority", 3),
        ("web-westeurope", "priority", 1),
        ("web-northeurope", "priority", 2),
    ]
    restored = await traffic.read_traffic_profile(ProfileRef(profile_id=PROFILE))
    assert held(restored) == held(before)
    assert all(c["method"] in ("GET", "PATCH") for c in sim.journal.calls()), "nothing deleted"


@pytest.mark.parametrize(
    "fault",
    [
        # Refused: nothing applied, the retry writes it.
        Fault(path="externalEndpoints/web-northeurope", method="PATCH", status=503),
        # Applied, its answer lost: the retry must not write it again.
        Fault(path="externalEndpoints/web-northeurope", method="PATCH", drop_after=True),
        # The first write applied, its answer lost: no second parking.
        Fault(path="externalEndpoints/web-westeurope", method="PATCH", drop_after=True),
    ],
    ids=["503", "northeurope-answer-lost", "westeurope-answer-lost"],
)
async def test_a_retry_after_a_fault_ends_where_a_clean_run_does(
    azure: AzureClients, sim: AzureSim, fault: Fault
):
    traffic = TrafficActivities(azure)
    before = held(await traffic.read_traffic_profile(ProfileRef(profile_id=PROFILE)))
    change = await failover_change(traffic)
    sim.faults.add(fault)
    with pytest.raises(ApplicationError) as failed:
        await traffic.set_endpoints(change)
    assert not failed.value.non_retryable, "Temporal retries it"
    retried = await traffic.set_endpoints(change)  # as Temporal's retry would
    assert retried.writes, "the retry finished the failover"

    after = held(await traffic.read_traffic_profile(ProfileRef(profile_id=PROFILE)))
    assert after == {"web-westeurope": ("Enabled", 2, 1), "web-northeurope": ("Enabled", 1, 1)}
    writes = endpoint_writes(sim)
    assert writes[-1] in (("web-westeurope", "priority", 2), ("web-northeurope", "priority", 1))
    assert len(writes) <= 3, writes  # never parked twice, nothing written twice
    await traffic.set_endpoints(change.undo())
    assert held(await traffic.read_traffic_profile(ProfileRef(profile_id=PROFILE))) == before


async def test_a_weighted_profile_fails_over_by_disabling_the_primary(
    azure: AzureClients, sim: AzureSim
):
    """A weight is 1..1000 (0 is refused): the primary is taken out of
    rotation instead; a secondary kept disabled is enabled first, and its
    probes check it before it reads Online."""
    client = azure.traffic_manager(SUB)
    profile = {
        "location": "global",
        "properties": {
            "trafficRoutingMethod": "Weighted",
            "endpoints": [
                _external("api-westeurope", weight=100, status="Enabled", priority=1),
                _external("api-northeurope", weight=50, status="Disabled", priority=2),
            ],
        },
    }
    await client.profiles.create_or_update("rg-web", "tm-api", Profile(profile))
    traffic = TrafficActivities(azure)
    before = held(await traffic.read_traffic_profile(ProfileRef(profile_id=WEIGHTED)))
    change = await failover_change(traffic, WEIGHTED)
    mark = sim.journal.calls()[-1]["seq"]
    await traffic.set_endpoints(change)
    assert endpoint_writes(sim, mark) == [
        ("api-northeurope", "endpointStatus", "Enabled"),
        ("api-westeurope", "endpointStatus", "Disabled"),
    ]
    check = ServingCheck(profile_id=WEIGHTED, endpoint="api-northeurope")
    first = await traffic.check_endpoint_serving(check)
    assert first.monitor_status == "CheckingEndpoint" and not first.serving

    async def online() -> bool:
        return (await traffic.check_endpoint_serving(check)).serving

    await eventually(online, 10, "the enabled secondary Online", every=0.1)
    out = (await traffic.read_traffic_profile(ProfileRef(profile_id=WEIGHTED))).endpoint(
        "api-westeurope"
    )
    assert (out.endpoint_status, out.monitor_status, out.weight) == ("Disabled", "Disabled", 100)

    mark = sim.journal.calls()[-1]["seq"]
    await traffic.set_endpoints(change.undo())
    assert endpoint_writes(sim, mark) == [
        ("api-westeurope", "endpointStatus", "Enabled"),
        ("api-northeurope", "endpointStatus", "Disabled"),
    ]
    assert held(await traffic.read_traffic_profile(ProfileRef(profile_id=WEIGHTED))) == before


async def test_serving_means_online_and_the_probe_answering(azure: AzureClients, sim: AzureSim):
    traffic = TrafficActivities(azure)
    with probe_target() as service:
        check = ServingCheck(profile_id=PROFILE, endpoint="web-northeurope", probe_url=service.url)
        ok = await traffic.check_endpoint_serving(check)
        assert ok.serving and ok.probe_status == 200 and service.gets == 1
        service.status = 503
        broken = await traffic.check_endpoint_serving(check)
        assert not broken.serving and broken.probe_status == 503
        service.status = 200
        with sim.state.lock:  # the probes see the secondary fail (the world's knob)
            amend(sim.state, Amendment(resources=[ResourceChange(id=NORTH, health="Degraded")]))
        degraded = await traffic.check_endpoint_serving(check)
        assert degraded.monitor_status == "Degraded" and not degraded.serving
    west = ServingCheck(profile_id=PROFILE, endpoint="web-westeurope")
    assert not (await traffic.check_endpoint_serving(west)).serving
    with pytest.raises(ApplicationError) as unknown:
        await traffic.check_endpoint_serving(ServingCheck(profile_id=PROFILE, endpoint="nope"))
    assert unknown.value.non_retryable and "has no endpoint 'nope'" in unknown.value.message


async def test_azuresim_refuses_what_traffic_manager_refuses(azure: AzureClients, sim: AzureSim):
    """Through the real SDK: a priority another endpoint holds and a weight
    of 0 are 400s, an endpoint type ARM does not know a 404; none changes anything."""
    endpoints = azure.traffic_manager(SUB).endpoints
    refused: list[str] = []
    for kind, name, properties in (
        ("externalEndpoints", "web-northeurope", {"priority": 1}),
        ("externalEndpoints", "web-northeurope", {"weight": 0}),
        ("publicEndpoints", "web-northeurope", {"priority": 5}),
    ):
        with pytest.raises(HttpResponseError) as e:
            body = Endpoint(properties=EndpointProperties(properties))
            await endpoints.update("rg-web", "tm-web", kind, name, body)
        refused.append(f"{e.value.status_code} {e.value.message}")
    assert refused[0].startswith("400") and "already has" in refused[0]
    assert refused[1].startswith("400") and "between 1 and 1000" in refused[1]
    assert refused[2].startswith("404") and "InvalidResourceType" in refused[2]
    profile = await TrafficActivities(azure).read_traffic_profile(ProfileRef(profile_id=PROFILE))
    assert held(profile)["web-northeurope"] == ("Enabled", 2, 1)
    assert endpoint_writes(sim) == []


def _external(name: str, *, weight: int, status: str, priority: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints",
        "properties": {
            "target": f"{name}.example.net",
            "weight": weight,
            "priority": priority,
            "endpointStatus": status,
        },
    }
