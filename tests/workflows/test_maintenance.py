"""Quiet hours (issue 17 item 6) on the time-skipping server: a maintenance
window records the alert without paging and says so; a page still due when
the window ends goes out then; an alert resolved inside the window never
pages."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from stanch.harness.waiting import eventually
from stanch.models.alert import MonitorCondition
from stanch.models.config import ConfigError, parse_config
from stanch.models.maintenance import MaintenanceWindow, Weekday, quiet_until
from stanch.stores.page_file import read_pages
from stanch.workflows.incident import IncidentWorkflow
from tests.support.incidents import alert_event, incident_worker, open_incident
from tests.support.plans import policy_file

APP_VM = "/subscriptions/s/resourcegroups/rg-app/providers/microsoft.compute/virtualmachines/vm1"
SERVICE = {"name": "app", "escalation_policy": "default", "match": {"resource_groups": ["rg-app"]}}


async def _window_policy(env: WorkflowEnvironment, tmp_path: Path) -> tuple[Path, datetime]:
    now = await env.get_current_time()
    end = now + timedelta(hours=2)
    window = {
        "service": "app",
        "start": (now - timedelta(minutes=5)).isoformat(),
        "end": end.isoformat(),
    }
    return policy_file(tmp_path, services=[SERVICE], maintenance=[window]), end


@pytest.fixture
def ts_env(own_ts_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """A server per test (conftest's own_ts_env): two of these tests' env.sleep
    timed out on the module's shared server in a full two-process run."""
    return own_ts_env


async def test_a_window_holds_the_page_and_releases_it_when_it_ends(
    ts_env, task_queue, tmp_path, new_id, started
):
    config, end = await _window_policy(ts_env, tmp_path)
    pages = tmp_path / "pages.jsonl"
    async with incident_worker(ts_env, task_queue, config):
        handle = await open_incident(
            started, ts_env.client, task_queue, new_id(), alert_event(targets=[APP_VM])
        )

        async def held() -> bool:
            timeline = await handle.query(IncidentWorkflow.timeline)
            return any(e.kind == "paging_held" for e in timeline)

        await eventually(held, 20, "the hold on the timeline")
        await ts_env.sleep(timedelta(hours=1))  # an hour into the window
        assert not pages.exists() or read_pages(pages) == []
        state = (await handle.query(IncidentWorkflow.state)).state
        assert state.escalation.pages_sent == 0
        assert state.escalation.next_page_at == end

        await ts_env.sleep(timedelta(hours=1, minutes=5))  # past the window's end
        sent = read_pages(pages)
        timeline = await handle.query(IncidentWorkflow.timeline)
    assert [p["recipients"] for p in sent][:1] == [["alice"]]
    paged = next(e for e in timeline if e.kind == "paged")
    assert paged.at >= end
    line = next(e for e in timeline if e.kind == "paging_held")
    assert "Maintenance window for app" in line.summary


async def test_an_alert_resolved_inside_the_window_never_pages(
    ts_env, task_queue, tmp_path, new_id, started
):
    config, _ = await _window_policy(ts_env, tmp_path)
    pages = tmp_path / "pages.jsonl"
    async with incident_worker(ts_env, task_queue, config):
        handle = await open_incident(
            started, ts_env.client, task_queue, new_id(), alert_event(targets=[APP_VM])
        )
        await ts_env.sleep(timedelta(minutes=30))
        await handle.signal(
            IncidentWorkflow.add_alert,
            alert_event(condition=MonitorCondition.RESOLVED, targets=[APP_VM]),
        )
        await ts_env.sleep(timedelta(hours=4))
        state = (await handle.query(IncidentWorkflow.state)).state
        timeline = await handle.query(IncidentWorkflow.timeline)
    assert state.resolved_by == "azure-monitor"
    assert state.escalation.pages_sent == 0
    assert not pages.exists() or read_pages(pages) == []
    assert any(e.kind == "paging_held" for e in timeline)


async def test_another_services_alert_pages_at_once(ts_env, task_queue, tmp_path, new_id, started):
    config, _ = await _window_policy(ts_env, tmp_path)
    async with incident_worker(ts_env, task_queue, config):
        handle = await open_incident(started, ts_env.client, task_queue, new_id())

        async def paged() -> bool:
            return (await handle.query(IncidentWorkflow.state)).state.escalation.pages_sent == 1

        await eventually(paged, 20, "the page of a service in no window")
        timeline = await handle.query(IncidentWorkflow.timeline)
    assert not any(e.kind == "paging_held" for e in timeline)


def test_a_weekly_window_across_midnight_in_its_time_zone():
    import yaml

    # Unquoted, as people write it: YAML reads 22:00 as the number 1320.
    window = MaintenanceWindow.model_validate(
        yaml.safe_load(
            "{service: app, every: weekly, days: [sat], from: 22:00, to: 02:00,"
            " timezone: Europe/Berlin}"
        )
    )
    assert window.days == [Weekday.SAT] and window.from_ == time(22)
    # Saturday 5 Dec 2026, 23:30 in Berlin (CET, UTC+1) is 22:30Z.
    inside = datetime(2026, 12, 5, 22, 30, tzinfo=UTC)
    assert window.quiet_until(inside) == datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
    # Sunday 01:30 Berlin is still Saturday's window.
    assert window.quiet_until(datetime(2026, 12, 6, 0, 30, tzinfo=UTC)) is not None
    # Sunday 22:30 Berlin: Sunday is not a maintenance day.
    assert window.quiet_until(datetime(2026, 12, 6, 21, 30, tzinfo=UTC)) is None
    assert quiet_until([window], datetime(2026, 12, 5, 20, 0, tzinfo=UTC)) is None


def test_back_to_back_windows_hold_until_the_last_ends():
    t = datetime(2026, 12, 1, 10, tzinfo=UTC)
    first = MaintenanceWindow(service="app", start=t, end=t + timedelta(hours=1))
    second = MaintenanceWindow(
        service="app", start=t + timedelta(hours=1), end=t + timedelta(hours=3)
    )
    assert quiet_until([first, second], t + timedelta(minutes=10)) == t + timedelta(hours=3)


@pytest.mark.parametrize(
    ("window", "said"),
    [
        ({"service": "app", "start": "2026-12-01T10:00Z"}, "needs start and end"),
        (
            {"service": "app", "start": "2026-12-01T10:00Z", "end": "2026-12-01T09:00Z"},
            "end must be after start",
        ),
        (
            {
                "service": "app",
                "every": "weekly",
                "days": ["sat"],
                "from": "1:00",
                "to": "2:00",
                "timezone": "Mars/Olympus",
            },
            "not a known IANA time zone",
        ),
        ({"service": "app", "every": "weekly", "from": 60, "to": 120}, "needs days"),
    ],
)
def test_a_bad_window_is_refused_naming_it(window, said):
    with pytest.raises(ValidationError, match=said):
        MaintenanceWindow.model_validate(window)


def test_a_window_for_an_unknown_service_is_refused(tmp_path):
    import yaml

    data = yaml.safe_load(policy_file(tmp_path).read_text())
    data["maintenance"] = [
        {"service": "nope", "start": "2026-12-01T10:00Z", "end": "2026-12-01T11:00Z"}
    ]
    with pytest.raises(ConfigError, match=r"maintenance\[0\]\.service: no service named 'nope'"):
        parse_config(data)
