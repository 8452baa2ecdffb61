"""Drafting the postmortem when an incident closes (the renderer and the
drafts folder: stores/postmortem.py)."""

from __future__ import annotations

from temporalio import activity

from stanch.models.postmortem import PostmortemDraft, PostmortemRequest
from stanch.stores.postmortem import PostmortemFolder, render_postmortem


class PostmortemActivities:
    def __init__(self, folder: PostmortemFolder) -> None:
        self._folder = folder

    @activity.defn
    async def draft_postmortem(self, request: PostmortemRequest) -> PostmortemDraft:
        """Idempotent: rewrites the same file from the same facts."""
        markdown = render_postmortem(request.state, request.timeline)
        location = self._folder.write(request.state.incident_id, markdown)
        return PostmortemDraft(location=location, markdown=markdown)
