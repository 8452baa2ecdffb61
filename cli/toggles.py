"""`stanch toggle`: the remediation kill switch and the log level, changed
through the on-call API's admin controls (an admin credential; the change is
on the audit trail under the credential's person). Checked here first, so a
typo costs no round trip and never reaches the store."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import ValidationError

from stanch.cli.api_client import OnCallApi
from stanch.cli.errors import UsageError
from stanch.models.errors import describe_validation_error
from stanch.models.toggles import LogLevel, RemediationToggle

LEVELS: tuple[str, ...] = get_args(LogLevel)


def toggle_call(
    switch: str, state: str, runbook: str | None, reason: str | None, replace_unreadable: bool
) -> tuple[str, dict[str, Any]]:
    """The admin endpoint and body for `stanch toggle SWITCH STATE`."""
    if switch == "log-level":
        if state not in LEVELS:
            raise UsageError(f"log-level: {state!r} is not one of {', '.join(LEVELS)}")
        if runbook is not None:
            raise UsageError("--runbook: only for the remediation switch")
        return "/api/toggles/log-level", {"level": state, "replace_unreadable": replace_unreadable}
    if state not in ("on", "off"):
        raise UsageError(f"remediation: {state!r} is not on or off")
    try:
        asked = RemediationToggle(
            enabled=state == "on",
            runbook=runbook,
            reason=reason,
            replace_unreadable=replace_unreadable,
        )
    except ValidationError as e:
        raise UsageError("; ".join(describe_validation_error(e))) from None
    return "/api/toggles/remediation", asked.model_dump(mode="json")


async def send_toggle(api: OnCallApi, call: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    path, body = call
    answer: dict[str, Any] = await api.post(path, body)
    return answer
