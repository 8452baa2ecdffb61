"""Paging: deliver one page to the policy's channels (chat webhooks, a file sink).

Safe to retry: channels already delivered are remembered in heartbeat details,
which survive activity retries, so a retry after a partial failure pages only
the channels that missed it. Webhooks also get an `Idempotency-Key` header, and
the file sink skips a key it already holds.
"""

from __future__ import annotations

import fcntl
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audit import AuditLog
from activities.policy import PolicySource
from models.config import ChannelFormat, FileChannel, StanchConfig, WebhookChannel
from models.incident import Page, PageResult
from models.runbook import AuditEntry


def page_text(page: Page) -> str:
    who = ", ".join(p.name for p in page.recipients) or "nobody"
    where = f" [{page.service}]" if page.service else ""
    tier = f"tier {page.tier}" if page.tier else "everyone"
    return (
        f"{page.severity} {page.title}{where}: paging {tier} ({who}) - {page.reason}. "
        f"Acknowledge: stanch ack {page.incident_id} --as <you>"
    )


def page_payload(page: Page, fmt: ChannelFormat) -> dict[str, Any]:
    text = page_text(page)
    if fmt is ChannelFormat.SLACK:
        # Incoming webhooks need `text`; blocks render it with the mentions.
        return {
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": f"incident `{page.incident_id}`"},
                        {"type": "mrkdwn", "text": f"status {page.status}"},
                    ],
                },
            ],
        }
    if fmt is ChannelFormat.TEAMS:
        # Teams Workflows / incoming webhooks take an Adaptive Card attachment.
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
                                "type": "TextBlock",
                                "text": f"{page.severity} {page.title}",
                                "weight": "Bolder",
                                "size": "Medium",
                                "color": "Attention",
                                "wrap": True,
                            },
                            {"type": "TextBlock", "text": text, "wrap": True},
                        ],
                    },
                }
            ],
        }
    return {"text": text, "page": page.model_dump(mode="json")}


class NotifyActivities:
    def __init__(
        self,
        policy: PolicySource,
        http: httpx.AsyncClient | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self._policy = policy
        self._http = http or httpx.AsyncClient()
        self._audit = audit

    @activity.defn
    async def page_on_call(self, page: Page) -> PageResult:
        """Delivers `page` to each channel once (see module docstring)."""
        config, _ = self._policy.current()
        info = activity.info()
        key = f"{info.workflow_id}/{info.activity_id}"
        delivered: list[str] = list(info.heartbeat_details[0]) if info.heartbeat_details else []
        failed: list[str] = []
        transient: list[tuple[str, timedelta | None]] = []
        for name in _channel_names(config, page):
            if name in delivered:
                continue
            channel = config.channel(name)
            try:
                if isinstance(channel, FileChannel):
                    _append_once(channel.path, key, name, page)
                elif isinstance(channel, WebhookChannel):
                    await self._post(channel, key, page)
                else:
                    raise _Permanent(f"no channel named {name!r}")
            except _Transient as e:
                activity.logger.warning("page to %s failed, will retry: %s", name, e)
                transient.append((name, e.retry_after))
                continue
            except _Permanent as e:
                activity.logger.error("page to %s refused: %s", name, e)
                failed.append(name)
                continue
            delivered.append(name)
            activity.heartbeat(delivered)
        if transient:
            delays = [d for _, d in transient if d is not None]
            raise ApplicationError(
                f"page not delivered to {', '.join(n for n, _ in transient)} yet",
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
                        "failed": failed,
                    },
                ),
            )
        if not delivered and failed:
            raise ApplicationError(
                f"every channel refused the page: {', '.join(failed)}",
                type="PageRefused",
                non_retryable=True,
            )
        return PageResult(delivered=delivered, failed=failed)

    async def _post(self, channel: WebhookChannel, key: str, page: Page) -> None:
        try:
            url = channel.resolved_url()
        except ValueError as e:
            raise _Permanent(str(e)) from None
        try:
            response = await self._http.post(
                url,
                json=page_payload(page, channel.format),
                headers={"Idempotency-Key": f"{key}/{channel.name}"},
                timeout=channel.timeout.total_seconds(),
            )
        except httpx.HTTPError as e:
            # The exception text can carry the URL, and the URL is the secret.
            raise _Transient(f"{type(e).__name__} talking to channel {channel.name}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code}", _retry_after(response))
        if response.status_code >= 400:
            raise _Permanent(f"HTTP {response.status_code}")


def _channel_names(config: StanchConfig, page: Page) -> list[str]:
    if page.channels is not None:
        return page.channels
    return [c.name for c in config.channels]


def _append_once(path: Path, key: str, channel: str, page: Page) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line_key = f"{key}/{channel}"
    with path.open("a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        if any(json.loads(line).get("key") == line_key for line in f if line.strip()):
            return
        record = {
            "key": line_key,
            "at": datetime.now(UTC).isoformat(),
            "text": page_text(page),
            "recipients": [p.id for p in page.recipients],
            **page.model_dump(mode="json", exclude={"recipients"}),
        }
        f.write(json.dumps(record) + "\n")


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
