"""What the incident hands the postmortem writer, and the draft it gets back."""

from __future__ import annotations

from pydantic import BaseModel

from stanch.models.incident import IncidentState, TimelineEntry


class PostmortemRequest(BaseModel):
    state: IncidentState
    timeline: list[TimelineEntry]


class PostmortemDraft(BaseModel):
    location: str
    markdown: str
