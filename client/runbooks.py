"""Which runbook workflows this installation has, by name: what a binding in
stanch.yaml and a kill switch for one runbook may name. A name nobody loaded
must be refused: a binding to it would let the next binding's runbook run in
its place, and a switch for it would silently stop nothing."""

from __future__ import annotations

from collections.abc import Sequence

from stanch.models.config import ConfigError, StanchConfig


def known_runbooks(packages: Sequence[str] = ()) -> frozenset[str]:
    """stanch's own, installed packages' and the modules in `packages` (the
    policy's runbook_packages). ConfigError when they do not load."""
    from stanch.runbooks.registry import catalog  # imports every runbook module (once)

    return frozenset(catalog(packages))


def require_loaded_runbooks(config: StanchConfig, source: str) -> StanchConfig:
    """`config`, or ConfigError naming each binding to a runbook that is not loaded."""
    problems = config.runbook_problems(known_runbooks(config.runbook_packages))
    if problems:
        raise ConfigError(source, problems)
    return config
