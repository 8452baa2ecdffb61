"""How a workflow says no to a person's update: a reason the caller reads, as
a failure that says whether trying again can help.

A validator's exception rejects the update before anything enters history, and
the caller gets it as the failure's cause. A plain ValueError reaches them as
`type: ValueError, retryable: true`, which invites a retry of a decision that
is final ("'alice' may not approve high-risk steps"); these do not. Validators
never run on replay, so changing what they raise needs no patch.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from stanch.models.decision import NO_KEYS_YET

UPDATE_REFUSED = "UpdateRefused"  # final: the same request is refused again
UPDATE_NOT_YET = "UpdateNotYet"  # passes by itself: the same request may succeed soon


def refused(reason: str, *, for_now: bool = False) -> ApplicationError:
    """The failure a validator raises to refuse an update, naming why. A
    refusal that passes by itself (`for_now`, or no decision keys loaded yet)
    stays retryable."""
    if for_now or reason.startswith(NO_KEYS_YET):
        return ApplicationError(reason, type=UPDATE_NOT_YET)
    return ApplicationError(reason, type=UPDATE_REFUSED, non_retryable=True)
