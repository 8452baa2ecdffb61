"""Admin controls over the on-call API: the remediation kill switch and the log
level of every stanch process.

Anyone with a credential may read the switch; flipping it needs the `admin`
role of the credential itself (not of the person on the roster), and the
change names the credential's person on the audit trail. (The request guard
checks the credential before the body is read.)
"""

from __future__ import annotations

import asyncio
import html
import logging
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends

from stanch.client.runbooks import known_runbooks
from stanch.gateway.api import Caller, OnCall, RoleCheck
from stanch.gateway.audit_trail import AlertAuditTrail
from stanch.models.audit import AuditEntry
from stanch.models.config import ApiRole
from stanch.models.settings import Settings
from stanch.models.toggles import KillSwitchView, LogLevelToggle, RemediationToggle, Switch
from stanch.stores.select import toggle_store
from stanch.stores.toggles import ToggleRefused, ToggleStoreUnavailable, ToggleStoreUnreadable

log = logging.getLogger("stanch.gateway.controls")


def controls_router(
    settings: Settings,
    oncall: OnCall,
    audit: AlertAuditTrail,
    problem: Callable[[int, str, str], Exception],
) -> APIRouter:
    router = APIRouter(prefix="/api/toggles", tags=["admin"])
    store = toggle_store(settings)

    async def change(who: Caller, write: Callable[[], Any], entry: AuditEntry) -> KillSwitchView:
        try:
            # A file lock and an fsync: off the event loop.
            await asyncio.to_thread(write)
        except ToggleStoreUnavailable as e:
            raise problem(503, "unavailable", _unreachable(e)) from None
        except ToggleStoreUnreadable as e:
            raise problem(
                409,
                "unreadable",
                f"{settings.toggles_path.name} cannot be read ({e.problem}), so remediation "
                "is already halted; fix the file, or send replace_unreadable: true to keep "
                "it aside and start a fresh one",
            ) from None
        except ToggleRefused as e:
            raise problem(422, "invalid", str(e)) from None
        await audit.append(f"toggle/{uuid.uuid4()}", entry)
        log.warning("%s by %s (%s credential)", entry.action, who.person, who.role)
        return store.view()

    viewer = Depends(RoleCheck(oncall, ApiRole.VIEWER))
    admin = Depends(RoleCheck(oncall, ApiRole.ADMIN))

    @router.get("", response_model=KillSwitchView)
    async def read_toggles(who: Caller = viewer) -> KillSwitchView:
        """The kill switch and log level in force, as every runbook reads them."""
        try:
            await asyncio.to_thread(store.read)
        except ToggleStoreUnavailable as e:
            raise problem(503, "unavailable", _unreachable(e)) from None
        except ToggleStoreUnreadable:
            pass  # a broken file: the view says so (remediation halted), with a 200
        return await asyncio.to_thread(store.view)

    async def toggle_remediation(asked: RemediationToggle, who: Caller = admin) -> KillSwitchView:
        """Switch all remediation, or one runbook, on or off. Every runbook reads
        the switch before its next change; the change is on the audit trail."""
        loaded = known_runbooks(oncall.policy().runbook_packages)  # the team's too
        if asked.runbook is not None and asked.runbook not in loaded:
            known = ", ".join(sorted(loaded))
            raise problem(422, "invalid", f"runbook: no runbook {asked.runbook!r} (known: {known})")
        state = "on" if asked.enabled else "off"
        return await change(
            who,
            lambda: store.set(
                asked.enabled,
                asked.runbook,
                who.person,
                asked.reason,
                replace_unreadable=asked.replace_unreadable,
            ),
            AuditEntry(
                incident_id=None,
                actor=who.person,
                action="toggle remediation",
                target=asked.runbook or "all runbooks",
                outcome=state,
                details={"reason": asked.reason, "credential_role": str(who.role)},
            ),
        )

    for method in ("PUT", "POST"):  # PUT is the natural verb; POST for clients that only post
        router.add_api_route(
            "/remediation",
            toggle_remediation,
            methods=[method],
            response_model=KillSwitchView,
            operation_id=f"toggle_remediation_{method.lower()}",
        )

    @router.post("/log-level", response_model=KillSwitchView)
    async def set_log_level(asked: LogLevelToggle, who: Caller = admin) -> KillSwitchView:
        """Change the log level of every running stanch process, no restart."""
        return await change(
            who,
            lambda: store.set_log_level(
                asked.level, who.person, replace_unreadable=asked.replace_unreadable
            ),
            AuditEntry(
                incident_id=None,
                actor=who.person,
                action="set log level",
                outcome=asked.level,
                details={"credential_role": str(who.role)},
            ),
        )

    return router


def kill_switch_banner(settings: Settings) -> str:
    """What every dashboard page says first while remediation is halted."""
    view = toggle_store(settings).view()
    if not view.readable:
        return (
            "<div id='kill-switch' class='pending' role='alert'><b>Remediation halted:</b> "
            f"the kill switch cannot be read ({html.escape(view.problem or '')}). "
            "No runbook will change anything until an admin fixes the file or sets the "
            "switch again.</div>"
        )
    lines = []
    if view.remediation is not None and not view.remediation.enabled:
        lines.append("<b>Remediation is switched off</b>" + _by(view.remediation))
    for name, switch in sorted(view.runbooks.items()):
        if not switch.enabled:
            lines.append(f"Runbook <b>{html.escape(name)}</b> is switched off" + _by(switch))
    if not lines:
        return ""
    return "<div id='kill-switch' class='pending' role='status'>" + "<br>".join(lines) + "</div>"


def _unreachable(e: ToggleStoreUnavailable) -> str:
    return (
        f"the toggle store cannot be reached ({e.problem}): remediation is halted on every "
        "worker until it answers; retry the change then"
    )


def _by(switch: Switch) -> str:
    who = f" by {html.escape(switch.by)}" if switch.by else ""
    why = f": {html.escape(switch.reason)}" if switch.reason else ""
    return who + why + "."
