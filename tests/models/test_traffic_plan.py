"""The failover's plan, without a server: which values move, in which order,
and that a plan made from a half-applied state finishes it without sending
traffic back to the primary on the way."""

from __future__ import annotations

import pytest

from stanch.models.traffic import (
    EndpointSetting,
    TrafficEndpoint,
    TrafficProfile,
    endpoint_writes,
    failover_settings,
    unmet,
)

PROFILE_ID = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/trafficManagerProfiles/tm"
)


def profile(method: str = "Priority", **priorities: int) -> TrafficProfile:
    return TrafficProfile(
        profile_id=PROFILE_ID,
        name="tm",
        routing_method=method,
        endpoints=[
            TrafficEndpoint(name=name, kind="externalEndpoints", priority=p, weight=1)
            for name, p in priorities.items()
        ],
    )


def planned(p: TrafficProfile, settings: list[EndpointSetting]) -> list[str]:
    return [w.describe() for w in endpoint_writes(p, settings)]


def test_a_swap_parks_the_primary_first_and_keeps_a_third_endpoint_where_it_is():
    p = profile(a=1, c=2, b=3)
    settings, previous = failover_settings(p, "a", "b")
    assert planned(p, settings) == ["a.priority=4", "b.priority=1", "a.priority=3"]
    assert [(s.name, s.priority) for s in previous] == [("b", 3), ("a", 1)]


def test_a_plan_from_a_half_applied_failover_finishes_it_without_a_flip_back():
    settings, _ = failover_settings(profile(a=1, b=2), "a", "b")
    parked = profile(a=3, b=2)  # the first write got through, then the attempt died
    assert planned(parked, settings) == ["b.priority=1", "a.priority=2"]
    done = profile(a=2, b=1)
    assert planned(done, settings) == [] and unmet(done, settings) == []


def test_parking_when_the_highest_priority_is_taken():
    p = profile(a=999, b=1000)
    settings, _ = failover_settings(p, "a", "b")
    assert planned(p, settings) == ["a.priority=998", "b.priority=999", "a.priority=1000"]


def test_nothing_to_do_when_traffic_is_already_on_the_secondary():
    assert failover_settings(profile(a=2, b=1), "a", "b") == ([], [])


def test_a_weighted_profile_enables_the_secondary_before_it_disables_the_primary():
    p = profile("Weighted", a=1, b=2)
    p.endpoints[1].endpoint_status = "Disabled"
    settings, previous = failover_settings(p, "a", "b")
    assert planned(p, settings) == ["b.endpointStatus=Enabled", "a.endpointStatus=Disabled"]
    assert [(s.name, s.endpoint_status) for s in previous] == [("b", "Disabled"), ("a", "Enabled")]


@pytest.mark.parametrize(
    ("method", "primary", "secondary", "problem"),
    [
        ("Performance", "a", "b", "routes by Performance"),
        ("Priority", "a", "a", "the same endpoint"),
        ("Priority", "a", "zz", "has no endpoint 'zz' (it has: a, b)"),
    ],
)
def test_what_cannot_fail_over_says_why(method, primary, secondary, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        failover_settings(profile(method, a=1, b=2), primary, secondary)
