"""Which incident an alert goes to: its own (the fingerprint), or, when its
service correlates related alerts, the group's (models/correlation.py). The
policy is re-read only when its file changes; a policy that cannot be read
groups nothing (each alert opens its own incident, as before grouping), so a
broken edit can cost pages but never lose an alert."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from stanch.models.alert import AlertEvent, CommonAlert
from stanch.models.config import ConfigError, StanchConfig
from stanch.models.correlation import group_id
from stanch.stores.policy import load_config

log = logging.getLogger("stanch.gateway")


class AlertGrouping:
    def __init__(self, policy: Path) -> None:
        self._path = policy
        self._stamp: int | None = None
        self._config: StanchConfig | None = None

    def incident_id_for(self, alert: CommonAlert, event: AlertEvent) -> str:
        config = self._policy()
        if config is not None and config.services:
            service = config.service_for(event.rule, event.targets)
            if service is not None and service.correlate is not None:
                grouped = group_id(service.name, service.correlate, event, datetime.now(UTC))
                if grouped is not None:
                    return grouped
        return alert.fingerprint()

    def _policy(self) -> StanchConfig | None:
        try:
            stamp = self._path.stat().st_mtime_ns
        except OSError:
            return self._config
        if stamp != self._stamp:
            # Remembered even when broken: a storm must not re-parse a bad
            # file for every alert; the next edit is read again.
            self._stamp = stamp
            try:
                self._config = load_config(self._path)
            except (ConfigError, OSError) as e:
                log.error("policy unusable for grouping, keeping the last valid one: %s", e)
        return self._config
