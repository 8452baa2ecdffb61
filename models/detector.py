"""Detectors: stanch's own checks on a schedule, and the alert one raises."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from stanch.models.config import Detector


class DetectorRun(BaseModel):
    detector: Detector


class DetectorVerdict(BaseModel):
    detector: str
    firing: bool
    observed: str  # what was seen: "2 rows", "Percentage CPU 97.0"


class DetectorSignal(BaseModel):
    """A detector's verdict, as an alert for the intake."""

    detector: Detector
    verdict: DetectorVerdict
    run_key: str  # unique per scheduled run: the alert instance id
    at: datetime
