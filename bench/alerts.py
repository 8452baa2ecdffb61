"""Alert bodies as Azure Monitor sends them, made unique per incident (rule)
and per instance (alertId)."""

from __future__ import annotations

import copy
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SUB = "00000000-0000-0000-0000-0000000000aa"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-web"


@cache
def _sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return data


def metric_alert(rule: str, targets: list[str] | None = None) -> dict[str, Any]:
    """The static-threshold metric sample, for rule `rule`, as a new instance."""
    body = copy.deepcopy(_sample("alerts/test_action_metric_static_threshold.json"))
    essentials = body["data"]["essentials"]
    essentials["alertRule"] = rule
    essentials.pop("alertRuleID", None)
    essentials.pop("alertRuleId", None)
    essentials["alertId"] = new_alert_id()
    if targets is not None:
        essentials["alertTargetIDs"] = targets
    return body


def vm_down_alert(rule: str, vm_id: str) -> dict[str, Any]:
    """Resource Health: the VM is unavailable (what quarantine_vm answers)."""
    body = copy.deepcopy(_sample("demo/vm-web-1-unavailable.json"))
    essentials = body["data"]["essentials"]
    essentials["alertRule"] = rule
    essentials["alertId"] = new_alert_id()
    essentials["alertTargetIDs"] = [vm_id.lower()]
    essentials["configurationItems"] = [vm_id.rsplit("/", 1)[-1]]
    return body


def new_alert_id() -> str:
    """Azure mints one per firing: every alert here is a new instance."""
    return f"/subscriptions/{SUB}/providers/Microsoft.AlertsManagement/alerts/{uuid.uuid4()}"


def vm_id(name: str) -> str:
    return f"{RG}/providers/Microsoft.Compute/virtualMachines/{name}"


def world(vms: list[str], health: str = "Unavailable") -> dict[str, Any]:
    """examples/world.yaml plus `vms`, each a fresh VM in rg-web."""
    import yaml

    data: dict[str, Any] = yaml.safe_load((EXAMPLES / "world.yaml").read_text())
    data["operation_seconds"] = 0.2
    data["resources"] += [{"id": vm_id(name), "health": health} for name in vms]
    return data
