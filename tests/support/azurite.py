"""Blob containers in Azurite (stanch.harness.azurite) for the tests of evidence
in Blob Storage: a fresh container per test, the settings that point a store
or a worker at it, and what is in it, read straight from the service."""

from __future__ import annotations

import uuid
from typing import Any

from azure.storage.blob import BlobServiceClient, ContainerClient
from pydantic import SecretStr

from stanch.harness.azurite import Azurite


def fresh_container(azurite: Azurite) -> ContainerClient:
    """A new, empty container of its own (container names: lower-case, 3-63)."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string, retry_total=0)
    container = service.get_container_client(f"evidence-{uuid.uuid4().hex[:12]}")
    container.create_container()
    return container


def evidence_settings(azurite: Azurite, container: ContainerClient) -> dict[str, Any]:
    """Settings(**these): evidence in `container`."""
    return {
        "evidence_url": f"{azurite.account_url}/{container.container_name}",
        "evidence_connection_string": SecretStr(azurite.connection_string),
    }


def blob_names(container: ContainerClient) -> list[str]:
    return sorted(b.name for b in container.list_blobs())


def tagged(container: ContainerClient, incident_id: str) -> list[str]:
    """What the blob index lists for `incident_id`."""
    return sorted(b.name for b in container.find_blobs_by_tags(f"incident = '{incident_id}'"))
