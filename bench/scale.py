"""The scale curve: how intake rate, containment latency and page lateness
change as open incidents grow (10 → 10,000), so an operator can size a fleet.

One stack (dev server, worker, gateway, azuresim) for the whole curve. Open
incidents accumulate: each step opens background incidents (a metric alert
each, on a service that pages once and then waits an hour, as real open
incidents do) until the step's count is reached, then measures, with all of
them still open:

- intake: an alert storm over 20 new incidents through the gateway as shipped
  (bench/storm.py's pass), alerts/s and CPU per alert over all processes;
- containment: alert → first containment write for a failed VM bound to
  quarantine_vm (bench/containment.py's trial);
- page lateness: tier 2 and 3 pages of a few fresh incidents whose tiers are
  seconds apart (bench/escalation.py's quiet pass).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench import containment, escalation, storm
from bench.alerts import metric_alert, world
from bench.incidents import terminate
from bench.lab import Lab
from bench.load import post_alerts
from bench.stack import Services, policy, rss_bytes, running
from bench.stats import Table, median, ms, percentile
from stanch.client.ids import workflow_id_for
from stanch.models.alert import CommonAlert
from stanch.stores.page_file import read_pages

BACKGROUND_CLIENTS = 50


@dataclass
class Sizes:
    steps: list[int] = field(default_factory=lambda: [10, 100, 1000, 10_000])
    alerts: int = 5000  # per intake storm
    clients: int = 200
    trials: int = 3  # containment trials per step
    escalations: int = 10  # incidents whose pages are timed per step
    tier_seconds: int = 3


@dataclass
class Step:
    open_incidents: int
    opened_per_second: float = 0.0
    intake_rate: float = 0.0
    cpu_ms_per_alert: float = 0.0
    gateway_ms_per_alert: float = 0.0
    lost: int = 0
    machine: str = ""
    containment: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    pages_missing: int = 0
    server_rss_mb: float = 0.0
    worker_rss_mb: float = 0.0
    failed: str = ""  # what timed out, if the step could not be measured


async def run(lab: Lab, sizes: Sizes) -> list[Table]:
    workdir = lab.scratch("scale")
    vms = containment.vms_names(len(sizes.steps) * sizes.trials)
    plan = policy(
        workdir / "pages.jsonl",
        approvals={"auto_approve": ["high"], "tiers": [{"timeout": "1h"}]},
        runbooks=[
            {
                "runbook": "quarantine_vm",
                "match": {"resource_ids": ["*/virtualmachines/vm-web-bench-*"]},
            }
        ],
        escalation_policies={
            "default": {
                "tiers": [
                    {"people": [p], "timeout": f"{sizes.tier_seconds}s"}
                    for p in ("alice", "bob", "carol")
                ],
                "after_last_tier": "stop",
            },
            "waiting": {
                "tiers": [{"people": ["dave"], "timeout": "1h"}],
                "after_last_tier": "stop",
            },
        },
        services=[
            {
                "name": "background",
                "escalation_policy": "waiting",
                "match": {"rules": ["open-*", "storm-*"]},
            }
        ],
    )
    steps: list[Step] = []
    background: list[str] = []
    async with running(lab.server, lab.client, workdir, plan, world(vms)) as services:
        spare_vms = iter(vms)
        await intake(lab, services, sizes, alerts=500)  # warms the gateway, worker and server
        for count in sizes.steps:
            step = Step(count)
            steps.append(step)
            try:
                await measure(lab, services, sizes, step, background, spare_vms)
            except TimeoutError as e:
                # A step the machine cannot hold (the worker still busy opening
                # incidents) ends the curve; the steps measured are still shown.
                step.failed = str(e)
                print(f"(scale: {count:,} open incidents: {e}; stopping here)", flush=True)
                break
            # Each step as it is measured: a long run that fails later keeps these.
            print(table(sizes, steps[-1:]).render(), flush=True)
        await terminate(lab.client, background)
    return [table(sizes, steps)]


async def measure(
    lab: Lab,
    services: Services,
    sizes: Sizes,
    step: Step,
    background: list[str],
    spare_vms: Iterator[str],
) -> None:
    assert services.sim is not None and services.sim.admin is not None
    step.opened_per_second = await open_background(services, background, step.open_incidents)
    measured = await intake(lab, services, sizes)
    step.intake_rate, step.lost = measured.rate, measured.lost
    step.cpu_ms_per_alert = sum(measured.cpu_per_1k.values())
    step.gateway_ms_per_alert = measured.cpu_per_1k.get("gateway", float("nan"))
    step.machine = f"{measured.machine:.0%} + {measured.foreign:.0%}"
    contained: list[str] = []
    try:
        for _ in range(sizes.trials):
            latency, workflow_id, _ = await containment.through_stanch(
                lab, services, services.sim.admin, next(spare_vms)
            )
            step.containment.append(latency)
            contained.append(workflow_id)
    finally:
        await terminate(lab.client, contained)
    paged = await escalation.one_pass(
        lab, services, sizes.escalations, sizes.tier_seconds, False, 0, "Sev1"
    )
    step.lateness, step.pages_missing = paged.lateness, paged.missing
    step.server_rss_mb, step.worker_rss_mb = memory(services)


async def open_background(services: Services, opened: list[str], count: int) -> float:
    """Opens incidents until `count` are open and each has paged its first
    tier (so the step measures a stack holding them, not one still opening
    them); incidents opened per second."""
    missing = count - len(opened)
    if missing <= 0:
        return float("nan")
    tag = uuid.uuid4().hex[:6]
    bodies = [metric_alert(f"open-{tag}-{i}") for i in range(missing)]
    started = time.monotonic()
    load = await post_alerts(services.url, bodies, BACKGROUND_CLIENTS)
    if load.errors:
        raise RuntimeError(f"intake refused background alerts: {load.errors}")
    opened += [workflow_id_for(CommonAlert.model_validate(b).fingerprint()) for b in bodies]
    await paged_once(services, set(opened), timeout=120 + missing / 5)
    return missing / (time.monotonic() - started)


async def paged_once(services: Services, incidents: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        paged = {page.get("workflow_id") for page in read_pages(services.pages)}
        if incidents <= paged:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(incidents - paged)} background incidents never paged")
        await asyncio.sleep(1)


async def intake(lab: Lab, services: Services, sizes: Sizes, alerts: int = 0) -> storm.Pass:
    """One storm through the gateway as shipped."""
    window, linger = storm.DEFAULT_MODE
    storm_sizes = storm.Sizes(alerts or sizes.alerts, 20, [sizes.clients], [window], [linger], [])
    return await storm.one_pass(lab, services, (window, linger, sizes.clients), storm_sizes)


def memory(services: Services) -> tuple[float, float]:
    pids = services.pids()
    return rss_bytes(pids["server"]) / 2**20, rss_bytes(pids["worker"]) / 2**20


def table(sizes: Sizes, steps: list[Step]) -> Table:
    result = Table(
        "Scale curve: intake, containment and paging as open incidents grow (one run each)",
        [
            "open incidents",
            "opened/s to get there (until each paged)",
            "storm intake alerts/s",
            "CPU ms per alert, all processes",
            "gateway CPU ms per alert",
            "lost",
            "alert → containment p50",
            "slowest",
            "page lateness p50",
            "p99",
            "pages missing",
            "server RSS",
            "worker RSS",
            "machine busy during the storm (ours + others)",
        ],
    )
    for step in steps:
        if step.failed:
            result.notes.append(
                f"{step.open_incidents:,} open incidents: not measured ({step.failed})."
            )
            continue
        result.add(
            f"{step.open_incidents:,}",
            "-"
            if step.opened_per_second != step.opened_per_second
            else f"{step.opened_per_second:.1f}",
            f"{step.intake_rate:,.0f}",
            f"{step.cpu_ms_per_alert:.2f}",
            f"{step.gateway_ms_per_alert:.2f}",
            step.lost,
            ms(percentile(step.containment, 50)),
            ms(max(step.containment, default=float("nan"))),
            ms(percentile(step.lateness, 50)),
            ms(percentile(step.lateness, 99)),
            step.pages_missing,
            f"{step.server_rss_mb:,.0f} MB",
            f"{step.worker_rss_mb:,.0f} MB",
            step.machine,
        )
    result.notes += [
        f"Each step keeps every incident of the steps before it open (paged once, waiting an "
        f"hour for tier 2), then measures: a storm of {sizes.alerts:,} alerts over 20 new "
        f"incidents from {sizes.clients} clients through the gateway as shipped; "
        f"{sizes.trials} alert → quarantine_vm containments (to the first change azuresim "
        f"saw); the tier 2 and 3 pages of {sizes.escalations} new incidents with tiers "
        f"{sizes.tier_seconds} s apart (lateness: page written minus its deadline).",
        "The dev server keeps every workflow in memory; the worker caches at most 1,000 "
        "workflows (the SDK default), so past that open incidents cost the worker nothing "
        "until they wake (a timer, a signal), when they are replayed from history.",
        f"median of the containment trials over all steps: "
        f"{ms(median([x for s in steps for x in s.containment]))}.",
    ]
    return result
