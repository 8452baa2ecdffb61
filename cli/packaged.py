"""What the wheel carries for use outside a checkout (stanch.examples): the
default azuresim world, the commented sample policy, sample alerts, the demo's
files and drills. `stanch dev`, `stanch sim` and `stanch config check` fall back
to them, so they work from any folder."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

EXAMPLES = Path(str(files("stanch.examples")))
SAMPLE_POLICY = EXAMPLES / "stanch.yaml"
DEFAULT_WORLD = EXAMPLES / "world.yaml"


def policy_path(given: Path | None) -> Path:
    """The policy to use: given, else $STANCH_CONFIG, else ./stanch.yaml, else
    the packaged sample (whose scopes cover the default azuresim world)."""
    if given is not None:
        return given
    if "STANCH_CONFIG" in os.environ:
        return Path(os.environ["STANCH_CONFIG"])
    here = Path("stanch.yaml")
    return here if here.is_file() else SAMPLE_POLICY
