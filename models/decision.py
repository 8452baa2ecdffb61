"""Proof that a person's decision came through the gateway, which checked
their credential: the shape that travels with every people's request to a
workflow, and the exact bytes that are signed.

The gateway signs (gateway/signing.py); the workflows verify
(workflows/decisions.py). What is signed binds the decision to one workflow,
one action and one request body, so a proof can be neither moved to another
incident or step nor reused with different words.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from stanch.models.config import ApiRole

# How far `issued_at` may be from the workflow's clock. Wide enough for a
# worker that picks the update up late, narrow enough that a captured proof
# is worthless within minutes.
FRESHNESS_SECONDS = 300
# How a workflow that has no keys yet refuses; the gateway then asks it to load them.
NO_KEYS_YET = "no decision keys are loaded yet"


def key_id_of(public_key: str) -> str:
    """The id proofs name a key by, derived from the key itself: the policy's
    labels can never point a proof at the wrong key."""
    return "ed25519-" + base64.b32encode(base64.b64decode(public_key)[:10]).decode().lower()


class DecisionProof(BaseModel):
    key_id: str = Field(max_length=64)
    role: ApiRole  # the credential's role: a ceiling on what its holder may decide
    issued_at: datetime
    nonce: str = Field(pattern=r"^[0-9a-f]{32}$")
    signature: str = Field(max_length=200)  # base64 of the Ed25519 signature


def signed_bytes(
    workflow_id: str,
    action: str,
    request: dict[str, Any],
    key_id: str,
    role: ApiRole,
    issued_at: datetime,
    nonce: str,
) -> bytes:
    """Canonical JSON of everything a proof vouches for. `request` is the
    request as JSON (`model_dump(mode="json")`) without its `proof`."""
    body = {
        "workflow_id": workflow_id,
        "action": action,
        "request": {k: v for k, v in request.items() if k != "proof"},
        "key_id": key_id,
        "role": str(role),
        "issued_at": issued_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "nonce": nonce,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class SpentDecisions(BaseModel):
    """Decisions a workflow has acted on, by nonce, so none counts twice.
    Bounded: past the cap the oldest are forgotten and `floor` rises to their
    time, and anything issued at or before the floor is refused as stale."""

    nonces: dict[str, datetime] = Field(default_factory=dict)
    floor: datetime | None = None


class PersonRequest(BaseModel):
    """A person's request to a workflow: who, and the gateway's proof that a
    credential of theirs asked for exactly this."""

    by: str
    proof: DecisionProof | None = None


class DecisionKeysRequest(BaseModel):
    """Asks the policy which decision keys count now (no fields yet)."""


class DecisionKeys(BaseModel):
    keys: dict[str, str]  # key id -> public key, base64
