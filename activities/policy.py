"""The policy file as activities see it: re-read on every use, so edits apply
without a restart, but never lost to a bad edit.

If someone saves a broken stanch.yaml while incidents are open, paging must go
on: the last version that validated keeps being used, and the problem is
reported with every use until the file is fixed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from stanch.activities.audit import AuditLog
from stanch.models.config import ConfigError, StanchConfig, load_config
from stanch.models.runbook import AuditEntry

log = logging.getLogger("stanch.policy")


class PolicySource:
    def __init__(self, path: Path, audit: AuditLog | None = None) -> None:
        self.path = path
        self._last_good: StanchConfig | None = None
        self._audit = audit
        self._seen_version: str | None = None

    def current(self) -> tuple[StanchConfig, str | None]:
        """The config to act on, and a warning when it is not the file on disk."""
        try:
            self._last_good = load_config(self.path)
            self._record_version()
            return self._last_good, None
        except ConfigError as e:
            if self._last_good is None:
                raise
            warning = f"{e}; using the last valid version of {self.path.name}"
            log.error("%s", warning)
            return self._last_good, warning

    def _record_version(self) -> None:
        """Each distinct policy version in use is on the audit trail once."""
        if self._audit is None:
            return
        version = hashlib.sha256(self.path.read_bytes()).hexdigest()
        if version != self._seen_version:
            self._audit.append(
                f"config/{version}",
                AuditEntry(
                    incident_id=None,
                    actor="stanch",
                    action="configuration in use",
                    target=str(self.path),
                    outcome="valid",
                    details={"sha256": version},
                ),
            )
            self._seen_version = version
