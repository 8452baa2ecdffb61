"""The kill switch and the log level: the toggle file's strict schema, and the
on-call API's requests and answers about them.

The file is edited by hand at 3 a.m., so the schema is strict on purpose: an
`enabled` that is not a JSON boolean (`"false"`, `0`, `"off"`, `null`), a
scope that is not an object (`{"remediation": false}`), an unknown key (a
typo) or a duplicate key is a broken file, and a broken file halts remediation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

LogLevel = Literal["debug", "info", "warning", "error"]
RUNBOOK_NAME = r"^[a-z][a-z0-9_]*$"  # as RunbookSpec.name
# A runbook's name as runbooks/ spells it: `quarantine-vm` would switch nothing off.
RunbookName = Annotated[str, StringConstraints(pattern=RUNBOOK_NAME)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Switch(_Strict):
    """One scope of the kill switch: all remediation, or one runbook."""

    enabled: StrictBool
    by: str | None = None
    reason: str | None = None
    at: datetime | None = None


class LogLevelSetting(_Strict):
    level: LogLevel
    by: str | None = None
    at: datetime | None = None


class Toggles(_Strict):
    """The whole toggle file. A missing file is `Toggles()`: nothing switched off."""

    remediation: Switch | None = None
    runbooks: dict[RunbookName, Switch] = Field(default_factory=dict)
    log_level: LogLevelSetting | None = None

    @field_validator("remediation", "runbooks", "log_level", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        # `"remediation": null` reads as "off" to some and "unset" to others:
        # an ambiguous kill switch is a broken one.
        if value is None:
            raise ValueError("null is not a setting: remove the key or give an object")
        return value

    def halted_by(self, runbook: str) -> str | None:
        """Why `runbook` may not change anything now, or None when it may."""
        scopes = [
            ("remediation", self.remediation),
            (f"runbook {runbook}", self.runbooks.get(runbook)),
        ]
        for what, switch in scopes:
            if switch is not None and not switch.enabled:
                who = f" by {switch.by}" if switch.by else ""
                why = f": {switch.reason}" if switch.reason else ""
                return f"{what} switched off{who}{why}"
        return None


class KillSwitchView(BaseModel):
    """`GET /api/toggles`: what every runbook reads before its next change."""

    readable: bool  # false: the store is broken and remediation is halted
    problem: str | None = None  # why it is unreadable, naming the file
    remediation_halted: bool  # all remediation is stopped (switched off, or unreadable)
    remediation: Switch | None = None
    runbooks: dict[str, Switch] = Field(default_factory=dict)
    log_level: LogLevelSetting | None = None


class RemediationToggle(_Strict):
    """`PUT|POST /api/toggles/remediation`: switch all remediation, or one
    runbook, on (`true`) or off (`false`)."""

    enabled: StrictBool
    runbook: RunbookName | None = None
    reason: str | None = Field(default=None, max_length=500)
    # The store is broken: keep it aside (`<file>.unreadable-<time>`) and start
    # a fresh one holding only this change. Without it, a write is refused.
    replace_unreadable: bool = False


class LogLevelToggle(_Strict):
    """`POST /api/toggles/log-level`: every stanch process follows within seconds."""

    level: LogLevel
    replace_unreadable: bool = False


class RemediationCheck(BaseModel):
    """What a runbook asks before each change: may `runbook` change anything now?"""

    runbook: str


class RemediationAllowed(BaseModel):
    allowed: bool
    reason: str | None = None
