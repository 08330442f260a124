"""What workflow code calls: ``from mesh import workflow``.

::

    async def order_workflow(item_id: str, qty: int) -> str:
        acts = workflow.proxy_activities(check_inventory, reserve_item, notify_backorder,
                                         retry=RetryPolicy(maximum_attempts=5))
        available = await acts.check_inventory(item_id)
        if available >= qty:
            return await acts.reserve_item(item_id, qty)
        await acts.notify_backorder(item_id)
        return "backordered"

A workflow function awaits only durable calls (activities, :func:`sleep`, :func:`condition`,
children, :func:`gather` of them) and reads time and randomness from :func:`now`,
:func:`random` and :func:`uuid4`: it runs once from the top, and is replayed from its
recorded calls only when its node lost it (a crash, an eviction, another node). A replay that
makes another call than the recorded one at the same position stops the workflow
(:class:`~mesh.errors.NondeterminismError`); branch with :func:`patched` to change a workflow
that has runs in flight. Activities run at least once (a crash mid-activity runs it again);
their recorded results never change.
"""

from mesh.errors import ActivityFailed, NondeterminismError, WorkflowCancelled
from mesh.model.workflow import api
from mesh.model.workflow.api import *  # noqa: F403 (the in-workflow API, re-exported whole)
from mesh.model.workflow.run import WorkflowInfo

__all__ = [
    *api.__all__,
    "ActivityFailed",
    "NondeterminismError",
    "WorkflowCancelled",
    "WorkflowInfo",
]
