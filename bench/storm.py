"""Alert storm intake: N alerts over M incidents, POSTed to the gateway by a
pool of concurrent clients, against the same alerts sent straight through the
SDK as one signal-with-start each (the baseline), on the same dev server and
worker. Every alert must be counted by its incident: lost alerts are
acknowledged ones whose incident does not count them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import batching
from bench.alerts import metric_alert
from bench.incidents import alert_counts, signals_received, terminate
from bench.lab import CpuMeter, Lab
from bench.load import Run, post_alerts, signal_with_start_each, to_events
from bench.profile import Profiler, render
from bench.stack import SHIPPED_LINGER_MS, SHIPPED_WINDOW_MS, Services, policy, running
from bench.stats import Table, Target, at_least, at_most, median, ms, percentile, ratio
from stanch.client.ids import workflow_id_for

# What a gateway does unless told otherwise: the path the targets are judged on.
DEFAULT_MODE = (SHIPPED_WINDOW_MS, SHIPPED_LINGER_MS)

BASELINE = "SDK: one signal-with-start per alert (baseline)"
OFF = -1.0  # STANCH_COALESCE_WINDOW_MS below zero: one signal per alert


@dataclass
class Sizes:
    alerts: int = 10_000
    fingerprints: int = 20
    clients: list[int] = field(default_factory=lambda: [200])
    windows: list[float] = field(default_factory=lambda: [OFF, 0.0])
    lingers: list[float] = field(default_factory=lambda: [0.0, 20.0])  # with a window >= 0
    batches: list[int] = field(default_factory=lambda: [1, 10, 50])  # bench/batching.py
    profile: str | None = None  # a process to profile during gateway passes (bench/profile.py)


# (coalescing window, or None for the SDK baseline; linger; concurrent clients)
Variant = tuple[float | None, float, int]


@dataclass
class Pass:
    """One variant, one repeat."""

    rate: float
    p50: float
    p99: float
    incidents: int
    lost: int
    errors: int
    signals: int
    cpu_per_1k: dict[str, float]
    busiest: str
    machine: float
    foreign: float
    profile: Path | None = None


def variant_name(window: float | None, linger: float = 0.0) -> str:
    if window is None:
        return BASELINE
    if window < 0:
        return "gateway, coalescing off"
    name = "gateway, coalescing"
    if window > 0:
        name += f", window {window:g} ms"
    return name + (f", linger ≤ {linger:g} ms" if linger > 0 else ", no linger")


def gateway_modes(sizes: Sizes) -> list[tuple[float | None, float]]:
    """(window, linger) of every intake path measured, the SDK baseline first."""
    modes: list[tuple[float | None, float]] = [(None, 0.0)]
    for window in sizes.windows:
        modes += [(window, 0.0)] if window < 0 else [(window, g) for g in sizes.lingers]
    return modes


async def run(lab: Lab, sizes: Sizes) -> list[Table]:
    workdir = lab.scratch("storm")
    async with running(
        lab.server, lab.client, workdir, policy(workdir / "pages.jsonl")
    ) as services:
        modes = gateway_modes(sizes)
        variants: list[Variant] = [(w, g, c) for c in sizes.clients for w, g in modes]
        # Warm the worker, the gateway and the server's caches before measuring.
        for window, linger in modes:
            await one_pass(lab, services, (window, linger, 50), Sizes(500, sizes.fingerprints))
        passes: dict[Variant, list[Pass]] = {v: [] for v in variants}
        for repeat in range(lab.repeats):
            # Rotate the order so no variant always runs on a freshly idle machine.
            shift = repeat % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                passes[variant].append(await one_pass(lab, services, variant, sizes))
        tables = [table(lab, sizes, passes)]
        if sizes.batches:
            tables.append(
                await batching.run(lab, services, sizes.alerts, sizes.fingerprints, sizes.batches)
            )
    return tables


async def one_pass(lab: Lab, services: Services, variant: Variant, sizes: Sizes) -> Pass:
    window, linger, clients = variant
    tag = uuid.uuid4().hex[:6]
    rules = [f"storm-{tag}-{i}" for i in range(sizes.fingerprints)]
    bodies = [metric_alert(rules[i % len(rules)]) for i in range(sizes.alerts)]
    events = to_events(bodies)
    incident_ids = sorted({incident_id for incident_id, _ in events})
    if window is not None and (window, linger) != (services.window_ms, services.linger_ms):
        await services.start_gateway(window, linger)
    profiler: Profiler | None = None
    if sizes.profile and window is not None:
        out = (
            services.workdir / f"profile-{sizes.profile}-{window:g}-{linger:g}-{clients}-{tag}.txt"
        )
        profiler = Profiler(services.pids()[sizes.profile], out)
        await profiler.start()
    meter = CpuMeter(services.pids())
    meter.start()
    load: Run
    if window is None:
        load = await signal_with_start_each(lab.client, services.task_queue, events, clients)
    else:
        load = await post_alerts(services.url, bodies, clients)
    meter.stop()
    if profiler is not None:
        await profiler.stop()
    accepted = len(load.latencies)
    counts = await alert_counts(lab.client, incident_ids, accepted)
    workflow_ids = [workflow_id_for(i) for i in incident_ids if counts[i]]
    signals = 0
    for workflow_id in workflow_ids:
        signals += await signals_received(lab.client, workflow_id)
    await terminate(lab.client, workflow_ids)
    return Pass(
        rate=load.rate,
        p50=percentile(load.latencies, 50),
        p99=percentile(load.latencies, 99),
        incidents=len(workflow_ids),
        lost=max(0, accepted - sum(counts.values())),
        errors=sum(load.errors.values()),
        signals=signals,
        cpu_per_1k={k: v / sizes.alerts * 1000 for k, v in meter.used.items()},
        busiest=meter.busiest(),
        machine=meter.machine_share(),
        foreign=meter.foreign_share(),
        profile=profiler.out if profiler is not None else None,
    )


def table(lab: Lab, sizes: Sizes, passes: dict[Variant, list[Pass]]) -> Table:
    result = Table(
        f"Alert storm intake: {sizes.alerts:,} alerts over {sizes.fingerprints} incidents "
        f"(median of {lab.repeats} runs)",
        [
            "intake path",
            "clients",
            "alerts/s",
            "vs baseline",
            "p50",
            "p99",
            "incidents",
            "lost",
            "errors",
            "signals",
            "alerts/signal",
            "CPU ms per alert, all processes",
            "server / worker / gateway / client",
            "busiest process",
            "machine busy (ours + others)",
        ],
    )
    for (window, linger, clients), runs in passes.items():
        base_rate = median([p.rate for p in passes[(None, 0.0, clients)]])
        rate = median([p.rate for p in runs])
        signals = median([p.signals for p in runs])
        cpu = {k: median([p.cpu_per_1k.get(k, 0.0) for p in runs]) for k in runs[0].cpu_per_1k}
        gateway_cpu = f"{cpu['gateway']:.2f}" if window is not None else "-"
        total_cpu = median([sum(p.cpu_per_1k.values()) for p in runs])
        result.add(
            variant_name(window, linger),
            clients,
            f"{rate:,.0f}",
            ratio(rate, base_rate),
            ms(median([p.p50 for p in runs])),
            ms(median([p.p99 for p in runs])),
            f"{median([p.incidents for p in runs]):.0f}",
            sum(p.lost for p in runs),
            sum(p.errors for p in runs),
            f"{signals:,.0f}",
            f"{sizes.alerts / signals:.1f}" if signals else "n/a",
            f"{total_cpu:.2f}",
            f"{cpu['server']:.2f} / {cpu['worker']:.2f} / {gateway_cpu} / {cpu['client']:.2f}",
            runs[len(runs) // 2].busiest,
            f"{median([p.machine for p in runs]):.0%} + {median([p.foreign for p in runs]):.0%}",
        )
    result.targets += targets(passes)
    per_run = "; ".join(
        f"{'baseline' if window is None else variant_name(window, linger)} ({clients} clients): "
        + ", ".join(f"{p.rate:,.0f}" for p in runs)
        for (window, linger, clients), runs in passes.items()
    )
    result.notes += [
        f"alerts/s in each run — {per_run}.",
        "vs baseline: against the SDK baseline with the same number of clients.",
        "lost: acknowledged alerts (202, or an SDK call that returned) that their "
        "incident's alert_count does not include, summed over all runs; errors: "
        "requests not acknowledged, summed over all runs.",
        "busiest process: the median run's busiest process and its share of one core "
        "during intake; machine busy: the measured processes' CPU over the wall time "
        "of all cores, plus what other processes on the machine used meanwhile.",
        "CPU ms per alert: CPU seconds per 1,000 alerts of the Temporal server, the worker, "
        "the gateway and the load generator (client), from /proc, summed; it depends little "
        "on what else the machine runs.",
    ]
    for (window, linger, clients), runs in passes.items():
        profiles = [p.profile for p in runs if p.profile is not None]
        if profiles and window is not None:
            result.notes.append(
                f"\nprofile of the {sizes.profile}, {variant_name(window, linger)}, "
                f"{clients} clients ({len(profiles)} runs, py-spy, share of CPU samples):\n"
                + "\n".join(f"    {line}" for line in render(profiles))
            )
    return result


def targets(passes: dict[Variant, list[Pass]]) -> list[Target]:
    """Issue 15, item 4, judged on the gateway as shipped (default window and
    linger) where that was measured, else on the fastest gateway path."""
    found: list[Target] = []
    for clients in sorted({c for _, _, c in passes}):
        base = median([p.rate for p in passes[(None, 0.0, clients)]])
        gateways = {
            (w, g): runs for (w, g, c), runs in passes.items() if c == clients and w is not None
        }
        if not gateways:
            continue
        mode = (
            DEFAULT_MODE
            if DEFAULT_MODE in gateways
            else max(gateways, key=lambda m: median([p.rate for p in gateways[m]]))
        )
        runs = gateways[mode]
        name = f"{variant_name(*mode)}, {clients} clients"
        found.append(
            at_most(
                f"gateway CPU per accepted alert ({name})",
                median([p.cpu_per_1k["gateway"] for p in runs]),
                0.4,
                unit=" ms",
            )
        )
        goal = 3.0 if clients >= 1000 else 1.0
        found.append(
            at_least(
                f"storm intake vs the SDK baseline ({name})",
                median([p.rate for p in runs]) / base if base else float("nan"),
                goal,
            )
        )
    lost = sum(p.lost for runs in passes.values() for p in runs)
    found.append(at_most("alerts lost in the storm (every path, every run)", lost, 0, unit=""))
    return found
