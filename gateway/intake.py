"""The gateway's way in: alerts that arrive together for one incident are sent
together (gateway/coalesce.py), through the client room's signal-with-start;
and which of Temporal's refusals the sender must not retry."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from stanch.client.alerts import IntakeResult, Recorded, only, record_alerts
from stanch.gateway.coalesce import Coalescer
from stanch.models.alert import AlertEvent, CommonAlert

# Refusals that come back the same however often the sender retries.
_FOREVER = {
    RPCStatusCode.INVALID_ARGUMENT,
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.OUT_OF_RANGE,
}
_TOO_LARGE = ("size", "too large", "larger than max")
CAUSE_CHARS = 300

log = logging.getLogger("stanch.gateway")


class AlertIntake:
    """The gateway's way in. With a window ≥ 0 an incident's alerts are
    coalesced (gateway/coalesce.py); a negative window sends each alert alone,
    as before coalescing existed."""

    def __init__(
        self,
        client: Callable[[], Awaitable[Client]],
        task_queue: str,
        window_ms: float,
        linger_ms: float = 0.0,
        route: Callable[[CommonAlert, AlertEvent], str] | None = None,
    ) -> None:
        self._client = client
        # Which incident an alert joins (gateway/grouping.py): its fingerprint
        # unless its service groups related alerts.
        self._route = route or (lambda alert, _: alert.fingerprint())
        self._task_queue = task_queue
        self._coalescer: Coalescer[AlertEvent, IntakeResult] | None = None
        if window_ms >= 0:
            self._coalescer = Coalescer(
                self._send, window=window_ms / 1000, linger=max(0.0, linger_ms) / 1000
            )

    async def record(self, alert: CommonAlert) -> IntakeResult:
        """Returns once the alert is durably in its incident's history."""
        event = alert.to_event()
        incident_id = self._route(alert, event)
        if self._coalescer is None:
            return only(await self._send(incident_id, [event]))
        # Sized as it will travel, so a batch stays under Temporal's payload limit.
        size = len(event.model_dump_json())
        return await self._coalescer.submit(incident_id, event, size)

    async def _send(self, incident_id: str, events: list[AlertEvent]) -> Sequence[Recorded]:
        recorded = await record_alerts(await self._client(), self._task_queue, incident_id, events)
        # One line per call, not per alert: under a storm a line per alert cost
        # the gateway as much CPU as validating it. Each alert's id and incident
        # are on the audit trail ("alert received"); here at debug level.
        done = [
            (e, r) for e, r in zip(events, recorded, strict=True) if isinstance(r, IntakeResult)
        ]
        if done:
            log.info(
                "%d alert(s) -> %s (%d joined)",
                len(done),
                done[0][1].workflow_id,
                sum(r.deduplicated for _, r in done),
            )
            if log.isEnabledFor(logging.DEBUG):
                log.debug("alerts -> %s: %s", done[0][1].workflow_id, _named(done))
        return recorded


def _named(done: list[tuple[AlertEvent, IntakeResult]]) -> str:
    return ", ".join(f"{event.alert_id} {event.condition}" for event, _ in done)


def lasting_refusal(error: BaseException) -> tuple[int, str] | None:
    """(HTTP status, cause) when Temporal refused the alert for a reason that
    retrying cannot fix; None when it may answer differently later (unavailable,
    timed out, throttled), which the sender should retry.

    Azure action groups retry a 5xx for hours: a 503 for an alert that can
    never be recorded hides it behind "retry later" forever."""
    if not isinstance(error, RPCError):
        return None
    said = error.message[:CAUSE_CHARS]
    too_large = any(word in said.lower() for word in _TOO_LARGE)
    if error.status is RPCStatusCode.RESOURCE_EXHAUSTED and "larger than max" in said:
        return 413, f"Temporal refused the alert as too large: {said}"
    if error.status in _FOREVER:
        if too_large:
            return 413, f"Temporal refused the alert as too large: {said}"
        return 422, f"Temporal refused the alert: {said}"
    return None
