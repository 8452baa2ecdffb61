"""The policy file, stanch.yaml: read from disk, and kept usable while incidents are open.

`load_config` reads the file once: YAML (a repeated key is refused with both
lines, stores/policy_yaml.py), then the schema and its cross-references
(models/config.py), then file sinks made relative to the file (or the state dir), not the process.

`PolicySource` is the file as activities see it: re-read on every use, so
edits apply without a restart, but never lost to a bad edit. If someone saves
a broken stanch.yaml while incidents are open, paging must go on: the last
version that validated keeps being used, and the problem is reported with
every use until the file is fixed. A version binding a runbook the worker
has not loaded (`runbooks=`: the names it registered) is such a broken edit:
run as it stands, an alert meant for that runbook would run the next
binding's instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Collection
from pathlib import Path

import yaml

from stanch.models.audit import AuditEntry
from stanch.models.config import ConfigError, FileChannel, StanchConfig, parse_config
from stanch.stores.audit import AuditLog
from stanch.stores.policy_yaml import read_policy_yaml

log = logging.getLogger("stanch.policy")
# The one variable a file channel's path may name (see file_sink).
STATE_DIR = "${STANCH_STATE_DIR}"


def load_config(path: str | Path) -> StanchConfig:
    """The policy in `path`; ConfigError naming every problem by its path."""
    path = Path(path)
    return config_from_text(path, _text(path, _read(path)))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(str(path), [f"cannot read: {e.strerror}"]) from None


def _text(path: Path, raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as e:
        raise ConfigError(str(path), [f"not UTF-8 text: {e.reason} at byte {e.start}"]) from None


def config_from_text(path: Path, text: str) -> StanchConfig:
    """The policy `text`, read from `path` (which names it in errors and
    anchors its relative file sinks)."""
    try:
        data, repeated = read_policy_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise ConfigError(str(path), [f"{where}: {getattr(e, 'problem', e)}"]) from None
    if repeated:
        raise ConfigError(str(path), repeated)
    config = parse_config(data, str(path))
    for channel in config.channels:
        if isinstance(channel, FileChannel):
            channel.path = file_sink(path, channel.path)
    return config


def file_sink(policy: Path, sink: Path) -> Path:
    """Where a file channel writes. A relative path is relative to the policy
    file, not the process; one that starts with `${STANCH_STATE_DIR}` is in the
    state dir of the process reading the policy (`stanch dev --state-dir X`
    sets it), so a dev stack's pages land in its own state dir. Unset, that is
    `.stanch` beside the policy, where the shipped policy always put them."""
    text = str(sink)
    if text.startswith(STATE_DIR):
        state = os.environ.get("STANCH_STATE_DIR")
        base = Path(state).resolve() if state else policy.parent / ".stanch"
        sink = base / text.removeprefix(STATE_DIR).lstrip("/")
    return sink if sink.is_absolute() else (policy.parent / sink).resolve()


class PolicySource:
    def __init__(
        self,
        path: Path,
        audit: AuditLog | None = None,
        runbooks: Collection[str] | None = None,
    ) -> None:
        """`runbooks`: the runbooks this process loaded; None checks no binding."""
        self.path = path
        self._last_good: StanchConfig | None = None
        self._audit = audit
        self._seen_version: str | None = None
        self._runbooks = runbooks

    def current(self) -> tuple[StanchConfig, str | None]:
        """The config to act on, and a warning when it is not the file on disk.

        The file is read every time; it is parsed again only when it changed.
        Every incident loads its plan through here, and parsing the YAML and
        its schema was most of that activity's time (docs/benchmarks.md)."""
        try:
            raw = _read(self.path)
            version = hashlib.sha256(raw).hexdigest()
            if version == self._seen_version and self._last_good is not None:
                # A copy: callers may adjust what they are given.
                return self._last_good.model_copy(deep=True), None
            config = config_from_text(self.path, _text(self.path, raw))
            if self._runbooks is not None and (problems := config.runbook_problems(self._runbooks)):
                raise ConfigError(str(self.path), problems)
            self._last_good = config
            self._record_version(version)
            return config.model_copy(deep=True), None
        except ConfigError as e:
            if self._last_good is None:
                raise
            warning = f"{e}; using the last valid version of {self.path.name}"
            log.error("%s", warning)
            return self._last_good.model_copy(deep=True), warning

    def _record_version(self, version: str) -> None:
        """Each distinct policy version in use is on the audit trail once."""
        if version == self._seen_version:
            return
        if self._audit is not None:
            # Remembered only once recorded: a failed append is tried again.
            self._audit.append(
                f"config/{version}",
                AuditEntry(
                    incident_id=None,
                    actor="stanch",
                    action="configuration in use",
                    target=str(self.path),
                    outcome="valid",
                    details={"sha256": version},
                ),
            )
        self._seen_version = version
