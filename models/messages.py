"""The names messages to stanch's workflows travel under: the workflows'
decorators and every caller (gateway, CLI, client) use these, so a name is
spelled once. They are part of what running incidents accept: a value here
never changes (tests/workflows/test_replay.py replays histories that carry them).

A decision's signature covers the same name (workflows/decisions.py): the
gateway signs `IncidentUpdate.ACKNOWLEDGE` for an ack, the workflow checks it.
"""

from __future__ import annotations

from enum import StrEnum


class IncidentUpdate(StrEnum):
    """People's requests to an incident: answered, refused before history."""

    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    ASSIGN_ROLE = "assign_role"
    ADD_NOTE = "add_note"
    CHANGE_STATUS = "change_status"
    REQUEST_RELEASE = "request_release"


class IncidentSignal(StrEnum):
    ADD_ALERT = "add_alert"  # one alert: older gateways, incidents already running
    ADD_ALERTS = "add_alerts"  # a coalesced batch: what the gateway sends
    RUNBOOK_EVENT = "runbook_event"  # a runbook telling its incident how it goes
    RUNBOOK_EVENTS = "runbook_events"  # several such reports, in order: what runbooks send now
    REFRESH_DECISION_KEYS = "refresh_decision_keys"
    ACCESS_EVENT = "access_event"  # an emergency access grant telling its incident how it goes


class IncidentQuery(StrEnum):
    STATE = "state"
    TIMELINE = "timeline"


class RunbookDecision(StrEnum):
    """A decision on an approval gate: an update (answered) and a signal of
    the same name (for clients that can only signal)."""

    APPROVE = "approve"
    REJECT = "reject"


class RunbookSignal(StrEnum):
    REFRESH_DECISION_KEYS = "refresh_decision_keys"


class RunbookQuery(StrEnum):
    STATUS = "status"


# The runbook that takes back what another applied (runbooks/release.py): the
# incident starts it by this name and tells its events apart by it.
RELEASE_RUNBOOK = "release"
