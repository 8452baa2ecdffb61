"""Loads the part of stanch.yaml an incident needs into workflow state."""

from __future__ import annotations

from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.config import ConfigError, StanchConfig, load_config
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
    def __init__(self, config_path: Path) -> None:
        self._config_path = config_path

    @activity.defn
    async def load_response_plan(self, request: PlanRequest) -> ResponsePlan:
        """Read-only; re-read on every call so roster edits apply to new incidents
        (and to running ones at their next continue-as-new) without a restart."""
        try:
            config = load_config(self._config_path)
        except ConfigError as e:
            # A broken policy file is fixed by a human; retrying sooner than the
            # retry policy's backoff would only spam the log. Keep retrying: an
            # incident must never be dropped because of a typo.
            raise ApplicationError(str(e), type="ConfigError") from None
        return build_plan(config, request)
