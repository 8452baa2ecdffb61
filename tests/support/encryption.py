"""Payload encryption in tests: key files, a real stack whose worker and
gateway seal every payload, and reading a history as the Temporal service
holds it (every payload, and every byte outside the search attributes)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import AzureSim
from stanch.client.connection import connect
from stanch.harness.ports import free_port
from stanch.models.private_file import write_private
from tests.support.stack import Stack, gateway_at, stack_settings

SEARCH_ATTRIBUTES = "temporal.api.common.v1.SearchAttributes"
PAYLOAD = "temporal.api.common.v1.Payload"
MARKER = "temporal.api.history.v1.MarkerRecordedEventAttributes"
PATCH_MARKER = "core_patch"
# The key tests/histories/encrypted/ was recorded with: public, for tests only.
RECORDED_KEY_ID = "test-2026-06"
RECORDED_KEY = base64.b64decode("3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
# The Web UI origin a sealed `stack` (the conftest's) lets call its codec endpoint.
WEB_UI = "https://temporal-ui.example.net"


def new_key() -> bytes:
    return os.urandom(32)


def write_payload_keys(path: Path, keys: dict[str, bytes]) -> Path:
    """A STANCH_PAYLOAD_KEYS_FILE, the first key encrypting."""
    text = json.dumps({key_id: base64.b64encode(key).decode() for key_id, key in keys.items()})
    write_private(path, text + "\n")
    return path


def recorded_keys_file(directory: Path) -> Path:
    return write_payload_keys(directory / "recorded-keys.json", {RECORDED_KEY_ID: RECORDED_KEY})


@asynccontextmanager
async def encrypted_stack(
    env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    config: Path,
    azure: AzureClients,
    sim: AzureSim,
    keys_file: Path,
    **more: Any,
) -> AsyncIterator[Stack]:
    """A worker and the gateway with STANCH_PAYLOAD_KEYS_FILE set: both
    connect through client.connection.connect, as in production. The Stack's
    client seals and opens too; `env.client` is a plain client, which sees
    what the Temporal service stores."""
    from stanch.worker import build_worker

    token = secrets.token_urlsafe(16)
    port = free_port()
    settings = stack_settings(
        env, tmp_path, task_queue, config, token, port, payload_keys_file=keys_file, **more
    )
    client = await connect(settings)
    async with build_worker(client, settings, azure), gateway_at(settings, port) as url:
        yield Stack(client, url, token, task_queue, config, tmp_path / "pages.jsonl", sim)


async def terminate_sealed(client: Client, task_queue: str) -> None:
    """Ends what sealed stacks on `task_queue` left running, once the test is
    done with them: on the shared dev server nothing without the key can read
    it (`stanch runbook check`, run by another test, named a left-over sealed
    incident as a break)."""
    running = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    async for execution in client.list_workflows(running):
        with contextlib.suppress(RPCError):  # ended meanwhile
            await client.get_workflow_handle(execution.id, run_id=execution.run_id).terminate(
                "sealed test stack stopped"
            )


def _children(message: Message) -> Iterator[Message]:
    """The messages directly inside `message` (map values too; scalars skipped)."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        items: Any = (value.values() if _is_map(field) else value) if field.is_repeated else [value]
        yield from (item for item in items if isinstance(item, Message))


def _is_map(field: Any) -> bool:
    return bool(field.message_type.GetOptions().map_entry)


def without_plain_by_design(message: Message) -> Message:
    """A copy without what Temporal keeps plain by design: every
    SearchAttributes field (the service indexes them) and the details of
    patch markers (the SDK writes the patch ids of workflow.patched, names
    of code changes). Everything else must hold no secret."""
    copy = type(message)()
    copy.CopyFrom(message)
    _clear(copy)
    return copy


def _clear(message: Message) -> None:
    for field, _ in message.ListFields():
        if field.message_type is not None and field.message_type.full_name == SEARCH_ATTRIBUTES:
            message.ClearField(field.name)
    if message.DESCRIPTOR.full_name == MARKER and message.marker_name == PATCH_MARKER:  # type: ignore[attr-defined]
        message.ClearField("details")
    for child in _children(message):
        _clear(child)


def payloads_in(message: Message) -> list[Payload]:
    """Every Payload anywhere in `message` (memo, summaries, failures too)."""
    found: list[Payload] = []
    stack: list[Message] = [message]
    while stack:
        current = stack.pop()
        if current.DESCRIPTOR.full_name == PAYLOAD:
            found.append(current)  # type: ignore[arg-type]
            continue
        stack.extend(_children(current))
    return found


def search_attribute_names(history: History) -> set[str]:
    names: set[str] = set()
    stack: list[Message] = [history]
    while stack:
        current = stack.pop()
        if current.DESCRIPTOR.full_name == SEARCH_ATTRIBUTES:
            names.update(current.indexed_fields)  # type: ignore[attr-defined]
            continue
        stack.extend(_children(current))
    return names
