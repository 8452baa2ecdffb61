"""The policy file as activities see it: re-read on every use, so edits apply
without a restart, but never lost to a bad edit.

If someone saves a broken stanch.yaml while incidents are open, paging must go
on: the last version that validated keeps being used, and the problem is
reported with every use until the file is fixed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from models.config import ConfigError, StanchConfig, load_config

log = logging.getLogger("stanch.policy")


class PolicySource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._last_good: StanchConfig | None = None

    def current(self) -> tuple[StanchConfig, str | None]:
        """The config to act on, and a warning when it is not the file on disk."""
        try:
            self._last_good = load_config(self.path)
            return self._last_good, None
        except ConfigError as e:
            if self._last_good is None:
                raise
            warning = f"{e}; using the last valid version of {self.path.name}"
            log.error("%s", warning)
            return self._last_good, warning
