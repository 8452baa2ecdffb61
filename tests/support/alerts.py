"""Azure Monitor alerts as tests send them: the samples Azure documents, made
into distinct incidents and instances."""

from __future__ import annotations

import json
import uuid
from typing import Any

from stanch.testing.estate import SAMPLES


def sample(name: str = "test_action_metric_static_threshold.json") -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())


def unique_alert(rule: str | None = None, alert_id: str | None = None, **essentials: Any) -> dict:
    """The metric sample, made a distinct incident (rule) and instance (alertId)."""
    body = sample()
    e = body["data"]["essentials"]
    e["alertRule"] = rule or f"rule-{uuid.uuid4().hex[:8]}"
    e["alertId"] = (
        f"/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/{alert_id or uuid.uuid4()}"
    )
    e.update(essentials)
    return body
