"""Loads the part of stanch.yaml an incident needs into workflow state."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from stanch.models.config import ConfigError, EscalationPolicy, StanchConfig, alert_matches
from stanch.models.decision import DecisionKeys, DecisionKeysRequest, key_id_of
from stanch.models.incident import PlanRequest, ResponsePlan, RosterEntry, RunbookChoice
from stanch.models.runbook import ApprovalPlan, RunbookSpec
from stanch.stores.policy import PolicySource


def build_plan(
    config: StanchConfig,
    request: PlanRequest,
    catalog: dict[str, RunbookSpec] | None = None,
    trusted_keys: dict[str, str] | None = None,
) -> ResponsePlan:
    service = config.service_for(request.rule, request.targets)
    if service is not None:
        service_name, policy_name = service.name, service.escalation_policy
    else:
        service_name = config.incident.default_service
        fallback = next((s for s in config.services if s.name == service_name), None)
        policy_name = fallback.escalation_policy if fallback else "default"
    policy = config.escalation_policies[policy_name]
    used = {name for tier in policy.tiers for name in tier.schedules}
    used |= {name for tier in config.approvals.tiers for name in tier.schedules}
    choice, refusal = choose_runbook(config, request, catalog or {})
    return ResponsePlan(
        service=service_name,
        policy_name=policy_name,
        policy=policy,
        schedules={name: config.schedules[name] for name in used},
        roster=[RosterEntry(id=p.id, name=p.display, roles=p.roles) for p in config.roster],
        reopen_window=config.incident.reopen_window,
        approval=approval_plan(config, policy, trusted_keys),
        runbook=choice,
        warning=refusal,
        maintenance=[w for w in config.maintenance if w.service == service_name],
    )


def approval_plan(
    config: StanchConfig, policy: EscalationPolicy, trusted_keys: dict[str, str] | None = None
) -> ApprovalPlan:
    """`trusted_keys`: decision keys this worker trusts beyond the policy's
    (the public half of its own STANCH_DECISION_KEY, on a one-machine stack)."""
    roles = set(config.approvals.approver_roles)
    now = datetime.now(UTC)
    on_call = []
    for tier in policy.tiers[:1]:  # whoever the first tier would page right now
        on_call += list(tier.people)
        on_call += [config.schedules[s].on_call_at(now) for s in tier.schedules]
    return ApprovalPlan(
        policy=config.approvals,
        approvers=[p.id for p in config.roster if roles & set(p.roles)],
        on_call=list(dict.fromkeys(on_call)),
        roster=[p.id for p in config.roster],
        decision_keys=decision_keys(config, trusted_keys),
    )


def decision_keys(config: StanchConfig, trusted_keys: dict[str, str] | None) -> dict[str, str]:
    listed = {key_id_of(k.public_key): k.public_key for k in config.access.decision_keys}
    return {**(trusted_keys or {}), **listed}


def choose_runbook(
    config: StanchConfig, request: PlanRequest, catalog: dict[str, RunbookSpec]
) -> tuple[RunbookChoice | None, str | None]:
    """The first binding in stanch.yaml whose match (or its runbook's own) fits,
    and why no runbook runs when that binding's runbook is not loaded.

    Refusal, never substitution: a binding whose runbook is missing ends the
    search. Falling through would run a later binding's runbook on an alert
    meant for another (a disk alert restarting the VM). Without a match of its
    own the missing runbook's match is unknown, so it may be meant for any alert.
    (Workers and `stanch config check` refuse such a policy; this is the last line.)"""
    for i, binding in enumerate(config.runbooks):
        spec = catalog.get(binding.runbook)
        if spec is None:
            if binding.match is None or alert_matches(
                binding.match, request.rule, request.targets, request.monitoring_service
            ):
                return None, (
                    f"runbooks[{i}].runbook: no runbook named {binding.runbook!r} is loaded on "
                    "this worker, so no runbook was run for this alert (later bindings are "
                    "never tried in its place)"
                )
            continue
        match = binding.match or spec.matches
        if alert_matches(match, request.rule, request.targets, request.monitoring_service):
            choice = RunbookChoice(name=spec.name, params=binding.params, dry_run=binding.dry_run)
            return choice, None
    return None, None


class ResponsePlanActivities:
    def __init__(
        self,
        policy: PolicySource,
        catalog: dict[str, RunbookSpec] | None = None,
        trusted_keys: dict[str, str] | None = None,
    ) -> None:
        self._policy = policy
        self._catalog = catalog or {}
        self._trusted_keys = trusted_keys or {}

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
        plan = build_plan(config, request, self._catalog, self._trusted_keys)
        plan.warning = "; ".join(w for w in (warning, plan.warning) if w) or None
        return plan

    @activity.defn
    async def load_decision_keys(self, request: DecisionKeysRequest) -> DecisionKeys:
        """For workflows that began before decisions were signed. Read-only."""
        try:
            config, _ = self._policy.current()
        except ConfigError as e:
            raise ApplicationError(str(e), type="ConfigError") from None
        return DecisionKeys(keys=decision_keys(config, self._trusted_keys))
