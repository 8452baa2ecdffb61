"""Evidence bundles: what a resource looked like and what it logged, kept
before anyone touches it, each with the SHA-256 the audit trail records.

Files under STANCH_EVIDENCE_DIR (`<dir>/<incident>/<name>`) by default; point
it at mounted immutable (WORM) storage in production. A bundle is written once:
the first capture is the one that counts, so keeping a bundle that is already
there returns the one on disk.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from stanch.models.evidence import EvidenceRef


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
        partial.write_text(json.dumps(bundle, indent=2, sort_keys=True, default=str))
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
