"""Development credentials: one random API token per roster person, made by
`stanch dev` for its own stack so that `stanch ack ID --as alice` proves to
the gateway that it holds alice's credential instead of declaring her name.

The file (`<state-dir>/credentials.json`, mode 0600) is read by the CLI, to
pick the credential `--as` names, and by the dev stack's gateway, which
accepts these tokens beside the policy's `access.tokens`. Nothing outside
`stanch dev` sets STANCH_DEV_CREDENTIALS, so a production gateway never
accepts them.

Each person's API role follows their roster roles: an approver role (as the
policy's `approvals.approver_roles` names them) gives `approver`; the roster
role `admin` gives `admin` (kill switch, log level); everyone else is a
`responder`. The workflows still apply the roster's own rules on top.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from stanch.models.config import ApiRole, StanchConfig
from stanch.models.private_file import write_private

FILE_NAME = "credentials.json"  # in the state dir of `stanch dev`
TOKEN_BYTES = 32  # 43 URL-safe characters: above the policy's 32-character floor
ADMIN_ROSTER_ROLE = "admin"


class DevCredential(BaseModel):
    person: str
    role: ApiRole
    token: str = Field(min_length=32)


class DevCredentials(BaseModel):
    gateway_url: str  # the stack these were made for: `--as` elsewhere is refused
    credentials: list[DevCredential]

    def of(self, person: str) -> DevCredential | None:
        return next((c for c in self.credentials if c.person == person), None)


class DevCredentialsUnusable(Exception):
    """The file is missing, unreadable or not what `stanch dev` writes."""


def api_role_for(roster_roles: list[str], approver_roles: list[str]) -> ApiRole:
    if ADMIN_ROSTER_ROLE in roster_roles:
        return ApiRole.ADMIN
    if any(role in approver_roles for role in roster_roles):
        return ApiRole.APPROVER
    return ApiRole.RESPONDER


def provision(config: StanchConfig, gateway_url: str) -> DevCredentials:
    return DevCredentials(
        gateway_url=gateway_url,
        credentials=[
            DevCredential(
                person=person.id,
                role=api_role_for(person.roles, config.approvals.approver_roles),
                token=secrets.token_urlsafe(TOKEN_BYTES),
            )
            for person in config.roster
        ],
    )


def write_dev_credentials(path: Path, credentials: DevCredentials) -> None:
    write_private(path, credentials.model_dump_json(indent=2) + "\n")


def read_dev_credentials(path: Path) -> DevCredentials:
    try:
        return DevCredentials.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise DevCredentialsUnusable(f"{path}: no such file") from None
    except (OSError, ValueError, ValidationError) as e:
        # Never echo the content: it holds tokens.
        reason = e.strerror if isinstance(e, OSError) else type(e).__name__
        raise DevCredentialsUnusable(f"{path}: unusable ({reason})") from None
