"""Loads the part of stanch.yaml an incident needs into workflow state."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.policy import PolicySource
from models.config import ConfigError, StanchConfig
from models.incident import PlanRequest, ResponsePlan, RosterEntry


def build_plan(config: StanchConfig, request: PlanRequest) -> ResponsePlan:
    service = config.service_for(request.rule, request.targets)
    if service is not None:
        service_name, policy_name = service.name, service.escalation_policy
    else:
        service_name = config.incident.default_service
        fallback = next((s for s in config.services if s.name == service_name), None)
        policy_name = fallback.escalation_policy if fallback else "default"
    policy = config.escalation_policies[policy_name]
    used = {name for tier in policy.tiers for name in tier.schedules}
    return ResponsePlan(
        service=service_name,
        policy_name=policy_name,
        policy=policy,
        schedules={name: config.schedules[name] for name in used},
        roster=[RosterEntry(id=p.id, name=p.display, roles=p.roles) for p in config.roster],
        reopen_window=config.incident.reopen_window,
    )


class ResponsePlanActivities:
    def __init__(self, policy: PolicySource) -> None:
        self._policy = policy

    @activity.defn
    async def load_response_plan(self, request: PlanRequest) -> ResponsePlan:
        """Read-only, so safe to retry. Re-reads the file on every call: roster
        edits apply to new incidents (and to running ones at their next
        continue-as-new) without a restart."""
        try:
            config, warning = self._policy.current()
        except ConfigError as e:
            # Only when no valid version was ever read: retried with backoff
            # until a human fixes it, so the incident is never dropped.
            raise ApplicationError(str(e), type="ConfigError") from None
        plan = build_plan(config, request)
        plan.warning = warning
        return plan
