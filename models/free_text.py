"""Free text bounded where it enters: alert rules and descriptions from Azure,
notes, comments and reasons from people.

An incident carries its text through every continue-as-new; one oversized
field could push that past Temporal's payload limit and wedge the incident
for good. So every free-text field has a bound, and text over it is cut with a
marker a reader cannot miss (`…[truncated 123456 chars]`) instead of being
refused: Azure retries a refused alert forever, and an ack must never fail
because of the note that came with it. Cutting is idempotent, so a bounded
value read back from history is unchanged.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

RULE_LIMIT = 512  # Azure caps alert rule names at 260 characters
DESCRIPTION_LIMIT = 1024
IDENTIFIER_LIMIT = 1024  # alert and rule ids: Azure's are a few hundred characters
NOTE_LIMIT = 4000  # notes, ack/resolve notes, decision comments, release reasons


def bounded(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its start and a marker
    saying how much was cut; the result never exceeds `limit`."""
    if len(text) <= limit:
        return text
    # The marker is at its longest when counting every character of the text.
    keep = max(0, limit - len(_marker(len(text))))
    return text[:keep] + _marker(len(text) - keep)


def _marker(cut: int) -> str:
    return f"…[truncated {cut} chars]"


def _bound(limit: int) -> AfterValidator:
    def cut(value: str | None) -> str | None:
        return None if value is None else bounded(value, limit)

    return AfterValidator(cut)


# Field types: a model field of one of these is cut on validation, wherever the
# value comes from (the gateway, the CLI, a Temporal client, history on replay).
RuleText = Annotated[str, _bound(RULE_LIMIT)]
IdentifierText = Annotated[str, _bound(IDENTIFIER_LIMIT)]
DescriptionText = Annotated[str | None, _bound(DESCRIPTION_LIMIT)]
RemarkText = Annotated[str | None, _bound(NOTE_LIMIT)]
