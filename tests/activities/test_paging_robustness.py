"""Paging survives bad channels (review findings #5 and #6, issue 11 item 7).

The real page_on_call activity against real webhook endpoints on loopback and
a real pages.jsonl; the last test sends a hostile alert through the running
stack (gateway, Temporal, worker) to a redirecting channel."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from stanch.activities.notify import NotifyActivities
from stanch.models.config import ConfigError
from stanch.stores.page_file import read_pages
from stanch.stores.policy import PolicySource, load_config
from stanch.workflows.incident import IncidentWorkflow
from tests.support.pages import page
from tests.support.plans import REMEDIATION, policy_file
from tests.support.stack import Stack, running_stack
from tests.support.webhooks import Answer, Receiver

SECRET = "T000SECRETHOOKPATH"


def notifier(tmp_path: Path, *channels: dict[str, Any]) -> NotifyActivities:
    return NotifyActivities(PolicySource(policy_file(tmp_path, channels=list(channels))))


def file_channel(path: Path, name: str = "pager") -> dict[str, Any]:
    return {"name": name, "type": "file", "path": str(path)}


def hook(url: str, name: str = "hook", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "webhook", "url": url, **extra}


def as_attempt(activity_id: str) -> ActivityEnvironment:
    """Another page (a different activity) of the same incident."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, activity_id=activity_id)
    return env


# ---- #5: a damaged page file ------------------------------------------------

DAMAGE = [
    b"not json at all",
    b"[1, 2, 3]",
    b'"a string"',
    b'{"key": 5}',
    b"\xff\xfe not utf-8",
    b"[" * 100_000 + b"]" * 100_000,  # nested past the parser's recursion limit
]


async def test_damaged_page_file_never_stops_later_pages(tmp_path, receiver):
    """The review's reproduction: pages.jsonl ends in a partial line, a webhook
    channel is listed after the file channel."""
    path = tmp_path / "pages.jsonl"
    damaged = b"\n".join(DAMAGE) + b'\n{"key": "incident-y/1/pager-fi'
    path.write_bytes(damaged)
    notify = notifier(tmp_path, file_channel(path), hook(f"{receiver.url}/{SECRET}"))

    first = await as_attempt("1").run(notify.page_on_call, page())
    assert first.delivered == ["pager", "hook"] and first.failed == []
    assert len(receiver.received) == 1

    # Later pages keep working, and a retry of one already written is not repeated.
    second = await as_attempt("2").run(notify.page_on_call, page(["pager"]))
    retried = await as_attempt("2").run(notify.page_on_call, page(["pager"]))
    assert second.delivered == retried.delivered == ["pager"]
    keys = [line["key"] for line in read_pages(path) if isinstance(line.get("key"), str)]
    assert keys == ["test/1/pager", "test/2/pager"]
    # Nothing that was there is lost; the partial line was ended, not joined.
    assert path.read_bytes().startswith(damaged + b"\n{")


async def test_a_second_process_sees_what_the_first_appended(tmp_path):
    """Two workers on one machine share the file: the index catches up on
    each look, so a retry that lands on the other worker is not written twice."""
    path = tmp_path / "pages.jsonl"
    one = notifier(tmp_path, file_channel(path))
    other = NotifyActivities(PolicySource(tmp_path / "stanch.yaml"))
    await as_attempt("1").run(other.page_on_call, page())  # `other` indexes the file now
    await as_attempt("2").run(one.page_on_call, page())
    await as_attempt("2").run(other.page_on_call, page())  # the retry, elsewhere
    assert [line["key"] for line in read_pages(path)] == [
        "test/1/pager",
        "test/2/pager",
    ]


# ---- one failing channel fails alone ------------------------------------------


async def test_any_failure_of_one_channel_leaves_the_others_paged(tmp_path, receiver):
    # An out-of-range port passes the URL rule but breaks inside the HTTP
    # client with an exception that is not an httpx.HTTPError.
    notify = notifier(
        tmp_path,
        hook(f"http://127.0.0.1:99999/{SECRET}", name="broken"),
        hook(f"{receiver.url}/ok", name="good"),
        file_channel(tmp_path / "pages.jsonl"),
    )
    result = await ActivityEnvironment().run(notify.page_on_call, page())
    assert result.delivered == ["good", "pager"] and result.failed == ["broken"]
    assert result.reasons["broken"].startswith("unexpected ")
    assert SECRET not in json.dumps(result.model_dump())


async def test_an_unwritable_page_file_is_retried_alone(tmp_path, receiver):
    """A page file that cannot be written (here: a directory) is a failure of
    that channel, retried; the webhook is paged once, on the first attempt."""
    (tmp_path / "pages-dir").mkdir()
    notify = notifier(
        tmp_path, file_channel(tmp_path / "pages-dir"), hook(f"{receiver.url}/ok", name="good")
    )
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    with pytest.raises(ApplicationError) as failed:
        await env.run(notify.page_on_call, page())
    assert failed.value.type == "PageDeliveryFailed" and not failed.value.non_retryable
    assert "pager (IsADirectoryError" in str(failed.value)
    assert beats[-1] == ["good"] and len(receiver.received) == 1

    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2, heartbeat_details=[beats[-1]])
    with pytest.raises(ApplicationError):
        await retry.run(notify.page_on_call, page())
    assert len(receiver.received) == 1, "the channel that got it is not paged again"


# ---- #6: only a 2xx is delivered ----------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_a_failure_naming_the_redirect_not_its_target(
    tmp_path, receiver, status
):
    receiver.script = [Answer(status, {"Location": f"{receiver.url}/moved/{SECRET}"})]
    notify = notifier(
        tmp_path, hook(f"{receiver.url}/{SECRET}"), file_channel(tmp_path / "pages.jsonl")
    )
    result = await ActivityEnvironment().run(notify.page_on_call, page())
    assert result.delivered == ["pager"] and result.failed == ["hook"]
    why = result.reasons["hook"]
    assert f"HTTP {status} redirect to host 127.0.0.1" in why and SECRET not in why
    assert [r["path"] for r in receiver.received] == [f"/{SECRET}"], "redirect not followed"

    receiver.script = [Answer(status, {"Location": f"/moved/{SECRET}"})]
    with pytest.raises(ApplicationError) as refused:
        await as_attempt("2").run(notify.page_on_call, page(["hook"]))
    assert refused.value.non_retryable and refused.value.type == "PageRefused"
    assert f"hook (HTTP {status} redirect:" in str(refused.value)
    assert SECRET not in str(refused.value)


async def test_2xx_answers_are_delivered(tmp_path, receiver):
    receiver.script = [Answer(200), Answer(202), Answer(204)]
    notify = notifier(tmp_path, hook(f"{receiver.url}/a"))
    for n in range(3):
        result = await as_attempt(str(n)).run(notify.page_on_call, page())
        assert result.delivered == ["hook"]


# ---- bounded time, bounded answer, https ---------------------------------------


async def test_an_endless_answer_is_read_only_up_to_the_bound(tmp_path, receiver):
    receiver.script = [Answer(200, endless=True)]
    notify = notifier(tmp_path, hook(f"{receiver.url}/a"))
    # Without the bound this never returns: wait_for turns a hang into a failure.
    result = await asyncio.wait_for(ActivityEnvironment().run(notify.page_on_call, page()), 60)
    assert result.delivered == ["hook"]


async def test_a_dripping_answer_cannot_hold_the_page_past_its_timeout(tmp_path, receiver):
    """httpx's timeout is per read; a byte every 0.2 s would satisfy it forever."""
    receiver.script = [Answer(200, endless=True, drip=0.2)]
    notify = notifier(tmp_path, hook(f"{receiver.url}/a", timeout="1s"))
    with pytest.raises(ApplicationError) as slow:
        await asyncio.wait_for(ActivityEnvironment().run(notify.page_on_call, page()), 60)
    assert "hook (no answer within 1s)" in str(slow.value) and not slow.value.non_retryable


@pytest.mark.parametrize(
    ("channel", "problem"),
    [
        (hook("http://hooks.example.com/x"), ("url", "url must be https://")),
        (hook("http://127.0.0.1.example.com/x"), ("url", "url must be https://")),
        (hook("ftp://127.0.0.1/x"), ("url", "url must be https://")),
        (hook("https://hooks.example.com/x", timeout="31s"), ("timeout", "at most 30s")),
        (hook("https://hooks.example.com/x", timeout="0s"), ("timeout", "at most 30s")),
    ],
)
def test_policy_refuses_clear_text_webhooks_and_unbounded_timeouts(tmp_path, channel, problem):
    with pytest.raises(ConfigError) as refused:
        load_config(policy_file(tmp_path, channels=[channel]))
    field, message = problem
    assert any(
        p.startswith("channels[0].") and f".{field}: " in p and message in p
        for p in refused.value.problems
    ), refused.value.problems
    assert "hooks.example.com/x" not in "\n".join(refused.value.problems)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1/x", "http://localhost:1/x", "http://[::1]:1/x"]
)
def test_loopback_may_be_clear_text(tmp_path, url):
    load_config(policy_file(tmp_path, channels=[hook(url)]))


def test_a_clear_text_url_from_the_environment_is_refused_without_echoing_it(tmp_path, monkeypatch):
    monkeypatch.setenv("H3_TEST_HOOK", f"http://example.com/{SECRET}")
    with pytest.raises(ConfigError) as refused:
        load_config(policy_file(tmp_path, channels=[hook("${H3_TEST_HOOK}")]))
    problems = "\n".join(refused.value.problems)
    assert "channels[0].url: must be https://" in problems and SECRET not in problems


# ---- through the running stack ---------------------------------------------------


@pytest.fixture
async def paging_stack(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    azure: Any,
    sim: Any,
    receiver: Receiver,
) -> AsyncIterator[Stack]:
    channels = [
        hook(f"{receiver.url}/redirect/{SECRET}", name="moved"),
        hook(f"{receiver.url}/slack/{SECRET}", name="slack", format="slack"),
        hook(f"{receiver.url}/teams/{SECRET}", name="teams", format="teams"),
        file_channel(tmp_path / "pages.jsonl"),
    ]
    config = policy_file(tmp_path, **REMEDIATION, channels=channels)
    async with running_stack(dev_env, tmp_path, task_queue, config, azure, sim) as stack:
        yield stack


HOSTILE_RULE = "<!channel> cpu <https://evil.example|Ack here> [Ack](https://evil.example) & co"


async def test_hostile_alert_through_the_stack_pages_escaped_and_a_redirect_is_a_failure(
    paging_stack: Stack, receiver: Receiver
):
    """Findings #6 and #20 the way the review met them: an alert through the
    gateway, a channel answering 302, Slack and Teams endpoints listening."""
    from tests.support.alerts import unique_alert
    from tests.support.incidents import timeline

    receiver.script = [Answer(302, {"Location": f"{receiver.url}/ok/{SECRET}"})]
    async with httpx.AsyncClient(timeout=30) as http:
        sent = await paging_stack.post_alert(http, unique_alert(rule=HOSTILE_RULE))
    assert sent.status_code == 202, sent.text
    workflow_id = sent.json()["workflow_id"]

    async def paged() -> list[Any]:
        entries = await timeline(paging_stack.client, workflow_id)
        return [e for e in entries if e.kind == "page_failed"]

    deadline = asyncio.get_running_loop().time() + 30
    while not (failed := await paged()):
        assert asyncio.get_running_loop().time() < deadline, "no page_failed on the timeline"
        await asyncio.sleep(0.2)
    assert "moved (HTTP 302 redirect to host 127.0.0.1" in failed[0].summary
    assert SECRET not in failed[0].summary

    by_path = {r["path"].split("/")[1]: r["body"] for r in receiver.received}
    assert set(by_path) == {"redirect", "slack", "teams"}, "redirect not followed"

    slack = by_path["slack"]
    assert slack["link_names"] is False and slack["unfurl_links"] is False
    assert slack["unfurl_media"] is False
    slack_texts = [slack["text"], slack["blocks"][0]["text"]["text"]]
    for text in slack_texts:
        assert "&lt;!channel&gt;" in text and "&lt;https://evil.example|Ack here&gt;" in text
        assert "<" not in text and ">" not in text and "&amp; co" in text

    card = by_path["teams"]["attachments"][0]["content"]
    assert all(block["type"] == "RichTextBlock" for block in card["body"]), (
        "alert text only in plain TextRuns, never in a markdown TextBlock"
    )
    runs = [run["text"] for block in card["body"] for run in block["inlines"]]
    assert any(HOSTILE_RULE in text for text in runs)

    entries = await timeline(paging_stack.client, workflow_id)
    assert not any(SECRET in e.summary for e in entries)
    handle = paging_stack.client.get_workflow_handle(workflow_id)
    await handle.query(IncidentWorkflow.state)  # the incident is alive and answering
