"""The incident page's related alerts (issue 17 item 5): each part of a
grouped incident with its rule, target and whether it still fires. Nothing for
an incident that groups nothing."""

from __future__ import annotations

import html

from stanch.models.duration import relative
from stanch.models.incident import IncidentState

PARTS_SHOWN = 200  # a storm's page stays readable; the count says the rest


def related_alerts_section(state: IncidentState) -> str:
    if not state.parts:
        return ""
    firing = sum(p.firing for p in state.parts)
    rows = "".join(
        f"<tr><td>{html.escape(p.rule)}</td>"
        f"<td>{html.escape(', '.join(t.rsplit('/', 1)[-1] for t in p.targets) or '-')}</td>"
        f"<td>{'firing' if p.firing else 'resolved'}</td>"
        f"<td>{relative(p.fired_at)}</td></tr>"
        for p in state.parts[:PARTS_SHOWN]
    )
    more = len(state.parts) - PARTS_SHOWN
    tail = f"<p>and {more} more</p>" if more > 0 else ""
    return (
        f"<section id='related-alerts'><h2>Related alerts ({len(state.parts)}, "
        f"{firing} firing)</h2><table><tr><th>Rule</th><th>Target</th><th>Status</th>"
        f"<th>Fired</th></tr>{rows}</table>{tail}</section>"
    )
