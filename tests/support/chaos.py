"""What the chaos suite (tests/chaos/) is built from, besides the harness's
processes it SIGKILLs and starts again (`temporal server start-dev`, `stanch
worker`, `stanch gateway`): how long it waits, and the summary table. The
estate it remediates is in chaos_estate.py."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from stanch.harness import services
from stanch.harness.processes import Process
from stanch.harness.waiting import eventually as wait_for
from stanch.testing.decisions import TEST_DECISION_KEY

T = TypeVar("T")


def chaos_trials() -> int:
    """`make chaos` sets 100; `make test` runs the default few."""
    return max(1, int(os.environ.get("STANCH_CHAOS_TRIALS", "3")))


def stanch_process(name: str, directory: Path, args: list[str], **settings: Any) -> Process:
    """`stanch <args>` as the harness runs it, trusting (worker) or signing with
    (gateway) the test run's decision key."""
    return services.stanch_process(
        name, directory, args, decision_key=TEST_DECISION_KEY, **settings
    )


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float, what: str, every: float = 0.1
) -> T:
    """The harness's `eventually`, where any error means "not yet": the
    processes under test are being killed, and answer with errors for a while."""
    return await wait_for(check, timeout, what, every=every, not_yet=(Exception,))


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


class Summary:
    """The chaos tests' results, one line each (the module's `chaos_summary`
    fixture holds it and reports it when the module is done)."""

    def __init__(self) -> None:
        self.results: dict[str, ScenarioResult] = {}

    def add(self, name: str) -> ScenarioResult:
        self.results[name] = ScenarioResult(name)
        return self.results[name]

    def report(self) -> None:
        """Printed (visible with -s), and added to $STANCH_CHAOS_REPORT when set
        (added: `make chaos` runs more than one module with a summary)."""
        if not self.results:
            return
        text = summary(self.results.values())
        print("\n" + text, end="", flush=True)
        path = os.environ.get("STANCH_CHAOS_REPORT")
        if path:
            with Path(path).open("a") as report:
                report.write(text)


class Scenario:
    """What one chaos test found; its line in the summary table."""

    def __init__(self, name: str, summary: Summary) -> None:
        self.result = summary.add(name)
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
