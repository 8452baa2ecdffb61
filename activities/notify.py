"""Paging: deliver one page to the policy's channels (chat webhooks, a file sink).

Safe to retry: channels already delivered are remembered in heartbeat details,
which survive activity retries, so a retry after a partial failure pages only
the channels that missed it. Webhooks also get an `Idempotency-Key` header, and
the file sink skips a key it already holds (stores/page_file.py).

One channel never stops the others: whatever goes wrong with one (an answer,
a network error, a damaged page file, a bug) fails that channel alone, and the
result names each failed channel and why, never with its URL: a chat
webhook's URL is its credential. Only a 2xx is delivered. A webhook gets a
bounded time (at most MAX_TIMEOUT, start to finish) and a bounded read of its
answer (BODY_LIMIT), so a slow or chatty endpoint cannot hold up escalation.

Alert text is the alerting side's to choose, so chat pages escape it: a rule
named `<!channel>` or `<https://evil|Ack here>` must not notify a whole
channel or show a disguised link to the people being paged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from stanch.models.audit import AuditEntry
from stanch.models.chat import ButtonValue, SlackAction
from stanch.models.config import ChannelFormat, FileChannel, StanchConfig, WebhookChannel
from stanch.models.incident import Page, PageResult
from stanch.models.risk import Risk
from stanch.stores.audit import AuditLog
from stanch.stores.page_file import PageFile
from stanch.stores.policy import PolicySource

MAX_TIMEOUT = timedelta(seconds=30)  # also the policy's bound on a channel's timeout
BODY_LIMIT = 64 * 1024  # of a webhook's answer: read to reuse the connection, no more


def page_text(page: Page) -> str:
    who = ", ".join(p.name for p in page.recipients) or "nobody"
    where = f" [{page.service}]" if page.service else ""
    tier = f"tier {page.tier}" if page.tier else "everyone"
    return (
        f"{page.severity} {page.title}{where}: paging {tier} ({who}) - {page.reason}. "
        f"Acknowledge: stanch ack {page.incident_id} --as <you>"
    )


def page_payload(page: Page, fmt: ChannelFormat, buttons: bool = False) -> dict[str, Any]:
    """`buttons`: the policy answers Slack's buttons (`chat.slack`), so Slack
    pages carry them (docs/chat.md)."""
    text = page_text(page)
    if fmt is ChannelFormat.SLACK:
        # Incoming webhooks need `text`; blocks render it. Both are mrkdwn, where
        # `<...>` is a mention or a link: escaped, and no names or previews resolved.
        safe = slack_escape(text)
        actions = [slack_buttons(page)] if buttons else []
        return {
            "text": safe,
            "link_names": False,
            "unfurl_links": False,
            "unfurl_media": False,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{safe}*"}},
                {
                    "type": "context",
                    "elements": [
                        {
                            "type": "mrkdwn",
                            "text": f"incident `{slack_escape(page.incident_id)}`",
                        },
                        {"type": "mrkdwn", "text": f"status {slack_escape(str(page.status))}"},
                    ],
                },
                *actions,
            ],
        }
    if fmt is ChannelFormat.TEAMS:
        # Teams Workflows / incoming webhooks take an Adaptive Card attachment. Its
        # TextBlocks render markdown (links); a RichTextBlock's TextRuns are plain
        # text, so alert text goes only there.
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {
                                "type": "RichTextBlock",
                                "inlines": [
                                    {
                                        "type": "TextRun",
                                        "text": f"{page.severity} {page.title}",
                                        "weight": "Bolder",
                                        "size": "Medium",
                                        "color": "Attention",
                                    }
                                ],
                            },
                            {
                                "type": "RichTextBlock",
                                "inlines": [{"type": "TextRun", "text": text}],
                            },
                        ],
                    },
                }
            ],
        }
    return {"text": text, "page": page.model_dump(mode="json")}


def slack_buttons(page: Page) -> dict[str, Any]:
    """Approve and reject for an approval request, acknowledge for a page.
    Their values name what they act on; who acts is whoever clicks."""
    gate = page.approval
    if gate is None:
        value = ButtonValue(incident=page.incident_id).text()
        return {
            "type": "actions",
            "block_id": "stanch",
            "elements": [_button(SlackAction.ACKNOWLEDGE, "Acknowledge", value, "primary")],
        }
    value = ButtonValue(
        incident=page.incident_id, runbook=gate.runbook, run=gate.run, step=gate.step
    ).text()
    approve = _button(SlackAction.APPROVE, f"Approve {gate.step}", value, "primary")
    if gate.risk is Risk.HIGH:
        approve["confirm"] = {
            "title": {"type": "plain_text", "text": "High-risk step"},
            "text": {"type": "plain_text", "text": f"Approve {gate.step} of {gate.runbook}?"},
            "confirm": {"type": "plain_text", "text": "Approve"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
    reject = _button(SlackAction.REJECT, "Reject", value, "danger")
    return {"type": "actions", "block_id": "stanch", "elements": [approve, reject]}


def _button(action: SlackAction, label: str, value: str, style: str) -> dict[str, Any]:
    # plain_text labels: a step's name is never read as markup. Slack caps them at 75.
    return {
        "type": "button",
        "action_id": str(action),
        "text": {"type": "plain_text", "text": label[:75]},
        "style": style,
        "value": value,
    }


def slack_escape(text: str) -> str:
    """Slack's own rule for text it must not read as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class NotifyActivities:
    def __init__(
        self,
        policy: PolicySource,
        http: httpx.AsyncClient | None = None,
        audit: AuditLog | None = None,
        page_files: Callable[[Path], PageFile] = PageFile,
    ) -> None:
        self._policy = policy
        # A file sink's pages: this host's file, or claimed fleet-wide first
        # (stores/select.py page_files).
        self._open_page_file = page_files
        self._http = http or httpx.AsyncClient()
        self._audit = audit
        self._page_files: dict[Path, PageFile] = {}

    @activity.defn
    async def page_on_call(self, page: Page) -> PageResult:
        """Delivers `page` to each channel once (see module docstring)."""
        config, _ = self._policy.current()
        info = activity.info()
        key = f"{info.workflow_id}/{info.activity_id}"
        delivered: list[str] = list(info.heartbeat_details[0]) if info.heartbeat_details else []
        refused: dict[str, str] = {}
        transient: dict[str, _Transient] = {}
        for name in _channel_names(config, page):
            if name in delivered:
                continue
            try:
                await self._deliver(config, name, key, page)
            except _Transient as e:
                activity.logger.warning("page to %s failed, will retry: %s", name, e)
                transient[name] = e
                _count_failure(name, "retrying")
                continue
            except _Permanent as e:
                activity.logger.error("page to %s refused: %s", name, e)
                refused[name] = str(e)
                _count_failure(name, "refused")
                continue
            except Exception as e:
                # Whatever broke, it broke this channel only. Its text may carry
                # the URL (httpx.InvalidURL does), so only its type is kept.
                why = f"unexpected {type(e).__name__}"
                activity.logger.error("page to %s failed: %s", name, why)
                refused[name] = why
                _count_failure(name, "refused")
                continue
            delivered.append(name)
            activity.heartbeat(delivered)
        if transient:
            delays = [e.retry_after for e in transient.values() if e.retry_after is not None]
            raise ApplicationError(
                f"page not delivered to {_named(transient)} yet",
                type="PageDeliveryFailed",
                next_retry_delay=max(delays) if delays else None,
            )
        if self._audit is not None:
            self._audit.append(
                key,
                AuditEntry(
                    incident_id=page.incident_id,
                    actor="stanch",
                    action="page",
                    target=", ".join(p.id for p in page.recipients),
                    outcome="delivered" if delivered else "failed",
                    details={
                        "tier": page.tier,
                        "reason": page.reason,
                        "delivered": delivered,
                        "failed": list(refused),
                        "why": refused,
                    },
                ),
            )
        if not delivered and refused:
            raise ApplicationError(
                f"every channel refused the page: {_named(refused)}",
                type="PageRefused",
                non_retryable=True,
            )
        return PageResult(delivered=delivered, failed=list(refused), reasons=refused)

    async def _deliver(self, config: StanchConfig, name: str, key: str, page: Page) -> None:
        channel = config.channel(name)
        if isinstance(channel, FileChannel):
            self._append_once(channel.path, f"{key}/{name}", page)
        elif isinstance(channel, WebhookChannel):
            await self._post(channel, key, page, buttons=config.chat.slack is not None)
        else:
            raise _Permanent(f"no channel named {name!r}")

    def _append_once(self, path: Path, line_key: str, page: Page) -> None:
        pages = self._page_files.get(path)
        if pages is None:
            pages = self._page_files[path] = self._open_page_file(path)
        record = {
            "at": datetime.now(UTC).isoformat(),
            "text": page_text(page),
            "recipients": [p.id for p in page.recipients],
            **page.model_dump(mode="json", exclude={"recipients"}),
        }
        try:
            pages.append_once(line_key, record)
        except OSError as e:
            # A full disk or a lock held too long can pass; the retry tries again.
            raise _Transient(f"{type(e).__name__}: {e.strerror or 'cannot write'}") from None

    async def _post(
        self, channel: WebhookChannel, key: str, page: Page, buttons: bool = False
    ) -> None:
        try:
            url = channel.resolved_url()
        except ValueError as e:
            raise _Permanent(str(e)) from None
        seconds = min(channel.timeout, MAX_TIMEOUT).total_seconds()
        try:
            # httpx's timeout is per read; the deadline bounds the whole exchange,
            # so an endpoint that drips its answer cannot hold the page up.
            async with (
                asyncio.timeout(seconds),
                self._http.stream(
                    "POST",
                    url,
                    json=page_payload(page, channel.format, buttons),
                    headers={"Idempotency-Key": f"{key}/{channel.name}"},
                    timeout=seconds,
                    follow_redirects=False,
                ) as response,
            ):
                await _read_bounded(response)
        except TimeoutError:
            raise _Transient(f"no answer within {seconds:g}s") from None
        except httpx.HTTPError as e:
            # The exception text can carry the URL, and the URL is the secret.
            raise _Transient(f"{type(e).__name__} talking to channel {channel.name}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            raise _Permanent(_redirect(response))
        if status in (408, 429) or status >= 500:
            raise _Transient(f"HTTP {status}", _retry_after(response))
        raise _Permanent(f"HTTP {status}")


async def _read_bounded(response: httpx.Response) -> None:
    # Raw bytes: a compressed answer is not inflated, so the bound is real.
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= BODY_LIMIT:
            return


def _redirect(response: httpx.Response) -> str:
    """Names the redirect without its target: a webhook that moved usually
    answers with its own secret path on the new host (or on https), so the
    Location is shown as its host alone."""
    host = urlsplit(response.headers.get("Location", "")).hostname
    where = f" to host {host}" if host else ""
    return (
        f"HTTP {response.status_code} redirect{where}: redirects are not followed, "
        "so nothing was delivered; set the channel's url to where it moved"
    )


def _count_failure(channel: str, outcome: str) -> None:
    """A page that did not reach a channel: `retrying` (Temporal tries again) or
    `refused` (it never will). Alerted on by ops/prometheus: paging is how
    people learn of incidents, and a page that fails is silent otherwise."""
    activity.metric_meter().create_counter(
        "stanch_page_failures_total", "pages a channel did not take, by channel and outcome"
    ).add(1, {"channel": channel, "outcome": outcome})


def _named(failures: dict[str, Any]) -> str:
    return ", ".join(f"{name} ({why})" for name, why in failures.items())


def _channel_names(config: StanchConfig, page: Page) -> list[str]:
    if page.channels is not None:
        return page.channels
    return [c.name for c in config.channels]


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("Retry-After")
    if value and value.strip().isdigit():
        return timedelta(seconds=min(int(value), 300))
    return None


class _Transient(Exception):
    def __init__(self, message: str, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Permanent(Exception):
    pass
