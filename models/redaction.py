"""What must never be printed or recorded: credentials in free text.

Shared by the logs (telemetry) and the stores (the audit trail), which must not
depend on each other: a store runs inside the gateway, the worker and the CLI,
whichever of them configured logging. Pure text rules plus one process-wide
list of values known to be secret (tokens, webhook URLs), registered once by
whoever reads them from the environment or the policy file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_REDACTED = "[redacted]"
_MIN_SECRET = 8  # shorter values would redact ordinary words
_QUERY_SECRET = re.compile(
    r"([?&;](?:token|access_token|id_token|refresh_token|code|sig|signature|"
    r"api[_-]?key|key|secret|client_secret|password)=)[^&\s\"'#]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# Chat webhooks whose path is the credential: keep the host, drop the rest.
_CHAT_WEBHOOK = re.compile(
    r"(https?://(?:hooks\.slack\.com|[A-Za-z0-9.-]*webhook\.office\.com|"
    r"(?:discord|discordapp)\.com/api/webhooks|[A-Za-z0-9.-]*\.logic\.azure\.com(?::\d+)?))"
    r"[^\s\"'<>]*",
    re.IGNORECASE,
)
# A password in a URL's user info (STANCH_DATABASE_URL, a proxy URL): keep the user and host.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@/?#\s]+(@)", re.IGNORECASE)
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|WEBHOOK|HOOK|PRIVATE_KEY", re.I)
_known: tuple[str, ...] = ()  # longest first, so a URL goes whole before its path


def register_secrets(values: Iterable[str | None]) -> None:
    """Values that must never be printed (tokens, webhook URLs): redacted from
    every record. A URL's path and query are registered too, since a log line
    may carry only those (`POST /services/T0/B0/xyz`)."""
    global _known
    found = set(_known)
    for value in values:
        if not value or len(value) < _MIN_SECRET:
            continue
        found.add(value)
        if match := re.match(r"^[a-z][a-z0-9+.-]*://[^/?#]*([/?].*)$", value, re.I):
            path = match.group(1)
            if len(path) >= _MIN_SECRET:
                found.add(path)
    _known = tuple(sorted(found, key=len, reverse=True))


def redact_environment_secrets(environ: Mapping[str, str]) -> None:
    """`${SLACK_ONCALL_WEBHOOK}` and STANCH_ALERT_TOKEN reach us as environment."""
    register_secrets(value for name, value in environ.items() if _SECRET_NAME.search(name))


def redact(text: str) -> str:
    # Each rule needs a character or word most text lacks; looking for it first
    # made the audit trail's scrub (every string of every record: an alert
    # storm's) five times cheaper. The output is the same either way.
    if "=" in text:
        text = _QUERY_SECRET.sub(rf"\1{_REDACTED}", text)
    if "bearer" in text.lower():
        text = _BEARER.sub(rf"\1{_REDACTED}", text)
    if "://" in text:
        if "@" in text:
            text = _URL_PASSWORD.sub(rf"\1{_REDACTED}\2", text)
        text = _CHAT_WEBHOOK.sub(rf"\1/{_REDACTED}", text)
    for secret in _known:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text
