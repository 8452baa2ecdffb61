"""What every benchmark gets: the dev server, a client on it, a scratch
directory, and the process-CPU bookkeeping that explains the numbers."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from bench.stack import CLOCK_TICKS, cpu_seconds
from stanch.harness.dev_server import DevServer


@dataclass
class Lab:
    server: DevServer
    client: Client
    workdir: Path
    repeats: int
    quick: bool

    def scratch(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


class CpuMeter:
    """CPU seconds each process spent between start() and stop(), this one
    included (its threads too: the SDK's Rust core runs in them)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._before: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.wall = 0.0
        self._started = 0.0
        self._machine_before = 0.0
        self.machine = 0.0

    def _now(self) -> dict[str, float]:
        now = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        now["client"] = time.process_time()
        return now

    def start(self) -> None:
        self._before = self._now()
        self._machine_before = machine_busy_seconds()
        self._started = time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._started
        after = self._now()
        self.used = {name: after[name] - self._before[name] for name in after}
        self.machine = machine_busy_seconds() - self._machine_before

    def busiest(self) -> str:
        """The process that used the most CPU, and its share of one core."""
        if not self.used or not self.wall:
            return "n/a"
        name = max(self.used, key=lambda n: self.used[n])
        return f"{name} {self.used[name] / self.wall:.0%}"

    def machine_share(self) -> float:
        """Our processes' CPU over the wall time of all cores."""
        cores = os.cpu_count() or 1
        return sum(self.used.values()) / (self.wall * cores) if self.wall else 0.0

    def foreign_share(self) -> float:
        """CPU used by everything else on the machine (other people's test
        runs on a shared box), over the wall time of all cores."""
        cores = os.cpu_count() or 1
        foreign = max(0.0, self.machine - sum(self.used.values()))
        return foreign / (self.wall * cores) if self.wall else 0.0


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user..steal; guest time is already in user
    return busy / CLOCK_TICKS
