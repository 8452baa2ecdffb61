"""The stack with payload encryption, as the codec tests run it
(tests/client/test_codec.py, tests/gateway/test_codec_endpoint.py): a module
sets the conftest's `payload_keys` fixture and its `stack` is sealed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from stanch.activities.azure_clients import AzureClients
from stanch.azuresim import AzureSim
from tests.support.encryption import encrypted_stack, write_payload_keys
from tests.support.stack import Stack

WEB_UI = "https://temporal-ui.example.net"  # the Web UI origin the codec endpoint answers


@asynccontextmanager
async def sealed_stack(
    env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    config: Path,
    azure: AzureClients,
    sim: AzureSim,
    keys: dict[str, bytes],
) -> AsyncIterator[Stack]:
    """A worker and the gateway sealing with `keys` (key id: key), written to
    tmp_path/payload-keys.json; the codec endpoint answers WEB_UI too."""
    written = write_payload_keys(tmp_path / "payload-keys.json", keys)
    async with encrypted_stack(
        env, tmp_path, task_queue, config, azure, sim, written, codec_cors_origins=WEB_UI
    ) as stack:
        yield stack
