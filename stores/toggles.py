"""The remediation kill switch: a store outside the code and outside workflow
history, read before every mutating step, so on-call can stop all automation
(or one runbook) in seconds, without a redeploy.

A JSON file by default (`STANCH_TOGGLES_FILE`), written atomically; anything
that can answer `is remediation allowed for this runbook?` can replace it.

It fails closed. A file that cannot be read, is not JSON or breaks the schema
(models/toggles.py) halts every runbook before its next change, is logged as an
error naming the file, sets `stanch_kill_switch_unreadable` to 1 and is shown on
the dashboard; nothing else stops. Only a missing file means "nothing switched
off".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import Gauge
from pydantic import BaseModel, ValidationError

from stanch.models.errors import describe_validation_error
from stanch.models.toggles import (
    KillSwitchView,
    LogLevelSetting,
    RemediationAllowed,
    Switch,
    Toggles,
)

log = logging.getLogger("stanch.toggles")
M = TypeVar("M", bound=BaseModel)
UNREADABLE_METRIC = "stanch_kill_switch_unreadable"
UNREADABLE = Gauge(
    UNREADABLE_METRIC,
    "1 while the toggle store cannot be read or breaks its schema: remediation is halted",
)

# The last problem reported per file, so that a store read every few seconds
# logs when it breaks and when it is mended, not on every read.
_reported: dict[Path, str | None] = {}
_reporting = threading.Lock()


class ToggleStoreUnreadable(Exception):
    """The toggle file exists but cannot be trusted: remediation is halted."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


class ToggleStoreUnavailable(ToggleStoreUnreadable):
    """The store's server cannot be reached (stores/postgres/toggles.py): remediation
    is halted until it answers again; a change cannot be made meanwhile (retry)."""


class ToggleRefused(ValueError):
    """A change that would not pass the schema: nothing was written."""


class ToggleStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Toggles:
        """The toggles in force; raises ToggleStoreUnreadable for a broken file."""
        try:
            toggles = self._parse()
        except ToggleStoreUnreadable as e:
            _report(self.path, e.problem)
            raise
        _report(self.path, None)
        return toggles

    def _parse(self) -> Toggles:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Toggles()
        except OSError as e:
            raise ToggleStoreUnreadable(self.path, f"cannot be read: {e.strerror or e}") from None
        try:
            data = json.loads(raw, object_pairs_hook=_refuse_duplicate_keys)
        except (json.JSONDecodeError, UnicodeDecodeError, _DuplicateKey) as e:
            raise ToggleStoreUnreadable(self.path, f"not valid JSON: {e}") from None
        try:
            return Toggles.model_validate(data)
        except ValidationError as e:
            problems = "; ".join(describe_validation_error(e))
            raise ToggleStoreUnreadable(
                self.path, f"breaks the toggle schema: {problems}"
            ) from None

    def view(self) -> KillSwitchView:
        try:
            toggles = self.read()
        except ToggleStoreUnreadable as e:
            return KillSwitchView(
                readable=False, problem=f"{self.path.name}: {e.problem}", remediation_halted=True
            )
        return KillSwitchView(
            readable=True,
            remediation_halted=toggles.remediation is not None and not toggles.remediation.enabled,
            remediation=toggles.remediation,
            runbooks=toggles.runbooks,
            log_level=toggles.log_level,
        )

    def allowed(self, runbook: str) -> RemediationAllowed:
        return self.answer(runbook)[0]

    def answer(self, runbook: str) -> tuple[RemediationAllowed, bool]:
        """May `runbook` change anything now, and was the store readable."""
        try:
            halted = self.read().halted_by(runbook)
        except ToggleStoreUnreadable as e:
            why = f"the kill switch cannot be read ({self.path.name}: {e.problem})"
            return RemediationAllowed(allowed=False, reason=why), False
        if halted is not None:
            return RemediationAllowed(allowed=False, reason=halted), True
        return RemediationAllowed(allowed=True), True

    def log_level(self) -> str | None:
        """The level every process should log at; None keeps the current one
        (also while the file is broken: that is logged and halts remediation)."""
        try:
            setting = self.read().log_level
        except ToggleStoreUnreadable:
            return None
        return setting.level if setting else None

    def set_log_level(self, level: str, by: str, *, replace_unreadable: bool = False) -> Toggles:
        setting = _checked(LogLevelSetting, level=level, by=by, at=datetime.now(UTC))
        with self._changing(replace_unreadable) as toggles:
            toggles.log_level = setting
            return toggles

    def set(
        self,
        enabled: bool,
        runbook: str | None,
        by: str,
        reason: str | None,
        *,
        replace_unreadable: bool = False,
    ) -> Toggles:
        switch = _checked(Switch, enabled=enabled, by=by, reason=reason, at=datetime.now(UTC))
        with self._changing(replace_unreadable) as toggles:
            if runbook is None:
                toggles.remediation = switch
            else:
                toggles.runbooks[runbook] = switch
            return toggles

    @contextlib.contextmanager
    def _changing(self, replace_unreadable: bool) -> Iterator[Toggles]:
        """Read, change, validate, write: under a lock, so two writers never
        lose each other's change; the result is checked against the schema
        before it replaces the file, so a write can never break the store."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(self.path.with_name(f".{self.path.name}.lock")):
            try:
                toggles = self._parse()
            except ToggleStoreUnreadable:
                if not replace_unreadable:
                    raise
                kept = self.path.with_name(
                    f"{self.path.name}.unreadable-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
                )
                os.replace(self.path, kept)
                log.warning("kill switch: unreadable %s kept as %s and replaced", self.path, kept)
                toggles = Toggles()
            yield toggles
            data = toggles.model_dump(mode="json", exclude_none=True)
            try:
                Toggles.model_validate(data)
            except ValidationError as e:
                raise ToggleRefused("; ".join(describe_validation_error(e))) from None
            self._write(data)
        _report(self.path, None)

    def _write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".toggles-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)  # readers see the old file or the new one, never half
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys: `"enabled": false, "enabled": true`
    # would silently switch remediation back on.
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(f"key {key!r} appears twice")
        found[key] = value
    return found


def _checked(model: type[M], **fields: Any) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as e:
        raise ToggleRefused("; ".join(describe_validation_error(e))) from None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _report(path: Path, problem: str | None) -> None:
    """Log and count a change of the store's health, once per change."""
    UNREADABLE.set(1 if problem else 0)
    with _reporting:
        before = _reported.get(path)
        if path in _reported and before == problem:
            return
        _reported[path] = problem
    if problem:
        log.error("kill switch unreadable, remediation halted: %s: %s", path, problem)
    elif before:
        log.warning("kill switch readable again: %s", path)
