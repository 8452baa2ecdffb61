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
import re
from collections import Counter

from stanch.harness.waiting import eventually
from stanch.testing.started import Started
from tests.support.azurite import tagged
from tests.support.fleet import (
    ADMIN_TOKEN,
    GATEWAYS,
    HOSTS,
    OPERATION_SECONDS,
    Fleet,
    alert_bodies,
    alert_counts,
    missing_from_audit,
    open_quarantines,
    storm,
)
from tests.support.fleet_drills import (
    audit_verified,
    cut_off_mid_restart,
    kill_switch_drill,
    postgres_restart_in_storm,
    storm_findings,
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
    checked = re.search(r": (\d+) records, chain intact", verified.stdout)
    assert checked, verified.stdout
    # What it checked holds every host's records (and every record has a writer).
    assert int(checked[1]) >= sum(writers.values())
    ((records, attributed),) = fleet.query(
        "SELECT (SELECT count(*) FROM audit_records), (SELECT count(*) FROM fleet_audit_writers)"
    )
    assert records == attributed
    print(f"\naudit records by host: {writers}; `stanch audit verify`: {verified.stdout}")


# ---- (b) the kill switch, flipped from the gateway host -----------------------------


async def test_the_kill_switch_flipped_on_the_gateway_host_stops_runbooks_on_both_worker_hosts(
    fleet: Fleet,
):
    drill = await kill_switch_drill(fleet, fleet.fresh_vms, waiting=4, started_while_off=2)

    assert set(drill.halted_on) == {"worker-1", "worker-2"}, drill.halted_on
    assert drill.writes == {}, "Azure saw a write"
    print(f"\nruns halted by the kill switch, by worker host: {dict(drill.halted_on)}")


# ---- (d) a worker host cut off in the middle of a runbook ----------------------------


async def test_a_worker_host_cut_off_mid_runbook_the_other_finishes_it_and_nothing_is_applied_twice(
    fleet: Fleet, started: Started
):
    cut = await cut_off_mid_restart(fleet, started)

    # The attempt that completed was the other host's (checked by the drill);
    # whatever the stale attempt did once its host came back, one restart.
    assert cut.writes == {("POST", "restart"): 1}, cut.writes
    print(
        f"\n{cut.host} cut off mid-restart: {cut.other} took restart_vm over at attempt "
        f"{cut.attempt}, {cut.took_over:.1f} s after the cut (the operation settles "
        f"{OPERATION_SECONDS:g} s after its POST), and the runbook finished {cut.finished:.1f} s "
        f"after the cut; {cut.host} was back and idle {cut.rejoined:.1f} s after its link "
        f"returned; one POST in azuresim's journal; attempts seen: {cut.attempts}"
    )


# ---- (e) PostgreSQL restarted during a storm -----------------------------------------

OUTAGE_INCIDENTS = 6


async def test_postgresql_restarted_during_a_storm_loses_no_accepted_alert(fleet: Fleet):
    outage = await postgres_restart_in_storm(
        fleet, fingerprints=OUTAGE_INCIDENTS, senders=12, before=40, refused=6, after=40
    )

    # Every answer was a 202 or a 503 (with Retry-After), and every alert,
    # retried as Azure retries a 503, was accepted in the end, counted once
    # by its incident and recorded once in the chain.
    assert set(outage.answers) == {202, 503}, outage.answers
    assert None not in outage.retry_after, outage.retry_after
    findings = await storm_findings(fleet, outage.trips)
    assert findings.problems(OUTAGE_INCIDENTS) == [], findings
    verified, said = await audit_verified(fleet)
    assert verified, said
    print(
        f"\nPostgreSQL down {outage.down_for:.1f} s during a storm of {len(outage.trips)} "
        f"alerts: {outage.refused} answers were 503 (Retry-After "
        f"{sorted(map(str, outage.retry_after))}), every alert accepted after "
        f"{max(len(t.answers) for t in outage.trips)} tries at most, each counted once by its "
        "incident and recorded once in the chain"
    )


# ---- nothing shared on a host's own disk --------------------------------------------


async def test_every_shared_fact_is_in_the_shared_stores_and_none_on_a_hosts_disk(fleet: Fleet):
    # Work that reaches every store: alerts and a toggle through the gateways
    # (audit, toggles), incidents paged and quarantines observing their VMs on
    # both worker hosts (audit, page records, evidence).
    incidents = await open_quarantines(fleet, fleet.fresh_vms(2))
    await storm(fleet, alert_bodies("fleet-disk", 4, 8), 4)
    level = await fleet.stanch(GATEWAYS, "toggle", "log-level", "info", api_token=ADMIN_TOKEN)
    assert level.returncode == 0, level.stdout + level.stderr

    assert fleet.per_host_stores() == {}, {h.name: fleet.files(h) for h in HOSTS}
    assert fleet.evidence_container is not None
    for incident in incidents:
        assert tagged(fleet.evidence_container, incident), f"no evidence in Blob for {incident}"
    (toggles,) = fleet.query("SELECT doc FROM toggles")
    assert toggles[0]["log_level"]["level"] == "info"
    print("\nwhat each host keeps on its own disk:")
    for host in HOSTS:
        print(f"  {host.name}: {', '.join(fleet.files(host))}")
