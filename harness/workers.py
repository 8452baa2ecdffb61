"""Whether a worker process is serving: the server lists who polls a task
queue, and an SDK worker's identity is `<pid>@<host>`."""

from __future__ import annotations

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client


async def pollers(client: Client, task_queue: str) -> dict[str, float]:
    """Identity -> last poll (epoch seconds) of the workers polling `task_queue`
    for workflow tasks."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return {p.identity: p.last_access_time.ToDatetime().timestamp() for p in response.pollers}


async def worker_polling(client: Client, task_queue: str, pid: int, since: float = 0) -> bool:
    """The server lists recent pollers, a stopped worker's too: this asks for
    the worker of `pid`, polling since `since`."""
    seen = await pollers(client, task_queue)
    return any(who.startswith(f"{pid}@") and at >= since for who, at in seen.items())
