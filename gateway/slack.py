"""`POST /slack/interactions`: the buttons on Slack pages (acknowledge;
approve and reject a gate), answered as any other person's decision.

Slack signs each request (`X-Slack-Signature`: v0, HMAC-SHA256 of
`v0:{timestamp}:{raw body}` with the app's signing secret). Only a request
whose signature verifies, whose timestamp is within five minutes and which
was not seen before is read at all; anything else is a 401 and nothing else
happens. The clicker's Slack user id must be on the roster (`roster[].slack`):
the gateway then signs the decision as that person, with the role their
roster entry gives (approver if they hold an approval role, else responder),
and the workflow decides, exactly as for a decision made with an API token.
The answer goes back the way Slack expects: a 200 at once (Slack waits three
seconds at most), then the outcome to the request's `response_url`: the
message updated (its buttons gone once the gate or page is settled), or a
refusal only the clicker sees.

Replays are caught per gateway process: a request seen before, by its
signature, within the five minutes its timestamp is good for (docs/chat.md
says what that leaves open with several gateways).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, Request, Response

from stanch.client.errors import IncidentRequestError, Refused
from stanch.client.incidents import fetch_incident
from stanch.client.updates import decide_step, update_incident
from stanch.gateway.api import OnCall, SignedFor
from stanch.gateway.signing import DecisionSigner
from stanch.models.chat import ButtonValue, SlackAction, SlackInteractivity
from stanch.models.config import ApiRole, Person, StanchConfig
from stanch.models.incident import Acknowledge
from stanch.models.runbook import ApprovalDecision, RunbookView
from stanch.models.secret_reference import UnresolvedSecret

PATH = "/slack/interactions"
MAX_AGE = 300  # seconds: Slack's own advice, and what a captured request is good for
MAX_AHEAD = 60  # seconds a timestamp may be ahead of this clock (skew), no more
SEEN_KEPT = 10_000  # signatures remembered; each only until its timestamp is stale
DECIDING_FOR = 60.0  # seconds a decision may take before the clicker is told to look
ANSWER_TIMEOUT = 10.0  # seconds for Slack to take the message update
log = logging.getLogger(__name__)


class SlackRefused(Exception):
    """A request that cannot be Slack's (status 401), or that is not ours to read."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def verify_request(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> None:
    """Slack's v0 request signature, and a timestamp within five minutes."""
    if not timestamp or not signature:
        raise SlackRefused(401, "X-Slack-Request-Timestamp and X-Slack-Signature are required")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SlackRefused(401, "X-Slack-Request-Timestamp: not a Unix time")
    age = now - int(timestamp)
    if age > MAX_AGE:
        raise SlackRefused(401, f"request is {int(age)}s old; at most {MAX_AGE}s are accepted")
    if age < -MAX_AHEAD:
        raise SlackRefused(401, f"request is timestamped {int(-age)}s in the future")
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    # Constant time: how much of a guess was right must not show.
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SlackRefused(401, "X-Slack-Signature does not verify with the signing secret")


class SeenRequests:
    """Signatures of requests already answered, each kept until its timestamp
    is too old to pass anyway: bounded by time and by count. Full of fresh
    ones (only verified requests get in), it refuses rather than forgets."""

    def __init__(self, kept: int = SEEN_KEPT) -> None:
        self.kept = kept
        self._until: OrderedDict[str, float] = OrderedDict()

    def first_time(self, signature: str, timestamp: int, now: float) -> bool:
        for old, until in list(self._until.items()):
            if until > now:
                break
            del self._until[old]
        if signature in self._until:
            return False
        if len(self._until) >= self.kept:
            raise SlackRefused(503, "too many Slack requests in five minutes; try again")
        self._until[signature] = timestamp + MAX_AGE + 1
        return True


def interaction_of(body: bytes) -> dict[str, Any]:
    """The JSON `payload` field of the form Slack posts."""
    try:
        form = parse_qs(body.decode(), max_num_fields=8)
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, KeyError, ValueError):
        raise SlackRefused(400, "body: expected a form with a JSON `payload` field") from None
    if not isinstance(payload, dict):
        raise SlackRefused(400, "payload: expected a JSON object")
    return payload


def role_on_roster(person: Person, policy: StanchConfig) -> ApiRole:
    """What a chat identity may carry: a responder's standing, or an
    approver's when the roster gives the person an approval role. Never more:
    the kill switch and the log level are not a button."""
    if set(person.roles) & set(policy.approvals.approver_roles):
        return ApiRole.APPROVER
    return ApiRole.RESPONDER


class Click:
    """One button click: who (the roster person), what, and where the answer goes."""

    def __init__(self, payload: dict[str, Any], slack: SlackInteractivity) -> None:
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
            raise SlackRefused(400, "actions: expected one button")
        try:
            self.action = SlackAction(str(actions[0].get("action_id")))
        except ValueError:
            raise SlackRefused(400, "actions[0].action_id: not a stanch button") from None
        try:
            self.value = ButtonValue.read(actions[0].get("value"))
        except ValueError as e:
            raise SlackRefused(400, str(e)) from None
        user = payload.get("user") or {}
        team = payload.get("team") or {}
        self.user = str(user.get("id", "")) if isinstance(user, dict) else ""
        self.team = str((team.get("id") if isinstance(team, dict) else None) or "")
        answer = payload.get("response_url")
        self.response_url = (
            answer if isinstance(answer, str) and slack.may_answer_at(answer) else None
        )
        message = payload.get("message")
        self.message = message if isinstance(message, dict) else {}


def slack_router(oncall: OnCall) -> APIRouter:
    router = APIRouter()
    signer = DecisionSigner.from_settings(oncall.settings)
    seen = SeenRequests()
    working: set[asyncio.Task[None]] = set()

    @router.post(PATH, include_in_schema=False)
    async def interactions(request: Request) -> Response:
        """Slack's interactivity Request URL (docs/chat.md)."""
        policy = oncall.policy()
        slack = policy.chat.slack
        if slack is None:
            return _refused(404, "Slack interactivity is not configured (chat.slack)")
        body = await request.body()  # bounded by the request guard
        now = time.time()
        signature = request.headers.get("x-slack-signature")
        timestamp = request.headers.get("x-slack-request-timestamp")
        try:
            verify_request(slack.resolved_secret(), timestamp, signature, body, now)
            if not seen.first_time(signature or "", int(timestamp or 0), now):
                raise SlackRefused(401, "this request was answered already (a replay)")
            click = Click(interaction_of(body), slack)
        except UnresolvedSecret as e:
            log.error("chat.slack.signing_secret unusable: %s", e)
            return _refused(503, "Slack interactivity is not usable: see the gateway's log")
        except SlackRefused as e:
            log.warning("Slack request refused (%s): %s", e.status, e.message)
            return _refused(e.status, e.message)
        task = asyncio.create_task(act(click, slack, policy))
        working.add(task)
        task.add_done_callback(working.discard)
        return Response(status_code=200)

    async def act(click: Click, slack: SlackInteractivity, policy: StanchConfig) -> None:
        if click.response_url is None:
            log.warning("Slack click from %s: its response_url is not one we answer", click.user)
        if slack.workspace is not None and click.team != slack.workspace:
            await tell(click, f"stanch answers workspace {slack.workspace} only: nothing was done")
            return
        person = next((p for p in policy.roster if p.slack and p.slack == click.user), None)
        if person is None:
            log.warning("Slack user %s is not on the roster: refused", click.user)
            await tell(
                click, f"Slack user {click.user} is not on stanch's roster: nothing was done"
            )
            return
        sign = SignedFor(signer, role_on_roster(person, policy))
        incident = click.value.incident
        try:
            async with asyncio.timeout(DECIDING_FOR):
                if click.action is SlackAction.ACKNOWLEDGE:
                    result = await update_incident(
                        await oncall.client(), incident, Acknowledge(by=person.id), sign=sign
                    )
                    said = (
                        f"{person.display} acknowledged"
                        if result.changed
                        else f"already acknowledged; {person.display}'s click changed nothing"
                    )
                    await settle(click, f"{said} (status {result.status})")
                    return
                view = await decide(click, person, sign)
        except IncidentRequestError as e:
            await tell(click, f"refused: {e}")
            return
        except TimeoutError:
            await tell(click, f"no answer within {DECIDING_FOR:g}s: look at incident {incident}")
            return
        except Exception as e:  # the clicker must hear something; the log keeps the rest
            log.exception("Slack click on %s failed", incident)
            await tell(click, f"stanch could not act on it ({type(e).__name__})")
            return
        step = click.value.step
        verb = "approved" if click.action is SlackAction.APPROVE else "rejected"
        waiting = view.pending if view.pending and view.pending.step == step else None
        more = waiting.required - len(waiting.approvals) if waiting else 0
        if verb == "approved" and more > 0:  # N of M: the buttons stay for the others
            await settle(click, f"{person.display} approved {step}; {more} more needed", keep=True)
        else:
            await settle(click, f"{person.display} {verb} {step} of {view.runbook}")

    async def decide(click: Click, person: Person, sign: SignedFor) -> RunbookView:
        value, client = click.value, await oncall.client()
        if value.step is None:
            raise Refused("this button names no step")
        if value.run is not None:
            # A button outlives its run: it must never decide a later run's gate.
            state = (await fetch_incident(client, value.incident, probe=False)).view.state
            target = state.runbook_awaiting(value.step)
            if target is not None and target.workflow_id != value.run:
                raise Refused(
                    f"this button is for an earlier run of {value.runbook}; "
                    "decide the current one from its own request"
                )
        decision = ApprovalDecision(step=value.step, by=person.id, comment="from Slack")
        approve = click.action is SlackAction.APPROVE
        return await decide_step(client, value.incident, decision, approve=approve, sign=sign)

    async def tell(click: Click, words: str) -> None:
        """A refusal only the clicker sees; the page and its buttons stay."""
        await answer(
            click, {"response_type": "ephemeral", "replace_original": False, "text": words}
        )

    async def settle(click: Click, outcome: str, keep: bool = False) -> None:
        """The page as it was, with the outcome under it and, unless the gate
        still waits for more approvers, without its buttons."""
        blocks = click.message.get("blocks")
        kept = [
            b
            for b in (blocks if isinstance(blocks, list) else [])
            if keep or not (isinstance(b, dict) and b.get("type") == "actions")
        ]
        said = {"type": "context", "elements": [{"type": "plain_text", "text": outcome}]}
        text = click.message.get("text")
        await answer(
            click,
            {
                "replace_original": True,
                "text": f"{text}\n{outcome}" if isinstance(text, str) else outcome,
                "blocks": [*kept, said],
            },
        )
        log.info("Slack: %s (incident %s)", outcome, click.value.incident)

    async def answer(click: Click, message: dict[str, Any]) -> None:
        if click.response_url is None:
            return
        try:
            async with httpx.AsyncClient(timeout=ANSWER_TIMEOUT, follow_redirects=False) as http:
                sent = await http.post(click.response_url, json=message)
            if not sent.is_success:
                log.warning("Slack did not take the message update: HTTP %s", sent.status_code)
        except httpx.HTTPError as e:
            # Never the URL: it is a credential for this message.
            log.warning("Slack message update failed: %s", type(e).__name__)

    return router


def _refused(status: int, message: str) -> Response:
    error = {401: "unauthorized", 400: "malformed", 404: "not_found"}.get(status, "unavailable")
    body = json.dumps({"error": error, "message": message})
    return Response(body, status_code=status, media_type="application/json")
