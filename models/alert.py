"""The Azure Monitor common alert schema, as action groups POST it.

Tolerant where Azure varies (unknown fields, nulls, lower-cased ids, per-signal
`alertContext` shapes) and strict only about what the engine needs to open and
deduplicate an incident: the schema id, the alert instance id, the rule, the
targets and whether it fired or resolved.

Free text is bounded here, where it enters, and never refused for its length
(Azure retries a refused alert forever): a rule over 512 characters, a
description over 1024 and an id or label over 1024 are cut with a visible
`…[truncated N chars]` marker (models/free_text.py). The gateway's audit record
keeps what was kept here; the workflow input never holds more.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from stanch.models.free_text import DescriptionText, IdentifierText, RuleText, bounded
from stanch.models.severity import Severity

log = logging.getLogger("stanch.alert")


class MonitorCondition(StrEnum):
    FIRED = "Fired"
    RESOLVED = "Resolved"


# Looked up once per alert at intake: iterating the enum each time showed in profiles.
_CONDITIONS = {condition.value.lower(): condition for condition in MonitorCondition}


class _Lenient(BaseModel):
    # Azure adds fields over time; refusing them would drop real alerts.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Essentials(_Lenient):
    alert_id: IdentifierText = Field(alias="alertId", min_length=1)
    alert_rule: RuleText = Field(alias="alertRule", min_length=1)
    alert_rule_id: IdentifierText | None = Field(
        default=None, validation_alias=AliasChoices("alertRuleId", "alertRuleID")
    )
    severity: Severity | None = None
    signal_type: IdentifierText | None = Field(default=None, alias="signalType")
    monitor_condition: MonitorCondition = Field(alias="monitorCondition")
    monitoring_service: IdentifierText | None = Field(default=None, alias="monitoringService")
    alert_target_ids: list[str] = Field(default_factory=list, alias="alertTargetIDs")
    configuration_items: list[str] = Field(default_factory=list, alias="configurationItems")
    origin_alert_id: str | None = Field(default=None, alias="originAlertId")
    fired_date_time: datetime | None = Field(default=None, alias="firedDateTime")
    resolved_date_time: datetime | None = Field(default=None, alias="resolvedDateTime")
    description: DescriptionText = None
    essentials_version: str | None = Field(default=None, alias="essentialsVersion")
    alert_context_version: str | None = Field(default=None, alias="alertContextVersion")

    @field_validator("alert_target_ids", "configuration_items", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("monitor_condition", mode="before")
    @classmethod
    def _condition_any_case(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _CONDITIONS.get(value.strip().lower(), value)
        return value

    @field_validator("severity", mode="before")
    @classmethod
    def _severity_tolerant(cls, value: Any) -> Any:
        # Some rules send "" or an unknown label; an unknown severity is not a
        # reason to drop a page, the response plan's default applies instead.
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            return Severity.parse(value)
        except ValueError:
            shown = bounded(str(value), 64)  # the value is the sender's: keep the log short
            log.warning("severity %r is not one of Sev0..Sev4; the default applies", shown)
            return None


class MetricCriterion(_Lenient):
    metric_name: str | None = Field(default=None, alias="metricName")
    metric_namespace: str | None = Field(default=None, alias="metricNamespace")
    operator: str | None = None
    threshold: str | float | None = None
    time_aggregation: str | None = Field(default=None, alias="timeAggregation")
    metric_value: float | None = Field(default=None, alias="metricValue")
    search_query: str | None = Field(default=None, alias="searchQuery")
    dimensions: list[dict[str, Any]] | None = None


class Condition(_Lenient):
    window_size: str | None = Field(default=None, alias="windowSize")
    all_of: list[MetricCriterion] = Field(default_factory=list, alias="allOf")
    window_start_time: datetime | None = Field(default=None, alias="windowStartTime")
    window_end_time: datetime | None = Field(default=None, alias="windowEndTime")

    @field_validator("all_of", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


def _scalar_as_text(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        return str(value)
    return value if isinstance(value, str) else None


Text = Annotated[str | None, BeforeValidator(_scalar_as_text)]


class AlertContext(_Lenient):
    """Union of the per-signal contexts (Metric, Log, Activity Log, Resource Health,
    Service Health, smart detection). Everything is optional: which keys appear
    depends on the monitoring service, and the engine reads them only for display
    and runbook matching."""

    condition_type: Text = Field(default=None, alias="conditionType")
    condition: Condition | None = None
    properties: dict[str, Any] | None = None
    # Activity Log / Resource Health / Service Health. Service Health sends
    # some of these as numbers (`"level": 3`), so any scalar is kept as text.
    operation_name: Text = Field(default=None, alias="operationName")
    caller: Text = None
    status: Text = None
    level: Text = None
    event_source: Text = Field(default=None, alias="eventSource")
    correlation_id: Text = Field(default=None, alias="correlationId")
    # Smart detection (Application Insights)
    detection_summary: Text = Field(default=None, alias="DetectionSummary")

    @field_validator("condition", mode="before")
    @classmethod
    def _condition_object_only(cls, value: Any) -> Any:
        # Some older contexts carry a string here; it is informational only.
        return value if isinstance(value, dict) else None

    @field_validator("properties", mode="before")
    @classmethod
    def _properties_object_only(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else None


class AlertData(_Lenient):
    essentials: Essentials
    alert_context: AlertContext | None = Field(default=None, alias="alertContext")
    custom_properties: dict[str, Any] | None = Field(default=None, alias="customProperties")

    @field_validator("alert_context", mode="before")
    @classmethod
    def _context_object_only(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else None


class CommonAlert(_Lenient):
    schema_id: Literal["azureMonitorCommonAlertSchema"] = Field(alias="schemaId")
    data: AlertData

    @property
    def essentials(self) -> Essentials:
        return self.data.essentials

    def fingerprint(self) -> str:
        return fingerprint(
            self.essentials.alert_rule_id or self.essentials.alert_rule,
            self.essentials.alert_target_ids,
        )

    def to_event(self) -> AlertEvent:
        e = self.essentials
        # Every field was validated, with the same bounds, as this alert's
        # essentials and dimensions: validating it again is pure cost at intake.
        return AlertEvent.model_construct(
            alert_id=e.alert_id,
            condition=e.monitor_condition,
            rule=e.alert_rule,
            rule_id=e.alert_rule_id,
            severity=e.severity,
            signal_type=e.signal_type,
            monitoring_service=e.monitoring_service,
            targets=[t.lower() for t in e.alert_target_ids],
            description=e.description,
            fired_at=e.fired_date_time,
            resolved_at=e.resolved_date_time,
            dimensions=alert_dimensions(self.data.alert_context),
        )


DIMENSIONS_KEPT = 16
DIMENSION_NAME_LIMIT = 128
DIMENSION_VALUE_LIMIT = 256


def alert_dimensions(context: AlertContext | None) -> dict[str, str]:
    """The dimensions of the alert's conditions (`allOf[].dimensions[{name,
    value}]`: a log alert split by `ClientIP` names the address here), first
    value of each name. Bounded like all free text: at most 16, each cut."""
    found: dict[str, str] = {}
    criteria = context.condition.all_of if context and context.condition else []
    for criterion in criteria:
        for item in criterion.dimensions or []:
            if not isinstance(item, dict):
                continue
            name, value = _scalar_as_text(item.get("name")), _scalar_as_text(item.get("value"))
            if not name or value is None or len(found) >= DIMENSIONS_KEPT:
                continue
            found.setdefault(
                bounded(name, DIMENSION_NAME_LIMIT), bounded(value, DIMENSION_VALUE_LIMIT)
            )
    return found


def fingerprint(rule: str, target_ids: list[str]) -> str:
    """One incident per alert rule and set of targets.

    Not the alertId: Azure mints a new one each time a rule fires. Ids are
    lower-cased because Azure lower-cases some of them (`resourcegroups`,
    `microsoft.compute`) but not consistently across alert types.
    """
    targets = sorted({t.strip().lower() for t in target_ids})
    material = "\n".join([rule.strip().lower(), *targets])
    return hashlib.sha256(material.encode()).hexdigest()[:20]


class AlertEvent(BaseModel):
    """What an incident keeps of one alert: small, so alert storms stay cheap in
    workflow history. The full payload is never stored in Temporal."""

    alert_id: IdentifierText
    condition: MonitorCondition
    rule: RuleText
    rule_id: IdentifierText | None = None
    severity: Severity | None = None
    signal_type: IdentifierText | None = None
    monitoring_service: IdentifierText | None = None
    targets: list[str] = Field(default_factory=list)
    description: DescriptionText = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    # name -> value, bounded by alert_dimensions; what runbooks like block_ip read.
    dimensions: dict[str, str] = Field(default_factory=dict)

    @field_validator("dimensions")
    @classmethod
    def _dimensions_bounded(cls, value: dict[str, str]) -> dict[str, str]:
        # Whoever sends the event (a gateway, any Temporal client) is held to
        # the bounds the gateway applies; cutting again changes nothing.
        kept: dict[str, str] = {}
        for name, text in list(value.items())[:DIMENSIONS_KEPT]:
            kept.setdefault(
                bounded(name, DIMENSION_NAME_LIMIT), bounded(text, DIMENSION_VALUE_LIMIT)
            )
        return kept

    @property
    def dedup_key(self) -> str:
        # Azure retries webhooks and signals are at-least-once: the same
        # instance in the same condition must count once.
        return f"{self.alert_id.lower()}|{self.condition.value}"


class AlertBatch(BaseModel):
    """Alerts for one incident that reached the gateway close together, sent as
    one signal (`add_alerts`) so a storm costs one history event per batch
    instead of one per alert. Kept in arrival order: the incident applies them
    one by one, exactly as if each had come alone."""

    alerts: list[AlertEvent] = Field(min_length=1)
