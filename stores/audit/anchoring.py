"""When a trail anchors what it appended, whichever store keeps it (SQLite:
trail.py, PostgreSQL: stores/postgres/audit.py): within T seconds of an
append that was not anchored at once, and on the way out of the process, so
records written between checkpoints are vouched for even if no append follows."""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("stanch.audit")


class Anchored(Protocol):
    def checkpoint(self) -> None: ...


_OPEN: weakref.WeakSet[Anchored] = weakref.WeakSet()


def anchor_on_exit(trail: Anchored) -> None:
    """A process that stops between checkpoints anchors what `trail` wrote on the way out."""
    _OPEN.add(trail)


@atexit.register
def _anchor_on_exit() -> None:
    for trail in list(_OPEN):
        with contextlib.suppress(Exception):
            trail.checkpoint()


class CheckpointTimer:
    """One pending checkpoint at a time: `arm` after an append left unanchored.
    The timer holds `checkpoint` only while it is pending, so a trail no one
    uses any more is freed (and its connection closed) at once. A failure is
    logged: it must not end the process, and the next append tries again."""

    def __init__(self, where: str) -> None:
        self._where = where
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def arm(self, seconds: float, checkpoint: Callable[[], None]) -> None:
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(seconds, self._fire, (checkpoint,))
                self._timer.daemon = True
                self._timer.start()

    def _fire(self, checkpoint: Callable[[], None]) -> None:
        with self._lock:
            self._timer = None
        try:
            checkpoint()
        except Exception as e:
            log.error("audit checkpoint in %s failed: %s", self._where, e)
