"""`stanch dev` as a process, on free ports (metrics too), with the demo plan
and dave as an admin: for tests that watch the stack from outside (Prometheus).
It is stopped with Ctrl-C, as in the terminal, when the block ends."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from stanch.harness.ports import free_port
from stanch.harness.waiting import wait_until
from tests.support.cli import run_stanch

ROOT = Path(__file__).resolve().parents[2]
PORTS = ("http", "temporal", "ui", "sim", "metrics")


@dataclass
class DevStack:
    workdir: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes]

    @property
    def state(self) -> Path:
        return self.workdir / "state"

    @property
    def gateway(self) -> str:
        return f"127.0.0.1:{self.ports['http']}"

    @property
    def worker_metrics(self) -> str:
        return f"127.0.0.1:{self.ports['metrics']}"

    def stanch(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_stanch(self.state, self.workdir, *args)

    def output(self) -> str:
        return (self.workdir / "dev.log").read_text(errors="replace")


@contextmanager
def running_dev_stack(workdir: Path, policy: Path | None = None) -> Iterator[DevStack]:
    """With `policy` copied as it is, else the demo plan with dave as an admin."""
    config = workdir / "stanch.yaml"
    shutil.copy(policy or ROOT / "examples" / "demo.yaml", config)
    carol = "  - {id: carol, name: Carol Chen, roles: [approver]}\n"
    text = config.read_text()
    if policy is None:
        assert carol in text
        # Dave holds the roster role admin: his development credential may flip toggles.
        dave = "  - {id: dave, name: Dave Diaz, roles: [approver, admin]}\n"
        config.write_text(text.replace(carol, carol + dave))
    ports = {name: free_port() for name in PORTS}
    with (workdir / "dev.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stanch.cli.main", "dev", "--state-dir", str(workdir / "state")]
            + ["--config", str(config)]
            + [f"--{name}-port={port}" for name, port in ports.items()],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    stack = DevStack(workdir, ports, process)

    def up() -> bool:
        assert process.poll() is None, stack.output()[-4000:]
        try:
            return httpx.get(f"http://{stack.gateway}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, 120, "stanch dev's gateway")
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
