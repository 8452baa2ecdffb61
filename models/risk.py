"""How much harm a step can do if it is wrong."""

from __future__ import annotations

from enum import StrEnum


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return ["low", "medium", "high"].index(self.value)
