"""`stanch runbook list`: every runbook this installation would register, with
the package and version it came from, so an on-call engineer can tell which
`disk_guard` (and which release of it) a binding will run."""

from __future__ import annotations

import json
from pathlib import Path

from stanch.cli.errors import UsageError
from stanch.models.config import ConfigError
from stanch.stores.policy import load_config


def list_runbooks(as_json: bool, config: Path | None = None) -> None:
    """With `config`, the policy's runbook_packages are loaded too."""
    from stanch.runbooks.registry import loaded_runbooks

    try:
        packages = load_config(config).runbook_packages if config is not None else []
        found = loaded_runbooks(packages)
    except ConfigError as e:
        raise UsageError("\n".join([f"{config or e.source}: invalid", *e.problems])) from None
    if as_json:
        rows = [
            {
                **r.spec.model_dump(mode="json"),
                "package": r.package,
                "version": r.version,
                "source": r.source,
                "origin": r.origin,
            }
            for r in found
        ]
        print(json.dumps(rows, indent=2))
        return
    for r in found:
        spec = r.spec
        gates = ", ".join(f"{step} ({risk})" for step, risk in spec.approvals.items()) or "none"
        print(f"{spec.name:<18} {spec.risk:<7} {spec.description}")
        print(f"{'':<18} approvals: {gates}; on success the incident is {spec.outcome}")
        print(f"{'':<18} from {r.package} {r.version} ({r.source}, {r.origin})")
