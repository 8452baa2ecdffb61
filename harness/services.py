"""stanch's own services as processes (`stanch worker`, `stanch gateway`,
`stanch sim`), each with exactly the settings its caller gives it: nothing
inherited from whoever runs the tests or benchmarks (their STANCH_* or OTLP
settings), and never a `.stanch/env` left by someone's `stanch dev`."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from stanch.harness.binaries import installed
from stanch.harness.processes import Process


def stanch_env(**settings: Any) -> dict[str, str]:
    """This environment without anyone's STANCH_* or OTEL_* settings, with this
    environment's bin directory on PATH, plus `settings` as STANCH_<NAME>."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STANCH_", "OTEL_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({f"STANCH_{key.upper()}": str(value) for key, value in settings.items()})
    return env


def stanch_process(
    name: str,
    directory: Path,
    args: list[str],
    *,
    parent_death: signal.Signals = signal.SIGKILL,
    **settings: Any,
) -> Process:
    """`stanch <args>` with its state in `directory`, logging to `<directory>/<name>.log`."""
    argv = [installed("stanch"), "--state-dir", str(directory), *args]
    return Process(
        name,
        argv,
        log=directory / f"{name}.log",
        env=stanch_env(state_dir=directory, **settings),
        cwd=directory,
        parent_death=parent_death,
    )
