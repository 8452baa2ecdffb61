"""The worker's workflow cache is an operator's setting
(STANCH_WORKER_CACHED_WORKFLOWS): approvals to more waiting runbooks than the
cache holds each cost a replay (docs/benchmarks.md, section 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from stanch.models.settings import Settings
from stanch.worker import build_worker
from tests.support.plans import policy_file


def test_the_cache_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STANCH_WORKER_CACHED_WORKFLOWS", "2500")
    assert Settings().worker_cached_workflows == 2500
    monkeypatch.setenv("STANCH_WORKER_CACHED_WORKFLOWS", "0")
    with pytest.raises(ValidationError, match="worker_cached_workflows"):
        Settings()


async def test_the_worker_caches_as_many_workflows_as_the_setting_says(
    ts_env: WorkflowEnvironment, tmp_path: Path
):
    policy = policy_file(tmp_path)
    sized = Settings(config=policy, state_dir=tmp_path, worker_cached_workflows=2500)
    worker = build_worker(ts_env.client, sized.model_copy(update={"task_queue": "tq-sized"}))
    assert worker.config()["max_cached_workflows"] == 2500
    default = build_worker(ts_env.client, Settings(config=policy, state_dir=tmp_path))
    assert default.config()["max_cached_workflows"] == 1000


async def test_the_workflow_task_slots_come_from_the_setting(
    ts_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Fewer slots leave waiting tasks in Temporal's queue, where a Sev1
    incident's task goes before a Sev4 storm's; unset, the SDK's default."""
    monkeypatch.setenv("STANCH_WORKER_WORKFLOW_TASK_SLOTS", "0")
    with pytest.raises(ValidationError, match="worker_workflow_task_slots"):
        Settings()
    monkeypatch.setenv("STANCH_WORKER_WORKFLOW_TASK_SLOTS", "4")
    policy = policy_file(tmp_path)
    capped = Settings(config=policy, state_dir=tmp_path)
    worker = build_worker(ts_env.client, capped.model_copy(update={"task_queue": "tq-slots"}))
    assert worker.config()["max_concurrent_workflow_tasks"] == 4
    monkeypatch.delenv("STANCH_WORKER_WORKFLOW_TASK_SLOTS")
    plain = Settings(config=policy, state_dir=tmp_path, task_queue="tq-default-slots")
    assert build_worker(ts_env.client, plain).config()["max_concurrent_workflow_tasks"] is None
