"""Escalation accuracy: how late pages fire relative to their deadline.

N incidents open at once under a three-tier policy with short timeouts (tier
2 is due one timeout after tier 1's deadline, tier 3 two). A page's lateness
is when the pager file received it minus its deadline, which the incident
computes from the moment its response plan loaded (its timeline says when).
Measured on a quiet stack (the baseline) and with an alert storm hitting the
gateway throughout. The storm is of Sev4 alerts (Azure's metric sample); the
paged incidents are Sev1, as the incidents that page people are, and once more
Sev4 like the storm, which shows what the severity's task priority is worth.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.alerts import metric_alert
from bench.incidents import terminate
from bench.lab import Lab
from bench.load import post_alerts
from bench.stack import Services, policy, running
from bench.stats import Table, at_most, median, ms, percentile, ratio
from stanch.client.ids import workflow_id_for
from stanch.models.alert import CommonAlert
from stanch.stores.page_file import read_pages
from stanch.workflows.incident import IncidentWorkflow

QUIET = "quiet stack (baseline), Sev1 incidents"
STORM = "during a Sev4 alert storm, Sev1 incidents"
SAME = "during a Sev4 alert storm, Sev4 incidents"
# Sev1 incidents whose alerts reach a gateway and worker of their own (a task
# queue of their own), as if the intake routed Sev0/Sev1 incidents there.
OWN = "during a Sev4 alert storm, Sev1 incidents on a worker process of their own"
PAGED = {QUIET: "Sev1", STORM: "Sev1", SAME: "Sev4", OWN: "Sev1"}
STORM_FINGERPRINTS = 20
# Where a page's lateness goes, read from its incident's history.
SEGMENTS = {
    "timer": "timer fired",
    "task_queued": "workflow task queued",
    "task_ran": "workflow task ran",
    "activity_queued": "page activity queued",
    "activity_ran": "page written",
}


@dataclass
class Pass:
    lateness: list[float] = field(default_factory=list)
    segments: dict[str, list[float]] = field(default_factory=dict)
    storm_rate: float = 0.0
    missing: int = 0
    # Workflow tasks of the storm's incidents, and the timers they started:
    # server work that does not depend on how busy the machine is.
    storm_tasks: int = 0
    storm_timers: int = 0


async def run(
    lab: Lab, incidents: int, tier_seconds: int, storm_concurrency: int, own_worker: bool = False
) -> list[Table]:
    """`own_worker`: also page Sev1 incidents served by a second worker process
    on a task queue of its own, while the storm keeps the first one busy."""
    workdir = lab.scratch("escalation")
    plan = _plan(workdir / "pages.jsonl", tier_seconds)
    passes: dict[str, list[Pass]] = {QUIET: [], STORM: [], SAME: []}
    if own_worker:
        passes[OWN] = []
    async with AsyncExitStack() as stack:
        services = await stack.enter_async_context(running(lab.server, lab.client, workdir, plan))
        own = None
        if own_worker:
            own_dir = lab.scratch("escalation-own-worker")
            own_plan = _plan(own_dir / "pages.jsonl", tier_seconds)
            own = await stack.enter_async_context(
                running(lab.server, lab.client, own_dir, own_plan)
            )
        for _ in range(lab.repeats):
            for name in passes:
                passes[name].append(
                    await one_pass(
                        lab,
                        services,
                        incidents,
                        tier_seconds,
                        name != QUIET,
                        storm_concurrency,
                        PAGED[name],
                        paging=own if name == OWN else None,
                    )
                )
    return [table(lab, incidents, tier_seconds, passes)]


def _plan(pages: Path, tier_seconds: int) -> dict[str, Any]:
    timeout = f"{tier_seconds}s"
    return policy(
        pages,
        escalation_policies={
            "default": {
                "tiers": [{"people": [p], "timeout": timeout} for p in ("alice", "bob", "carol")],
                "after_last_tier": "stop",
            },
            # The storm's own incidents page once and then wait: their pages
            # are not what is measured.
            "storm": {"tiers": [{"people": ["dave"], "timeout": "1h"}], "after_last_tier": "stop"},
        },
        services=[{"name": "storm", "escalation_policy": "storm", "match": {"rules": ["storm-*"]}}],
    )


async def one_pass(
    lab: Lab,
    services: Services,
    incidents: int,
    tier_seconds: int,
    storm: bool,
    storm_concurrency: int,
    severity: str,
    paging: Services | None = None,
) -> Pass:
    """`paging`: where the measured incidents' alerts go and are served (by
    default `services`, which also takes the storm)."""
    paging = paging or services
    tag = uuid.uuid4().hex[:6]
    bodies = [metric_alert(f"esc-{tag}-{i}") for i in range(incidents)]
    for body in bodies:
        body["data"]["essentials"]["severity"] = severity
    workflow_ids = [workflow_id_for(CommonAlert.model_validate(b).fingerprint()) for b in bodies]
    result = Pass()
    stop = asyncio.Event()
    storm_ids: set[str] = set()
    background = None
    if storm:
        background = asyncio.create_task(
            _storm(services, tag, storm_concurrency, stop, result, storm_ids)
        )
        await asyncio.sleep(2)  # the storm is in full swing before the incidents open
    opened = await post_alerts(paging.url, bodies, 50)
    if opened.errors:
        raise RuntimeError(f"intake refused alerts: {opened.errors}")
    # Tier 3 is due 2 timeouts after the plan loads; allow generous slack.
    due = time.monotonic() + 2 * tier_seconds + 60
    wanted = {(w, tier) for w in workflow_ids for tier in (2, 3)}
    while True:
        pages = _pages(paging.pages, set(workflow_ids))
        if wanted <= set(pages) or time.monotonic() > due:
            break
        await asyncio.sleep(0.5)
    stop.set()
    if background is not None:
        await background
    for workflow_id in workflow_ids:
        entries = await lab.client.get_workflow_handle(workflow_id).query(IncidentWorkflow.timeline)
        plan_loaded = next(e.at.timestamp() for e in entries if e.kind == "plan_loaded")
        steps = await page_steps(lab.client, workflow_id)
        for tier in (2, 3):
            paged = pages.get((workflow_id, tier))
            if paged is None:
                result.missing += 1
                continue
            deadline = plan_loaded + (tier - 1) * tier_seconds
            result.lateness.append(paged - deadline)
            if len(steps) >= tier:
                for name, seconds in _segments(steps[tier - 1], deadline, paged).items():
                    result.segments.setdefault(name, []).append(seconds)
    for storm_id in storm_ids:
        tasks, timers = await _timer_churn(lab.client, storm_id)
        result.storm_tasks += tasks
        result.storm_timers += timers
    await terminate(lab.client, [*workflow_ids, *storm_ids])
    return result


async def page_steps(client: Client, workflow_id: str) -> list[dict[str, float]]:
    """For each page_on_call the incident scheduled, in order (tier 1, 2, 3):
    when the timer before it fired, when the workflow task that scheduled it
    was queued, started and completed, and when the activity was scheduled
    and started (history event times: the server's clock, this machine's)."""
    events = [e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()]
    seen: dict[str, float] = {}
    steps: list[dict[str, float]] = []
    by_event: dict[int, dict[str, float]] = {}
    for event in events:
        at = event.event_time.ToMicroseconds() / 1e6
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_TIMER_FIRED:
            seen["fired"] = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            seen["task_scheduled"] = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            seen["task_started"] = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            seen["task_completed"] = at
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name == "page_on_call":
                step = {**seen, "activity_scheduled": at}
                steps.append(step)
                by_event[event.event_id] = step
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in by_event:
                by_event[started.scheduled_event_id]["activity_started"] = at
    return steps


async def _timer_churn(client: Client, workflow_id: str) -> tuple[int, int]:
    """Completed workflow tasks and timers started in the incident's current run."""
    tasks = timers = 0
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        tasks += event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        timers += event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    return tasks, timers


def _segments(step: dict[str, float], deadline: float, paged: float) -> dict[str, float]:
    """A page's lateness cut at each event on its way (they add up to it)."""
    if not {"fired", "task_started", "activity_started"} <= set(step):
        return {}
    queued_from = max(step["fired"], step.get("task_scheduled", step["fired"]))
    return {
        "timer": step["fired"] - deadline,
        "task_queued": step["task_started"] - queued_from,
        "task_ran": step["task_completed"] - step["task_started"],
        "activity_queued": step["activity_started"] - step["activity_scheduled"],
        "activity_ran": paged - step["activity_started"],
    }


def _pages(path: Path, workflow_ids: set[str]) -> dict[tuple[str, int], float]:
    """When each (incident, tier) page of the first round reached the pager."""
    found: dict[tuple[str, int], float] = {}
    for page in read_pages(path):
        if page["workflow_id"] in workflow_ids and page["round"] == 0:
            found[(page["workflow_id"], page["tier"])] = datetime.fromisoformat(
                page["at"]
            ).timestamp()
    return found


async def _storm(
    services: Services,
    tag: str,
    concurrency: int,
    stop: asyncio.Event,
    result: Pass,
    storm_ids: set[str],
) -> None:
    """Alerts to the gateway as fast as it takes them, until `stop`."""
    rules = [f"storm-{tag}-{i}" for i in range(STORM_FINGERPRINTS)]
    sent = 0
    started = time.perf_counter()
    while not stop.is_set():
        bodies = [metric_alert(rules[i % len(rules)]) for i in range(concurrency * 5)]
        if not storm_ids:
            storm_ids.update(
                workflow_id_for(CommonAlert.model_validate(b).fingerprint())
                for b in bodies[: len(rules)]
            )
        sent += len((await post_alerts(services.url, bodies, concurrency)).latencies)
    result.storm_rate = sent / (time.perf_counter() - started)


def table(lab: Lab, incidents: int, tier_seconds: int, passes: dict[str, list[Pass]]) -> Table:
    result = Table(
        f"Escalation accuracy: {incidents} incidents, tiers every {tier_seconds} s, lateness "
        f"of the tier 2 and 3 pages (median of {lab.repeats} runs)",
        ["load", "p50 late", "p99 late", "worst", "vs baseline (p99)", "pages missing", "storm"],
    )
    base = median([percentile(p.lateness, 99) for p in passes[QUIET]])
    for name, runs in passes.items():
        p99 = median([percentile(p.lateness, 99) for p in runs])
        rate = median([p.storm_rate for p in runs])
        result.add(
            name,
            ms(median([percentile(p.lateness, 50) for p in runs])),
            ms(p99),
            ms(max(max(p.lateness, default=float("nan")) for p in runs)),
            ratio(p99, base),
            sum(p.missing for p in runs),
            f"{rate:,.0f} alerts/s" if rate else "-",
        )
    for name, runs in passes.items():
        merged: dict[str, list[float]] = {}
        for p in runs:
            for segment, values in p.segments.items():
                merged.setdefault(segment, []).extend(values)
        if merged:
            result.notes.append(
                f"Where the time went, {name} (median, p99 of every tier 2 and 3 page): "
                + ", ".join(
                    f"{label} {ms(median(merged[key]))} / {ms(percentile(merged[key], 99))}"
                    for key, label in SEGMENTS.items()
                    if key in merged
                )
                + "."
            )
    storm = [p for name, runs in passes.items() if name != QUIET for p in runs]
    tasks = sum(p.storm_tasks for p in storm)
    if tasks:
        result.notes.append(
            f"The storm's incidents: {sum(p.storm_timers for p in storm) / tasks:.2f} timers "
            f"started per workflow task (over {tasks:,} tasks of their last runs)."
        )
    result.notes.append(
        "Lateness: the page's arrival in the pager file minus its deadline (tier 1's "
        "deadline is when the incident loaded its plan; tier k is due (k-1) timeouts "
        "later). It includes the timer firing, the workflow task, and the notify activity."
    )
    for name in [n for n in passes if n != QUIET]:
        p99 = median([percentile(p.lateness, 99) for p in passes[name]])
        result.targets.append(
            at_most(f"escalation p99 vs quiet, {name.removeprefix('during a ')}", p99 / base, 2)
        )
    missing = sum(p.missing for runs in passes.values() for p in runs)
    result.targets.append(at_most("pages missing (every pass)", missing, 0, unit=""))
    return result
