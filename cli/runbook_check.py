"""`stanch runbook check`: before a deploy, replay the running and recently
closed workflows against the code about to be deployed (this install, the
policy's runbook_packages, and `--runbook-module` for code not installed
yet) and name every instance it would break. Exit 1 if any would, 0 with
the count otherwise, 2 on bad input. It reads Temporal directly
(STANCH_TEMPORAL_*, and STANCH_PAYLOAD_KEYS_FILE for sealed histories): run
it in CI or the deploy job.

An instance it cannot read (sealed under a payload key this process does not
hold) is named as such, with the key id, and is no break of the code; but
nothing says the code carries it either, so the check still fails, with exit
1: the code "cannot check" already has (Temporal unreachable), since in both
the operator lacks the proof that the deploy is safe. Exit 2 stays for what
is wrong in the command itself."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from stanch.cli.errors import Unavailable, UsageError
from stanch.client.compatibility import (
    CompatibilityReport,
    check_compatibility,
    deployed_workflows,
    workflows_in,
)
from stanch.client.connection import connect
from stanch.client.payload_keys import SETTING
from stanch.models.config import ConfigError
from stanch.models.duration import Duration
from stanch.models.settings import Settings
from stanch.stores.policy import load_config

WINDOW: TypeAdapter[timedelta] = TypeAdapter(Duration)
LONGEST_WINDOW = timedelta(days=90)  # what Temporal keeps of closed workflows, at most


def closed_window(given: str) -> timedelta:
    try:
        span = WINDOW.validate_python(given)
    except ValidationError:
        raise UsageError(f"--closed-since: not a duration: {given!r} (e.g. 24h, 7d)") from None
    if not timedelta(0) <= span <= LONGEST_WINDOW:
        raise UsageError("--closed-since: between 0s and 90d")
    return span


def per_type_cap(given: int) -> int:
    if given < 1:
        raise UsageError(f"--limit: at least 1 execution per type, not {given}")
    return given


def workflows_to_check(config: Path | None, modules: list[str]) -> list[type]:
    """What the worker would register once deployed: with `config`, its
    policy's runbook_packages too; `modules` stand in for the classes
    registered under the same workflow names."""
    try:
        packages = load_config(config).runbook_packages if config is not None else []
        replacing = [cls for name in modules for cls in workflows_in(name)]
        return deployed_workflows(packages, replacing)
    except ConfigError as e:
        raise UsageError("\n".join([f"{config or e.source}: invalid", *e.problems])) from None


async def run_check(
    settings: Settings,
    *,
    config: Path | None,
    modules: list[str],
    closed_since: str,
    limit: int,
    as_json: bool,
) -> int:
    window, cap = closed_window(closed_since), per_type_cap(limit)
    workflows = workflows_to_check(config, modules)
    try:
        client = await connect(settings)
    except Exception as e:
        raise Unavailable(
            f"cannot reach Temporal at {settings.temporal_address}: {e} "
            "(set STANCH_TEMPORAL_ADDRESS)"
        ) from None
    report = await check_compatibility(client, workflows, closed_since=window, per_type=cap)
    print_report(report, as_json)
    return 1 if report.broken or report.unreadable else 0


def print_report(report: CompatibilityReport, as_json: bool) -> None:
    if as_json:
        body = report.model_dump(mode="json")
        body["checked"] = report.checked
        for row, typed in zip(body["types"], report.types, strict=True):
            row["capped"] = typed.capped
        print(json.dumps(body, indent=2))
        return
    for typed in report.types:
        if typed.capped:
            print(
                f"{typed.workflow_type}: checked {typed.checked} of {typed.matching} "
                "executions (capped: raise --limit to check them all)"
            )
    for b in report.broken:
        state = "running" if b.running else "closed"
        print(f"BREAKS {b.workflow_id} ({b.workflow_type}, {state}, run {b.run_id})")
        print(f"  {b.message}")
    for u in report.unreadable:
        state = "running" if u.running else "closed"
        print(f"CANNOT READ {u.workflow_id} ({u.workflow_type}, {state}, run {u.run_id})")
        print(f"  {u.reason}")
    since = f"{report.closed_since:%Y-%m-%d %H:%M}Z"
    window = f"(running, or closed since {since})"
    if report.broken:
        print(
            f"{len(report.broken)} of {report.checked} executions {window} "
            "would break on this code: guard the change with workflow.patched"
        )
    if report.unreadable:
        print(
            f"{len(report.unreadable)} of {report.checked} executions {window} could not be "
            "read here, so were not checked: not known to replay on this code (run the "
            f"check with the payload keys they were sealed with, {SETTING})"
        )
    if not report.broken and not report.unreadable:
        print(
            f"ok: {report.checked} executions (running, or closed since {since}) "
            f"of {len(report.types)} workflow types replay on this code"
        )
