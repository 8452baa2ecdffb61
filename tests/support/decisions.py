"""People's decisions in tests that talk to Temporal directly: stanch.testing's
signed decisions (importing it sets the run's STANCH_DECISION_KEY, which every
worker the tests start trusts and every gateway signs with)."""

from __future__ import annotations

from stanch.testing.decisions import (
    SIGNER,
    TEST_DECISION_KEY,
    approve,
    approve_waiting,
    as_approver,
    decide,
    reject,
    signed,
)

__all__ = [
    "SIGNER",
    "TEST_DECISION_KEY",
    "approve",
    "approve_waiting",
    "as_approver",
    "decide",
    "reject",
    "signed",
]
