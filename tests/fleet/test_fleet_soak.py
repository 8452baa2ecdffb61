"""The fleet's drills over and over on one fleet (issue 14: "a longer run as
`make chaos`"); tests/fleet/test_fleet.py runs each once in `make test`.

A trial is three drills in turn, on the five hosts of tests/support/fleet.py,
each followed by `stanch audit verify` over everything written so far:

- a worker host cut off (link down) while restart_vm waits on Azure, with an
  alert storm over both gateways meanwhile: the runbook finishes on the other
  host, azuresim applies the restart once, nothing is applied again when the
  host returns, no alert is lost and each fingerprint opens one incident.
  Trials alternate the host they mean to cut;
- PostgreSQL stopped and started during a storm: every 202'd alert is in its
  incident and in the audit chain, refusals meanwhile were 503s with
  Retry-After;
- the kill switch turned off from the gateway host while quarantines wait at
  their gates, then on again: every runbook halts, on both worker hosts, and
  azuresim sees no write while it is off.

STANCH_FLEET_TRIALS sets the trials (default 1; `make chaos` sets more). A
trial's failure is counted and the next trial runs on a fleet made whole
again; the test fails at the end if anything was found. The summary table
(with each trial's numbers, their medians and worst) is printed (-s) and
added to $STANCH_CHAOS_REPORT when set. Needs root, as the fast tests do."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from stanch.testing.started import Started
from tests.support.chaos import Scenario, Summary
from tests.support.fleet import CHAOS_VMS, Fleet, fleet_healthy, steady_storm
from tests.support.fleet_drills import (
    audit_verified,
    cut_off_mid_restart,
    kill_switch_drill,
    postgres_restart_in_storm,
    storm_findings,
)

pytestmark = [pytest.mark.soak]

# The storm that runs through a cut: a steady trickle over both gateways for
# the minute or more a take-over lasts, not a benchmark (the machine is shared).
CUT_FINGERPRINTS, CUT_SENDERS, CUT_PAUSE = 6, 2, 0.2
OUTAGE_FINGERPRINTS = 6
WORKER_HOSTS = ("worker-1", "worker-2")


def fleet_trials() -> int:
    """`make chaos` sets several; `make test` does not run this module."""
    return max(1, int(os.environ.get("STANCH_FLEET_TRIALS", "1")))


@pytest.fixture(scope="module")
def soak_summary() -> Iterator[Summary]:
    results = Summary()
    yield results
    results.report()


def spread(name: str, values: list[float], unit: str = "s") -> str:
    """`name` median and worst (the highest) over the trials."""
    if not values:
        return f"{name}: no trial measured it"
    return f"{name}: median {statistics.median(values):.1f} {unit}, worst {max(values):.1f} {unit}"


class Drill(Scenario):
    """A scenario whose trials may fail one by one: a failure is a finding of
    that trial, and the soak goes on."""

    def trial_note(self, text: str) -> None:
        """A trial's line in the summary, printed as it ends too (-s): a long
        run shows its progress."""
        self.result.notes.append(text)
        print(f"\n{self.result.scenario}: {text}", flush=True)

    def failed(self, trial: int, error: BaseException) -> None:
        self.result.stuck += 1
        last = traceback.format_exception_only(error)[-1].strip()
        self.problem(f"trial {trial}: {last[:400]}")
        self.trial_note(f"trial {trial}: FAILED {last[:200]}")

    async def audited(self, fleet: Fleet, trial: int) -> None:
        verified, said = await audit_verified(fleet)
        if not verified:
            self.problem(f"trial {trial}: `stanch audit verify` failed: {said}")


async def cut_trial(fleet: Fleet, started: Started, trial: int, drill: Drill) -> dict[str, Any]:
    wanted = WORKER_HOSTS[trial % 2]
    stop = asyncio.Event()
    answers: Counter[int] = Counter()
    storming = asyncio.create_task(
        steady_storm(
            fleet,
            f"fleet-soak-cut-{trial}",
            CUT_FINGERPRINTS,
            CUT_SENDERS,
            stop,
            answers,
            retry_5xx_for=120,
            pause=CUT_PAUSE,
        )
    )
    try:
        cut = await cut_off_mid_restart(fleet, started, host=wanted, tries=3)
    finally:
        stop.set()
        trips = await storming
    findings = await storm_findings(fleet, trips)
    r = drill.result
    r.duplicated += sum(n - 1 for n in cut.writes.values() if n > 1)
    r.lost += findings.lost
    if cut.writes != {("POST", "restart"): 1}:
        drill.problem(f"trial {trial}: azuresim applied {cut.writes} to {cut.host}'s VM")
    drill.problems += [f"trial {trial}: {p}" for p in findings.problems(CUT_FINGERPRINTS)]
    drill.trial_note(
        f"trial {trial}: cut {cut.host} (meant {wanted}, runs landed elsewhere first: "
        f"{len(cut.landed)}), {cut.other} took over at attempt {cut.attempt} "
        f"{cut.took_over:.1f} s after the cut, done at {cut.finished:.1f} s, back and idle "
        f"{cut.rejoined:.1f} s after the link; storm {findings.alerts} sent, "
        f"{findings.accepted} accepted, {findings.incidents} incidents"
    )
    return {
        "took_over": cut.took_over,
        "finished": cut.finished,
        "sent": findings.alerts,
        "accepted": findings.accepted,
        "host": cut.host,
    }


async def outage_trial(fleet: Fleet, trial: int, drill: Drill) -> dict[str, Any]:
    outage = await postgres_restart_in_storm(
        fleet, fingerprints=OUTAGE_FINGERPRINTS, senders=12, before=40, refused=6, after=40
    )
    findings = await storm_findings(fleet, outage.trips)
    drill.result.lost += findings.lost
    drill.problems += [f"trial {trial}: {p}" for p in findings.problems(OUTAGE_FINGERPRINTS)]
    if set(outage.answers) != {202, 503}:
        drill.problem(f"trial {trial}: answers other than 202 and 503: {outage.answers}")
    if None in outage.retry_after:
        drill.problem(f"trial {trial}: a 503 without Retry-After")
    drill.trial_note(
        f"trial {trial}: PostgreSQL down {outage.down_for:.1f} s, {outage.refused} answers "
        f"503, storm {findings.alerts} sent, {findings.accepted} accepted, "
        f"{findings.incidents} incidents"
    )
    return {
        "down_for": outage.down_for,
        "refused": outage.refused,
        "sent": findings.alerts,
        "accepted": findings.accepted,
    }


async def kill_switch_trial(fleet: Fleet, trial: int, drill: Drill) -> dict[str, Any]:
    # The drill's VMs are untouched after it (nothing is written while off),
    # so each trial quarantines the same failing VMs again, as new incidents.
    chosen = iter(range(CHAOS_VMS))

    def vms(count: int) -> list[int]:
        return [next(chosen) for _ in range(count)]

    run = await kill_switch_drill(
        fleet, vms, waiting=4, started_while_off=2, drill=f"fleet-soak-{trial}"
    )
    if set(run.halted_on) != set(WORKER_HOSTS):
        drill.problem(f"trial {trial}: halted only on {dict(run.halted_on)}")
    if run.writes:
        drill.result.duplicated += sum(run.writes.values())
        drill.problem(f"trial {trial}: azuresim saw writes while off: {run.writes}")
    drill.trial_note(
        f"trial {trial}: {run.runbooks} runbooks halted, by host {dict(run.halted_on)}, "
        f"{sum(run.writes.values())} writes while off"
    )
    return {"runbooks": run.runbooks}


async def test_the_fleet_keeps_its_invariants_over_many_trials(
    fleet: Fleet, started: Started, soak_summary: Summary
):
    trials = fleet_trials()
    cuts = Drill("fleet: worker host cut off", soak_summary)
    outages = Drill("fleet: postgresql restart", soak_summary)
    switches = Drill("fleet: kill switch off/on", soak_summary)
    measured: dict[str, list[dict[str, Any]]] = {"cut": [], "outage": [], "switch": []}

    async def run(name: str, trial: int, drill: Drill) -> dict[str, Any]:
        if name == "cut":
            return await cut_trial(fleet, started, trial, drill)
        if name == "outage":
            return await outage_trial(fleet, trial, drill)
        return await kill_switch_trial(fleet, trial, drill)

    for trial in range(trials):
        for name, drill in (("cut", cuts), ("outage", outages), ("switch", switches)):
            await fleet_healthy(fleet)
            began = time.monotonic()
            drill.result.trials += 1
            try:
                measured[name].append(await run(name, trial, drill))
            except Exception as error:  # a finding of this trial; the next one runs
                drill.failed(trial, error)
            await fleet_healthy(fleet)
            await drill.audited(fleet, trial)
            drill.result.seconds += time.monotonic() - began  # its own trials' wall time

    cut, outage = measured["cut"], measured["outage"]
    hit = Counter(m["host"] for m in cut)
    cuts.result.notes += [
        spread("take-over after the cut", [m["took_over"] for m in cut]),
        spread("runbook done after the cut", [m["finished"] for m in cut]),
        f"hosts cut: {dict(hit)}; storm alerts sent {sum(m['sent'] for m in cut):.0f}, "
        f"accepted {sum(m['accepted'] for m in cut):.0f}",
    ]
    outages.result.notes += [
        spread("PostgreSQL outage", [m["down_for"] for m in outage]),
        spread("503s per outage", [m["refused"] for m in outage], unit="answers"),
        f"storm alerts sent {sum(m['sent'] for m in outage):.0f}, "
        f"accepted {sum(m['accepted'] for m in outage):.0f}",
    ]
    drills = (cuts, outages, switches)
    for drill in drills:
        if not drill.problems:
            drill.result.notes.append("`stanch audit verify` passed after every trial")
    problems = [p for d in drills for p in d.problems]
    assert not problems, "\n".join(problems)
    for drill in drills:
        r = drill.result
        assert r.trials == trials and (r.stuck, r.duplicated, r.lost) == (0, 0, 0), r
