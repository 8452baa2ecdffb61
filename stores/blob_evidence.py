"""Evidence in an Azure Blob Storage container (STANCH_EVIDENCE_URL), shared by
every worker on every host: the fleet's evidence in one place.

Write-once is the service's rule, not ours: each bundle is one Put Blob with
`If-None-Match: *` (upload_blob(overwrite=False)), so a second write of a name
is refused by Azure (409 BlobAlreadyExists), whoever sends it. A retried
activity that finds its own bundle there (the same SHA-256 in the blob's
metadata) has nothing left to do; a different bundle under that name is an
EvidenceConflict. The container's version-level immutability policy (README,
"Evidence") makes the same rule hold against anyone holding a credential.

Each blob is `<incident>/<name>`, with its SHA-256 and incident in metadata
(written in the same request as the bytes) and the incident in a blob index
tag, so `find_blobs_by_tags("incident = '<id>'")` lists an incident's evidence.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient, ContentSettings

from stanch.models.evidence import EvidenceRef
from stanch.models.redaction import register_secrets
from stanch.models.settings import Settings
from stanch.stores.evidence import EvidenceConflict, EvidenceSettingError, bundle_bytes

SHA256 = "sha256"  # metadata key
INCIDENT = "incident"  # metadata key and blob index tag
EXAMPLE_URL = "https://<account>.blob.core.windows.net/<container>"


class BlobEvidenceStore:
    def __init__(self, container: ContainerClient) -> None:
        self.container = container

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobEvidenceStore:
        assert settings.evidence_url, "evidence_store chooses this store only with a URL"
        secret = settings.evidence_connection_string
        return cls(
            open_container(settings.evidence_url, secret.get_secret_value() if secret else None)
        )

    def find(self, incident_id: str, name: str) -> EvidenceRef | None:
        blob = self._blob(incident_id, name)
        try:
            properties = blob.get_blob_properties()
        except ResourceNotFoundError:
            return None
        sha256 = (properties.metadata or {}).get(SHA256)
        if not sha256:  # not written by stanch: the hash of what is there
            sha256 = hashlib.sha256(blob.download_blob().readall()).hexdigest()
        return EvidenceRef(
            name=name, location=_without_query(blob.url), sha256=sha256, size=properties.size
        )

    def keep(self, incident_id: str, name: str, bundle: dict[str, Any]) -> EvidenceRef:
        data = bundle_bytes(bundle)
        sha256 = hashlib.sha256(data).hexdigest()
        blob = self._blob(incident_id, name)
        try:
            blob.upload_blob(
                data,
                overwrite=False,
                metadata={SHA256: sha256, INCIDENT: incident_id},
                tags={INCIDENT: incident_id},
                content_settings=ContentSettings(content_type="application/json"),
            )
        except ResourceExistsError as refused:
            # Refused by the service (BlobAlreadyExists, or an immutability
            # policy's code): the name is taken. By this very bundle (our own
            # earlier attempt) is done; by another is a conflict.
            kept = self.find(incident_id, name)
            if kept is None:
                raise
            if kept.sha256 != sha256:
                raise EvidenceConflict(kept, sha256) from refused
            return kept
        return EvidenceRef(
            name=name, location=_without_query(blob.url), sha256=sha256, size=len(data)
        )

    def close(self) -> None:
        self.container.close()

    def _blob(self, incident_id: str, name: str) -> BlobClient:
        return self.container.get_blob_client(f"{incident_id}/{name}")


def open_container(url: str, connection_string: str | None = None) -> ContainerClient:
    """The container STANCH_EVIDENCE_URL names: with DefaultAzureCredential, or
    with the connection string of the account the URL names (Azurite's is
    http). Retries belong to Temporal, as for every Azure client (retry_total=0)."""
    account_url, container = _split(url)
    if connection_string is None:
        if urlsplit(url).scheme != "https":
            raise EvidenceSettingError(
                f"STANCH_EVIDENCE_URL: {url} is not https, and DefaultAzureCredential "
                "sends tokens over https only; give STANCH_EVIDENCE_CONNECTION_STRING "
                "for a local emulator (Azurite)"
            )
        return ContainerClient(
            account_url, container, credential=DefaultAzureCredential(), retry_total=0
        )
    _register(connection_string)
    try:
        service = BlobServiceClient.from_connection_string(connection_string, retry_total=0)
    except ValueError:
        # The SDK's message may quote the string; ours never does.
        raise EvidenceSettingError(
            "STANCH_EVIDENCE_CONNECTION_STRING: not an Azure Storage connection string "
            "(DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...;BlobEndpoint=...)"
        ) from None
    if service.url.rstrip("/").lower() != account_url.lower():
        raise EvidenceSettingError(
            f"STANCH_EVIDENCE_URL names the account at {account_url}, but "
            f"STANCH_EVIDENCE_CONNECTION_STRING is for {_without_query(service.url)}"
        )
    return service.get_container_client(container)


def _split(url: str) -> tuple[str, str]:
    """(account URL, container name) of a container URL."""
    parts = urlsplit(url.strip())
    if parts.query or parts.fragment or parts.username or parts.password:
        raise EvidenceSettingError(
            "STANCH_EVIDENCE_URL: give the container's URL alone (no query, no user info): "
            "a SAS or key in it would travel with every evidence reference; put credentials "
            "in STANCH_EVIDENCE_CONNECTION_STRING"
        )
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme not in ("http", "https") or not parts.netloc or not segments:
        raise EvidenceSettingError(
            f"STANCH_EVIDENCE_URL: {url!r} is not a container URL ({EXAMPLE_URL})"
        )
    account_path = "/".join(["", *segments[:-1]])  # Azurite's path names the account
    return f"{parts.scheme}://{parts.netloc}{account_path}".lower(), segments[-1]


def _without_query(url: str) -> str:
    """A blob's address without the SAS a connection string may have added."""
    return urlunsplit(urlsplit(url)._replace(query=""))


def _register(connection_string: str) -> None:
    """The string and its key or signature never reach a log line or the audit trail."""
    fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    register_secrets(
        [connection_string, fields.get("AccountKey"), fields.get("SharedAccessSignature")]
    )
