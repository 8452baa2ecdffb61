"""Workflows a test started, terminated when it ends: stanch.testing's
`Started`, shared with teams' tests (the `started` fixture yields one)."""

from __future__ import annotations

from stanch.testing.started import Handle, Started

__all__ = ["Handle", "Started"]
