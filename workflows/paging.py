"""Paging people from a workflow: one page_on_call activity, bounded so that a
chat service that is down holds up what waits on the page (an escalation's
next tier, a gate, a reminder) for two minutes at most."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from stanch.activities.notify import NotifyActivities
    from stanch.models.incident import Page, PageResult


async def page_on_call(page: Page, retry: RetryPolicy, summary: str | None = None) -> PageResult:
    return await workflow.execute_activity_method(
        NotifyActivities.page_on_call,
        page,
        start_to_close_timeout=timedelta(seconds=30),
        schedule_to_close_timeout=timedelta(minutes=2),
        retry_policy=retry,
        summary=summary,
    )
