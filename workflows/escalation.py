"""Who gets paged, decided from the response plan and the workflow's clock.

Pure functions of (plan, time): deterministic in workflow code, and testable
without a server.
"""

from __future__ import annotations

from datetime import datetime

from stanch.models.config import Tier
from stanch.models.incident import ResponsePlan, RosterEntry


def tier_recipients(plan: ResponsePlan, tier: Tier, now: datetime) -> list[RosterEntry]:
    """The tier's named people plus whoever its schedules have on call `now`,
    in the order the policy lists them, each once."""
    ids = list(tier.people)
    for name in tier.schedules:
        schedule = plan.schedules.get(name)
        if schedule is not None:
            ids.append(schedule.on_call_at(now))
    by_id = {p.id: p for p in plan.roster}
    seen: set[str] = set()
    out: list[RosterEntry] = []
    for pid in ids:
        if pid not in seen and pid in by_id:
            seen.add(pid)
            out.append(by_id[pid])
    return out


def everyone_in_policy(plan: ResponsePlan, now: datetime) -> list[RosterEntry]:
    """The broadcast after the last tier: every tier's people at once."""
    out: list[RosterEntry] = []
    for tier in plan.policy.tiers:
        for person in tier_recipients(plan, tier, now):
            if person not in out:
                out.append(person)
    return out


def names(people: list[RosterEntry]) -> str:
    return ", ".join(p.name for p in people) or "nobody"
