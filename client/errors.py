"""What can go wrong when asking an incident something, in words every caller
maps once: the gateway to HTTP (409, 404, 503, 422), the CLI to exit codes
(2, 2, 1, 2)."""

from __future__ import annotations

from temporalio.service import RPCStatusCode

# Temporal took too long, or an incident's workers are gone: a caller may retry.
UNANSWERED = frozenset(
    {RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED, RPCStatusCode.UNAVAILABLE}
)


class IncidentRequestError(Exception):
    """Base of the client room's answers that are not an answer."""


class Refused(IncidentRequestError):
    """The workflow refused, in its own words; asking again will not help."""


class NotFound(IncidentRequestError):
    """No such incident or runbook, or nothing of it waits for this request."""


class Unavailable(IncidentRequestError):
    """Temporal, or every worker of this incident, did not answer in time: retry."""


class InvalidQuery(IncidentRequestError, ValueError):
    """A listing filter or page token the caller must fix; names the field."""
