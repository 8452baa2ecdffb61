"""The notifier against a real webhook receiver on loopback: Slack and Teams
payloads, retries that honour Retry-After, no page sent twice, no secret leaked."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from stanch.activities.notify import NotifyActivities
from stanch.activities.response_plan import ResponsePlanActivities
from stanch.models.config import ConfigError
from stanch.models.incident import PlanRequest
from stanch.stores.page_file import read_pages
from stanch.stores.policy import PolicySource
from tests.support.pages import page
from tests.support.plans import policy_file
from tests.support.webhooks import Answer


def channels_config(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TEST_SLACK_HOOK", f"{url}/slack/T000/B000/secret-part")
    return policy_file(
        tmp_path,
        channels=[
            {"name": "slack", "type": "webhook", "format": "slack", "url": "${TEST_SLACK_HOOK}"},
            {"name": "teams", "type": "webhook", "format": "teams", "url": f"{url}/teams"},
            {"name": "pager", "type": "file", "path": str(tmp_path / "pages.jsonl")},
        ],
    )


async def test_slack_teams_and_file_each_get_one_page(tmp_path, receiver, monkeypatch):
    notify = NotifyActivities(PolicySource(channels_config(tmp_path, receiver.url, monkeypatch)))
    result = await ActivityEnvironment().run(notify.page_on_call, page())
    assert result.delivered == ["slack", "teams", "pager"] and result.failed == []
    slack, teams = receiver.received
    assert slack["path"] == "/slack/T000/B000/secret-part"
    assert "Alice" in slack["body"]["text"] and slack["body"]["blocks"]
    card = teams["body"]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    assert slack["key"].endswith("/slack") and teams["key"].endswith("/teams")
    assert [p["recipients"] for p in read_pages(tmp_path / "pages.jsonl")] == [["alice"]]


async def test_throttled_channel_is_retried_after_retry_after_without_resending_others(
    tmp_path, receiver, monkeypatch
):
    notify = NotifyActivities(PolicySource(channels_config(tmp_path, receiver.url, monkeypatch)))
    receiver.script = [Answer(200), Answer(429, {"Retry-After": "7"})]  # slack ok, teams throttled
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    with pytest.raises(ApplicationError) as throttled:
        await env.run(notify.page_on_call, page())
    assert throttled.value.type == "PageDeliveryFailed" and not throttled.value.non_retryable
    assert throttled.value.next_retry_delay is not None
    assert throttled.value.next_retry_delay.total_seconds() == 7
    assert beats[-1] == ["slack", "pager"]

    # The retry: Temporal hands the last heartbeat back to the next attempt.
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2, heartbeat_details=[beats[-1]])
    result = await retry.run(notify.page_on_call, page())
    assert result.delivered == ["slack", "pager", "teams"]
    assert [r["path"] for r in receiver.received] == [
        "/slack/T000/B000/secret-part",
        "/teams",
        "/teams",
    ]
    assert len(read_pages(tmp_path / "pages.jsonl")) == 1


async def test_file_sink_skips_a_key_it_already_holds(tmp_path, receiver, monkeypatch):
    notify = NotifyActivities(PolicySource(channels_config(tmp_path, receiver.url, monkeypatch)))
    env = ActivityEnvironment()
    await env.run(notify.page_on_call, page(["pager"]))
    await env.run(notify.page_on_call, page(["pager"]))  # a retry that lost its heartbeat
    assert len(read_pages(tmp_path / "pages.jsonl")) == 1


async def test_refused_channel_is_reported_and_secret_never_in_errors(
    tmp_path, receiver, monkeypatch, caplog
):
    notify = NotifyActivities(PolicySource(channels_config(tmp_path, receiver.url, monkeypatch)))
    receiver.script = [Answer(404)]
    result = await ActivityEnvironment().run(notify.page_on_call, page(["slack", "pager"]))
    assert result.failed == ["slack"] and result.delivered == ["pager"]

    receiver.script = [Answer(403)]
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(notify.page_on_call, page(["slack"]))
    assert refused.value.non_retryable and refused.value.type == "PageRefused"
    assert "secret-part" not in str(refused.value) + caplog.text

    receiver.server.shutdown()
    receiver.server.server_close()
    with pytest.raises(ApplicationError) as unreachable:
        await ActivityEnvironment().run(notify.page_on_call, page(["slack"]))
    assert not unreachable.value.non_retryable
    assert "secret-part" not in str(unreachable.value) + caplog.text


async def test_broken_policy_edit_keeps_the_last_valid_version(tmp_path):
    config = policy_file(tmp_path)
    source = PolicySource(config)
    plans = ResponsePlanActivities(source)
    env = ActivityEnvironment()
    first = await env.run(plans.load_response_plan, PlanRequest(rule="r", targets=[]))
    assert first.warning is None

    data = yaml.safe_load(config.read_text())
    data["escalation_policies"]["default"]["tiers"][0]["people"] = ["nobody"]
    config.write_text(yaml.safe_dump(data))
    second = await env.run(plans.load_response_plan, PlanRequest(rule="r", targets=[]))
    assert second.warning and "'nobody' is not on the roster" in second.warning
    assert second.policy == first.policy

    with pytest.raises(ConfigError):
        PolicySource(config).current()  # a fresh worker has no valid version to fall back on
