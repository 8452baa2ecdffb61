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
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial

from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import WorkflowHandle

from stanch.harness.waiting import eventually
from stanch.harness.workers import worker_polling
from stanch.models.risk import Risk
from stanch.models.runbook import RunbookOutcome, RunbookResult
from stanch.testing.estate import VM2
from stanch.testing.runbooks import approval_plan, start_runbook
from stanch.testing.started import Started
from tests.support.azurite import tagged
from tests.support.chaos_estate import runbook_finished
from tests.support.fleet import (
    ADMIN_TOKEN,
    GATEWAYS,
    HOSTS,
    OPERATION_SECONDS,
    TASK_QUEUE,
    WORKER_1,
    WORKER_2,
    Fleet,
    activities_running,
    activity_attempts,
    activity_workers,
    alert_bodies,
    alert_counts,
    approve_isolation,
    missing_from_audit,
    open_quarantines,
    steady_storm,
    storm,
    writes_to,
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

WAITING, STARTED_WHILE_OFF = 4, 2
HALT = "halted: remediation switched off by dave: fleet drill"


async def test_the_kill_switch_flipped_on_the_gateway_host_stops_runbooks_on_both_worker_hosts(
    fleet: Fleet,
):
    since = await fleet.last_seq()
    halted_on: Counter[str] = Counter()
    touched: list[str] = []

    async def halt(incidents: list[str]) -> None:
        """Each gate opens (the runbook's next step is its first change); each
        runbook halts, on whichever worker host asks the switch."""
        for n, incident in enumerate(incidents):
            await approve_isolation(fleet, incident, n % 2)
        for incident in incidents:
            finished = partial(runbook_finished, fleet.temporal, incident)
            detail = await eventually(finished, 60, f"incident {incident}'s runbook", every=0.2)
            result, runbook = detail.view.state.runbook_result, detail.view.state.runbook
            assert result is not None and result.outcome is RunbookOutcome.HALTED, result
            assert result.summary.startswith(HALT), result.summary
            assert runbook is not None
            halted_on.update(
                await activity_workers(fleet, runbook.workflow_id, "check_remediation")
            )

    async def quarantines(count: int) -> list[str]:
        vms = fleet.fresh_vms(count)
        incidents = await open_quarantines(fleet, vms)
        touched.extend([f"vm-chaos-{vm:04d}" for vm in vms] + [f"-{i}" for i in incidents])
        return incidents

    try:
        waiting = await quarantines(WAITING)
        switched = await fleet.stanch(
            GATEWAYS,
            "toggle", "remediation", "off", "--reason", "fleet drill",
            api_token=ADMIN_TOKEN,
        )  # fmt: skip
        assert switched.returncode == 0, switched.stdout + switched.stderr
        await halt(waiting + await quarantines(STARTED_WHILE_OFF))
        # Temporal hands each task to whichever worker polls first: until both
        # hosts have had one, a few more runbooks started while it is off.
        for _ in range(3):
            if len(halted_on) == 2:
                break
            await halt(await quarantines(2))

        assert set(halted_on) == {"worker-1", "worker-2"}, halted_on
        assert writes_to(await fleet.journal(since), touched) == {}, "Azure saw a write"
    finally:
        on = await fleet.stanch(GATEWAYS, "toggle", "remediation", "on", api_token=ADMIN_TOKEN)
        assert on.returncode == 0, on.stdout + on.stderr
    print(f"\nruns halted by the kill switch, by worker host: {dict(halted_on)}")


# ---- (d) a worker host cut off in the middle of a runbook ----------------------------


async def restart_in_flight(handle: WorkflowHandle) -> PendingActivityInfo | None:
    for pending in (await handle.describe()).raw_description.pending_activities:
        if pending.activity_type.name == "restart_vm":
            return pending
    return None


async def test_a_worker_host_cut_off_mid_runbook_the_other_finishes_it_and_nothing_is_applied_twice(
    fleet: Fleet, started: Started
):
    since = await fleet.last_seq()
    handle = await start_runbook(
        started,
        fleet.temporal,
        TASK_QUEUE,
        "restart_vm",
        VM2,
        plan=approval_plan(auto_approve=[Risk.LOW, Risk.MEDIUM]),
    )

    # Azure accepted the restart (OPERATION_SECONDS long), and the operation's
    # token reached the server as a heartbeat: the activity is mid-wait.
    async def waiting_on_azure() -> PendingActivityInfo | None:
        pending = await restart_in_flight(handle)
        posted = writes_to(await fleet.journal(since), ["vm-web-2"])
        return pending if pending and pending.heartbeat_details.payloads and posted else None

    first = await eventually(waiting_on_azure, 60, "restart_vm heartbeating its token")
    holder = fleet.worker_of(first.last_worker_identity)
    assert holder is not None and first.attempt == 1, first
    other = "worker-2" if holder == "worker-1" else "worker-1"
    cut_off = WORKER_1 if holder == "worker-1" else WORKER_2

    fleet.net.cut(cut_off)
    cut_at = time.time()
    attempts: dict[int, str | None] = {}  # as the server handed them out

    async def watch() -> None:
        while True:
            pending = await restart_in_flight(handle)
            if pending is not None and pending.last_worker_identity:
                attempts[pending.attempt] = fleet.worker_of(pending.last_worker_identity)
            await asyncio.sleep(0.5)

    watching = asyncio.create_task(watch())
    try:
        result = await asyncio.wait_for(handle.result(), 240)
        finished = time.time() - cut_at
        assert isinstance(result, RunbookResult) and result.outcome is RunbookOutcome.MITIGATED
        # The attempt that completed was the other host's.
        (done,) = await activity_attempts(fleet, handle.id, "restart_vm")
        assert done.worker == other and done.attempt >= 2, done
        assert list(writes_to(await fleet.journal(since), ["vm-web-2"]).values()) == [1]
    finally:
        watching.cancel()
        fleet.net.restore(cut_off)
    restored_at = time.time()

    # The host is back: its worker polls again, and the attempt it was cut off
    # in has ended there (its next heartbeat learnt the activity is done).
    back = fleet.processes[cut_off.name]
    polling = partial(worker_polling, fleet.temporal, TASK_QUEUE, back.pid, restored_at)
    await eventually(polling, 120, f"{cut_off.name} polling again", every=0.5)
    idle = partial(activities_running, cut_off)
    await eventually(lambda: _zero(idle), 120, f"{cut_off.name}'s stale attempt over", every=0.5)
    rejoined = time.time() - restored_at

    writes = writes_to(await fleet.journal(since), ["vm-web-2"])
    assert [(method, path.rsplit("/", 1)[-1], n) for (method, path), n in writes.items()] == [
        ("POST", "restart", 1)
    ], writes
    print(
        f"\n{cut_off.name} cut off mid-restart: {other} took restart_vm over at attempt "
        f"{done.attempt}, {done.at - cut_at:.1f} s after the cut (the operation settles "
        f"{OPERATION_SECONDS:g} s after its POST), and the runbook finished {finished:.1f} s "
        f"after the cut; {cut_off.name} was back and idle {rejoined:.1f} s after its link "
        f"returned; one POST in azuresim's journal; attempts seen: {attempts}"
    )


async def _zero(reading: Callable[[], Awaitable[float | None]]) -> bool:
    return await reading() == 0


# ---- (e) PostgreSQL restarted during a storm -----------------------------------------

OUTAGE_INCIDENTS, OUTAGE_SENDERS = 6, 12
BEFORE, REFUSED_WHILE_DOWN, AFTER = 40, 6, 40  # alerts accepted / refused around the restart


async def test_postgresql_restarted_during_a_storm_loses_no_accepted_alert(fleet: Fleet):
    assert fleet.postgres is not None
    answers: Counter[int] = Counter()
    stop = asyncio.Event()
    down_for = 0.0

    async def restart() -> None:
        nonlocal down_for
        assert fleet.postgres is not None
        try:
            await eventually(lambda: _at_least(answers, 202, BEFORE), 60, "alerts before")
            await asyncio.to_thread(fleet.postgres.stop)
            stopped = time.monotonic()
            refused = answers[503] + REFUSED_WHILE_DOWN
            await eventually(lambda: _at_least(answers, 503, refused), 60, "503s while down")
            await asyncio.to_thread(fleet.postgres.start)
            down_for = time.monotonic() - stopped
            accepted = answers[202] + AFTER
            await eventually(lambda: _at_least(answers, 202, accepted), 90, "alerts after")
        finally:
            stop.set()

    storming = steady_storm(
        fleet, "fleet-pg", OUTAGE_INCIDENTS, OUTAGE_SENDERS, stop, answers, retry_5xx_for=120
    )
    trips, _ = await asyncio.gather(storming, restart())

    # Every answer was a 202 or a 503 (with Retry-After), and every alert,
    # retried as Azure retries a 503, was accepted in the end.
    assert set(answers) == {202, 503}, answers
    retry_after = {
        r for t in trips for a, r in zip(t.answers, t.retry_after, strict=True) if a == 503
    }
    assert None not in retry_after, retry_after
    assert [t.alert_id for t in trips if not t.accepted] == []
    opened = Counter(t.incident_id for t in trips if t.opened)
    assert len(opened) == OUTAGE_INCIDENTS and set(opened.values()) == {1}, opened
    for incident, (accepted, counted) in (await alert_counts(fleet, trips)).items():
        assert counted == accepted, (incident, accepted, counted)
    assert missing_from_audit(fleet, trips) == []
    verified = await fleet.stanch(GATEWAYS, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    print(
        f"\nPostgreSQL down {down_for:.1f} s during a storm of {len(trips)} alerts: "
        f"{answers[503]} answers were 503 (Retry-After {sorted(map(str, retry_after))}), every alert "
        f"accepted after {max(len(t.answers) for t in trips)} tries at most, each counted "
        "once by its incident and recorded once in the chain"
    )


async def _at_least(answers: Counter[int], status: int, count: int) -> bool:
    return answers[status] >= count


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
