"""Evidence bundles: what a resource looked like and what it logged, kept
before anyone touches it, each with the SHA-256 the audit trail records.

Two stores with one interface (`EvidenceKeeper`), chosen by `evidence_store`
from the settings: files under STANCH_EVIDENCE_DIR (`<dir>/<incident>/<name>`)
by default, which production points at mounted immutable (WORM) storage; or,
with STANCH_EVIDENCE_URL, a Blob container whose service refuses a second
write of a name (stores/blob_evidence.py), for workers on several hosts.
A bundle is written once: the first capture is the one that counts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Protocol

from stanch.models.evidence import EvidenceRef
from stanch.models.settings import Settings


class EvidenceKeeper(Protocol):
    def find(self, incident_id: str, name: str) -> EvidenceRef | None:
        """The bundle already kept for this incident under `name`, if any."""
        ...

    def keep(self, incident_id: str, name: str, bundle: dict[str, Any]) -> EvidenceRef:
        """Writes the bundle, whole or not at all, unless one is kept under the
        name already. Keeping the same bundle again is done already (a retried
        activity). Another bundle under a kept name: the first counts; the file
        store returns it, the Blob store raises EvidenceConflict (the service
        refused the write, and the caller should know)."""
        ...


class EvidenceSettingError(ValueError):
    """STANCH_EVIDENCE_URL or its connection string cannot name a container."""


class EvidenceConflict(Exception):
    """A different bundle is already kept under this name, and stays."""

    def __init__(self, kept: EvidenceRef, refused_sha256: str) -> None:
        super().__init__(
            f"evidence {kept.name} is already kept at {kept.location} with sha256 "
            f"{kept.sha256}; a different bundle (sha256 {refused_sha256}) was refused"
        )
        self.kept = kept
        self.refused_sha256 = refused_sha256


def bundle_bytes(bundle: dict[str, Any]) -> bytes:
    """A bundle as both stores write it (and as its hash is taken)."""
    return json.dumps(bundle, indent=2, sort_keys=True, default=str).encode()


def evidence_store(settings: Settings) -> EvidenceKeeper:
    """The one place the evidence store is chosen."""
    if settings.evidence_url:
        # Imported only here: a worker on files never loads the Storage SDK.
        from stanch.stores.blob_evidence import BlobEvidenceStore

        return BlobEvidenceStore.from_settings(settings)
    return EvidenceStore(settings.evidence_path)


class EvidenceStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def find(self, incident_id: str, name: str) -> EvidenceRef | None:
        """The bundle already kept for this incident under `name`, if any."""
        path = self._path(incident_id, name)
        return _ref(name, path) if path.exists() else None

    def keep(self, incident_id: str, name: str, bundle: dict[str, Any]) -> EvidenceRef:
        """Writes the bundle unless one is there; whole or absent, never half."""
        if (kept := self.find(incident_id, name)) is not None:
            return kept
        path = self._path(incident_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(bundle_bytes(bundle))
        partial.replace(path)  # a crash mid-write leaves no half bundle under the name
        return _ref(name, path)

    def _path(self, incident_id: str, name: str) -> Path:
        return self.directory / incident_id / name


def _ref(name: str, path: Path) -> EvidenceRef:
    data = path.read_bytes()
    return EvidenceRef(
        name=name,
        location=path.resolve().as_uri(),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
