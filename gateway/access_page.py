"""The incident page's emergency access: its grants, active and past, the
guests' support contracts (who can be called in, how fast they answer), and
for responders a form to ask for a grant and a button to end one.

Approvals of a grant are the page's own "Approval needed" boxes (its gate is
`access-<grant>`); the form posts to the on-call API (gateway/access.py), so
what it refuses is the API's 422 naming the field. Every value is escaped.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from stanch.gateway.access import current_guests
from stanch.models.access_grant import AccessGrantView
from stanch.models.config import StanchConfig
from stanch.models.duration import format_duration
from stanch.models.incident import IncidentState


def access_section(state: IncidentState, policy: StanchConfig, base: str, act: bool) -> str:
    """`base`: the incident's API path, already quoted for an attribute."""
    grants = sorted(state.access, key=lambda g: g.requested_at, reverse=True)
    rows = "".join(_grant_row(g, base, act) for g in grants)
    parts = [
        "<h2>Emergency access</h2><table id='access'><thead><tr><th>Guest</th>"
        "<th>Organisation</th><th>Role</th><th>Scope</th><th>Status</th><th>Until</th>"
        "<th>Approved by</th></tr></thead><tbody>"
        + (rows or "<tr><td colspan='7'>No access asked for.</td></tr>")
        + "</tbody></table>",
        _contracts(policy),
    ]
    if act and state.status.is_open:
        parts.append(_request_form(state, policy, base))
    return "".join(parts)


def _grant_row(g: AccessGrantView, base: str, act: bool) -> str:
    until = g.revoked_at or g.expires_at
    when = f"{until:%Y-%m-%d %H:%M:%S}Z" if until else f"{format_duration(g.duration)} once granted"
    why = f"<br><small>{html.escape(g.revoked_because or g.detail or '')}</small>"
    end = (
        f"<button class='reject' data-post='{base}/access/{html.escape(g.grant_id)}/revoke' "
        "data-ask='reason'>Revoke</button>"
        if act and g.status.is_open
        else ""
    )
    return (
        f"<tr><td>{html.escape(g.guest)}</td><td>{html.escape(g.organisation or '-')}</td>"
        f"<td>{html.escape(g.role)}</td><td><code>{html.escape(g.scope)}</code></td>"
        f"<td><b>{html.escape(str(g.status))}</b>{why}{end}</td><td>{html.escape(when)}</td>"
        f"<td>{html.escape(', '.join(g.approved_by) or '-')}</td></tr>"
    )


def _contracts(policy: StanchConfig) -> str:
    guests = current_guests(policy, datetime.now(UTC))
    if not guests:
        return "<p>No guests in the policy (<code>guests:</code>).</p>"
    items = []
    for g in guests:
        contract = (
            f"{html.escape(g.support.hours)}, answers within "
            f"{format_duration(g.support.response_time)}"
            + (f" (contract {html.escape(g.support.reference)})" if g.support.reference else "")
            if g.support
            else "no support contract listed"
        )
        items.append(
            f"<li><b>{html.escape(g.name)}</b>, {html.escape(g.organisation)} · {contract} · "
            f"{html.escape(g.contact)} · entry until {g.expires.isoformat()}</li>"
        )
    return "<h3>Support contracts</h3><ul id='contracts'>" + "".join(items) + "</ul>"


def _request_form(state: IncidentState, policy: StanchConfig, base: str) -> str:
    guests = "".join(
        f"<option value='{html.escape(g.id)}'>{html.escape(g.name)} "
        f"({html.escape(g.organisation)})</option>"
        for g in current_guests(policy, datetime.now(UTC))
    )
    roles = "".join(
        f"<option value='{html.escape(r.role)}'>{html.escape(r.role)} "
        f"(up to {format_duration(r.max_duration)})</option>"
        for r in policy.access.emergency_roles
    )
    scope = html.escape(state.resources[0] if state.resources else "")
    return (
        f"<form id='access-request' data-post='{base}/access'>"
        f"<label>Guest <select name='guest'>{guests}</select></label> "
        f"<label>Role <select name='role'>{roles}</select></label> "
        f"<label>Scope <input name='scope' size='60' value='{scope}'></label> "
        "<label>For <input name='duration' size='5' value='1h'></label> "
        "<label>Reason <input name='reason'></label> "
        "<button>Ask for access</button></form>"
    )
