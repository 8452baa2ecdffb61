"""Shared fixtures: real Temporal servers from the installed wheels, a response
plan written to a temporary stanch.yaml, and a worker on a fresh task queue."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "alerts"


def policy_file(tmp_path: Path, **overrides: Any) -> Path:
    """A three-tier plan: alice, then bob, then carol, 15 minutes each."""
    data: dict[str, Any] = {
        "roster": [
            {"id": "alice", "name": "Alice"},
            {"id": "bob", "name": "Bob"},
            {"id": "carol", "name": "Carol"},
            {"id": "dave", "name": "Dave", "roles": ["approver"]},
        ],
        "escalation_policies": {
            "default": {
                "tiers": [
                    {"people": ["alice"], "timeout": "15m"},
                    {"people": ["bob"], "timeout": "15m"},
                    {"people": ["carol"], "timeout": "15m"},
                ],
                "after_last_tier": "stop",
            }
        },
        "channels": [{"name": "pager", "type": "file", "path": str(tmp_path / "pages.jsonl")}],
        "incident": {"reopen_window": "30m"},
    }
    data.update(overrides)
    path = tmp_path / "stanch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def installed(name: str) -> str:
    """A console script of this environment, even when PATH lacks .venv/bin."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} not installed: pip install -e '.[dev]'"
    return found


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


@pytest.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed("temporal-test-server"),
        data_converter=pydantic_data_converter,
    ) as env:
        yield env


@pytest.fixture
def new_id() -> Callable[[], str]:
    return lambda: uuid.uuid4().hex[:20]
