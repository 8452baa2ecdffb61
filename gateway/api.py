"""The on-call API: incidents to read, and the actions on-call takes on them.

Callers present a bearer token from `access.tokens` in stanch.yaml; it names
the person (on the roster) and an API role (viewer < responder < approver <
admin), enforced here on every endpoint. The workflows still enforce their own
rules (who is on the roster, who may approve which risk): their refusal is the
caller's answer, a 409 with the workflow's words, and nothing changes.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from temporalio.client import Client

from stanch.client import incidents as reading
from stanch.client.errors import (
    IncidentRequestError,
    InvalidQuery,
    NotFound,
    Refused,
    Unavailable,
)
from stanch.client.incidents import (
    DETAIL_WAIT,
    LISTING_WAIT,
    IncidentDetail,
    IncidentPage,
    fetch_incident,
    listing_query,
    open_incidents,
    states_since,
)
from stanch.client.runbooks import require_loaded_runbooks
from stanch.client.updates import decide_step, update_incident
from stanch.gateway.auth import bearer_token
from stanch.gateway.identity import IssuerKeys, TokenRefused, looks_like_jwt, verify_jwt
from stanch.gateway.signing import DecisionSigner
from stanch.gateway.web_guard import CALLER
from stanch.models.config import (
    NAME_PATTERN,
    ApiRole,
    ApiToken,
    ConfigError,
    OidcAccess,
    StanchConfig,
)
from stanch.models.decision import PersonRequest
from stanch.models.dev_credentials import (
    DevCredential,
    DevCredentialsUnusable,
    read_dev_credentials,
)
from stanch.models.duration import Duration
from stanch.models.incident import (
    Acknowledge,
    AddNote,
    AssignRole,
    IncidentState,
    IncidentStatus,
    RequestRelease,
    Resolve,
    Role,
    TimelineEntry,
    UpdateResult,
)
from stanch.models.response_times import ResponseTimes, response_times
from stanch.models.runbook import ApprovalDecision, PendingApproval, RunbookView
from stanch.models.settings import Settings
from stanch.models.severity import Severity
from stanch.models.stuck import StuckWorkflow
from stanch.stores.policy import load_config

WINDOW: TypeAdapter[timedelta] = TypeAdapter(Duration)
_SERVICE = re.compile(NAME_PATTERN)
OPEN_FRESH_FOR = 1.0  # seconds a listing of open incidents is shared between callers
TIMES_FRESH_FOR = 5.0  # and response times, which read every incident of the window
SHARED_ANSWERS_KEPT = 64
MEASURES_AT_ONCE = 2  # response-times computations running together; more wait their turn
T = TypeVar("T")
Asked = TypeVar("Asked", bound=PersonRequest)
# What each of the client room's answers-that-are-not-answers is over HTTP.
HTTP_ANSWERS: dict[type[IncidentRequestError], tuple[int, str]] = {
    Refused: (409, "refused"),
    NotFound: (404, "not_found"),
    Unavailable: (503, "unavailable"),
    InvalidQuery: (422, "invalid"),
}
log = logging.getLogger(__name__)


class Caller(BaseModel):
    person: str
    role: ApiRole


class IncidentResponse(BaseModel):
    """`GET /api/incidents/{id}` and the dashboard: an incident's state and
    timeline, and what waits for people."""

    state: IncidentState
    timeline: list[TimelineEntry]
    pending_approvals: list[PendingApproval]
    # The incident or its runbook cannot go on (a code change broke it): what
    # `state` says is then its last word, not its progress; decisions get 409.
    stuck: StuckWorkflow | None = None

    @classmethod
    def of(cls, detail: IncidentDetail) -> IncidentResponse:
        state = detail.view.state
        return cls(
            state=state,
            timeline=detail.timeline,
            pending_approvals=[] if detail.stuck else state.pending_approvals,
            stuck=detail.stuck,
        )


class AckBody(BaseModel):
    note: str | None = None


class NoteBody(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class RoleBody(BaseModel):
    role: Role
    assignee: str


class ReleaseBody(BaseModel):
    reason: str | None = None


class DecisionBody(BaseModel):
    comment: str | None = None


def _policy(path: Path) -> StanchConfig:
    # A binding to a runbook that is not loaded is refused here as in the
    # worker: at start (no gateway), and as an edit (the last valid one stays).
    return require_loaded_runbooks(load_config(path), str(path))


class OnCall:
    """Who is calling, and the incidents they may see: shared by the API and
    the dashboard."""

    def __init__(
        self,
        settings: Settings,
        client: Callable[[], Awaitable[Client]],
        problem: Callable[[int, str, str], Exception],
    ) -> None:
        self.settings, self.client, self.problem = settings, client, problem
        self._cache: dict[str, Any] = {"policy": _policy(settings.config)}  # or no start
        self._keys: dict[tuple[str, str | None], IssuerKeys] = {}
        self._answers: OrderedDict[tuple[Any, ...], tuple[float, Any]] = OrderedDict()
        self._flights: dict[tuple[Any, ...], asyncio.Task[Any]] = {}
        self._finished: OrderedDict[str, IncidentState] = OrderedDict()
        # Response times read every incident of their window: only a few at once.
        self._measuring = asyncio.Semaphore(MEASURES_AT_ONCE)

    def policy(self) -> StanchConfig:
        """Re-read only when the policy file changed: token and roster edits
        apply at once without re-parsing YAML on every request. A broken edit
        keeps the last valid policy in force."""
        try:
            stamp = self.settings.config.stat().st_mtime_ns
            if self._cache.get("stamp") != stamp:
                self._cache["policy"] = _policy(self.settings.config)
                self._cache["stamp"] = stamp
        except (ConfigError, OSError) as e:
            if "policy" not in self._cache:
                raise self.problem(503, "unavailable", f"policy file unusable: {e}") from None
            log.error("policy file unusable, keeping the last valid version: %s", e)
        found: StanchConfig = self._cache["policy"]
        return found

    async def who_is(self, request: Request, minimum: ApiRole = ApiRole.VIEWER) -> Caller:
        # Found already by the request guard, before the body was read.
        known = request.scope.get("state", {}).get(CALLER)
        # Only the Authorization header, never `?token=` (URLs end up in proxy
        # logs); the dashboard's cookie is SameSite=Strict: other sites cannot
        # ride on it.
        who = (
            known
            if isinstance(known, Caller)
            else await self.identify(bearer_token(request) or request.cookies.get("stanch_token"))
        )
        if who.role.rank < minimum.rank:
            raise self.problem(
                403, "forbidden", f"{who.person} is a {who.role}; this needs {minimum}"
            )
        return who

    async def identify(self, presented: str | None) -> Caller:
        """Who holds this credential (an API token, or a sign-in JWT)."""
        policy = self.policy()
        if presented and policy.access.oidc is not None and looks_like_jwt(presented):
            return await self._signed_in(presented, policy, policy.access.oidc)
        return self._token_holder(presented, policy.access.tokens)

    def _token_holder(self, presented: str | None, tokens: list[ApiToken]) -> Caller:
        match: ApiToken | DevCredential | None = None
        for entry in tokens:  # every one compared, in constant time
            secret = entry.resolved()
            if presented and secret and hmac.compare_digest(presented.encode(), secret.encode()):
                match = entry
        for dev in self._dev_credentials():  # `stanch dev` only: one per roster person
            if presented and hmac.compare_digest(presented.encode(), dev.token.encode()):
                match = dev
        if match is None:
            raise self.problem(401, "unauthorized", "missing or unknown bearer token")
        return Caller(person=match.person, role=match.role)

    def _dev_credentials(self) -> list[DevCredential]:
        """Re-read when the file changes; an unusable file grants nothing."""
        path = self.settings.dev_credentials
        if path is None:
            return []
        try:
            stamp = path.stat().st_mtime_ns
            if self._cache.get("dev_stamp") != stamp:
                self._cache["dev"] = read_dev_credentials(path).credentials
                self._cache["dev_stamp"] = stamp
        except (OSError, DevCredentialsUnusable) as e:
            log.error("development credentials not accepted: %s", e)
            self._cache.pop("dev_stamp", None)
            return []
        found: list[DevCredential] = self._cache["dev"]
        return found

    async def _signed_in(self, token: str, policy: StanchConfig, oidc: OidcAccess) -> Caller:
        try:
            claims = await self.verified_claims(token, oidc)
        except TokenRefused as e:
            raise self.problem(e.status, e.error, f"sign-in token refused: {e.message}") from None
        return self.caller_from_claims(claims, policy, oidc)

    async def verified_claims(self, token: str, oidc: OidcAccess) -> dict[str, Any]:
        keys = self._keys.setdefault(
            (oidc.issuer, oidc.jwks_uri), IssuerKeys(jwks_uri=oidc.jwks_uri, issuer=oidc.issuer)
        )
        return await verify_jwt(token, keys, issuers=[oidc.issuer], audiences=oidc.audiences)

    def caller_from_claims(
        self, claims: dict[str, Any], policy: StanchConfig, oidc: OidcAccess
    ) -> Caller:
        """A person signed in with the identity provider: who (by the immutable
        subject claim) and with which API role (the highest their app roles grant)."""
        identity = claims.get(oidc.person_claim)  # for the message only: names change hands
        person = policy.person_signed_in(claims, oidc)
        if person is None:
            raise self.problem(
                403, "forbidden", f"{identity or 'the signed-in user'} is not on the roster"
            )
        granted = claims.get(oidc.role_claim) or []
        granted = [granted] if isinstance(granted, str) else granted
        roles = [oidc.roles[r] for r in granted if isinstance(r, str) and r in oidc.roles]
        if not roles:
            raise self.problem(403, "forbidden", f"{person.id} holds no stanch app role")
        return Caller(person=person.id, role=max(roles, key=lambda r: r.rank))

    async def response_times(self, window: str, service: str | None = None) -> ResponseTimes:
        if service is not None and not _SERVICE.match(service):
            raise self.problem(422, "invalid", f"service: not a service name: {service!r}")
        try:
            span = WINDOW.validate_python(window)
        except ValidationError:
            raise self.problem(
                422, "invalid", f"window: not a duration: {window!r} (e.g. 24h, 7d)"
            ) from None
        if not timedelta(minutes=1) <= span <= timedelta(days=90):
            raise self.problem(422, "invalid", "window: between 1m and 90d")
        span = rounded_window(span)

        async def measure() -> ResponseTimes:
            async with self._measuring:
                until = datetime.now(UTC)
                states = await self.states_since(until - span, service)
                return response_times(states, until - span, until)

        return await self._shared(("times", span, service), TIMES_FRESH_FOR, measure)

    def answer(self, error: IncidentRequestError) -> Exception:
        """The client room's error as this API's problem (409, 404, 503, 422)."""
        status, code = HTTP_ANSWERS[type(error)]
        return self.problem(status, code, str(error))

    async def detail(self, incident_id: str, wait: timedelta = DETAIL_WAIT) -> IncidentResponse:
        """An incident's state, as its workflow answers: bounded by `wait`, so an
        incident whose workers are all gone is a 503 naming it, never a
        request that hangs."""
        try:
            return IncidentResponse.of(await fetch_incident(await self.client(), incident_id, wait))
        except IncidentRequestError as e:
            raise self.answer(e) from None

    async def list_open(self, limit: int = 50) -> list[IncidentResponse]:
        return await self._shared(("open", limit), OPEN_FRESH_FOR, lambda: self._open(limit))

    async def _open(self, limit: int) -> list[IncidentResponse]:
        # An incident that does not answer is left out rather than holding up every dashboard.
        found = await open_incidents(await self.client(), limit, LISTING_WAIT)
        return [IncidentResponse.of(detail) for detail in found]

    async def _shared(
        self, key: tuple[Any, ...], fresh_for: float, fetch: Callable[[], Awaitable[T]]
    ) -> T:
        """One answer for every caller within `fresh_for` seconds: each open
        dashboard asks the same questions whenever anything changes, and one
        round of queries should serve them all. One fetch per question at a
        time (single flight), and questions never wait for each other: the
        listing behind every dashboard does not queue behind response times."""
        kept = self._answers.get(key)
        if kept is not None and time.monotonic() - kept[0] < fresh_for:
            self._answers.move_to_end(key)
            answer: T = kept[1]
            return answer
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.create_task(self._fetch_and_keep(key, fetch))
            # Retrieved even if every caller left, so its failure is not "never retrieved".
            flight.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._flights[key] = flight
        # shield: a caller that disconnects does not cancel the answer for the others.
        answer = await asyncio.shield(flight)
        return answer

    async def _fetch_and_keep(self, key: tuple[Any, ...], fetch: Callable[[], Awaitable[T]]) -> T:
        try:
            answer = await fetch()
            self._answers[key] = (time.monotonic(), answer)
            self._answers.move_to_end(key)
            while len(self._answers) > SHARED_ANSWERS_KEPT:
                self._answers.popitem(last=False)  # keys come from callers: the oldest go
            return answer
        finally:
            self._flights.pop(key, None)

    async def states_since(
        self, since: datetime, service: str | None = None, limit: int = 1000
    ) -> list[IncidentState]:
        """Every incident that started since `since`; finished ones' final
        states are kept between calls (they never change)."""
        client = await self.client()
        try:
            return await states_since(
                client, since, service=service, limit=limit, finished=self._finished
            )
        except IncidentRequestError as e:
            raise self.answer(e) from None


def rounded_window(span: timedelta) -> timedelta:
    """Whole minutes under an hour, whole hours under two days, whole days
    beyond: windows that differ by seconds share one answer, so a caller
    cannot make a new computation per request by nudging the window."""
    unit = (
        timedelta(minutes=1)
        if span < timedelta(hours=1)
        else timedelta(hours=1)
        if span < timedelta(days=2)
        else timedelta(days=1)
    )
    return -(-span // unit) * unit


class SignedFor:
    """A `Sign` for the client room: the gateway's signature over what one
    caller decides, for their credential's role."""

    def __init__(self, signer: DecisionSigner, role: ApiRole) -> None:
        self.signer, self.role = signer, role

    def __call__(self, workflow_id: str, update: str, request: Asked) -> Asked:
        return self.signer.sign(workflow_id, update, request, self.role)


def _severity(given: str) -> Severity:
    try:
        return Severity.parse(given)
    except ValueError as e:
        raise InvalidQuery(f"severity: {e}") from None


class RoleCheck:
    """A route's dependency: the caller, holding at least `minimum`. The
    OpenAPI document reads `minimum` to say which role each operation needs."""

    def __init__(self, oncall: OnCall, minimum: ApiRole) -> None:
        self.oncall, self.minimum = oncall, minimum

    async def __call__(self, request: Request) -> Caller:
        return await self.oncall.who_is(request, self.minimum)


def api_router(
    settings: Settings,
    client: Callable[[], Awaitable[Client]],
    problem: Callable[[int, str, str], Exception],
) -> tuple[APIRouter, OnCall]:
    router = APIRouter(prefix="/api", tags=["on-call"])
    oncall = OnCall(settings, client, problem)

    def caller(minimum: ApiRole) -> Callable[[Request], Awaitable[Caller]]:
        return RoleCheck(oncall, minimum)

    signer = DecisionSigner.from_settings(settings)  # no key: the gateway does not start
    log.info(
        "signing people's decisions with %s (public key %s: list it in access.decision_keys "
        "unless the workers hold this same key)",
        signer.key_id,
        signer.public_key,
    )

    def signed_for(who: Caller) -> SignedFor:
        """The gateway vouches for what this caller decides, with their role."""
        return SignedFor(signer, who.role)

    detail = oncall.detail

    viewer = Depends(caller(ApiRole.VIEWER))
    responder = Depends(caller(ApiRole.RESPONDER))

    @router.get("/incidents", response_model=IncidentPage)
    async def list_incidents(
        status: IncidentStatus | None = None,
        severity: str | None = None,
        service: str | None = None,
        page_size: int = 50,
        page_token: str | None = None,
        who: Caller = viewer,
    ) -> IncidentPage:
        """Open incidents by default (status=resolved or closed to see those)."""
        try:
            query = listing_query(
                status=status,
                severity=None if severity is None else _severity(severity),
                service=service,
                running_only=status is None,
            )
            return await reading.list_incidents(
                await client(), query, page_size=page_size, page_token=page_token
            )
        except IncidentRequestError as e:
            raise oncall.answer(e) from None

    @router.get("/response-times", response_model=ResponseTimes)
    async def get_response_times(
        window: str = "7d", service: str | None = None, who: Caller = viewer
    ) -> ResponseTimes:
        """MTTA and MTTR per severity for incidents opened within `window` (e.g.
        24h, 7d, 30d), of one service if given."""
        return await oncall.response_times(window, service)

    @router.get("/incidents/{incident_id}", response_model=IncidentResponse)
    async def get_incident(incident_id: str, who: Caller = viewer) -> IncidentResponse:
        return await detail(incident_id)

    async def update(incident_id: str, request: PersonRequest, who: Caller) -> UpdateResult:
        """The request's model says which update it is (Acknowledge: acknowledge)."""
        try:
            return await update_incident(await client(), incident_id, request, sign=signed_for(who))
        except IncidentRequestError as e:
            raise oncall.answer(e) from None

    @router.post("/incidents/{incident_id}/ack", response_model=UpdateResult)
    async def ack(incident_id: str, body: AckBody, who: Caller = responder) -> UpdateResult:
        request = Acknowledge(by=who.person, note=body.note)
        return await update(incident_id, request, who)

    @router.post("/incidents/{incident_id}/resolve", response_model=UpdateResult)
    async def resolve(incident_id: str, body: AckBody, who: Caller = responder) -> UpdateResult:
        request = Resolve(by=who.person, note=body.note)
        return await update(incident_id, request, who)

    @router.post("/incidents/{incident_id}/notes", response_model=UpdateResult)
    async def note(incident_id: str, body: NoteBody, who: Caller = responder) -> UpdateResult:
        request = AddNote(by=who.person, text=body.text)
        return await update(incident_id, request, who)

    @router.post("/incidents/{incident_id}/roles", response_model=UpdateResult)
    async def roles(incident_id: str, body: RoleBody, who: Caller = responder) -> UpdateResult:
        assignment = AssignRole(by=who.person, role=body.role, assignee=body.assignee)
        return await update(incident_id, assignment, who)

    @router.post("/incidents/{incident_id}/release", response_model=UpdateResult)
    async def release(incident_id: str, body: ReleaseBody, who: Caller = responder) -> UpdateResult:
        """Undo what automation applied (e.g. lift a quarantine); the release
        runbook then waits for an approver other than the requester."""
        request = RequestRelease(by=who.person, reason=body.reason)
        return await update(incident_id, request, who)

    async def decide(
        incident_id: str, step: str, who: Caller, approve: bool, body: DecisionBody
    ) -> RunbookView:
        decision = ApprovalDecision(step=step, by=who.person, comment=body.comment)
        try:
            return await decide_step(
                await client(), incident_id, decision, approve=approve, sign=signed_for(who)
            )
        except IncidentRequestError as e:
            raise oncall.answer(e) from None

    @router.post("/incidents/{incident_id}/approvals/{step}/approve", response_model=RunbookView)
    async def approve(
        incident_id: str, step: str, body: DecisionBody, who: Caller = responder
    ) -> RunbookView:
        return await decide(incident_id, step, who, True, body)

    @router.post("/incidents/{incident_id}/approvals/{step}/reject", response_model=RunbookView)
    async def reject(
        incident_id: str, step: str, body: DecisionBody, who: Caller = responder
    ) -> RunbookView:
        return await decide(incident_id, step, who, False, body)

    return router, oncall
