"""What the chaos suite (tests/test_chaos.py) is built from: real processes it
can SIGKILL and start again (`temporal server start-dev`, `stanch worker`,
`stanch gateway`), an azuresim world with one failing VM per trial, how
mutations are counted in azuresim's journal, and the summary table."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from stanch.client.search_attributes import SEARCH_ATTRIBUTES
from tests.conftest import SUB, free_port, installed
from tests.decision_helpers import TEST_DECISION_KEY

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
DEMO_ALERT = ROOT / "examples" / "demo" / "vm-web-1-unavailable.json"
CHAOS_RG = f"/subscriptions/{SUB}/resourceGroups/rg-chaos"


def chaos_trials() -> int:
    """`make chaos` sets 100; `make test` runs the default few."""
    return max(1, int(os.environ.get("STANCH_CHAOS_TRIALS", "3")))


# ---- processes ------------------------------------------------------------------

# Loaded once here: the child calls it between fork and exec, where it must not
# import or allocate anything.
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If pytest itself is SIGKILLed no finalizer runs; the kernel still takes
    # every process we started down with it.
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Proc:
    """One real process that a scenario kills (SIGKILL) and starts again with the
    same command line. Its output is appended to `<dir>/<name>.log`."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], directory: Path) -> None:
        self.name, self.argv, self.env, self.dir = name, argv, env, directory
        self.log = directory / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.dir,
                preexec_fn=_die_with_parent,
            )
        self.starts += 1

    async def kill(self) -> None:
        """kill -9: no drain, no goodbye to the server."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            await self.process.wait()

    async def stop(self, grace: float = 20) -> None:
        """SIGTERM, then SIGKILL if it does not exit within `grace` seconds."""
        if not self.running:
            return
        assert self.process is not None
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            await self.kill()

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def stanch_env(**settings: Any) -> dict[str, str]:
    """This environment without anyone's STANCH_* or OTLP settings, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STANCH_", "OTEL_"))}
    # The test run's decision key: its gateways sign with it, its workers trust it.
    env["STANCH_DECISION_KEY"] = TEST_DECISION_KEY
    env.update({f"STANCH_{key.upper()}": str(value) for key, value in settings.items()})
    return env


def stanch_process(name: str, directory: Path, args: list[str], **settings: Any) -> Proc:
    # --state-dir: never read a `.stanch/env` left by someone's `stanch dev`.
    argv = [installed("stanch"), "--state-dir", str(directory), *args]
    return Proc(name, argv, stanch_env(state_dir=directory, **settings), directory)


async def pollers(client: Client, task_queue: str) -> dict[str, float]:
    """Identity -> last poll (epoch seconds) of the workers polling `task_queue`
    for workflow tasks. An SDK worker's identity is `<pid>@<host>`."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return {p.identity: p.last_access_time.ToDatetime().timestamp() for p in response.pollers}


async def worker_polling(client: Client, task_queue: str, pid: int, since: float = 0) -> bool:
    seen = await pollers(client, task_queue)
    return any(who.startswith(f"{pid}@") and at >= since for who, at in seen.items())


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float, what: str, every: float = 0.1
) -> T:
    """The first truthy answer of `check`; an AssertionError naming `what` after
    `timeout` seconds. Errors from `check` count as "not yet" (a server that is
    restarting answers with errors for a while)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            answer = await check()
            if answer:
                return answer
        except Exception as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s (last error: {last!r})")
        await asyncio.sleep(every)


class DevServer(Proc):
    """`temporal server start-dev` on free ports with a SQLite file that outlives
    the process, and stanch's search attributes, as `stanch dev` runs it."""

    def __init__(self, directory: Path) -> None:
        self.port, self.ui_port = free_port(), free_port()
        self.db = directory / "temporal.db"
        argv = [
            installed("temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(self.db),
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ui-port",
            str(self.ui_port),
            "--log-level",
            "warn",
        ]
        for name, kind in SEARCH_ATTRIBUTES.items():
            argv += ["--search-attribute", f"{name}={kind}"]
        super().__init__("temporal", argv, dict(os.environ), directory)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def connect(self, timeout: float = 60) -> Client:
        async def attempt() -> Client:
            assert self.running, f"temporal exited:\n{self.tail()}"
            return await Client.connect(self.address, data_converter=pydantic_data_converter)

        return await eventually(attempt, timeout, "temporal dev server answering", every=0.25)


# ---- scenarios and the summary -------------------------------------------------------


@dataclass
class ScenarioResult:
    scenario: str
    trials: int = 0
    stuck: int = 0  # runbooks that did not reach their outcome (contained) in time
    duplicated: int = 0  # writes azuresim applied more than once
    lost: int = 0  # alerts (or incidents) acknowledged, then missing
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


RESULTS: dict[str, ScenarioResult] = {}


class Scenario:
    """What one chaos test found; its line in the summary table."""

    def __init__(self, name: str) -> None:
        self.result = RESULTS[name] = ScenarioResult(name)
        self.problems: list[str] = []
        self._started = time.monotonic()

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def finished(self) -> None:
        """Stamps the scenario's wall time (once)."""
        if not self.result.seconds:
            self.result.seconds = time.monotonic() - self._started

    def conclude(self, note: str) -> None:
        """Records the wall time and a note, then fails on anything found."""
        self.finished()
        self.result.notes.append(note)
        assert not self.problems, "\n".join(self.problems)
        r = self.result
        assert r.trials > 0 and (r.stuck, r.duplicated, r.lost) == (0, 0, 0), r


def summary(results: Iterable[ScenarioResult]) -> str:
    header = (
        f"{'scenario':<28} {'trials':>6} {'stuck':>6} {'dup writes':>10} {'lost':>5} {'wall s':>7}"
    )
    lines = ["chaos summary", header, "-" * len(header)]
    notes = []
    for r in results:
        lines.append(
            f"{r.scenario:<28} {r.trials:>6} {r.stuck:>6} {r.duplicated:>10} {r.lost:>5} {r.seconds:>7.1f}"
        )
        notes += [f"  {r.scenario}: {note}" for note in r.notes]
    return "\n".join([*lines, *notes]) + "\n"


def report() -> None:
    """Printed at the end of the chaos tests (visible with -s), and written to
    $STANCH_CHAOS_REPORT when set."""
    if not RESULTS:
        return
    text = summary(RESULTS.values())
    print("\n" + text, end="", flush=True)
    path = os.environ.get("STANCH_CHAOS_REPORT")
    if path:
        Path(path).write_text(text)
