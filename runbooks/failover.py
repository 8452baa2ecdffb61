"""Fail over to the second configuration: move a Traffic Manager profile's
traffic from a failing primary endpoint to its secondary, once approved, and
prove the secondary serves; release moves it back (a second approval).

OE:08 asks for a way back to a known-good configuration when one fails. The
primary is confirmed failing first (its probes do not say Online) and the
secondary is not known bad, so nobody is asked to approve a failover that
cannot help; the profile with its endpoints is kept as evidence before
anything changes. A Priority profile swaps the two endpoints' priorities (the
primary stays as the fallback); a Weighted one takes the primary out of
rotation (a weight cannot be 0). Then the secondary must come Online (and the
probe URL answer, if one is given) within `verify_within`; if it never does,
the run fails and the failover is undone. The undo restores exactly the
values read before the change.

Bind it to an alert on the profile (Traffic Manager's endpoint status metric,
split by EndpointName, names the failing endpoint), or to one on the primary's
backend with `profile_id` in the params (see stanch.yaml).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field, ValidationError, field_validator
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from stanch.activities.evidence import EvidenceActivities
    from stanch.activities.traffic import TrafficActivities
    from stanch.models.config import AlertMatch
    from stanch.models.evidence import EvidenceRequest
    from stanch.models.risk import Risk
    from stanch.models.runbook import RunbookInput, RunbookOutcome, RunbookResult, RunbookSpec
    from stanch.models.traffic import (
        KNOWN_BAD,
        ONLINE,
        PRIORITY,
        EndpointChange,
        EndpointSetting,
        ProfileRef,
        ServingCheck,
        TrafficProfile,
        checked_probe_url,
        checked_profile_id,
        failover_settings,
    )
    from stanch.workflows.runbook import Runbook

# The dimension Traffic Manager's endpoint status metric is split by.
ENDPOINT_DIMENSIONS = ["EndpointName", "endpointName"]


class FailoverParams(BaseModel):
    # The profile to fail over, when the alert is about something else (the
    # primary's backend); default: the alert's resource, a profile itself.
    profile_id: str | None = None
    # Endpoint names. Default primary: the alert's EndpointName dimension, else
    # the endpoint a Priority profile sends traffic to; default secondary: the
    # only other endpoint, else the next by priority.
    primary: str | None = None
    secondary: str | None = None
    # Also fetched when verifying: the secondary serves only if it answers 2xx/3xx.
    probe_url: str | None = None
    verify_every: timedelta = Field(default=timedelta(seconds=30), gt=timedelta(0))
    verify_within: timedelta = Field(default=timedelta(minutes=10), gt=timedelta(0))
    # Fail over only if the primary's probes do not say Online.
    confirm_failure: bool = True

    @field_validator("profile_id")
    @classmethod
    def _profile(cls, value: str | None) -> str | None:
        return None if value is None else checked_profile_id(value)

    @field_validator("probe_url")
    @classmethod
    def _probe(cls, value: str | None) -> str | None:
        return checked_probe_url(value)


@workflow.defn(name="failover")
class Failover(Runbook):
    spec = RunbookSpec(
        name="failover",
        description="Confirm the primary fails, keep the profile as evidence, then (approved) "
        "move Traffic Manager's traffic to the secondary and verify it serves; undone if it "
        "never does. Release moves traffic back.",
        risk=Risk.HIGH,
        author="stanch",
        matches=AlertMatch(resource_types=["microsoft.network/trafficmanagerprofiles"]),
        approvals={"failover": Risk.HIGH},
        outcome=RunbookOutcome.MITIGATED,
    )

    @workflow.run
    async def run(self, inp: RunbookInput) -> RunbookResult:
        self._dimensions = inp.dimensions
        return await self.perform()

    async def procedure(self) -> RunbookOutcome | None:
        params = self.parameters(FailoverParams)
        try:
            ref = ProfileRef(profile_id=params.profile_id or self.resource_id)
        except ValidationError:
            raise ApplicationError(
                f"{self.resource_id} is not a Traffic Manager profile: give the profile's id "
                "as profile_id in the binding's params",
                type="InvalidParams",
                non_retryable=True,
            ) from None
        profile = await self.step(
            "read traffic profile", TrafficActivities.read_traffic_profile, ref
        )
        primary, secondary = self._pair(profile, params)
        first, second = profile.endpoint(primary), profile.endpoint(secondary)
        if params.confirm_failure and first.monitor_status == ONLINE:
            return RunbookOutcome.NOT_NEEDED
        if second.monitor_status in KNOWN_BAD:
            raise ApplicationError(
                f"the secondary {second.name} is {second.monitor_status} too: failing over "
                "cannot help; look for the cause",
                type="SecondaryNotServing",
                non_retryable=True,
            )
        await self.step(
            "capture evidence",
            EvidenceActivities.capture_evidence,
            EvidenceRequest(incident_id=self.incident_id, resource_id=ref.profile_id),
        )
        await self.approval("failover")
        # Read again: the undo restores what the endpoints hold now, and an
        # approval can take long enough for someone to have moved traffic by hand.
        now = await self.step(
            "read traffic profile before failover", TrafficActivities.read_traffic_profile, ref
        )
        targets, previous = self._plan(now, primary, secondary)
        if not targets:
            return RunbookOutcome.NOT_NEEDED
        change = EndpointChange(
            profile_id=ref.profile_id,
            incident_id=self.incident_id,
            settings=targets,
            previous=previous,
        )
        moved = await self.act(
            f"move traffic to {second.name}",
            TrafficActivities.set_endpoints,
            change,
            undo=lambda _: (TrafficActivities.set_endpoints, change.undo()),
        )
        if moved is not None:  # a dry run changed nothing to verify
            await self._verify(ref.profile_id, second.name, params)
        return RunbookOutcome.MITIGATED

    def _pair(self, profile: TrafficProfile, params: FailoverParams) -> tuple[str, str]:
        """Primary and secondary endpoint names (checked to exist)."""
        held = {name.lower(): value for name, value in self._dimensions.items()}
        named = next((held[d.lower()] for d in ENDPOINT_DIMENSIONS if d.lower() in held), None)
        first = params.primary or named
        if first is None and profile.routing_method == PRIORITY:
            leader = profile.first_by_priority()
            first = leader.name if leader else None
        others = [e for e in profile.endpoints if first is None or e.name.lower() != first.lower()]
        second = params.secondary
        if second is None and profile.routing_method == PRIORITY and len(others) > 1:
            ranked = sorted(others, key=lambda e: e.priority or 1000)
            second = ranked[0].name
        elif second is None and len(others) == 1:
            second = others[0].name
        if first is None or second is None:
            raise ApplicationError(
                f"profile {profile.name} ({profile.routing_method}, endpoints "
                f"{', '.join(e.name for e in profile.endpoints) or 'none'}): name the "
                "primary and the secondary in the binding's params",
                type="InvalidParams",
                non_retryable=True,
            )
        try:
            return profile.endpoint(first).name, profile.endpoint(second).name
        except ValueError as e:
            raise ApplicationError(str(e), type="InvalidParams", non_retryable=True) from None

    def _plan(
        self, profile: TrafficProfile, primary: str, secondary: str
    ) -> tuple[list[EndpointSetting], list[EndpointSetting]]:
        try:
            return failover_settings(profile, primary, secondary)
        except ValueError as e:
            raise ApplicationError(str(e), type="CannotFailOver", non_retryable=True) from None

    async def _verify(self, profile_id: str, secondary: str, params: FailoverParams) -> None:
        """Until the secondary serves, or fail (and so undo) at the deadline.
        Each check is a step; the waits between are durable timers."""
        give_up = workflow.now() + params.verify_within
        check = 0
        while True:
            check += 1
            status = await self.step(
                f"check {secondary} serves (#{check})",
                TrafficActivities.check_endpoint_serving,
                ServingCheck(profile_id=profile_id, endpoint=secondary, probe_url=params.probe_url),
            )
            if status.serving:
                return
            if workflow.now() + params.verify_every > give_up:
                raise ApplicationError(
                    f"{secondary} did not serve within {params.verify_within} "
                    f"({check} checks, last: {status.summary_line()})",
                    type="SecondaryNotServing",
                    non_retryable=True,
                )
            await workflow.sleep(params.verify_every, summary=f"wait for {secondary} to serve")
