"""The common alert schema as Azure sends it, and the incident fingerprint."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from stanch.harness.waiting import eventually
from stanch.models.alert import AlertEvent, CommonAlert, MonitorCondition, fingerprint
from stanch.models.free_text import DESCRIPTION_LIMIT, IDENTIFIER_LIMIT, RULE_LIMIT, bounded
from stanch.models.severity import DEFAULT_SEVERITY, Severity
from stanch.stores.page_file import read_pages
from stanch.testing.started import Started
from stanch.workflows.incident import IncidentWorkflow
from tests.support.alerts import unique_alert
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "azure-alert-samples"
SAMPLES = sorted((ROOT / "examples" / "alerts").glob("*.json")) + sorted(SHARED.glob("*.json"))


def load(name: str = "test_action_metric_static_threshold.json") -> dict:
    return json.loads((ROOT / "examples" / "alerts" / name).read_text())


def test_the_shipped_samples_are_the_documented_ones():
    shipped = {p.name for p in (ROOT / "examples" / "alerts").glob("*.json")}
    assert len(shipped) >= 4
    if SHARED.is_dir():
        assert shipped >= {p.name for p in SHARED.glob("*.json")}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sample_parses(path: Path):
    alert = CommonAlert.model_validate_json(path.read_text())
    assert alert.essentials.monitor_condition is MonitorCondition.FIRED
    assert alert.essentials.severity is Severity.SEV4
    assert alert.essentials.alert_target_ids
    assert len(alert.fingerprint()) == 20


def test_metric_context_is_read():
    alert = CommonAlert.model_validate(load())
    assert alert.data.alert_context is not None
    condition = alert.data.alert_context.condition
    assert condition is not None
    assert condition.all_of[0].metric_name == "Transactions"
    assert alert.data.custom_properties == {"customKey1": "value1", "customKey2": "value2"}


def test_fingerprint_ignores_case_order_and_alert_instance():
    a = fingerprint("rule", ["/subscriptions/S/resourceGroups/RG/x", "/b"])
    b = fingerprint("RULE", ["/b", "/subscriptions/s/resourcegroups/rg/X"])
    assert a == b
    assert fingerprint("rule", ["/b"]) != fingerprint("other", ["/b"])
    first, second = load(), load()
    second["data"]["essentials"]["alertId"] = (
        "/subscriptions/x/providers/Microsoft.AlertsManagement/alerts/new"
    )
    assert (
        CommonAlert.model_validate(first).fingerprint()
        == CommonAlert.model_validate(second).fingerprint()
    )


def test_tolerates_what_azure_varies():
    data = load()
    e = data["data"]["essentials"]
    e["severity"] = None
    e["monitorCondition"] = "resolved"
    e["resolvedDateTime"] = "2025-04-15T18:30:00.000Z"
    e["alertTargetIDs"] = [t.upper() for t in e["alertTargetIDs"]]
    e["somethingNew"] = {"nested": True}
    data["data"]["customProperties"] = None
    data["data"]["alertContext"] = None
    data["futureTopLevel"] = 1
    alert = CommonAlert.model_validate(data)
    assert alert.essentials.severity is None
    assert alert.essentials.monitor_condition is MonitorCondition.RESOLVED
    assert alert.fingerprint() == CommonAlert.model_validate(load()).fingerprint()
    event = alert.to_event()
    assert event.targets == [t.lower() for t in e["alertTargetIDs"]]
    assert event.dedup_key.endswith("|Resolved")


def test_service_health_and_smart_detection_contexts():
    service_health = load("test_action_activity_log_administrative.json")
    service_health["data"]["essentials"]["monitoringService"] = "ServiceHealth"
    service_health["data"]["alertContext"] = {
        "authorization": None,
        "channels": 1,
        "claims": None,
        "caller": None,
        "correlationId": "c",
        "eventSource": 2,
        "eventTimestamp": "2025-04-15T11:26:21Z",
        "level": 3,
        "operationName": "Microsoft.ServiceHealth/incident/action",
        "properties": {
            "title": "Storage degraded",
            "service": "Storage",
            "region": "East US",
            "incidentType": "Incident",
            "trackingId": "ABC-123",
            "stage": "Active",
        },
        "status": "Active",
    }
    assert CommonAlert.model_validate(service_health).data.alert_context is not None

    smart = load("test_action_activity_log_administrative.json")
    smart["data"]["essentials"]["monitoringService"] = "SmartDetector"
    smart["data"]["essentials"]["signalType"] = "Log"
    smart["data"]["alertContext"] = {
        "DetectionSummary": "A spike in failed requests",
        "FormattedOccurrence": "x",
        "DetectedValue": "5.0",
        "NormalRange": "0.1",
        "SmartDetectorId": "FailureAnomaliesDetector",
        "SmartDetectorName": "Failure Anomalies",
        "AnalysisTimestamp": "2025-04-15T11:26:21Z",
    }
    parsed = CommonAlert.model_validate(smart)
    assert parsed.data.alert_context and parsed.data.alert_context.detection_summary


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(schemaId="Microsoft.Insights/activityLogs"), "schemaId"),
        (lambda d: d["data"]["essentials"].pop("alertId"), "data.essentials.alertId"),
        (lambda d: d["data"]["essentials"].pop("alertRule"), "data.essentials.alertRule"),
        (
            lambda d: d["data"]["essentials"].update(monitorCondition="Maybe"),
            "data.essentials.monitorCondition",
        ),
        (lambda d: d["data"].pop("essentials"), "data.essentials"),
    ],
)
def test_strict_about_what_the_engine_needs(mutate, field):
    data = copy.deepcopy(load())
    mutate(data)
    with pytest.raises(ValidationError) as error:
        CommonAlert.model_validate(data)
    locs = [".".join(str(p) for p in err["loc"]) for err in error.value.errors()]
    assert field in locs


@pytest.mark.parametrize("label", ["Sev9", "critical", "7", True])
def test_an_unknown_severity_keeps_the_alert_with_the_default(label, caplog):
    """Review #17: `Sev9` was a 422 and the page was lost."""
    data = load()
    data["data"]["essentials"]["severity"] = label
    alert = CommonAlert.model_validate(data)
    assert alert.essentials.severity is None  # the response plan's default applies
    assert alert.to_event().severity is None
    assert "not one of Sev0..Sev4" in caplog.text


def test_oversized_free_text_is_cut_with_a_marker_not_refused():
    """Review #4: a 480 KB rule and description went whole into workflow input."""
    data = load()
    e = data["data"]["essentials"]
    e["alertRule"] = "r" * 480_000
    e["description"] = "d" * 480_000
    e["alertId"] = "/alerts/" + "i" * 5000
    e["monitoringService"] = "m" * 5000
    alert = CommonAlert.model_validate(data)
    event = alert.to_event()
    assert len(event.rule) == RULE_LIMIT and event.rule.endswith(" chars]")
    assert "…[truncated 4" in event.rule and event.rule.startswith("r" * 400)
    assert len(event.description or "") == DESCRIPTION_LIMIT
    assert len(event.alert_id) == IDENTIFIER_LIMIT
    assert len(event.monitoring_service or "") == IDENTIFIER_LIMIT
    # Read back (a retry, or history on replay), a bounded value is unchanged.
    again = AlertEvent.model_validate_json(event.model_dump_json())
    assert again == event
    short = CommonAlert.model_validate(load()).to_event()
    assert short.rule == load()["data"]["essentials"]["alertRule"]


def test_the_cut_never_exceeds_its_bound_and_says_how_much_went():
    for limit in (64, 512, 4000):
        for length in (limit - 1, limit, limit + 1, limit + 9, 10 * limit, 10**6 + 7):
            text = "x" * length
            cut = bounded(text, limit)
            assert len(cut) <= limit
            assert bounded(cut, limit) == cut
            if length <= limit:
                assert cut == text
            else:
                kept = len(cut) - len(cut.split("…")[-1]) - 1
                assert cut.endswith(f"…[truncated {length - kept} chars]")


async def test_a_sev9_alert_posted_to_the_live_intake_opens_its_incident(
    stack: Stack, started: Started
):
    """Review #17: `"severity": "Sev9"` was a 422 and the alert was lost."""
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await stack.post_alert(http, unique_alert(severity="Sev9"))
        assert answer.status_code == 202, answer.text
        handle = stack.client.get_workflow_handle(answer.json()["workflow_id"])
        started.add(handle)
        state = (await handle.query(IncidentWorkflow.state)).state
        assert state.severity is DEFAULT_SEVERITY and state.alert_count == 1

        async def paged() -> bool:
            return any(p.get("incident_id") == state.incident_id for p in read_pages(stack.pages))

        await eventually(paged)  # and it pages
