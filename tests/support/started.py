"""Workflows a test started, terminated when it ends: stanch.testing's
`Started`, shared with teams' tests (the `started` fixture yields one)."""

from stanch.testing.started import Started

__all__ = ["Started"]
