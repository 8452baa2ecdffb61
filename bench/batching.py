"""What the dev server and worker take when alerts arrive already batched: the
gateway's own Temporal call (gateway.intake.record_alerts) with B alerts per
signal-with-start and one call in flight per incident, as the coalescer
sends them, but with no HTTP and no gateway process in front. It separates
what coalescing saves at Temporal from what the HTTP intake costs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.alerts import metric_alert
from bench.incidents import alert_counts, terminate
from bench.lab import CpuMeter, Lab
from bench.load import to_events
from bench.stack import Services
from bench.stats import Table, median, ms, percentile, ratio
from stanch.client.alerts import record_alerts
from stanch.client.ids import workflow_id_for
from stanch.models.alert import AlertEvent


@dataclass
class Pass:
    rate: float
    latencies: list[float] = field(default_factory=list)
    lost: int = 0
    cpu_per_1k: dict[str, float] = field(default_factory=dict)


async def run(
    lab: Lab, services: Services, alerts: int, fingerprints: int, batches: Sequence[int]
) -> Table:
    passes: dict[int, list[Pass]] = {b: [] for b in batches}
    for repeat in range(lab.repeats):
        shift = repeat % len(batches)
        for batch in [*batches[shift:], *batches[:shift]]:
            passes[batch].append(await one_pass(lab, services, alerts, fingerprints, batch))
    return table(lab, alerts, fingerprints, passes)


async def one_pass(
    lab: Lab, services: Services, alerts: int, fingerprints: int, batch: int
) -> Pass:
    tag = uuid.uuid4().hex[:6]
    rules = [f"batched-{tag}-{i}" for i in range(fingerprints)]
    per_incident: dict[str, list[AlertEvent]] = {}
    for incident_id, event in to_events(
        [metric_alert(rules[i % fingerprints]) for i in range(alerts)]
    ):
        per_incident.setdefault(incident_id, []).append(event)
    result = Pass(rate=0.0)

    async def incident_calls(incident_id: str, events: list[AlertEvent]) -> None:
        for start in range(0, len(events), batch):
            chunk = events[start : start + batch]
            sent = time.perf_counter()
            recorded = await record_alerts(lab.client, services.task_queue, incident_id, chunk)
            if any(isinstance(r, BaseException) for r in recorded):
                raise RuntimeError(f"batch refused: {recorded}")
            result.latencies.append(time.perf_counter() - sent)

    meter = CpuMeter(services.pids())
    meter.start()
    await asyncio.gather(*(incident_calls(i, e) for i, e in per_incident.items()))
    meter.stop()
    result.rate = alerts / meter.wall
    result.cpu_per_1k = {k: v / alerts * 1000 for k, v in meter.used.items()}
    counts = await alert_counts(lab.client, sorted(per_incident), alerts)
    result.lost = max(0, alerts - sum(counts.values()))
    await terminate(lab.client, [workflow_id_for(i) for i in per_incident])
    return result


def table(lab: Lab, alerts: int, fingerprints: int, passes: dict[int, list[Pass]]) -> Table:
    result = Table(
        f"Temporal's side of coalescing: {alerts:,} alerts over {fingerprints} incidents sent "
        "through the SDK in batches, one call in flight per incident, no HTTP "
        f"(median of {lab.repeats} runs)",
        [
            "alerts per signal",
            "alerts/s",
            "vs 1 per signal",
            "call p50",
            "call p99",
            "lost",
            "CPU s per 1k alerts (server/worker/client)",
        ],
    )
    base = median([p.rate for p in passes[min(passes)]])
    for batch, runs in passes.items():
        rate = median([p.rate for p in runs])
        cpu = {k: median([p.cpu_per_1k[k] for p in runs]) for k in ("server", "worker", "client")}
        result.add(
            batch,
            f"{rate:,.0f}",
            ratio(rate, base),
            ms(median([percentile(p.latencies, 50) for p in runs])),
            ms(median([percentile(p.latencies, 99) for p in runs])),
            sum(p.lost for p in runs),
            f"{cpu['server']:.2f} / {cpu['worker']:.2f} / {cpu['client']:.2f}",
        )
    return result
