"""Detectors: evaluate a query or metric condition, and raise the result as an
Azure-Monitor-shaped alert through the gateway, so a detector's incident goes
through exactly the same intake, validation and dedup as Azure's."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from stanch.activities.monitor import MonitorActivities
from stanch.models.azure import KqlQuery, MetricsQuery, ResourceId
from stanch.models.detector import DetectorRun, DetectorSignal, DetectorVerdict
from stanch.models.settings import Settings

MONITORING_SERVICE = "stanch detector"


class DetectorActivities:
    def __init__(self, monitor: MonitorActivities, settings: Settings) -> None:
        self._monitor = monitor
        self._gateway = settings.gateway_url.rstrip("/")
        self._token = settings.alert_token
        self._http = httpx.AsyncClient(timeout=30)

    @activity.defn
    async def evaluate_detector(self, run: DetectorRun) -> DetectorVerdict:
        """Read-only: safe to retry."""
        d = run.detector
        if d.query is not None:
            result = await self._monitor.run_kql(KqlQuery(resource_id=d.resource_id, query=d.query))
            rows = sum(len(t.rows) for t in result.tables)
            return DetectorVerdict(
                detector=d.name,
                firing=rows >= d.min_rows,
                observed=f"{rows} row(s) from {d.query!r}",
            )
        assert d.metric is not None
        namespace = d.metric_namespace or ResourceId.parse(d.resource_id).full_type
        metrics = await self._monitor.read_metrics(
            MetricsQuery(resource_ids=[d.resource_id], namespace=namespace, names=[d.metric])
        )
        latest = next((s.latest() for s in metrics.series), None)
        firing = latest is not None and (
            (d.above is not None and latest > d.above) or (d.below is not None and latest < d.below)
        )
        return DetectorVerdict(detector=d.name, firing=firing, observed=f"{d.metric} {latest}")

    @activity.defn
    async def raise_detector_alert(self, signal: DetectorSignal) -> dict[str, Any]:
        """Idempotent: the alert instance id is the scheduled run's, so a retry
        is the same alert, which the incident counts once."""
        if self._token is None:
            raise ApplicationError(
                "STANCH_ALERT_TOKEN is not set on the worker",
                type="ConfigError",
                non_retryable=True,
            )
        try:
            response = await self._http.post(
                f"{self._gateway}/alerts",
                json=detector_alert(signal),
                headers={"Authorization": f"Bearer {self._token.get_secret_value()}"},
            )
        except httpx.HTTPError as e:
            raise ApplicationError(
                f"gateway unreachable: {type(e).__name__}", type="GatewayUnavailable"
            ) from None
        if response.status_code >= 500:
            raise ApplicationError(
                f"gateway answered {response.status_code}", type="GatewayUnavailable"
            )
        if response.status_code >= 400:
            raise ApplicationError(
                f"gateway refused the alert: {response.text}",
                type="AlertRefused",
                non_retryable=True,
            )
        answer: dict[str, Any] = response.json()
        return answer


def detector_alert(signal: DetectorSignal) -> dict[str, Any]:
    d, verdict = signal.detector, signal.verdict
    rid = ResourceId.parse(d.resource_id)
    at = signal.at.isoformat().replace("+00:00", "Z")
    essentials: dict[str, Any] = {
        "alertId": f"/subscriptions/{rid.subscription}/providers/Microsoft.AlertsManagement"
        f"/alerts/stanch-{d.name}-{signal.run_key}",
        "alertRule": f"stanch-detector-{d.name}",
        "severity": str(d.severity),
        "signalType": "Log" if d.query else "Metric",
        "monitorCondition": "Fired" if verdict.firing else "Resolved",
        "monitoringService": MONITORING_SERVICE,
        "alertTargetIDs": [rid.id],
        "configurationItems": [rid.name],
        "originAlertId": signal.run_key,
        "firedDateTime": at,
        "description": d.description or f"stanch detector {d.name}: {verdict.observed}",
        "essentialsVersion": "1.0",
        "alertContextVersion": "1.0",
    }
    if not verdict.firing:
        essentials["resolvedDateTime"] = at
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": essentials,
            "alertContext": {
                "conditionType": "StanchDetector",
                "properties": {"observed": verdict.observed},
            },
            "customProperties": None,
        },
    }
