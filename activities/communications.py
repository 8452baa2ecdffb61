"""The communications workflow's side effects: its plan from the policy, who
hears about an incident, and one update delivered to one subscriber.

A delivery is looked up in the delivery record before it is sent and
recorded once the channel took it (stores/subscriptions.py), so a retry or a
restarted worker never sends an update to a subscriber twice (but for the
moment between the two, which the Message-ID and Idempotency-Key cover).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from temporalio import activity
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from stanch.activities.email import EmailFailed, compose, send_email
from stanch.activities.response_plan import decision_keys
from stanch.models.communications import ChannelKind, CommsName, Subscriber
from stanch.models.config import ConfigError, StanchConfig
from stanch.models.incident import RosterEntry
from stanch.models.status import IncidentStatus
from stanch.models.status_updates import (
    COMMUNICATIONS_WORKFLOW,
    Audience,
    AudienceRequest,
    CommsInput,
    CommsPlan,
    CommsPlanRequest,
    Delivery,
    DeliveryResult,
    comms_workflow_id,
)
from stanch.stores.policy import PolicySource
from stanch.stores.subscriptions import DeliveryLog, SubscriptionBook


def comms_plan(config: StanchConfig, trusted_keys: dict[str, str]) -> CommsPlan:
    comms = config.communications
    return CommsPlan(
        roster=[RosterEntry(id=p.id, name=p.display, roles=p.roles) for p in config.roster],
        lead_roles=comms.lead_roles,
        posters=comms.posters,
        may_subscribe=comms.may_subscribe,
        automatic_updates=comms.automatic_updates,
        reminders=comms.reminders,
        channels=comms.channels,
        decision_keys=decision_keys(config, trusted_keys),
    )


def update_payload(delivery: Delivery) -> dict[str, Any]:
    """What a webhook subscriber receives: the words and the facts, no internal note."""
    update, brief = delivery.update, delivery.briefing
    return {
        "text": f"{brief.severity} {brief.title}: {update.text}",
        "incident_id": delivery.incident_id,
        "update": {
            "id": update.id,
            "number": update.number,
            "at": update.at.isoformat(),
            "kind": str(update.kind),
            "status": str(update.status),
            "text": update.text,
        },
        "severity": str(brief.severity),
        "service": brief.service,
        "title": brief.title,
    }


@contextlib.asynccontextmanager
async def _beating(every: float = 1.0) -> AsyncIterator[None]:
    """Heartbeats while the body runs, so a worker that dies mid-send is
    noticed at the heartbeat timeout rather than the activity's whole one."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


class CommunicationsActivities:
    def __init__(
        self,
        policy: PolicySource,
        subscriptions: SubscriptionBook,
        deliveries: DeliveryLog,
        http: httpx.AsyncClient | None = None,
        trusted_keys: dict[str, str] | None = None,
    ) -> None:
        self._policy = policy
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._http = http or httpx.AsyncClient()
        self._trusted_keys = trusted_keys or {}

    def _config(self) -> StanchConfig:
        try:
            config, _ = self._policy.current()
        except ConfigError as e:
            raise ApplicationError(str(e), type="ConfigError") from None
        return config

    @activity.defn
    async def load_comms_plan(self, request: CommsPlanRequest) -> CommsPlan:
        """Read-only: who leads, who may post and subscribe, the reminders."""
        return comms_plan(self._config(), self._trusted_keys)

    @activity.defn
    async def brief_communications(self, brief: CommsInput) -> None:
        """Tells the incident's communications workflow where the incident
        stands, starting it if it is not running. A closed incident never
        starts one: a retry landing after the closing update was sent must
        not announce the close again."""
        client = activity.client()
        wid = comms_workflow_id(brief.incident_workflow_id)
        if brief.briefing.status is IncidentStatus.CLOSED:
            try:
                await client.get_workflow_handle(wid).signal(CommsName.BRIEF, brief.briefing)
            except RPCError as e:
                if e.status is not RPCStatusCode.NOT_FOUND:
                    raise
            return
        await client.start_workflow(
            COMMUNICATIONS_WORKFLOW,
            brief,
            id=wid,
            task_queue=activity.info().task_queue,
            start_signal=CommsName.BRIEF,
            start_signal_args=[brief.briefing],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    @activity.defn
    async def find_audience(self, request: AudienceRequest) -> Audience:
        """Everyone subscribed to the incident's service or severity: the
        policy's stakeholder groups and the store's subscriptions, each once."""
        config = self._config()
        found: dict[str, Subscriber] = {}
        for group in config.communications.groups:
            if group.hears(request.service, request.severity):
                for member in group.members:
                    subscriber = Subscriber.parse(member)
                    found.setdefault(subscriber.id, subscriber)
        try:
            stored = await asyncio.to_thread(
                self._subscriptions.audience, request.service, request.severity
            )
        except OSError as e:
            raise ApplicationError(
                f"subscriptions unreadable: {e}", type="StoreUnavailable"
            ) from None
        for subscriber in stored:
            found.setdefault(subscriber.id, subscriber)
        return Audience(subscribers=list(found.values()))

    @activity.defn
    async def deliver_update(self, delivery: Delivery) -> DeliveryResult:
        """`delivery.update` to `delivery.subscriber`, once (module docstring)."""
        key = delivery.key
        try:
            if await asyncio.to_thread(self._deliveries.delivered, key):
                return DeliveryResult(sent=False)
        except OSError as e:
            raise ApplicationError(
                f"delivery record unreadable: {e}", type="StoreUnavailable"
            ) from None
        async with _beating():
            if delivery.subscriber.kind is ChannelKind.EMAIL:
                await self._email(delivery)
            else:
                await self._webhook(delivery)
        detail = {
            "incident_id": delivery.incident_id,
            "update": delivery.update.id,
            "subscriber": delivery.subscriber.shown,
        }
        try:
            await asyncio.to_thread(self._deliveries.record, key, detail)
        except OSError as e:
            # Sent but not recorded: a retry may send it again (same Message-ID).
            activity.logger.warning("update %s sent but not recorded: %s", key, e)
            raise ApplicationError(
                f"delivery record unwritable: {e}", type="StoreUnavailable"
            ) from None
        return DeliveryResult(sent=True)

    async def _email(self, delivery: Delivery) -> None:
        settings = self._config().communications.email
        if settings is None:
            raise ApplicationError(
                "communications.email is not configured: no email can be sent",
                type="EmailNotConfigured",
                non_retryable=True,
            )
        try:
            await send_email(settings, compose(delivery, settings))
        except EmailFailed as e:
            raise ApplicationError(
                str(e),
                type="EmailRefused" if e.permanent else "EmailFailed",
                non_retryable=e.permanent,
            ) from None

    async def _webhook(self, delivery: Delivery) -> None:
        seconds = self._config().communications.webhook_timeout.total_seconds()
        shown = delivery.subscriber.shown
        try:
            async with asyncio.timeout(seconds):
                response = await self._http.post(
                    delivery.subscriber.address,
                    json=update_payload(delivery),
                    headers={"Idempotency-Key": delivery.key},
                    timeout=seconds,
                    follow_redirects=False,
                )
        except TimeoutError:
            raise ApplicationError(
                f"{shown}: no answer within {seconds:g}s", type="WebhookFailed"
            ) from None
        except httpx.HTTPError as e:
            # Its text can carry the URL, and the URL is the subscriber's secret.
            raise ApplicationError(f"{shown}: {type(e).__name__}", type="WebhookFailed") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        transient = status in (408, 429) or status >= 500
        raise ApplicationError(
            f"{shown}: HTTP {status}",
            type="WebhookFailed" if transient else "WebhookRefused",
            non_retryable=not transient,
        )
