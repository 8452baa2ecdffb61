"""Status updates and subscriptions over the on-call API.

- `GET /api/incidents/{id}/updates`: the incident's updates (never an internal
  note) and its subscribers (a webhook shown by its host only);
- `POST /api/incidents/{id}/updates`: the communications lead (or anyone
  `communications` allows) posts a stakeholder-safe `text` and an optional
  `internal` note, which goes on the timeline only;
- `POST /api/incidents/{id}/subscribers`: subscribe `email:ADDRESS` or
  `webhook:URL` to that incident;
- `GET|POST /api/subscriptions`: standing subscriptions to a service or a
  severity (the subscription store).

Who may post or subscribe is checked here first (403 naming the rule, and
nothing is sent) and again by the incident's communications workflow, which
takes only what the gateway signed.
"""

from __future__ import annotations

import asyncio
import html
import logging
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, model_validator

from stanch.client.communications import communications, post_status_update, subscribe_to_incident
from stanch.client.errors import IncidentRequestError
from stanch.gateway.api import Caller, OnCall, RoleCheck, SignedFor
from stanch.gateway.signing import DecisionSigner
from stanch.models.communications import Subscriber, Subscription
from stanch.models.config import NAME_PATTERN, ApiRole, StanchConfig
from stanch.models.free_text import NOTE_LIMIT
from stanch.models.incident import RosterEntry
from stanch.models.severity import Severity
from stanch.models.status_updates import (
    UPDATE_LIMIT,
    CommsView,
    PostUpdate,
    StatusUpdate,
    Subscribe,
    holds,
)
from stanch.stores.select import subscriptions

log = logging.getLogger(__name__)


class UpdateBody(BaseModel):
    text: str = Field(min_length=1, max_length=UPDATE_LIMIT)  # what stakeholders read
    internal: str | None = Field(default=None, max_length=NOTE_LIMIT)  # the timeline's only


class ChannelBody(BaseModel):
    channel: str = Field(min_length=1, max_length=2100)  # email:ADDRESS or webhook:URL


class SubscriptionBody(ChannelBody):
    """One of `service` or `severity`."""

    service: str | None = Field(default=None, pattern=NAME_PATTERN, max_length=200)
    severity: Severity | None = None

    @model_validator(mode="before")
    @classmethod
    def _severity(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("severity"), str):
            try:
                data = {**data, "severity": Severity.parse(data["severity"])}
            except ValueError:
                pass  # the field's own error names it
        return data

    @model_validator(mode="after")
    def _one_scope(self) -> SubscriptionBody:
        if (self.service is None) == (self.severity is None):
            raise ValueError("give exactly one of service or severity")
        return self


class SubscriptionListing(BaseModel):
    subscriptions: list[ShownSubscription]


class ShownSubscription(BaseModel):
    scope: str
    subscriber: str  # as shown: a webhook by its host only
    by: str
    at: datetime


def _entry(policy: StanchConfig, person_id: str) -> RosterEntry | None:
    person = policy.person(person_id)
    return (
        None
        if person is None
        else RosterEntry(id=person.id, name=person.display, roles=person.roles)
    )


def post_refusal(policy: StanchConfig, person_id: str, lead: str | None) -> str | None:
    comms = policy.communications
    person = _entry(policy, person_id)
    if person is not None and (
        person_id == lead or holds(person, comms.lead_roles) or holds(person, comms.posters)
    ):
        return None
    return (
        f"{person_id} may not post status updates: the incident's communications lead, "
        f"holders of {', '.join(comms.lead_roles) or 'a lead role'} and communications.posters may"
    )


def subscribe_refusal(policy: StanchConfig, person_id: str) -> str | None:
    allowed = policy.communications.may_subscribe
    if not allowed or holds(_entry(policy, person_id), allowed):
        return None
    return f"{person_id} may not add subscribers (communications.may_subscribe)"


def communications_router(
    oncall: OnCall, problem: Callable[[int, str, str], Exception]
) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["on-call"])
    signer = DecisionSigner.from_settings(oncall.settings)
    viewer = Depends(RoleCheck(oncall, ApiRole.VIEWER))
    responder = Depends(RoleCheck(oncall, ApiRole.RESPONDER))
    book = subscriptions(oncall.settings)

    def subscriber(given: str) -> Subscriber:
        try:
            return Subscriber.parse(given)
        except ValueError as e:
            raise problem(422, "invalid", str(e)) from None

    async def view(incident_id: str) -> CommsView:
        try:
            return await communications(await oncall.client(), incident_id)
        except IncidentRequestError as e:
            raise oncall.answer(e) from None

    @router.get("/incidents/{incident_id}/updates", response_model=CommsView)
    async def list_updates(incident_id: str, who: Caller = viewer) -> CommsView:
        """Status updates, newest first, and who is subscribed to this incident."""
        return await view(incident_id)

    @router.post("/incidents/{incident_id}/updates", response_model=StatusUpdate, status_code=201)
    async def post_update(
        incident_id: str, body: UpdateBody, who: Caller = responder
    ) -> StatusUpdate:
        """A status update: `text` to the timeline and every subscriber,
        `internal` to the timeline only."""
        if not body.text.strip():
            raise problem(422, "invalid", "text: must not be blank")
        lead = (await view(incident_id)).lead
        if refusal := post_refusal(oncall.policy(), who.person, lead):
            raise problem(403, "forbidden", refusal)
        request = PostUpdate(by=who.person, text=body.text, internal=body.internal)
        try:
            return await post_status_update(
                await oncall.client(), incident_id, request, sign=SignedFor(signer, who.role)
            )
        except IncidentRequestError as e:
            raise oncall.answer(e) from None

    @router.post("/incidents/{incident_id}/subscribers", response_model=CommsView)
    async def subscribe(incident_id: str, body: ChannelBody, who: Caller = viewer) -> CommsView:
        """Subscribe `email:ADDRESS` or `webhook:URL` to this incident's updates."""
        subscriber(body.channel)
        if refusal := subscribe_refusal(oncall.policy(), who.person):
            raise problem(403, "forbidden", refusal)
        request = Subscribe(by=who.person, channel=body.channel.strip())
        try:
            return await subscribe_to_incident(
                await oncall.client(), incident_id, request, sign=SignedFor(signer, who.role)
            )
        except IncidentRequestError as e:
            raise oncall.answer(e) from None

    @router.get("/subscriptions", response_model=SubscriptionListing)
    async def list_subscriptions(who: Caller = viewer) -> SubscriptionListing:
        found = await asyncio.to_thread(book.listed)
        return SubscriptionListing(
            subscriptions=[
                ShownSubscription(scope=s.scope, subscriber=s.subscriber.shown, by=s.by, at=s.at)
                for s in found
            ]
        )

    @router.post("/subscriptions", response_model=ShownSubscription, status_code=201)
    async def add_subscription(body: SubscriptionBody, who: Caller = viewer) -> ShownSubscription:
        """Every incident of `service`, or of `severity`, from now on."""
        found = subscriber(body.channel)
        if refusal := subscribe_refusal(oncall.policy(), who.person):
            raise problem(403, "forbidden", refusal)
        sub = Subscription(
            subscriber=found,
            service=body.service,
            severity=body.severity,
            by=who.person,
            at=datetime.now(UTC),
        )
        try:
            await asyncio.to_thread(book.subscribe, sub)
        except OSError as e:
            log.error("subscription store unavailable: %s", e)
            raise problem(503, "unavailable", "the subscription store is unavailable") from None
        return ShownSubscription(scope=sub.scope, subscriber=found.shown, by=sub.by, at=sub.at)

    return router


async def communications_section(oncall: OnCall, incident_id: str, role: ApiRole) -> str:
    """The incident page's status updates, subscribers, the form the
    communications lead posts with and the button anyone subscribes with.
    Nothing when the incident has no communications (opened before them)."""
    try:
        view = await communications(await oncall.client(), incident_id)
    except IncidentRequestError:
        return ""
    base = f"/api/incidents/{urllib.parse.quote(incident_id, safe='')}"
    parts = ["<section class='comms'><h2>Status updates</h2>"]
    if role.rank >= ApiRole.RESPONDER.rank and view.ready:
        parts.append(
            f"<form data-post='{base}/updates'>"
            "<textarea name='text' required maxlength='2000' "
            "placeholder='What stakeholders read'></textarea>"
            "<input name='internal' placeholder='Internal note (timeline only)'>"
            "<button>Post update</button></form>"
        )
    parts.append(
        "<ol class='updates'>"
        + "".join(
            f"<li><b>{u.at:%H:%M:%S}</b> {html.escape(u.by)} ({html.escape(str(u.status))}): "
            f"{html.escape(u.text)} · sent to {u.delivered}"
            + (f" · failed: {html.escape('; '.join(u.failed))}" if u.failed else "")
            + "</li>"
            for u in view.updates
        )
        + "</ol>"
    )
    shown = ", ".join(view.subscribers) or "nobody yet (beyond the policy's groups)"
    parts.append(
        f"<p class='subscribers'>Subscribers: {html.escape(shown)} "
        f"<button data-post='{base}/subscribers' data-ask='channel'>Subscribe</button></p>"
    )
    return "".join(parts) + "</section>"
