"""An incident's communications, from outside a worker: read its updates and
subscribers, post a person's status update, subscribe someone to it.

Each incident's communications workflow is `incident-<id>/comms`
(workflows/communications.py); people's requests go to it as signed typed
updates, and its refusals read as every other refusal does (client/updates.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from stanch.client.errors import UNANSWERED, NotFound, Unavailable
from stanch.client.ids import workflow_id_for
from stanch.client.incidents import DETAIL_WAIT
from stanch.client.updates import Answer, Request, Sign, send_update
from stanch.models.status_updates import (
    CommsView,
    PostUpdate,
    StatusUpdate,
    Subscribe,
    comms_workflow_id,
)
from stanch.workflows.communications import CommunicationsWorkflow

# The SDK types `@workflow.update(name=...)` methods as returning their coroutine.
Posting = UpdateMethodMultiParam[[Any, PostUpdate], StatusUpdate]
Subscribing = UpdateMethodMultiParam[[Any, Subscribe], CommsView]


def comms_handle(client: Client, incident_id: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(comms_workflow_id(workflow_id_for(incident_id)))


async def communications(
    client: Client, incident_id: str, wait: timedelta = DETAIL_WAIT
) -> CommsView:
    """The incident's updates (no internal notes) and subscribers."""
    try:
        view: CommsView = await comms_handle(client, incident_id).query(
            CommunicationsWorkflow.view, rpc_timeout=wait
        )
        return view
    except RPCError as e:
        if e.status is RPCStatusCode.NOT_FOUND:
            raise NotFound(f"incident {incident_id} has no status updates") from None
        if e.status in UNANSWERED:
            raise Unavailable(f"incident {incident_id}'s communications did not answer") from None
        raise
    except WorkflowQueryFailedError as e:
        raise Unavailable(f"incident {incident_id}'s communications: {e}") from None


async def post_status_update(
    client: Client, incident_id: str, request: PostUpdate, *, sign: Sign[Any] | None = None
) -> StatusUpdate:
    posting = cast(Posting, CommunicationsWorkflow.post_update)
    return await _ask(client, incident_id, posting, request, sign)


async def subscribe_to_incident(
    client: Client, incident_id: str, request: Subscribe, *, sign: Sign[Any] | None = None
) -> CommsView:
    subscribing = cast(Subscribing, CommunicationsWorkflow.subscribe)
    return await _ask(client, incident_id, subscribing, request, sign)


async def _ask(
    client: Client,
    incident_id: str,
    update: UpdateMethodMultiParam[[Any, Request], Answer],
    request: Request,
    sign: Sign[Any] | None,
) -> Answer:
    """A person's request to the incident's communications workflow: one that
    has no decision keys yet reloads its plan (which carries them) first."""
    return await send_update(
        comms_handle(client, incident_id),
        update,
        request,
        sign=sign,
        refresh=CommunicationsWorkflow.refresh_plan,
    )
