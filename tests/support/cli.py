"""Running the `stanch` command as a user in another terminal would: against a
stack's state dir, with only what `<state-dir>/env` provides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_stanch(
    state: Path, workdir: Path, *args: str, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`settings`: STANCH_* variables the user has set in that terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANCH_")}
    env |= settings or {}
    return subprocess.run(
        [sys.executable, "-m", "stanch.cli.main", "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=60,
    )
