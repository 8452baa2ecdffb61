"""Which runbook workflows this installation has, by name: what a kill switch
for one runbook may name (a typo must be refused, or the switch silently
stops nothing)."""

from __future__ import annotations

from functools import cache


@cache
def known_runbooks() -> frozenset[str]:
    from stanch.runbooks.registry import catalog  # loads every runbook module once

    return frozenset(catalog())
