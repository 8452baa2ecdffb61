"""Scale of waiting: N open incidents, each with a runbook (restart_vm) held at
its approval gate. Measures the time to open them all and reach the gates,
the worker's memory while they wait, and the time to approve them all.

Two ways to approve: a raw update straight to each runbook, and as the
gateway and the CLI send a person's decision (client.updates.decide_step:
which runbook waits, read from the incident, a check that it is not stuck,
then the update). Each opens its own N incidents on a fresh worker.

Baseline: N trivial workflows waiting for one update (bench/baseline_worker.py)
on their own worker process, then N raw updates: what the same number of
waits and answers costs with nothing of stanch around them.

The kill switch is off for the run, so each runbook ends at its first change
right after approval: the benchmark measures the gate, not N VM restarts.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.alerts import metric_alert, vm_id, world
from bench.incidents import terminate
from bench.lab import Lab
from bench.load import post_alerts
from bench.stack import GRACEFULLY, ROOT, SIGNER, Services, policy, rss_bytes, running
from bench.stats import Table, at_most, median, ms, percentile, ratio, value_of
from stanch.client.ids import as_incident_id, workflow_id_for
from stanch.client.updates import decide_step
from stanch.harness.processes import Process
from stanch.harness.waiting import eventually
from stanch.harness.workers import worker_polling
from stanch.models.config import ApiRole
from stanch.models.runbook import ApprovalDecision, RunbookView
from stanch.stores.toggles import ToggleStore
from stanch.workflows.incident import IncidentWorkflow

VM = "vm-web-bench-waiting"
STEP = "restart"
CONCURRENCY = 50
MB = 1024 * 1024
BY_UPDATE = "incident + restart_vm runbook at its gate, raw update"
AS_A_PERSON = "incident + restart_vm runbook at its gate, as the gateway sends it"
BASELINE = "trivial workflow waiting for an update (baseline)"
# What the gateway's path reads before its update, each timed alone on a sample.
PRECHECK_SAMPLE = 20
# `--approvals`: which ways to approve (each on incidents of its own).
WAYS = {"raw": BY_UPDATE, "gateway": AS_A_PERSON, "trivial": BASELINE}
RSS_GOAL_MB = 512  # issue 15: 10,000 waiting incidents on one worker process


@dataclass
class Pass:
    opened: float  # seconds to open N and have every one waiting
    idle_rss: int
    waiting_rss: int
    server_rss: int
    approved: float  # seconds to approve them all
    latencies: list[float] = field(default_factory=list)
    # Seconds per call of each read a decision may make first (a sample).
    reads: dict[str, list[float]] = field(default_factory=dict)


async def run(lab: Lab, incidents: int, ways: list[str]) -> list[Table]:
    workdir = lab.scratch("waiting")
    plan = policy(
        workdir / "pages.jsonl",
        approvals={"tiers": [{"timeout": "1h"}]},
        runbooks=[{"runbook": "restart_vm", "match": {"resource_ids": [f"*/{VM}"]}}],
    )
    ToggleStore(workdir / "toggles.json").set(
        False, None, "bench", "measure the approval gate, not the restarts"
    )
    unknown = [w for w in ways if w not in WAYS]
    if unknown or not ways:
        raise SystemExit(f"--approvals: choose from {', '.join(WAYS)} (got {ways})")
    passes: dict[str, list[Pass]] = {WAYS[w]: [] for w in WAYS if w in ways}
    async with running(
        lab.server, lab.client, workdir, plan, world([VM], health="Available")
    ) as services:
        for _ in range(lab.repeats):
            for path in (BY_UPDATE, AS_A_PERSON):
                if path in passes:
                    passes[path].append(
                        await incidents_at_their_gates(
                            lab, services, incidents, path == AS_A_PERSON
                        )
                    )
            if BASELINE in passes:
                passes[BASELINE].append(await trivial_gates(lab, incidents))
    return [table(lab, incidents, passes)]


async def _in_pool(items: list[str], call: Callable[[str], Awaitable[None]]) -> None:
    for start in range(0, len(items), CONCURRENCY):
        await asyncio.gather(*(call(item) for item in items[start : start + CONCURRENCY]))


async def incidents_at_their_gates(
    lab: Lab, services: Services, count: int, as_a_person: bool
) -> Pass:
    await services.restart_worker()  # a fresh process: memory measured from idle
    # The file channel scans the whole file for its idempotency key on every
    # page; start each run from an empty one so runs cost the same.
    services.pages.unlink(missing_ok=True)
    assert services.worker is not None
    await asyncio.sleep(1)
    idle = rss_bytes(services.worker.pid)
    tag = uuid.uuid4().hex[:6]
    bodies = [metric_alert(f"wait-{tag}-{i}", [vm_id(VM).lower()]) for i in range(count)]
    started = time.perf_counter()
    load = await post_alerts(services.url, bodies, CONCURRENCY)
    if load.errors:
        raise RuntimeError(f"intake refused alerts: {load.errors}")
    incident_ids = sorted({workflow_id_for(_fingerprint(b)) for b in bodies})
    # Each runbook pages its approvers once its gate is open; reading the page
    # file costs the worker nothing, unlike querying every incident in a loop.
    # Opening is load-bound (≈ 2.5 to 5 incidents/s here): give 10,000 their time.
    runbooks = await _gates_paged(services, set(incident_ids), max(1800.0, count * 0.6))
    opened = time.perf_counter() - started
    waiting = rss_bytes(services.worker.pid)
    server = rss_bytes(lab.server.pid)
    reads = await _precheck_reads(lab, dict(sorted(runbooks.items())[:PRECHECK_SAMPLE]))

    latencies: list[float] = []

    async def approve(runbook: str) -> None:
        sent = time.perf_counter()
        decision = ApprovalDecision(step=STEP, by="carol")
        if as_a_person:
            await decide_step(
                lab.client,
                as_incident_id(runbooks[runbook]),
                decision,
                approve=True,
                sign=lambda w, action, d: SIGNER.sign(w, action, d, ApiRole.APPROVER),
            )
        else:
            signed = SIGNER.sign(runbook, "approve", decision, ApiRole.APPROVER)
            await lab.client.get_workflow_handle(runbook).execute_update(
                "approve", signed, result_type=RunbookView
            )
        latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    await _in_pool(sorted(runbooks), approve)
    approved = time.perf_counter() - started
    await terminate(lab.client, [*incident_ids, *runbooks])
    return Pass(opened, idle, waiting, server, approved, latencies, reads)


async def _precheck_reads(lab: Lab, runbooks: dict[str, str]) -> dict[str, list[float]]:
    """Each read a decision could make before its update, timed one at a time
    over a sample of waiting incidents (a query replays a workflow the worker
    has evicted: that is part of its cost)."""
    reads: dict[str, list[float]] = {}

    async def timed(name: str, call: Awaitable[object]) -> None:
        began = time.perf_counter()
        await call
        reads.setdefault(name, []).append(time.perf_counter() - began)

    for runbook, incident in runbooks.items():
        handle = lab.client.get_workflow_handle(incident)
        probe = lab.client.get_workflow_handle(runbook)
        await timed("incident state query", handle.query(IncidentWorkflow.state))
        await timed("incident timeline query", handle.query(IncidentWorkflow.timeline))
        await timed("runbook describe", probe.describe())
        await timed("runbook replay query", probe.query("__temporal_workflow_metadata"))
    return reads


async def _gates_paged(
    services: Services, incidents: set[str], timeout: float = 1800
) -> dict[str, str]:
    """The runbooks of `incidents` that have paged for approval, each with its
    incident's workflow id (page keys are `<workflow id>/<activity id>/<channel>`)."""
    deadline = time.monotonic() + timeout
    waiting: dict[str, str] = {}
    read = 0  # bytes of whole lines read: with 10,000 incidents, rereading
    # the whole file every half second took a fifth of a core from the stack.
    while time.monotonic() < deadline:
        if services.pages.exists():
            with services.pages.open("rb") as f:
                f.seek(read)
                data = f.read()
            whole = data[: data.rfind(b"\n") + 1]
            read += len(whole)
            for line in whole.splitlines():
                page = json.loads(line)
                if page["workflow_id"] in incidents and page["reason"].startswith("approval"):
                    waiting[page["key"].rsplit("/", 2)[0]] = page["workflow_id"]
        if len(waiting) >= len(incidents):
            return waiting
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{len(waiting)} of {len(incidents)} runbooks reached their gate")


def _fingerprint(body: dict[str, object]) -> str:
    from stanch.models.alert import CommonAlert

    return CommonAlert.model_validate(body).fingerprint()


async def trivial_gates(lab: Lab, count: int) -> Pass:
    task_queue = f"bench-gate-{uuid.uuid4().hex[:8]}"
    worker = Process(
        "baseline worker",
        [sys.executable, "-m", "bench.baseline_worker", lab.server.address, task_queue],
        log=lab.workdir / "baseline-worker.log",
        cwd=ROOT,
    )
    await worker.start()
    try:
        # Its imports done and polling: the idle memory of a serving worker.
        await eventually(
            lambda: worker_polling(lab.client, task_queue, worker.pid), 60, "the baseline worker"
        )
        idle = rss_bytes(worker.pid)
        ids = [f"gate-{uuid.uuid4().hex[:12]}" for _ in range(count)]

        async def start(workflow_id: str) -> None:
            await lab.client.start_workflow(
                "BenchGate", id=workflow_id, task_queue=task_queue, result_type=str
            )

        async def waiting(workflow_id: str) -> None:
            await lab.client.get_workflow_handle(workflow_id).query("waiting")

        started = time.perf_counter()
        await _in_pool(ids, start)
        await _in_pool(ids, waiting)
        opened = time.perf_counter() - started
        waiting_rss = rss_bytes(worker.pid)
        server = rss_bytes(lab.server.pid)
        latencies: list[float] = []

        async def approve(workflow_id: str) -> None:
            sent = time.perf_counter()
            await lab.client.get_workflow_handle(workflow_id).execute_update(
                "approve", "carol", result_type=str
            )
            latencies.append(time.perf_counter() - sent)

        started = time.perf_counter()
        await _in_pool(ids, approve)
        approved = time.perf_counter() - started
        return Pass(opened, idle, waiting_rss, server, approved, latencies)
    finally:
        await worker.stop(grace=15, sig=GRACEFULLY)


def table(lab: Lab, count: int, passes: dict[str, list[Pass]]) -> Table:
    result = Table(
        f"Scale of waiting: {count:,} open incidents at an approval gate, then approve all "
        f"(median of {lab.repeats} runs)",
        [
            "what waits",
            "open all and reach the gate",
            "worker RSS idle → waiting",
            "per waiting item",
            "server RSS",
            "approve all",
            "approvals/s",
            "update p50",
            "update p99",
            "vs baseline (approve all)",
        ],
    )
    base_time = (
        median([p.approved for p in passes[BASELINE]]) if BASELINE in passes else float("nan")
    )
    for name, runs in passes.items():
        approved = median([p.approved for p in runs])
        idle = median([p.idle_rss for p in runs])
        waiting = median([p.waiting_rss for p in runs])
        result.add(
            name,
            f"{median([p.opened for p in runs]):.1f} s",
            f"{idle / MB:.0f} → {waiting / MB:.0f} MB",
            f"{(waiting - idle) / count / 1024:.0f} KB",
            f"{median([p.server_rss for p in runs]) / MB:.0f} MB",
            f"{approved:.1f} s",
            f"{count / approved:,.0f}",
            ms(median([percentile(p.latencies, 50) for p in runs])),
            ms(median([percentile(p.latencies, 99) for p in runs])),
            ratio(approved, base_time),
        )
        if name != BASELINE:
            way = "raw update" if name == BY_UPDATE else "as the gateway sends it"
            result.targets.append(
                at_most(
                    f"approve {count:,} waiting incidents vs trivial updates ({way})",
                    value_of(ratio(approved, base_time)),
                    2,
                )
            )
            result.targets.append(
                at_most(
                    f"worker RSS with {count:,} incidents waiting ({way})",
                    waiting / MB,
                    RSS_GOAL_MB,
                    unit=" MiB",
                )
            )
    reads: dict[str, list[float]] = {}
    for p in passes.get(BY_UPDATE, []) + passes.get(AS_A_PERSON, []):
        for name, values in p.reads.items():
            reads.setdefault(name, []).extend(values)
    result.notes += [
        f"{CONCURRENCY} concurrent clients open incidents and send approvals. Each "
        "stanch incident is two workflows (the incident and its runbook); the worker "
        "caches at most 1,000 workflows (the SDK default), so past 500 incidents some "
        "are evicted and replayed from history when their approval arrives. "
        "'As the gateway sends it' is client.updates.decide_step: the incident's state "
        "query (which runbook waits), a replay query of that runbook (is it stuck), "
        "then the update.",
        "Each read a decision could make first, alone, while the incidents wait "
        f"(median / p99 over {PRECHECK_SAMPLE} incidents per run): "
        + ", ".join(
            f"{name} {ms(median(values))} / {ms(percentile(values, 99))}"
            for name, values in reads.items()
        )
        + ".",
        "RSS from /proc/<pid>/status of a freshly started worker process.",
    ]
    return result
