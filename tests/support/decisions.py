"""People's decisions in tests that talk to Temporal directly: stanch.testing's
signed decisions (SIGNER, signed, decide, approve, reject, approve_waiting,
as_approver). Importing it sets the run's STANCH_DECISION_KEY
(TEST_DECISION_KEY), which every worker the tests start trusts and every
gateway signs with."""

from typing import Any

from stanch.testing import decisions


def __getattr__(name: str) -> Any:
    return getattr(decisions, name)
