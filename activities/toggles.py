"""The remediation kill switch: a store outside the code and outside workflow
history, read before every mutating step, so on-call can stop all automation
(or one runbook) in seconds, without a redeploy.

A JSON file by default (`STANCH_TOGGLES_FILE`), written atomically; anything
that can answer `is remediation allowed for this runbook?` can replace it.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio import activity

from models.runbook import RemediationAllowed, RemediationCheck


class ToggleStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
            return data
        except FileNotFoundError:
            return {}

    def allowed(self, runbook: str) -> RemediationAllowed:
        data = self.read()
        scopes = [
            ("remediation", data.get("remediation") or {}),
            (f"runbook {runbook}", (data.get("runbooks") or {}).get(runbook) or {}),
        ]
        for what, scope in scopes:
            if scope.get("enabled") is False:
                who = f" by {scope['by']}" if scope.get("by") else ""
                why = f": {scope['reason']}" if scope.get("reason") else ""
                return RemediationAllowed(allowed=False, reason=f"{what} switched off{who}{why}")
        return RemediationAllowed(allowed=True)

    def log_level(self) -> str | None:
        level = (self.read().get("log_level") or {}).get("level")
        return str(level) if level else None

    def set_log_level(self, level: str, by: str) -> None:
        data = self.read()
        data["log_level"] = {"level": level, "by": by, "at": datetime.now(UTC).isoformat()}
        self._write(data)

    def set(self, enabled: bool, runbook: str | None, by: str, reason: str | None) -> None:
        data = self.read()
        entry = {
            "enabled": enabled,
            "by": by,
            "reason": reason,
            "at": datetime.now(UTC).isoformat(),
        }
        if runbook is None:
            data["remediation"] = entry
        else:
            data.setdefault("runbooks", {})[runbook] = entry
        self._write(data)

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".toggles-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, self.path)  # readers see the old file or the new one, never half


class ToggleActivities:
    def __init__(self, store: ToggleStore) -> None:
        self._store = store

    @activity.defn
    async def check_remediation(self, check: RemediationCheck) -> RemediationAllowed:
        """Read-only: safe to retry."""
        return self._store.allowed(check.runbook)
