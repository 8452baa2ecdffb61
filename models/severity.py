"""Incident severity, on Azure Monitor's scale: Sev0 is the most severe."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

# Temporal's key for a workflow started without one (Sev3's).
DEFAULT_PRIORITY_KEY = 3


class Severity(StrEnum):
    SEV0 = "Sev0"
    SEV1 = "Sev1"
    SEV2 = "Sev2"
    SEV3 = "Sev3"
    SEV4 = "Sev4"

    @property
    def rank(self) -> int:
        """0 for Sev0: lower is more severe."""
        return int(self.value[-1])

    def is_more_severe_than(self, other: Severity) -> bool:
        return self.rank < other.rank

    @property
    def task_priority(self) -> int:
        """Temporal's priority key for the incident's tasks (1 runs first, 3 is
        Temporal's default): during a storm of Sev3/Sev4 alerts, a Sev0 or
        Sev1 incident's timers and pages are handed to the worker ahead of the
        storm's work. Sev0 and Sev1 share the top key; Sev4 goes last."""
        return {0: 1, 1: 1, 2: 2, 3: 3, 4: 4}[self.rank]

    @classmethod
    def parse(cls, value: Any) -> Severity:
        """Accept `Sev2`, `sev2`, `2`; refuse anything else by name."""
        if isinstance(value, Severity):
            return value
        text = str(value).strip().lower().removeprefix("sev")
        if text in {"0", "1", "2", "3", "4"}:
            return cls(f"Sev{text}")
        raise ValueError(f"severity must be one of Sev0..Sev4, got {value!r}")


# When an alert carries no severity: worth a page, not a war room.
DEFAULT_SEVERITY = Severity.SEV3
