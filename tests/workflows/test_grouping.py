"""Related alerts grouped (issue 17 item 5): a storm across one service's VMs
is one incident with a part per VM, paged once, over the real gateway and the
dev server; a Resolved alert resolves only its own part."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from stanch.harness.waiting import eventually
from stanch.models.alert import AlertEvent, MonitorCondition
from stanch.models.correlation import Correlation, group_id
from stanch.models.incident import IncidentStatus
from stanch.stores.page_file import read_pages
from stanch.workflows.incident import IncidentWorkflow
from tests.support.alerts import unique_alert
from tests.support.incidents import alert_event, settled
from tests.support.plans import REMEDIATION, auth, policy_file
from tests.support.stack import running_stack

VMS = 50
FIRED = "2026-12-01T09:00:30Z"
SERVICE = {
    "name": "app",
    "escalation_policy": "default",
    "match": {"resource_groups": ["rg-app"]},
    "correlate": {"by": "service", "window": "15m"},
}


def _vm(n: int) -> str:
    return (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-app/"
        f"providers/Microsoft.Compute/virtualMachines/vm-app-{n:02d}"
    )


def _alert(n: int, condition: str) -> dict[str, Any]:
    return unique_alert(
        rule="app-heartbeat-lost",
        alert_id=f"storm-{n}",
        alertTargetIDs=[_vm(n)],
        configurationItems=[f"vm-app-{n:02d}"],
        monitorCondition=condition,
        firedDateTime=FIRED,
    )


async def test_a_storm_over_50_vms_is_one_incident_with_50_parts_and_one_page(
    dev_env, tmp_path: Path, task_queue: str, azure, sim
):
    config = policy_file(tmp_path, **{**REMEDIATION, "services": [SERVICE]})
    async with (
        running_stack(dev_env, tmp_path, task_queue, config, azure, sim) as stack,
        httpx.AsyncClient(timeout=60) as http,
    ):
        sent = await asyncio.gather(
            *(stack.post_alert(http, _alert(n, "Fired")) for n in range(VMS))
        )
        assert all(r.status_code == 202 for r in sent), [r.text for r in sent]
        incidents = {r.json()["incident_id"] for r in sent}
        assert len(incidents) == 1, incidents
        (incident,) = incidents
        assert incident.startswith("grp-")
        handle = dev_env.client.get_workflow_handle(f"incident-{incident}")
        try:

            async def paged_with_all_parts() -> bool:
                state = (await handle.query(IncidentWorkflow.state)).state
                return len(state.parts) == VMS and state.escalation.pages_sent >= 1

            await eventually(paged_with_all_parts, 60, "50 parts and the page")
            await settled(handle)
            state = (await handle.query(IncidentWorkflow.state)).state
            timeline = await handle.query(IncidentWorkflow.timeline)
            assert state.escalation.pages_sent == 1
            assert len(read_pages(stack.pages)) == 1
            assert {p.targets[0] for p in state.parts} == {_vm(n).lower() for n in range(VMS)}
            related = [e for e in timeline if e.kind == "related_alert"]
            assert len(related) == VMS - 1  # the first alert has the opening lines
            assert all("vm-app-" in e.summary for e in related)
            page = await http.get(f"{stack.url}/incidents/{incident}", headers=auth("viewer"))
            assert page.status_code == 200, page.text
            assert "Related alerts (50, 50 firing)" in page.text
            assert all(f"vm-app-{n:02d}" in page.text for n in range(VMS))

            # 49 of the 50 VMs recover: the incident stays open for the last.
            gone = await asyncio.gather(
                *(stack.post_alert(http, _alert(n, "Resolved")) for n in range(VMS - 1))
            )
            assert all(r.status_code == 202 for r in gone), [r.text for r in gone]
            assert {r.json()["incident_id"] for r in gone} == {incident}

            async def parts_resolved() -> bool:
                state = (await handle.query(IncidentWorkflow.state)).state
                return sum(not p.firing for p in state.parts) == VMS - 1

            await eventually(parts_resolved, 60, "49 parts resolved")
            await settled(handle)
            state = (await handle.query(IncidentWorkflow.state)).state
            assert state.status is IncidentStatus.TRIGGERED
            assert [p.targets[0] for p in state.parts if p.firing] == [_vm(VMS - 1).lower()]

            last = await stack.post_alert(http, _alert(VMS - 1, "Resolved"))
            assert last.status_code == 202, last.text

            async def resolved() -> bool:
                state = (await handle.query(IncidentWorkflow.state)).state
                return state.status is IncidentStatus.RESOLVED

            await eventually(resolved, 30, "the incident resolved by its last part")
            page = await http.get(f"{stack.url}/incidents/{incident}", headers=auth("viewer"))
            assert "Related alerts (50, 0 firing)" in page.text
            assert len(read_pages(stack.pages)) == 1, "paged once for the whole storm"
        finally:
            await handle.terminate("test over")


def test_alerts_of_one_window_share_an_id_and_the_next_window_does_not():
    correlation = Correlation(by="service", window=timedelta(minutes=15))
    fired = datetime(2026, 12, 1, 9, 0, 30, tzinfo=UTC)

    def event(vm: str, at: datetime) -> AlertEvent:
        e = alert_event(alert_id=vm, targets=[f"/subscriptions/s/resourcegroups/rg/x/{vm}"])
        return e.model_copy(update={"fired_at": at})

    first = group_id("app", correlation, event("vm1", fired), fired)
    same = group_id("app", correlation, event("vm2", fired + timedelta(minutes=10)), fired)
    later = group_id("app", correlation, event("vm3", fired + timedelta(minutes=15)), fired)
    other = group_id("db", correlation, event("vm1", fired), fired)
    assert first == same and first is not None and first.startswith("grp-")
    assert later != first and other != first
    # A Resolved alert hours later still finds its group by when it fired.
    resolved = event("vm1", fired).model_copy(update={"condition": MonitorCondition.RESOLVED})
    assert group_id("app", correlation, resolved, fired + timedelta(hours=3)) == first


def test_grouping_by_resource_group_or_tag_needs_the_key():
    by_group = Correlation(by="resource_group")
    by_tag = Correlation(by="tag:cluster")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    in_rg = alert_event(targets=["/subscriptions/s/resourceGroups/RG-A/providers/x/y/vm1"])
    no_rg = alert_event(targets=["/subscriptions/s"])
    assert by_group.key_value(in_rg) == "rg-a"
    assert group_id("app", by_group, no_rg, now) is None
    tagged = in_rg.model_copy(update={"dimensions": {"Cluster": "Blue"}})
    assert by_tag.key_value(tagged) == "blue"
    assert group_id("app", by_tag, in_rg, now) is None


def _grouped_state(now: datetime):
    from stanch.workflows import lifecycle

    first = alert_event("vm1", targets=["/s/vm1"])
    return lifecycle.opened("grp-x", "incident-grp-x", first, now), first


def test_a_part_that_fires_again_after_the_incident_resolved_reopens_it():
    from stanch.workflows.grouping import related_alert_arrived

    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    state, first = _grouped_state(now)
    second = alert_event("vm2", targets=["/s/vm2"])
    related_alert_arrived(state, first, now)
    kinds = [getattr(e, "kind", None) for e in related_alert_arrived(state, second, now)]
    assert "related_alert" in kinds and state.alert_count == 2

    def resolved(a: AlertEvent) -> AlertEvent:
        return a.model_copy(update={"condition": MonitorCondition.RESOLVED})

    statuses = [state.status]
    related_alert_arrived(state, resolved(first), now)
    statuses.append(state.status)
    related_alert_arrived(state, resolved(second), now)
    statuses.append(state.status)
    effects = related_alert_arrived(state, first, now + timedelta(minutes=5))
    statuses.append(state.status)
    assert statuses == ["triggered", "triggered", "resolved", "triggered"]
    assert any(getattr(e, "kind", None) == "reopened" for e in effects)
    assert [p.firing for p in state.parts] == [True, False]


def test_a_resolved_alert_of_no_part_changes_nothing():
    from stanch.workflows.grouping import related_alert_arrived

    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    state, first = _grouped_state(now)
    related_alert_arrived(state, first, now)
    before = state.model_dump()
    stranger = alert_event("vm9", MonitorCondition.RESOLVED, targets=["/s/vm9"])
    related_alert_arrived(state, stranger, now)
    assert state.model_dump() == before


def test_a_bad_correlation_is_refused_naming_the_field(tmp_path):
    import yaml

    from stanch.models.config import ConfigError, parse_config

    data = yaml.safe_load(policy_file(tmp_path).read_text())
    data["services"] = [{**SERVICE, "correlate": {"by": "vm", "window": "15m"}}]
    with pytest.raises(ConfigError, match=r"services\[0\]\.correlate\.by"):
        parse_config(data)
    data["services"] = [{**SERVICE, "correlate": {"window": "5s"}}]
    with pytest.raises(ConfigError, match=r"services\[0\]\.correlate\.window"):
        parse_config(data)


def test_the_gateway_groups_only_a_correlating_services_alerts(tmp_path):
    from stanch.gateway.grouping import AlertGrouping
    from stanch.models.alert import CommonAlert

    web = {"name": "web", "escalation_policy": "default", "match": {"resource_groups": ["rg-w"]}}
    grouping = AlertGrouping(policy_file(tmp_path, services=[SERVICE, web]))
    app_alert = CommonAlert.model_validate(_alert(1, "Fired"))
    web_alert = CommonAlert.model_validate(
        unique_alert(alertTargetIDs=[_vm(2).replace("rg-app", "rg-w")])
    )
    assert grouping.incident_id_for(app_alert, app_alert.to_event()).startswith("grp-")
    assert grouping.incident_id_for(web_alert, web_alert.to_event()) == web_alert.fingerprint()
    nowhere = AlertGrouping(tmp_path / "missing.yaml")
    assert nowhere.incident_id_for(app_alert, app_alert.to_event()) == app_alert.fingerprint()
