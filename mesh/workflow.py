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

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from mesh.errors import ActivityFailed, NondeterminismError, WorkflowCancelled
from mesh.model.workflow import api
from mesh.model.workflow.api import *  # noqa: F403 (the in-workflow API, re-exported whole)
from mesh.model.workflow.definition import ATTRIBUTE, WorkflowDefinition
from mesh.model.workflow.run import WorkflowInfo

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    *api.__all__,
    "ActivityFailed",
    "NondeterminismError",
    "WorkflowCancelled",
    "WorkflowInfo",
    "defn",
]


@overload
def defn(function: F, /) -> F: ...


@overload
def defn(*, name: str | None = None) -> Callable[[F], F]: ...


def defn(function: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Define a workflow: ``name`` (default: the function's name) is what it is started
    under, by clients (``start_workflow(fn, ...)`` or ``start_workflow("name", ...)``) and
    by ``execute_child``. A name given here also lets a function defined inside another
    be registered (each must then get its own). Returns the function itself."""
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"a workflow name is a non-empty string, not {name!r}")

    def define(function: F) -> F:
        if not callable(function):
            raise TypeError(f"@workflow.defn decorates a function, not {function!r}")
        setattr(function, ATTRIBUTE, WorkflowDefinition(name or function.__name__, bool(name)))
        return function

    return define if function is None else define(function)
