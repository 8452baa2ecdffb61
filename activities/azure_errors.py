"""How an Azure failure becomes a Temporal activity failure.

Temporal owns retries (the SDK clients run with `retry_total=0`), so every
attempt is visible in history and throttling backs off for exactly as long as
Azure asked: 429, 408 and 5xx retry with `next_retry_delay` from `Retry-After`;
everything a retry cannot fix (401, 403, 404, 409, validation) is
non-retryable with a type a runbook can branch on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from temporalio import activity
from temporalio.exceptions import ApplicationError

# Types a runbook can branch on (`err.type == SCOPE_LOCKED`).
THROTTLED = "Throttled"
AZURE_UNAVAILABLE = "AzureUnavailable"
AZURE_UNREACHABLE = "AzureUnreachable"
AUTHENTICATION_FAILED = "AuthenticationFailed"
AUTHORIZATION_FAILED = "AuthorizationFailed"
RESOURCE_NOT_FOUND = "ResourceNotFound"
SCOPE_LOCKED = "ScopeLocked"
CONFLICT = "Conflict"
INVALID_REQUEST = "InvalidRequest"

NON_RETRYABLE = {
    401: AUTHENTICATION_FAILED,
    403: AUTHORIZATION_FAILED,
    404: RESOURCE_NOT_FOUND,
}
MAX_RETRY_AFTER = timedelta(minutes=10)


def classify(error: HttpResponseError, action: str) -> ApplicationError:
    status = error.status_code or 0
    code = getattr(getattr(error, "error", None), "code", None)
    headers: Any = getattr(error.response, "headers", None) or {}
    request_id = headers.get("x-ms-request-id")
    message = getattr(getattr(error, "error", None), "message", None) or error.reason or str(error)
    text = f"{action}: HTTP {status} {code or ''} {message}".replace("  ", " ").strip()
    details = {"status": status, "code": code, "request_id": request_id}
    if status == 429 or status == 408 or status >= 500:
        return ApplicationError(
            text,
            details,
            type=THROTTLED if status == 429 else AZURE_UNAVAILABLE,
            next_retry_delay=retry_after(headers.get("Retry-After")),
        )
    if status == 409:
        kind = SCOPE_LOCKED if code == "ScopeLocked" else CONFLICT
        return ApplicationError(text, details, type=kind, non_retryable=True)
    kind = NON_RETRYABLE.get(status, INVALID_REQUEST)
    return ApplicationError(text, details, type=kind, non_retryable=True)


def retry_after(value: str | None) -> timedelta | None:
    """Seconds or an HTTP date, capped so a bad header cannot stall a runbook."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            delay = parsedate_to_datetime(value) - datetime.now(UTC)
        except (TypeError, ValueError):
            return None
    return max(timedelta(0), min(delay, MAX_RETRY_AFTER))


@contextlib.asynccontextmanager
async def azure_call(action: str) -> AsyncIterator[None]:
    try:
        yield
    except HttpResponseError as e:
        error = classify(e, action)
        _count_error(error.type)
        raise error from None
    except (ServiceRequestError, ServiceResponseError) as e:
        _count_error(AZURE_UNREACHABLE)
        raise ApplicationError(
            f"{action}: Azure unreachable ({type(e).__name__})", type=AZURE_UNREACHABLE
        ) from None


def keep_request_id(sink: list[str]) -> Callable[[Any, Any, Any], Any]:
    """A `cls=` hook: the SDK hands it the raw response before returning the
    model, which is the only place `x-ms-request-id` is visible."""

    def hook(pipeline_response: Any, deserialized: Any, headers: Any) -> Any:
        request_id = pipeline_response.http_response.headers.get("x-ms-request-id")
        if request_id:
            sink.append(request_id)
        return deserialized

    return hook


def _count_error(kind: str | None) -> None:
    if activity.in_activity():
        activity.metric_meter().create_counter(
            "stanch_azure_call_errors", "Azure calls that failed, by type"
        ).add(1, {"type": kind or "unknown"})
