"""A grouped incident's related alerts (issue 17 item 5), with no Temporal in
them: each alert of the group is a part, known by its fingerprint. A new part
is a line on the timeline (not a repeat); a Resolved alert resolves only its
own part; the incident resolves when the last firing part does. Everything
else (dedup, counts, severity, reopening, paging once) is the lifecycle's, so
a grouped incident behaves as any other past its parts.
"""

from __future__ import annotations

from datetime import datetime

from stanch.models.alert import AlertEvent, MonitorCondition, fingerprint
from stanch.models.correlation import AlertPart
from stanch.models.incident import IncidentState
from stanch.workflows import lifecycle
from stanch.workflows.lifecycle import AZURE_MONITOR, AlertRepeated, Effect, Note, Wake

# A group is bounded like the dedup memory: past this many parts a new target
# counts as a repeat of the incident instead of a part of its own.
PARTS_KEPT = 500


def part_of(alert: AlertEvent) -> str:
    return fingerprint(alert.rule_id or alert.rule, alert.targets)


def related_alert_arrived(state: IncidentState, alert: AlertEvent, now: datetime) -> list[Effect]:
    key = part_of(alert)
    part = next((p for p in state.parts if p.fingerprint == key), None)
    if alert.condition is MonitorCondition.RESOLVED:
        return _part_resolved(state, alert, part, now)
    if part is None and len(state.parts) < PARTS_KEPT:
        part = AlertPart(
            fingerprint=key,
            rule=alert.rule,
            targets=alert.targets,
            alert_id=alert.alert_id,
            fired_at=now,
        )
        state.parts.append(part)
        effects = lifecycle.alert_arrived(state, alert, now)
        if len(state.parts) == 1:
            return effects  # the opening alert has its own line already
        line = Note("related_alert", "Related: " + lifecycle.describe_alert(alert), AZURE_MONITOR)
        return [line if isinstance(e, AlertRepeated) else e for e in effects]
    if part is not None and not part.firing:
        part.firing, part.resolved_at, part.alert_id = True, None, alert.alert_id
    return lifecycle.alert_arrived(state, alert, now)


def _part_resolved(
    state: IncidentState, alert: AlertEvent, part: AlertPart | None, now: datetime
) -> list[Effect]:
    if part is None or not part.firing:
        return [Wake()]  # not a part of this incident, or resolved already
    part.firing, part.resolved_at = False, now
    firing = sum(p.firing for p in state.parts)
    if firing:
        return [
            Wake(),
            Note(
                "related_resolved",
                f"Azure Monitor resolved {alert.rule} on {_targets(part)} "
                f"({firing} of {len(state.parts)} related alerts still firing)",
                AZURE_MONITOR,
            ),
        ]
    return lifecycle.alert_arrived(state, alert, now)


def _targets(part: AlertPart) -> str:
    return ", ".join(t.rsplit("/", 1)[-1] for t in part.targets[:3]) or "no target"
