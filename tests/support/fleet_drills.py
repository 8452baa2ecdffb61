"""The fleet's drills (issue 14, item 4), each one what an on-call week can
bring: a worker host cut off mid-runbook, PostgreSQL restarted under an alert
storm, the kill switch flipped from the gateway host. tests/fleet/test_fleet.py
runs each once; tests/fleet/test_fleet_soak.py runs them many times over on
one fleet. A drill does the damage and measures; what it must not have broken
is checked by the caller, from what the drill hands back (the soak counts
findings where the fast test asserts them)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import WorkflowHandle

from stanch.harness.waiting import eventually
from stanch.harness.workers import worker_polling
from stanch.models.risk import Risk
from stanch.models.runbook import RunbookOutcome, RunbookResult
from stanch.testing.estate import VM2
from stanch.testing.runbooks import approval_plan, start_runbook
from stanch.testing.started import Started
from tests.support.chaos_estate import runbook_finished
from tests.support.fleet import (
    ADMIN_TOKEN,
    GATEWAYS,
    TASK_QUEUE,
    WORKER_1,
    WORKER_2,
    Delivery,
    Fleet,
    activities_running,
    activity_attempts,
    activity_workers,
    alert_counts,
    approve_isolation,
    missing_from_audit,
    open_quarantines,
    steady_storm,
    writes_to,
)

RESTARTED = "vm-web-2"  # the VM the cut-off drill restarts (healthy: it recovers)

# ---- what a storm must not lose ------------------------------------------------------


@dataclass
class StormFindings:
    """What a storm's alerts came to: anything here but `alerts` is a finding."""

    alerts: int
    accepted: int
    unaccepted: list[str]  # alerts never answered 202, however often retried
    reopened: dict[str, int]  # incident -> times a 202 said it opened it, when not once
    incidents: int  # distinct incidents the 202s named
    miscounted: dict[str, tuple[int, int]]  # incident -> (accepted, counted), when they differ
    unaudited: list[str]  # accepted alerts without their record in the chain

    @property
    def lost(self) -> int:
        """Alerts Azure would believe delivered and that are not where they belong."""
        short = sum(max(0, a - c) for a, c in self.miscounted.values())
        return len(self.unaccepted) + len(self.unaudited) + short

    def problems(self, fingerprints: int) -> list[str]:
        found = []
        if self.unaccepted:
            found.append(f"{len(self.unaccepted)} alerts never accepted: {self.unaccepted[:3]}")
        if self.incidents != fingerprints or self.reopened:
            found.append(
                f"{self.incidents} incidents for {fingerprints} fingerprints, "
                f"opened more than once: {self.reopened}"
            )
        if self.miscounted:
            found.append(f"incidents counting other than accepted: {self.miscounted}")
        if self.unaudited:
            found.append(f"{len(self.unaudited)} accepted alerts not in the chain")
        return found


async def storm_findings(fleet: Fleet, trips: list[Delivery]) -> StormFindings:
    opened = Counter(t.incident_id for t in trips if t.opened)
    incidents = {t.incident_id for t in trips if t.incident_id is not None}
    counts = await alert_counts(fleet, trips)
    return StormFindings(
        alerts=len(trips),
        accepted=sum(t.accepted for t in trips),
        unaccepted=[t.alert_id for t in trips if not t.accepted],
        reopened={str(i): n for i, n in opened.items() if n != 1}
        | {i: 0 for i in incidents if i not in opened},
        incidents=len(incidents),
        miscounted={i: (a, c) for i, (a, c) in counts.items() if a != c},
        unaudited=await asyncio.to_thread(missing_from_audit, fleet, trips),
    )


async def audit_verified(fleet: Fleet) -> tuple[bool, str]:
    """`stanch audit verify` on the gateway host, over every host's records."""
    verified = await fleet.stanch(GATEWAYS, "audit", "verify")
    return verified.returncode == 0, (verified.stdout + verified.stderr).strip()


# ---- a worker host cut off in the middle of a runbook --------------------------------


@dataclass
class CutOff:
    host: str  # the worker host cut off
    other: str  # the one that finished the runbook
    attempt: int  # restart_vm's attempt that completed (on `other`)
    took_over: float  # s from the cut to that attempt's start
    finished: float  # s from the cut to the runbook's result
    rejoined: float  # s from the link's return to the host polling and idle
    writes: dict[tuple[str, str], int]  # azuresim's applied writes to the VM, cut to rejoin
    attempts: dict[int, str | None]  # restart_vm attempts as the server handed them out
    landed: list[str] = field(default_factory=list)  # hosts the runs took before this one


async def restart_in_flight(handle: WorkflowHandle[Any, Any]) -> PendingActivityInfo | None:
    for pending in (await handle.describe()).raw_description.pending_activities:
        if pending.activity_type.name == "restart_vm":
            return pending
    return None


async def restart_waiting_on_azure(
    fleet: Fleet, started: Started, since: int
) -> tuple[WorkflowHandle[Any, Any], PendingActivityInfo]:
    """restart_vm started on VM2: Azure accepted the restart (a 30 s operation)
    and the operation's token reached the server as a heartbeat, so the
    activity is mid-wait on one worker host."""
    handle = await start_runbook(
        started,
        fleet.temporal,
        TASK_QUEUE,
        "restart_vm",
        VM2,
        plan=approval_plan(auto_approve=[Risk.LOW, Risk.MEDIUM]),
    )

    async def waiting_on_azure() -> PendingActivityInfo | None:
        pending = await restart_in_flight(handle)
        posted = writes_to(await fleet.journal(since), [RESTARTED])
        return pending if pending and pending.heartbeat_details.payloads and posted else None

    return handle, await eventually(waiting_on_azure, 60, "restart_vm heartbeating its token")


async def mitigated(handle: WorkflowHandle[Any, Any], timeout: float) -> None:
    result = await asyncio.wait_for(handle.result(), timeout)
    assert isinstance(result, RunbookResult) and result.outcome is RunbookOutcome.MITIGATED, result


async def cut_off_mid_restart(
    fleet: Fleet, started: Started, *, host: str | None = None, tries: int = 1
) -> CutOff:
    """Cuts the link of the worker host running restart_vm while it waits on
    Azure, and waits for the runbook to finish on the other host, then for
    the cut host to come back, poll and have no attempt left running.

    Temporal hands the activity to whichever worker polls first: to cut
    `host`, up to `tries` runbooks are started one after the other, each one
    that lands elsewhere left to finish there (and checked: mitigated, one
    restart), before the last is cut wherever it landed."""
    landed: list[str] = []
    while True:
        since = await fleet.last_seq()
        handle, first = await restart_waiting_on_azure(fleet, started, since)
        holder = fleet.worker_of(first.last_worker_identity)
        assert holder is not None and first.attempt == 1, first
        if host in (None, holder) or len(landed) + 1 >= tries:
            break
        landed.append(holder)
        await mitigated(handle, 120)
        assert list(writes_to(await fleet.journal(since), [RESTARTED]).values()) == [1]

    other = "worker-2" if holder == "worker-1" else "worker-1"
    cut_off = WORKER_1 if holder == "worker-1" else WORKER_2
    fleet.net.cut(cut_off)
    cut_at = time.time()
    attempts: dict[int, str | None] = {}

    async def watch() -> None:
        while True:
            pending = await restart_in_flight(handle)
            if pending is not None and pending.last_worker_identity:
                attempts[pending.attempt] = fleet.worker_of(pending.last_worker_identity)
            await asyncio.sleep(0.5)

    watching = asyncio.create_task(watch())
    try:
        await mitigated(handle, 240)
        finished = time.time() - cut_at
        (done,) = await activity_attempts(fleet, handle.id, "restart_vm")
        assert done.worker == other and done.attempt >= 2, done
    finally:
        watching.cancel()
        fleet.net.restore(cut_off)
    restored_at = time.time()

    # The host is back: its worker polls again, and the attempt it was cut off
    # in has ended there (its next heartbeat learnt the activity is done).
    back = fleet.processes[cut_off.name]
    polling = partial(worker_polling, fleet.temporal, TASK_QUEUE, back.pid, restored_at)
    await eventually(polling, 120, f"{cut_off.name} polling again", every=0.5)

    async def idle() -> bool:
        return await activities_running(cut_off) == 0

    await eventually(idle, 120, f"{cut_off.name}'s stale attempt over", every=0.5)
    return CutOff(
        host=cut_off.name,
        other=other,
        attempt=done.attempt,
        took_over=done.at - cut_at,
        finished=finished,
        rejoined=time.time() - restored_at,
        writes={
            (method, path.rsplit("/", 1)[-1]): n
            for (method, path), n in writes_to(await fleet.journal(since), [RESTARTED]).items()
        },
        attempts=attempts,
        landed=landed,
    )


# ---- PostgreSQL restarted during a storm ---------------------------------------------


@dataclass
class Outage:
    down_for: float  # s from the stop to the start
    answers: Counter[int]  # every answer the gateways gave, by status
    trips: list[Delivery]
    retry_after: set[str | None]  # the Retry-After of every 503

    @property
    def refused(self) -> int:
        return self.answers[503]


async def postgres_restart_in_storm(
    fleet: Fleet,
    *,
    fingerprints: int,
    senders: int,
    before: int,
    refused: int,
    after: int,
) -> Outage:
    """A storm over both gateways; PostgreSQL stopped once `before` alerts were
    accepted, started again once `refused` more were refused, the storm
    stopped once `after` more were accepted. Every alert is retried on a 5xx,
    as Azure would."""
    assert fleet.postgres is not None
    postgres = fleet.postgres
    answers: Counter[int] = Counter()
    stop = asyncio.Event()
    down_for = 0.0

    async def at_least(status: int, count: int) -> bool:
        return answers[status] >= count

    async def restart() -> None:
        nonlocal down_for
        try:
            await eventually(partial(at_least, 202, before), 60, "alerts before")
            await asyncio.to_thread(postgres.stop)
            stopped = time.monotonic()
            await eventually(partial(at_least, 503, answers[503] + refused), 60, "503s")
            await asyncio.to_thread(postgres.start)
            down_for = time.monotonic() - stopped
            await eventually(partial(at_least, 202, answers[202] + after), 90, "alerts after")
        finally:
            stop.set()

    storming = steady_storm(
        fleet, "fleet-pg", fingerprints, senders, stop, answers, retry_5xx_for=120
    )
    trips, _ = await asyncio.gather(storming, restart())
    retry_after = {
        r for t in trips for a, r in zip(t.answers, t.retry_after, strict=True) if a == 503
    }
    return Outage(down_for, answers, trips, retry_after)


# ---- the kill switch, flipped from the gateway host -----------------------------------

HALT = "halted: remediation switched off by dave: fleet drill"


@dataclass
class KillSwitchDrill:
    halted_on: Counter[str]  # runs halted, by the worker host that asked the switch
    writes: dict[tuple[str, str], int]  # azuresim's writes to the drill's VMs while off
    runbooks: int


async def kill_switch_drill(
    fleet: Fleet,
    vms: Callable[[int], list[int]],
    *,
    waiting: int,
    started_while_off: int,
    drill: str = "fleet-vm",
) -> KillSwitchDrill:
    """`waiting` quarantines wait at their approval gate (their next step is
    their first change); `stanch toggle remediation off` on the gateway host;
    each gate opens and each runbook halts, on whichever worker host asks the
    switch, as do `started_while_off` more. Temporal hands each task to
    whichever worker polls first: until both hosts have halted one, a few
    more runbooks are started. The switch is back on when the drill ends.
    `vms(n)` names n failing VMs to quarantine; `drill` keeps the drill's
    incidents apart from any earlier ones about the same VMs."""
    since = await fleet.last_seq()
    halted_on: Counter[str] = Counter()
    touched: list[str] = []
    runbooks = 0

    async def halt(incidents: list[str]) -> None:
        nonlocal runbooks
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
            runbooks += 1

    async def quarantines(count: int) -> list[str]:
        chosen = vms(count)
        incidents = await open_quarantines(fleet, chosen, drill)
        touched.extend([f"vm-chaos-{vm:04d}" for vm in chosen] + [f"-{i}" for i in incidents])
        return incidents

    try:
        gated = await quarantines(waiting)
        switched = await fleet.stanch(
            GATEWAYS,
            "toggle", "remediation", "off", "--reason", "fleet drill",
            api_token=ADMIN_TOKEN,
        )  # fmt: skip
        assert switched.returncode == 0, switched.stdout + switched.stderr
        await halt(gated + await quarantines(started_while_off))
        for _ in range(3):
            if len(halted_on) == 2:
                break
            await halt(await quarantines(2))
        writes = dict(writes_to(await fleet.journal(since), touched))
    finally:
        on = await fleet.stanch(GATEWAYS, "toggle", "remediation", "on", api_token=ADMIN_TOKEN)
        assert on.returncode == 0, on.stdout + on.stderr
    return KillSwitchDrill(halted_on, writes, runbooks)
