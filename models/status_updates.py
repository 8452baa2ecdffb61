"""A communications workflow's messages and record: status updates, the
plan it decides by, one delivery of one update to one subscriber
(models/communications.py holds the policy's section and the subscriber)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field, field_validator

from stanch.models.communications import Subscriber, SubscriberSpec
from stanch.models.decision import PersonRequest, SpentDecisions
from stanch.models.free_text import NOTE_LIMIT
from stanch.models.incident import RosterEntry
from stanch.models.severity import Severity
from stanch.models.status import IncidentStatus

COMMUNICATIONS_WORKFLOW = "CommunicationsWorkflow"
UPDATE_LIMIT = 2000  # a stakeholder update is read on a phone: refused past this, not cut


def comms_workflow_id(incident_workflow_id: str) -> str:
    return f"{incident_workflow_id}/comms"


UPDATES_KEPT = 200  # the newest updates a comms workflow keeps and shows
SUBSCRIBERS_KEPT = 500  # per incident


def holds(person: RosterEntry | None, names: Iterable[str]) -> bool:
    """Whether `person` is named in `names` by id or by one of their roles."""
    if person is None:
        return False
    wanted = set(names)
    return person.id in wanted or bool(wanted & set(person.roles))


# ---- what the incident tells its communications workflow ---------------------


class Briefing(BaseModel):
    """Where the incident stands, as stakeholders may hear it."""

    title: str
    severity: Severity
    status: IncidentStatus
    service: str | None = None
    lead: str | None = None  # the incident's communications_lead, if assigned


class CommsInput(BaseModel):
    incident_id: str
    incident_workflow_id: str
    briefing: Briefing
    carried: CarriedComms | None = None


class CommsEvent(BaseModel):
    """A line for the incident's timeline: an update posted, a reminder paged."""

    kind: str
    summary: str
    actor: str | None = None


# ---- people's requests ---------------------------------------------------------


class PostUpdate(PersonRequest):
    """`text` goes to subscribers; `internal` only to the incident's timeline."""

    text: str = Field(min_length=1, max_length=UPDATE_LIMIT)
    internal: str | None = Field(default=None, max_length=NOTE_LIMIT)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class Subscribe(PersonRequest):
    """Subscribe `channel` (email:ADDRESS or webhook:URL) to this incident."""

    channel: SubscriberSpec


# ---- the workflow's record -------------------------------------------------------


class UpdateKind(StrEnum):
    POSTED = "posted"  # by a person
    STATUS = "status"  # sent by itself on a status change


class StatusUpdate(BaseModel):
    id: str  # also the email's Message-ID: <id@stanch>
    number: int
    at: datetime
    kind: UpdateKind
    status: IncidentStatus
    text: str
    by: str
    internal: str | None = None  # never leaves the workflow but for the timeline
    delivered: int = 0
    failed: list[str] = Field(default_factory=list)  # subscriber shown: why

    @property
    def public(self) -> StatusUpdate:
        return self.model_copy(update={"internal": None})


class CommsPlanRequest(BaseModel):
    service: str | None = None


class CommsPlan(BaseModel):
    """What the workflow needs from the policy to decide synchronously."""

    roster: list[RosterEntry]
    lead_roles: list[str]
    posters: list[str]
    may_subscribe: list[str]
    automatic_updates: bool
    reminders: dict[Severity, timedelta]
    channels: list[str] | None
    decision_keys: dict[str, str]

    def person(self, person_id: str) -> RosterEntry | None:
        return next((p for p in self.roster if p.id == person_id), None)

    def leads(self, assigned: str | None) -> list[RosterEntry]:
        """Who leads communications: the incident's assignee, else every
        holder of a lead role."""
        lead = self.person(assigned) if assigned else None
        if lead is not None:
            return [lead]
        return [p for p in self.roster if set(p.roles) & set(self.lead_roles)]

    def may_post(self, person_id: str, assigned: str | None) -> bool:
        person = self.person(person_id)
        return person is not None and (
            person_id == assigned or holds(person, self.lead_roles) or holds(person, self.posters)
        )

    def may_add_subscriber(self, person_id: str) -> bool:
        person = self.person(person_id)
        return person is not None and (not self.may_subscribe or holds(person, self.may_subscribe))


class CarriedComms(BaseModel):
    """Everything a communications workflow carries into its next run."""

    briefing: Briefing
    announced: IncidentStatus | None
    updates: list[StatusUpdate]
    numbered: int
    subscribers: list[Subscriber]
    last_update_at: datetime
    reminded_at: datetime | None = None
    spent: SpentDecisions = Field(default_factory=SpentDecisions)


class CommsView(BaseModel):
    """The `comms` query: updates (without internal notes) and subscribers
    (as shown: a webhook by its host), newest update first."""

    incident_id: str
    updates: list[StatusUpdate]
    subscribers: list[str]
    lead: str | None = None
    next_reminder_at: datetime | None = None
    ready: bool = False  # its plan is loaded: it takes updates and subscriptions


# ---- delivering ---------------------------------------------------------------------


class AudienceRequest(BaseModel):
    incident_id: str
    service: str | None
    severity: Severity


class Audience(BaseModel):
    subscribers: list[Subscriber]


class Delivery(BaseModel):
    """One update to one subscriber. `thread` is the id of the incident's
    first update: every later email replies to it, so mail clients show one
    thread per incident."""

    incident_id: str
    update: StatusUpdate  # public: no internal note
    briefing: Briefing
    subscriber: Subscriber
    thread: str

    @property
    def key(self) -> str:
        return f"{self.update.id}/{self.subscriber.id}"


class DeliveryResult(BaseModel):
    sent: bool  # False: it had been sent before (a retry after a restart)


def message_id(update_id: str) -> str:
    return f"<{update_id}@stanch>"


CommsInput.model_rebuild()
