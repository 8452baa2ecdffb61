"""A fleet on several hosts shares one truth (issue 14, item 4).

Five hosts on one machine, each a network namespace joined to a bridge by a
veth pair (tests/support/netns.py): Temporal, PostgreSQL and Azurite on one,
a `stanch worker` on each of two, two `stanch gateway` processes on one, and
azuresim on its own (tests/support/fleet.py). Nothing is shared but what the
settings name; the test posts alerts from the machine, as Azure Monitor would,
runs people's commands on the gateway host, and cuts links and restarts
PostgreSQL under load. Needs root (CI runs as root)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from stanch.harness.waiting import eventually
from tests.support.fleet import (
    GATEWAYS,
    Fleet,
    alert_bodies,
    alert_counts,
    missing_from_audit,
    storm,
)

# ---- (a) an alert storm over both gateways ----------------------------------------

STORM_ALERTS, STORM_INCIDENTS, STORM_SENDERS = 200, 10, 20


async def test_an_alert_storm_over_both_gateways_opens_one_incident_per_fingerprint(
    fleet: Fleet,
):
    bodies = alert_bodies("fleet-storm", STORM_INCIDENTS, STORM_ALERTS)

    trips = await storm(fleet, bodies, STORM_SENDERS)

    refused = [(t.alert_id, t.answers) for t in trips if not t.accepted]
    assert not refused, refused
    assert Counter(t.gateway for t in trips) == {0: STORM_ALERTS // 2, 1: STORM_ALERTS // 2}
    incidents = Counter(t.incident_id for t in trips)
    assert len(incidents) == STORM_INCIDENTS, incidents
    # Each fingerprint opened once, by one of the two gateways; every other
    # alert of it joined that incident.
    opened = Counter(t.incident_id for t in trips if t.opened)
    assert opened == dict.fromkeys(incidents, 1), opened
    for incident, (accepted, counted) in (await alert_counts(fleet, trips)).items():
        assert counted == accepted == STORM_ALERTS // STORM_INCIDENTS, incident
    assert missing_from_audit(fleet, trips) == []


# ---- (c) one audit chain, written by every host ------------------------------------


async def test_audit_verify_passes_over_records_written_by_every_host(fleet: Fleet):
    hosts = {"gateways", "worker-1", "worker-2"}

    async def every_host_wrote() -> dict[str, int] | None:
        writers = await asyncio.to_thread(fleet.audit_writers)
        return writers if hosts <= set(writers) else None

    writers = None
    for _ in range(5):
        # New incidents: the gateways record their alerts; whichever worker
        # runs an incident's activities records those.
        await storm(fleet, alert_bodies("fleet-audit", 4, 8), 4)
        with contextlib.suppress(AssertionError):
            writers = await eventually(every_host_wrote, 10, "records from every host")
            break
    assert writers, f"not every host wrote: {fleet.audit_writers()}"

    verified = await fleet.stanch(GATEWAYS, "audit", "verify")

    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "chain intact" in verified.stdout, verified.stdout
    (total,) = fleet.query("SELECT count(*) FROM audit_records")[0]
    assert sum(writers.values()) <= total
    print(f"\naudit records by host: {writers}; `stanch audit verify`: {verified.stdout}")
