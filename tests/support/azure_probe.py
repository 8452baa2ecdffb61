"""A one-activity workflow, so tests can watch Temporal's own retries (and
Retry-After) drive an Azure activity against azuresim."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError


class ProbeInput(BaseModel):
    activity: str
    arg: dict[str, Any]
    max_attempts: int = 6


class ProbeResult(BaseModel):
    ok: bool
    result: dict[str, Any] | None = None
    error_type: str | None = None
    non_retryable: bool | None = None
    attempts_note: str | None = None


@workflow.defn
class AzureProbe:
    @workflow.run
    async def run(self, inp: ProbeInput) -> ProbeResult:
        try:
            result = await workflow.execute_activity(
                inp.activity,
                inp.arg,
                start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=timedelta(seconds=20),
                # A short backoff, so any spacing the test sees comes from Retry-After.
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=100),
                    backoff_coefficient=1.0,
                    maximum_attempts=inp.max_attempts,
                ),
                result_type=dict,
            )
        except ActivityError as e:
            cause = e.cause
            assert isinstance(cause, ApplicationError)
            return ProbeResult(ok=False, error_type=cause.type, non_retryable=cause.non_retryable)
        return ProbeResult(ok=True, result=result)
