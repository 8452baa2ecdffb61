"""`stanch runbook record NAME --to DIR`: one run of runbook NAME recorded
into DIR/NAME.json for replay tests (every gate approved by a test approver,
on the time-skipping server, against azuresim's default world or --world).
Nothing else is written anywhere."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from stanch.cli.errors import UsageError


def record(
    name: str,
    to: Path,
    world: Path | None = None,
    resource: str | None = None,
    params: str | None = None,
) -> int:
    from stanch.harness.binaries import NotInstalled
    from stanch.testing.record import RecordingFailed, record_runbook

    if world is not None and not world.is_file():
        raise UsageError(f"--world: no such file {world}")
    if to.exists() and not to.is_dir():
        raise UsageError(f"--to: {to} is not a directory")
    try:
        path, result = asyncio.run(
            record_runbook(name, to, world=world, resource_id=resource, params=_params(params))
        )
    except (RecordingFailed, NotInstalled) as e:
        raise UsageError(str(e)) from None
    print(f"recorded {name} ({result.outcome}: {result.summary}) in {path}")
    return 0


def record_scaffolded(module: str, directory: Path, histories: Path) -> Path | None:
    """The first history of a runbook `stanch runbook new --package` just
    wrote (not installed yet); None, with a word on stderr, when the
    time-skipping server is not installed (the replay test then skips)."""
    from stanch.cli.runbooks import scaffolded_runbook
    from stanch.harness.binaries import NotInstalled
    from stanch.testing.record import RecordingFailed, record_runbook

    name = module.rsplit(".", 1)[1]
    sys.path.insert(0, str(directory))
    try:
        classes = scaffolded_runbook(module)
        path, _ = asyncio.run(record_runbook(name, histories, extra_workflows=classes))
    except (RecordingFailed, NotInstalled) as e:
        print(
            f"stanch: no history recorded ({e}); once it is installed: "
            f"stanch runbook record {name} --to tests/histories",
            file=sys.stderr,
        )
        return None
    finally:
        sys.path.remove(str(directory))
    return path


def _params(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"--params: not JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise UsageError("--params: must be a JSON object, as a binding's params")
    return value
