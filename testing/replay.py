"""Replaying a recorded history against today's code: a change that would
break the runs already in flight fails here, before it is deployed.

A history is the JSON `stanch runbook record` (or `temporal workflow show
--output json`) writes. Its workflow id is part of what is replayed (ids derived
from it, like a child's, are checked): it comes from `workflow_ids.json` beside
the file when that names it, else it is the file's name without `.json`, which
is how `stanch runbook record` records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

IDS_FILE = "workflow_ids.json"


def recorded_histories(directory: Path) -> list[Path]:
    """Every history in `directory`, by name."""
    return sorted(p for p in directory.glob("*.json") if p.name != IDS_FILE)


def recorded_workflow_id(path: Path) -> str:
    ids_file = path.parent / IDS_FILE
    ids = json.loads(ids_file.read_text()) if ids_file.is_file() else {}
    found = ids.get(path.stem, path.stem)
    return str(found)


def load_history(path: Path, workflow_id: str | None = None) -> WorkflowHistory:
    return WorkflowHistory.from_json(workflow_id or recorded_workflow_id(path), path.read_text())


async def replay_history(
    path: Path, workflows: Sequence[type], *, workflow_id: str | None = None
) -> None:
    """Replay the history at `path` with `workflows` registered; a
    nondeterminism error (the code no longer issues what the history
    recorded) raises `temporalio.workflow.NondeterminismError`."""
    history = load_history(path, workflow_id)
    replayer = Replayer(workflows=list(workflows), data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
