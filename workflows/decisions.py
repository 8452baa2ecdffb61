"""Is this decision proven? Pure and deterministic (the clock is passed in),
so the same check runs in update validators, in signal handlers and in tests.

A client that reaches Temporal directly (the `temporal` CLI, a script with a
worker's certificate) can send any request body; only the gateway holds the
key that signs what a verified credential asked for. So a request counts only
with a valid signature over this workflow, this action and this exact body,
issued moments ago, never seen before, by a credential whose role is high
enough.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from stanch.models.config import ApiRole
from stanch.models.decision import (
    FRESHNESS_SECONDS,
    NO_KEYS_YET,
    DecisionProof,
    SpentDecisions,
    signed_bytes,
)

# Enough for every decision of a busy incident within the freshness window
# (one a second for ten minutes), small enough to carry (~60 KiB).
NONCES_KEPT = 600


def proof_refusal(
    proof: DecisionProof | None,
    *,
    workflow_id: str,
    action: str,
    request: BaseModel,
    keys: dict[str, str],
    now: datetime,
    spent: SpentDecisions,
    minimum: ApiRole,
) -> str | None:
    """Why this request is not a proven decision, or None if it is."""
    if proof is None:
        return "unsigned decision: people act through the on-call API with a credential"
    if not keys:
        return f"{NO_KEYS_YET}: retry in a moment"
    public = keys.get(proof.key_id)
    if public is None:
        return f"decision signed with an unknown key {proof.key_id!r}"
    message = signed_bytes(
        workflow_id,
        action,
        request.model_dump(mode="json"),
        proof.key_id,
        proof.role,
        proof.issued_at,
        proof.nonce,
    )
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public))
        key.verify(base64.b64decode(proof.signature, validate=True), message)
    except (InvalidSignature, ValueError, binascii.Error):
        return "decision signature does not verify: forged or altered"
    if abs(now - proof.issued_at) > timedelta(seconds=FRESHNESS_SECONDS):
        return f"decision issued at {proof.issued_at:%Y-%m-%d %H:%M:%S}Z is stale: send it again"
    if proof.nonce in spent.nonces:
        return "decision already used: a replayed request is refused"
    if spent.floor is not None and proof.issued_at <= spent.floor:
        return "decision issued before the oldest one this incident still remembers: send it again"
    if proof.role.rank < minimum.rank:
        return f"the credential used is a {proof.role}; this needs {minimum}"
    return None


def spend(spent: SpentDecisions, proof: DecisionProof | None, now: datetime) -> None:
    """Remember a used nonce until it could no longer pass the freshness check
    anyway; a flood of decisions raises the floor instead of growing the set,
    so what the workflow carries stays small however busy the incident is."""
    if proof is None:
        return
    horizon = now - timedelta(seconds=2 * FRESHNESS_SECONDS)
    kept = {n: at for n, at in spent.nonces.items() if at >= horizon}
    kept[proof.nonce] = proof.issued_at
    if len(kept) > NONCES_KEPT:
        by_age = sorted(kept.items(), key=lambda item: item[1])
        dropped = by_age[: len(kept) - NONCES_KEPT]
        kept = dict(by_age[len(dropped) :])
        oldest_kept_out = dropped[-1][1]
        spent.floor = max(spent.floor or oldest_kept_out, oldest_kept_out)
    spent.nonces = kept
