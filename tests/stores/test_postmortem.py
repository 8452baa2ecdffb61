"""Postmortem drafts: golden output from a recorded incident, and a draft
written when an incident closes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from temporalio.worker import Worker

from stanch.models.incident import Resolve, UpdateResult
from stanch.models.postmortem import PostmortemRequest
from stanch.models.settings import Settings
from stanch.stores.postmortem import action_items, render_postmortem
from stanch.testing.decisions import decide
from stanch.worker import WORKFLOWS, activities_for
from stanch.workflows.incident import IncidentWorkflow
from tests.support.incidents import open_incident
from tests.support.plans import policy_file

GOLDEN = Path(__file__).parents[1] / "golden"


def test_postmortem_of_a_recorded_incident_matches_the_golden_file():
    """Regenerate both files with `python -m tests.histories.record` after a
    deliberate change to the draft, and review the diff."""
    recorded = PostmortemRequest.model_validate_json(
        (GOLDEN / "incident_with_quarantine.json").read_text()
    )
    expected = (GOLDEN / "incident_with_quarantine.postmortem.md").read_text()
    assert render_postmortem(recorded.state, recorded.timeline) == expected


def test_action_items_are_classed():
    recorded = PostmortemRequest.model_validate_json(
        (GOLDEN / "incident_with_quarantine.json").read_text()
    )
    classes = {kind for kind, _ in action_items(recorded.state, recorded.timeline)}
    assert classes <= {"response plan", "observability", "workload design"}
    assert "workload design" in classes


async def test_closing_an_incident_writes_its_draft(ts_env, task_queue, tmp_path, new_id, started):
    settings = Settings(config=policy_file(tmp_path), state_dir=tmp_path)
    incident = new_id()
    async with Worker(
        ts_env.client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(settings),
    ):
        handle = await open_incident(started, ts_env.client, task_queue, incident)
        await ts_env.sleep(timedelta(minutes=20))
        await decide(
            handle,
            "resolve",
            Resolve(by="bob", note="rolled back"),
            env=ts_env,
            result_type=UpdateResult,
        )
        await handle.result()  # the reopen window passes; the incident closes
        timeline = await handle.query(IncidentWorkflow.timeline)
    draft = (tmp_path / "postmortems" / f"{incident}.md").read_text()
    assert draft.startswith("# Postmortem (draft): cpu-high")
    assert "| response plan | Tier 1 did not acknowledge" in draft
    assert "Resolved by Bob: rolled back" in draft
    assert timeline[-1].kind == "postmortem_drafted"
