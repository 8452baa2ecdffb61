"""`stanch runbook list | new`: what runbooks exist, and a start on a new one."""

from __future__ import annotations

import json
import re
from pathlib import Path

from stanch.cli.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def list_runbooks(as_json: bool) -> None:
    from stanch.runbooks.registry import catalog

    specs = catalog()
    if as_json:
        print(json.dumps([s.model_dump(mode="json") for s in specs.values()], indent=2))
        return
    for spec in specs.values():
        gates = ", ".join(f"{step} ({risk})" for step, risk in spec.approvals.items()) or "none"
        print(f"{spec.name:<18} {spec.risk:<7} {spec.description}")
        print(f"{'':<18} approvals: {gates}; on success the incident is {spec.outcome}")


RUNBOOK_TEMPLATE = '''"""{title}: say what this runbook is for and when it is the right response."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from stanch.activities.health import HealthActivities
    from stanch.activities.resources import ResourceActivities
    from stanch.models.azure import ResourceRef, TagChange, TagRemoval
    from stanch.models.config import AlertMatch
    from stanch.models.risk import Risk
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult, RunbookSpec
    from stanch.workflows.runbook import Runbook


class {cls}Params(BaseModel):
    # What stanch.yaml may set: `runbooks: [{{runbook: {name}, params: {{label: x}}}}]`.
    label: str = "{name}"


@workflow.defn(name="{name}")
class {cls}(Runbook):
    spec = RunbookSpec(
        name="{name}",
        description="TODO: one line an on-call engineer reads in `stanch runbook list`.",
        risk=Risk.MEDIUM,
        author="TODO: you",
        matches=AlertMatch(resource_types=["microsoft.compute/virtualmachines"]),
        approvals={{"apply": Risk.MEDIUM}},
        outcome="mitigated",
    )

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        params = self.parameters({cls}Params)
        resource = ResourceRef(resource_id=self.resource_id)
        health = await self.step("check health", HealthActivities.get_availability, resource)
        if health.state == "Available":
            return RunbookOutcome.NOT_NEEDED
        await self.approval("apply")
        await self.act(
            "label the resource",
            ResourceActivities.merge_tags,
            TagChange(resource_id=self.resource_id, tags={{"stanch.runbook": params.label}}),
            undo=lambda _: (
                ResourceActivities.remove_tags,
                TagRemoval(resource_id=self.resource_id, names=["stanch.runbook"]),
            ),
        )
        return RunbookOutcome.MITIGATED
'''

TEST_TEMPLATE = '''"""{title}: tested on the time-skipping server against azuresim.
The fixtures (ts_env, runbooks: a worker with every runbook, sim, started)
are in tests/conftest.py; the helpers in tests/support/."""

from __future__ import annotations

from stanch.models.risk import Risk
from stanch.models.runbook import RunbookOutcome
from tests.support.estate import VM1, VM2
from tests.support.runbooks import approval_plan, journal_mutations, result_of, start_runbook


async def test_{name}_applies_its_change_after_approval(ts_env, runbooks, sim, started):
    handle = await start_runbook(
        started, ts_env.client, runbooks.task_queue, "{name}", VM1,
        plan=approval_plan(auto_approve=[Risk.MEDIUM]),
    )
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.MITIGATED, result.summary
    assert [method for method, _ in journal_mutations(sim)] == ["PATCH"]


async def test_{name}_does_nothing_to_a_healthy_resource(ts_env, runbooks, sim, started):
    handle = await start_runbook(started, ts_env.client, runbooks.task_queue, "{name}", VM2)
    result = await result_of(handle)
    assert result.outcome is RunbookOutcome.NOT_NEEDED
    assert journal_mutations(sim) == []
'''


def new_runbook(name: str, root: Path | None = None) -> list[Path]:
    root = root or Path.cwd()
    if not (root / "runbooks").is_dir() or not (root / "tests" / "runbooks").is_dir():
        raise UsageError(
            f"run this from the stanch project root (no runbooks/ and tests/runbooks/ in {root})"
        )
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,40}", name):
        raise UsageError(f"NAME: {name!r} must be snake_case (a-z, 0-9, _), starting with a letter")
    from stanch.runbooks.registry import catalog

    if name in catalog() or name in ("registry", "release"):
        raise UsageError(f"NAME: a runbook named {name!r} already exists")
    module = root / "runbooks" / f"{name}.py"
    # Tests mirror the tree: a runbook's test sits in tests/runbooks/.
    test = root / "tests" / "runbooks" / f"test_{name}.py"
    for path in (module, test):
        if path.exists():
            raise UsageError(f"{path} already exists")
    cls = "".join(part.capitalize() for part in name.split("_"))
    title = name.replace("_", " ").capitalize()
    module.write_text(RUNBOOK_TEMPLATE.format(name=name, cls=cls, title=title))
    test.write_text(TEST_TEMPLATE.format(name=name, title=title))
    return [module, test]
