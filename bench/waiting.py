"""Scale of waiting: N open incidents, each with a runbook (restart_vm) held at
its approval gate. Measures the time to open them all and reach the gates,
the worker's memory while they wait, and the time to approve them all.

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
from bench.stats import Table, median, ms, percentile, ratio
from stanch.client.ids import workflow_id_for
from stanch.harness.processes import Process
from stanch.harness.waiting import eventually
from stanch.harness.workers import worker_polling
from stanch.models.config import ApiRole
from stanch.models.runbook import ApprovalDecision, RunbookView
from stanch.stores.toggles import ToggleStore

VM = "vm-web-bench-waiting"
STEP = "restart"
CONCURRENCY = 50
MB = 1024 * 1024


@dataclass
class Pass:
    opened: float  # seconds to open N and have every one waiting
    idle_rss: int
    waiting_rss: int
    server_rss: int
    approved: float  # seconds to approve them all
    latencies: list[float] = field(default_factory=list)


async def run(lab: Lab, incidents: int) -> list[Table]:
    workdir = lab.scratch("waiting")
    plan = policy(
        workdir / "pages.jsonl",
        approvals={"tiers": [{"timeout": "1h"}]},
        runbooks=[{"runbook": "restart_vm", "match": {"resource_ids": [f"*/{VM}"]}}],
    )
    ToggleStore(workdir / "toggles.json").set(
        False, None, "bench", "measure the approval gate, not the restarts"
    )
    stanch: list[Pass] = []
    baseline: list[Pass] = []
    async with running(
        lab.server, lab.client, workdir, plan, world([VM], health="Available")
    ) as services:
        for _ in range(lab.repeats):
            stanch.append(await incidents_at_their_gates(lab, services, incidents))
            baseline.append(await trivial_gates(lab, incidents))
    return [table(lab, incidents, stanch, baseline)]


async def _in_pool(items: list[str], call: Callable[[str], Awaitable[None]]) -> None:
    for start in range(0, len(items), CONCURRENCY):
        await asyncio.gather(*(call(item) for item in items[start : start + CONCURRENCY]))


async def incidents_at_their_gates(lab: Lab, services: Services, count: int) -> Pass:
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
    runbooks = await _gates_paged(services, set(incident_ids))
    opened = time.perf_counter() - started
    waiting = rss_bytes(services.worker.pid)
    server = rss_bytes(lab.server.pid)

    latencies: list[float] = []

    async def approve(workflow_id: str) -> None:
        sent = time.perf_counter()
        decision = SIGNER.sign(
            workflow_id, "approve", ApprovalDecision(step=STEP, by="carol"), ApiRole.APPROVER
        )
        await lab.client.get_workflow_handle(workflow_id).execute_update(
            "approve", decision, result_type=RunbookView
        )
        latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    await _in_pool(sorted(runbooks), approve)
    approved = time.perf_counter() - started
    await terminate(lab.client, [*incident_ids, *runbooks])
    return Pass(opened, idle, waiting, server, approved, latencies)


async def _gates_paged(services: Services, incidents: set[str], timeout: float = 1800) -> set[str]:
    """The runbooks of `incidents` that have paged for approval (page keys are
    `<workflow id>/<activity id>/<channel>`)."""
    deadline = time.monotonic() + timeout
    waiting: set[str] = set()
    while time.monotonic() < deadline:
        if services.pages.exists():
            for line in services.pages.read_text().splitlines():
                page = json.loads(line)
                if page["workflow_id"] in incidents and page["reason"].startswith("approval"):
                    waiting.add(page["key"].rsplit("/", 2)[0])
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


def table(lab: Lab, count: int, stanch: list[Pass], baseline: list[Pass]) -> Table:
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
    base_time = median([p.approved for p in baseline])
    for name, passes in (
        ("incident + restart_vm runbook at its gate", stanch),
        ("trivial workflow waiting for an update (baseline)", baseline),
    ):
        approved = median([p.approved for p in passes])
        idle = median([p.idle_rss for p in passes])
        waiting = median([p.waiting_rss for p in passes])
        result.add(
            name,
            f"{median([p.opened for p in passes]):.1f} s",
            f"{idle / MB:.0f} → {waiting / MB:.0f} MB",
            f"{(waiting - idle) / count / 1024:.0f} KB",
            f"{median([p.server_rss for p in passes]) / MB:.0f} MB",
            f"{approved:.1f} s",
            f"{count / approved:,.0f}",
            ms(median([percentile(p.latencies, 50) for p in passes])),
            ms(median([percentile(p.latencies, 99) for p in passes])),
            ratio(approved, base_time),
        )
    result.notes += [
        f"{CONCURRENCY} concurrent clients open incidents and send approvals. Each "
        "stanch incident is two workflows (the incident and its runbook); the worker "
        "caches at most 1,000 workflows (the SDK default), so past 500 incidents some "
        "are evicted and replayed from history when their approval arrives.",
        "RSS from /proc/<pid>/status of a freshly started worker process.",
    ]
    return result
