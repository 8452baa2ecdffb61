"""Quiet hours (issue 17 item 6): maintenance windows in which a service's
alerts are recorded but nobody is paged. A window is one time range
(`{service, start, end}`) or recurs weekly
(`{service, every: weekly, days: [sat, sun], from: "22:00", to: "02:00",
timezone: Europe/Berlin}`; `to` at or before `from` ends the next day).

Pure and deterministic: the incident workflow asks `quiet_until` with its own
clock, and holds its first page until the window's end on a durable timer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_DAYS = list(Weekday)


class MaintenanceWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    service: str
    start: datetime | None = None
    end: datetime | None = None
    every: Literal["weekly"] | None = None
    days: list[Weekday] = Field(default_factory=list)
    from_: time | None = Field(default=None, alias="from")
    to: time | None = None
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known IANA time zone") from None
        return value

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _yaml_clock(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted `22:00` as the base-60 number 1320.
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < 24 * 60:
                raise ValueError('must be a time of day like "22:00"')
            return time(value // 60, value % 60)
        return value

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # A bare time in a policy file means UTC, as everywhere in stanch.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> MaintenanceWindow:
        if self.every is None:
            if self.start is None or self.end is None:
                raise ValueError("a window needs start and end, or every: weekly with days")
            if self.end <= self.start:
                raise ValueError("end must be after start")
        else:
            if self.start is not None or self.end is not None:
                raise ValueError("a weekly window takes from/to, not start/end")
            if not self.days or self.from_ is None or self.to is None:
                raise ValueError("a weekly window needs days, from and to")
        return self

    def quiet_until(self, now: datetime) -> datetime | None:
        """When this window ends, if `now` is inside it."""
        if self.every is None:
            assert self.start is not None and self.end is not None
            return self.end if self.start <= now < self.end else None
        assert self.from_ is not None and self.to is not None
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        # A window that crosses midnight began the day before.
        for back in (0, 1):
            day = local.date() - timedelta(days=back)
            if _DAYS[day.weekday()] not in self.days:
                continue
            begins = datetime.combine(day, self.from_, zone)
            ends_on = day if self.to > self.from_ else day + timedelta(days=1)
            ends = datetime.combine(ends_on, self.to, zone)
            if begins <= local < ends:
                return ends.astimezone(UTC)
        return None


def quiet_until(windows: Sequence[MaintenanceWindow], now: datetime) -> datetime | None:
    """The latest end of the windows `now` is in (overlapping windows hold the
    page until the last one ends), or None when paging may go out."""
    ends = [end for w in windows if (end := w.quiet_until(now)) is not None]
    if not ends:
        return None
    latest = max(ends)
    # Back-to-back windows: paging resumes only when none holds it.
    later = quiet_until(windows, latest) if latest > now else None
    return later or latest
