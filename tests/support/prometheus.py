"""Prometheus for the tests of ops/: Debian's promtool, the metric names
stanch's code defines, the metric names a PromQL expression reads, and a real
Prometheus server evaluating stanch's rules."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from stanch.harness.ports import free_port
from stanch.harness.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
RULES = OPS / "prometheus" / "stanch-rules.yml"
RULE_TESTS = sorted((OPS / "prometheus" / "tests").glob("*.yml"))
DASHBOARD = OPS / "grafana" / "stanch.json"
ROOMS = ("models", "workflows", "activities", "gateway", "stores", "client", "cli", "worker.py")

# Temporal's SDK metrics the dashboard reads (docs.temporal.io/references/sdk-metrics);
# the test with a real Prometheus sees each of them scraped from a running worker.
SDK_METRICS = frozenset(
    {
        "temporal_activity_execution_latency_count",
        "temporal_activity_schedule_to_start_latency_bucket",
        "temporal_workflow_task_schedule_to_start_latency_bucket",
        "temporal_worker_task_slots_used",
    }
)
# Prometheus's own: the scrape's health, and the alerts it evaluates.
PROMETHEUS_METRICS = frozenset({"up", "ALERTS"})


def tool(name: str) -> str:
    """The path of Debian's `name` (package prometheus); a clear failure without it."""
    found = shutil.which(name)
    assert found, (
        f"{name} is missing: `make test` installs it (Debian's package prometheus), "
        "or run `apt-get install --no-install-recommends prometheus`"
    )
    return found


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


# ---- what stanch's code exports -----------------------------------------------------

# Call -> (library, kind). prometheus_client adds `_total` to counters; Temporal's
# runtime adds nothing; both give histograms _bucket, _sum and _count.
_DEFINERS = {
    "Counter": ("client", "counter"),
    "Gauge": ("client", "gauge"),
    "Histogram": ("client", "histogram"),
    "create_counter": ("temporal", "counter"),
    "create_gauge": ("temporal", "gauge"),
    "create_gauge_float": ("temporal", "gauge"),
    "create_histogram": ("temporal", "histogram"),
    "create_histogram_float": ("temporal", "histogram"),
    "create_histogram_timedelta": ("temporal", "histogram"),
    # workflows/lifecycle.py's Measure(metric, ...) becomes a histogram_timedelta
    "Measure": ("temporal", "histogram"),
}


def stanch_metrics() -> set[str]:
    """Every series name stanch's own code can expose, from its source."""
    sources = [
        path
        for room in ROOMS
        for path in ((ROOT / room).rglob("*.py") if (ROOT / room).is_dir() else [ROOT / room])
    ]
    trees = [ast.parse(path.read_text(), str(path)) for path in sources]
    constants: dict[str, str] = {}
    for tree in trees:
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target, value = statement.targets[0], statement.value
                if isinstance(value, ast.Tuple) and value.elts:
                    value = value.elts[0]  # (name, description) pairs
                if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
                    if isinstance(value.value, str):
                        constants[target.id] = value.value
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called not in _DEFINERS:
                continue
            first = node.args[0]
            if isinstance(first, ast.Starred):
                first = first.value
            name = (
                first.value
                if isinstance(first, ast.Constant)
                else constants.get(first.id)
                if isinstance(first, ast.Name)
                else None
            )
            if isinstance(name, str) and name.startswith("stanch_"):
                names |= _series(name, *_DEFINERS[called])
    return names


def _series(name: str, library: str, kind: str) -> set[str]:
    if kind == "histogram":
        return {f"{name}_{part}" for part in ("bucket", "sum", "count")}
    if kind == "counter" and library == "client":
        return {name.removesuffix("_total") + "_total"}
    return {name}


# ---- what a PromQL expression reads ---------------------------------------------------

_NOT_METRICS = frozenset(
    # aggregations, functions and keywords the expressions of ops/ use
    "sum max min avg count by without on ignoring group_left group_right and or unless bool "
    "rate increase irate delta histogram_quantile absent vector scalar time offset".split()
)


def promql_metrics(expr: str) -> set[str]:
    """The metric names `expr` selects: identifiers left once strings, label
    matchers, grouping clauses, ranges and numbers are taken out."""
    regex_names = re.findall(r'__name__=~"([^"]*)"', expr)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    names = {
        token
        for token in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text)
        if token not in _NOT_METRICS
    }
    for pattern in regex_names:  # {__name__=~"stanch_alerts_(received|refused)_total"}
        names |= _alternatives(pattern)
    return names


def _alternatives(pattern: str) -> set[str]:
    match = re.fullmatch(r"([a-z_]*)\(([a-z_|]+)\)([a-z_]*)", pattern)
    assert match, f"a name regex the tests cannot expand: {pattern}"
    head, choices, tail = match.groups()
    return {f"{head}{choice}{tail}" for choice in choices.split("|")}


# ---- a real Prometheus ----------------------------------------------------------------


@dataclass
class RunningPrometheus:
    url: str
    http: httpx.Client

    def api(self, path: str, **params: str) -> Any:
        answer = self.http.get(f"{self.url}/api/v1/{path}", params=params)
        answer.raise_for_status()
        body = answer.json()
        assert body["status"] == "success", body
        return body["data"]

    def firing(self) -> dict[str, dict[str, str]]:
        """The alerts firing now, by name, with their labels."""
        alerts = self.api("alerts")["alerts"]
        return {a["labels"]["alertname"]: a["labels"] for a in alerts if a["state"] == "firing"}

    def value(self, query: str) -> float | None:
        result = self.api("query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None


def rules_held_for(seconds: int, into: Path) -> Path:
    """A copy of stanch's rules whose every `for:` is `seconds`: the test sees a
    rule go pending, then fire, without waiting out minutes."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = f"{seconds}s"
    copy = into / "stanch-rules.yml"
    copy.write_text(yaml.safe_dump(rules))
    return copy


@contextmanager
def running_prometheus(
    workdir: Path, rules: Path, targets: dict[str, str], every: str = "1s"
) -> Iterator[RunningPrometheus]:
    """Debian's prometheus on a free port, scraping `targets` (job -> host:port)
    and evaluating `rules` every `every`; stopped when the block ends."""
    config = {
        "global": {"scrape_interval": every, "evaluation_interval": every},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (workdir / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=10) as http:

            def ready() -> bool:
                assert process.poll() is None, (workdir / "prometheus.log").read_text()[-3000:]
                try:
                    return http.get(f"{url}/-/ready").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(ready, 60, "prometheus ready")
            yield RunningPrometheus(url, http)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
