"""How a workflow says no to a person's update: a reason the caller reads, as
a failure that says retrying will not help.

A validator's exception rejects the update before anything enters history, and
the caller gets it as the failure's cause. A plain ValueError reaches them as
`type: ValueError, retryable: true`, which invites a retry of a decision that
is final ("'alice' may not approve high-risk steps"); this one does not.
Validators never run on replay, so changing what they raise needs no patch.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

UPDATE_REFUSED = "UpdateRefused"


def refused(reason: str) -> ApplicationError:
    """The failure a validator raises to refuse an update, naming why."""
    return ApplicationError(reason, type=UPDATE_REFUSED, non_retryable=True)
