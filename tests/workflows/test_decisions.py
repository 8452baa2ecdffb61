"""The pure decision check (workflows/decisions.py): fast, no Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stanch.models.config import ApiRole
from stanch.models.decision import DecisionProof, SpentDecisions
from stanch.models.incident import Acknowledge
from stanch.testing.decisions import SIGNER
from stanch.workflows.decisions import NONCES_KEPT, proof_refusal, spend

KEYS = {SIGNER.key_id: SIGNER.public_key}
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def check(request: Acknowledge, spent: SpentDecisions, now: datetime = NOW) -> str:
    """Why the decision is refused, or "" when it counts."""
    return (
        proof_refusal(
            request.proof,
            workflow_id="incident-x",
            action="acknowledge",
            request=request,
            keys=KEYS,
            now=now,
            spent=spent,
            minimum=ApiRole.RESPONDER,
        )
        or ""
    )


def ack(at: datetime) -> Acknowledge:
    return SIGNER.sign("incident-x", "acknowledge", Acknowledge(by="bob"), ApiRole.RESPONDER, at)


def proof(request: Acknowledge) -> DecisionProof:
    assert request.proof is not None
    return request.proof


def test_a_flood_of_decisions_raises_the_floor_instead_of_growing_the_set():
    spent = SpentDecisions()
    sent = [ack(NOW + timedelta(milliseconds=i)) for i in range(NONCES_KEPT * 3)]
    for request in sent:
        assert check(request, spent, proof(request).issued_at) == ""
        spend(spent, request.proof, proof(request).issued_at)
    assert len(spent.nonces) == NONCES_KEPT
    assert len(spent.model_dump_json()) < 64 * 1024
    # Every one of them stays refused: remembered, or at or below the floor.
    later = proof(sent[-1]).issued_at
    assert all(check(request, spent, later) for request in sent)
    assert "oldest one this incident still remembers" in check(sent[0], spent, later)
    assert "already used" in check(sent[-1], spent, later)
    # A fresh decision still counts.
    assert check(ack(later + timedelta(seconds=1)), spent, later) == ""


def test_nonces_are_forgotten_once_they_could_not_pass_the_freshness_check():
    spent = SpentDecisions()
    old = ack(NOW)
    spend(spent, old.proof, NOW)
    spend(spent, ack(NOW + timedelta(minutes=11)).proof, NOW + timedelta(minutes=11))
    assert proof(old).nonce not in spent.nonces
    assert "stale" in check(old, spent, NOW + timedelta(minutes=11))
