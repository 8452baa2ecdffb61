"""Reads `remediation.scopes` for a runbook about to change something.

Read from the worker's own policy file at the moment of the first change, not
carried in the runbook's input: whoever starts a runbook (an incident, a drill,
any Temporal client) cannot widen what it may change, and a scope narrowed
while an approval waited applies to that approval's change.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from stanch.models.config import ConfigError, Remediation
from stanch.models.toggles import RemediationCheck
from stanch.stores.policy import PolicySource


class ScopeActivities:
    def __init__(self, policy: PolicySource) -> None:
        self._policy = policy

    @activity.defn
    async def load_remediation_scopes(self, check: RemediationCheck) -> Remediation:
        """Read-only, so safe to retry. After a broken edit, the scopes of the
        last valid version (PolicySource)."""
        try:
            config, _ = self._policy.current()
        except ConfigError as e:
            # No valid version was ever read: retried until a human fixes it;
            # the runbook waits rather than changing anything.
            raise ApplicationError(str(e), type="ConfigError") from None
        return config.remediation
