"""Medians, percentiles and the Markdown tables every benchmark prints."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: p99 of 100 samples is the 99th smallest, never an
    interpolation between two real latencies."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ratio(value: float, baseline: float) -> str:
    if not baseline or baseline != baseline or value != value:
        return "n/a"
    return f"{value / baseline:.2f}x"


def ms(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds * 1000:.0f} ms"


@dataclass
class Target:
    """One of issue 15's targets as a benchmark measured it: a ratio (or a
    value) against its goal. `python -m bench` prints every table's targets
    together at the end."""

    name: str
    measured: float
    goal: float
    at_most: bool = True  # the goal is a ceiling (≤), else a floor (≥)
    unit: str = "x"

    @property
    def met(self) -> bool:
        if self.measured != self.measured:  # NaN: not measured
            return False
        return self.measured <= self.goal if self.at_most else self.measured >= self.goal

    def row(self) -> list[str]:
        shown = "n/a" if self.measured != self.measured else f"{self.measured:.2f}{self.unit}"
        return [
            self.name,
            f"{'≤' if self.at_most else '≥'} {self.goal:g}{self.unit}",
            shown,
            "yes" if self.met else "no",
        ]


def at_most(name: str, measured: float, goal: float, unit: str = "x") -> Target:
    return Target(name, measured, goal, at_most=True, unit=unit)


def at_least(name: str, measured: float, goal: float, unit: str = "x") -> Target:
    return Target(name, measured, goal, at_most=False, unit=unit)


def value_of(text: str) -> float:
    """A ratio as a table shows it ("1.56x") back to a number; NaN for "n/a"."""
    try:
        return float(text.rstrip("x").replace(",", ""))
    except ValueError:
        return float("nan")


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # What this table shows of issue 15's targets (bench/__main__.py sums them up).
    targets: list[Target] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        out = [f"### {self.title}", "", line(self.columns)]
        out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        out += [line(row) for row in self.rows]
        if self.notes:
            out.append("")
            out += self.notes
        return "\n".join(out) + "\n"


def targets_table(targets: Sequence[Target]) -> Table:
    table = Table("Targets (issue 15)", ["target", "goal", "measured", "met?"])
    for target in targets:
        table.rows.append(target.row())
    met = sum(t.met for t in targets)
    table.notes.append(f"{met} of {len(targets)} met in this run.")
    return table
