"""Acting from chat: the policy's `chat.slack` section (how the gateway knows
a request came from Slack, and where its answers may go), and what a page's
buttons name.

A button names what it acts on (the incident; for a gate the runbook, its run
and the step) and nothing that grants anything: whoever clicks is found by
their Slack user id on the roster (`roster[].slack`), and the workflow decides
as for any other credential (docs/chat.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from stanch.models.risk import Risk
from stanch.models.secret_reference import UnresolvedSecret, resolve_secret

SLACK_USER = r"^[UW][A-Z0-9]{2,20}$"  # Slack user ids: U… (W… on Enterprise Grid)
SLACK_TEAM = r"^[TE][A-Z0-9]{2,20}$"  # a workspace (T…) or an Enterprise Grid org (E…)
BUTTON_VALUE_LIMIT = 2000  # Slack refuses a longer button value
MIN_SIGNING_SECRET = 16  # Slack's are 32 hex characters; shorter is a typo or a placeholder


class SlackAction(StrEnum):
    """The `action_id` of each button stanch puts on a page."""

    ACKNOWLEDGE = "stanch.acknowledge"
    APPROVE = "stanch.approve"
    REJECT = "stanch.reject"


class SlackInteractivity(BaseModel):
    """`chat.slack`: the Slack app whose buttons stanch answers."""

    model_config = ConfigDict(extra="forbid")

    # The app's signing secret (Basic Information > App Credentials): write ${NAME}.
    signing_secret: SecretStr
    # When set, only requests from this workspace (team id T…) are answered.
    workspace: str | None = Field(default=None, pattern=SLACK_TEAM)
    # Hosts a request's response_url may point at: Slack's own, unless a test
    # (or a proxy) says otherwise. Plain http only to loopback.
    response_hosts: list[str] = Field(default_factory=lambda: ["hooks.slack.com"], min_length=1)

    def resolved_secret(self) -> str:
        """The secret to verify with; UnresolvedSecret says why there is none."""
        secret = resolve_secret(self.signing_secret.get_secret_value())
        if len(secret) < MIN_SIGNING_SECRET:
            raise UnresolvedSecret(
                f"{len(secret)} characters; Slack's signing secrets have 32 "
                "(copy it from the app's Basic Information page)"
            )
        return secret

    def may_answer_at(self, url: str) -> bool:
        """Whether `url` is somewhere a response_url may send stanch's answer."""
        found = re.match(r"^(https?)://([^/:?#]+)(:\d+)?(/|$)", url)
        if found is None:
            return False
        scheme, host = found.group(1), found.group(2).lower()
        if host not in {h.lower() for h in self.response_hosts}:
            return False
        return scheme == "https" or host in ("127.0.0.1", "localhost")


class Chat(BaseModel):
    """`chat`: chat tools people act from, beside the channels pages go to."""

    model_config = ConfigDict(extra="forbid")

    slack: SlackInteractivity | None = None


class GateAsk(BaseModel):
    """What an approval page asks: which gate of which run. Carried by the page
    so a chat channel can put approve and reject buttons on it."""

    runbook: str
    run: str  # the runbook's workflow id: a button never decides a later run's gate
    step: str
    risk: Risk


class ButtonValue(BaseModel):
    """A button's `value`: what it acts on, never who may act or a secret."""

    model_config = ConfigDict(extra="forbid")

    incident: str = Field(min_length=1, max_length=200)
    runbook: str | None = Field(default=None, max_length=200)
    run: str | None = Field(default=None, max_length=400)
    step: str | None = Field(default=None, max_length=200)

    def text(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True), separators=(",", ":"))

    @classmethod
    def read(cls, text: Any) -> ButtonValue:
        """The value a button carried; ValueError names what is wrong with it."""
        if not isinstance(text, str) or len(text) > BUTTON_VALUE_LIMIT:
            raise ValueError("actions[0].value: not a stanch button's value")
        try:
            return cls.model_validate_json(text)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "value"
            raise ValueError(f"actions[0].value.{where}: {first['msg']}") from None

    @field_validator("incident")
    @classmethod
    def _plain(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.:-]+", value):
            raise ValueError("not an incident id")
        return value


def chat_problems(chat: Chat, slack_ids: Iterable[tuple[str, str | None]]) -> list[str]:
    """What makes `chat` unusable: a signing secret that does not resolve, and
    one Slack user listed for two people (`slack_ids`: (path, id) per person)."""
    problems: list[str] = []
    if chat.slack is not None:
        try:
            chat.slack.resolved_secret()
        except UnresolvedSecret as e:
            problems.append(f"chat.slack.signing_secret: {e}")
    first: dict[str, str] = {}
    for path, user in slack_ids:
        if user is None:
            continue
        if user in first:
            problems.append(f"{path}: Slack user {user!r} is also {first[user]}")
        else:
            first[user] = path
    return problems
