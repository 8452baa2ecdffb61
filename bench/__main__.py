"""`python -m bench [storm|containment|waiting|escalation ...] [--quick]`

Starts a Temporal dev server, runs the named benchmarks (all by default) and
prints one Markdown table each, with medians over `--repeats` runs and the
ratio to a baseline measured in the same run. Sizes come from flags, or from
`STANCH_BENCH_<FLAG>` environment variables (e.g. STANCH_BENCH_ALERTS=2000);
`--quick` shrinks every default so the whole set takes a couple of minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import containment, escalation, scale, storm, waiting
from bench.lab import Lab
from bench.stack import GRACEFULLY, ROOT, bench_server
from bench.stats import Table, Target, targets_table

Benchmark = Callable[[Lab, argparse.Namespace], Awaitable[list[Table]]]

# (full size, quick size) of every knob.
SIZES: dict[str, tuple[str, str]] = {
    "repeats": ("3", "3"),
    "alerts": ("10000", "1000"),
    "fingerprints": ("20", "20"),
    "clients": ("200,1000", "200"),
    "windows": ("-1,0", "-1,0"),
    "lingers": ("0,20", "0,20"),
    "batches": ("1,10,50", "1,10"),
    "trials": ("10", "3"),
    "incidents": ("1000", "50"),
    "escalations": ("50", "10"),
    "tier_seconds": ("3", "2"),
    "steps": ("10,100,1000,10000", "10,100"),  # open incidents along the scale curve
    "approvals": ("raw,gateway,trivial", "raw,gateway,trivial"),  # bench waiting's ways
}


LISTS = {"windows", "lingers", "clients", "batches", "steps", "approvals"}  # comma-separated


def _storm(lab: Lab, args: argparse.Namespace) -> Awaitable[list[Table]]:
    windows = [float(w) for w in args.windows.split(",") if w.strip()]
    lingers = [float(g) for g in args.lingers.split(",") if g.strip()]
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    sizes = storm.Sizes(
        args.alerts, args.fingerprints, clients, windows, lingers, batches, args.profile
    )
    return storm.run(lab, sizes)


def _containment(lab: Lab, args: argparse.Namespace) -> Awaitable[list[Table]]:
    return containment.run(lab, args.trials)


def _waiting(lab: Lab, args: argparse.Namespace) -> Awaitable[list[Table]]:
    ways = [w.strip() for w in args.approvals.split(",") if w.strip()]
    return waiting.run(lab, args.incidents, ways)


def _escalation(lab: Lab, args: argparse.Namespace) -> Awaitable[list[Table]]:
    storm_clients = int(args.clients.split(",")[0])
    return escalation.run(
        lab, args.escalations, args.tier_seconds, storm_clients, args.own_paging_worker
    )


def _scale(lab: Lab, args: argparse.Namespace) -> Awaitable[list[Table]]:
    sizes = scale.Sizes(
        steps=[int(s) for s in args.steps.split(",") if s.strip()],
        alerts=args.alerts,
        clients=int(args.clients.split(",")[0]),
        trials=args.trials,
        escalations=args.escalations,
        tier_seconds=args.tier_seconds,
    )
    return scale.run(lab, sizes)


BENCHMARKS: dict[str, Benchmark] = {
    "storm": _storm,
    "containment": _containment,
    "waiting": _waiting,
    "escalation": _escalation,
    "scale": _scale,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="benchmark", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="small sizes: a couple of minutes")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--own-paging-worker",
        action="store_true",
        help="escalation: also page Sev1 incidents on a worker process and task queue of their own",
    )
    parser.add_argument(
        "--profile",
        choices=["gateway", "worker", "server"],
        help="storm: py-spy that process during every gateway pass (needs py-spy)",
    )
    for knob, (full, _) in SIZES.items():
        flag = "--" + knob.replace("_", "-")
        parser.add_argument(flag, dest=knob, default=None, help=f"default {full}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    for knob, (full, quick) in SIZES.items():
        value = getattr(args, knob)
        if value is None:
            value = os.environ.get(f"STANCH_BENCH_{knob.upper()}", quick if args.quick else full)
        setattr(args, knob, value if knob in LISTS else int(value))
    return args


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return (
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, "
        f"nproc {os.cpu_count()}, CPU {model}, Python {platform.python_version()}\n"
        f"```\n$ free -g\n{memory}\n```"
    )


async def main(args: argparse.Namespace) -> None:
    names = args.names or list(BENCHMARKS)
    workdir = Path(tempfile.mkdtemp(prefix="stanch-bench-"))
    print(f"# stanch benchmarks ({'quick' if args.quick else 'full'})\n\n{machine()}\n")
    print(f"scratch directory (logs): {workdir}\n", flush=True)
    server = bench_server(workdir)
    try:
        await server.start()
        client = await server.connect()
        lab = Lab(server, client, workdir, args.repeats, args.quick)
        targets: list[Target] = []
        for name in names:
            started = time.monotonic()
            for table in await BENCHMARKS[name](lab, args):
                print(table.render(), flush=True)
                targets += table.targets
            print(f"({name}: {time.monotonic() - started:.0f} s)\n", flush=True)
        if targets:
            print(targets_table(targets).render(), flush=True)
    finally:
        await server.stop(grace=15, sig=GRACEFULLY)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    code = 0
    try:
        asyncio.run(main(arguments))
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's Rust threads can abort a finalising interpreter.
    os._exit(code)
