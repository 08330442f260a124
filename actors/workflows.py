"""The actors of workflows written as code, one pair per task queue: a workflow worker that
consumes the queue's workflow stream (runs the workflow functions, resident between steps),
and an activity worker that runs its activity functions (a worker on ``<queue>-activity``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from actors.worker import WorkerActor
from mesh.model.activity import Loop
from mesh.model.outcomes import ENGINE_ATTEMPTS
from mesh.model.retry import RetryPolicy
from mesh.model.workflow.plan import activity_stream, workflow_stream
from mesh.runtime.activities import by_name
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.consumer.actor import StreamActor
from mesh.runtime.node import Node
from mesh.runtime.workflows import ResidentCache, WorkflowRunner

RESIDENT_WORKFLOWS = 10_000
"""Suspended workflows a node keeps in memory per task queue (least recently resumed
evicted first; an evicted workflow is replayed from its history when it next moves)."""


class WorkflowWorkerActor(StreamActor):
    def __init__(
        self,
        node: Node,
        *,
        task_queue: str,
        workflows: Sequence[Callable[..., Any]],
        settings: ConsumerSettings,
        resident: int | None = None,
    ) -> None:
        stream = workflow_stream(task_queue)
        capacity = resident or RESIDENT_WORKFLOWS
        runs = ResidentCache(workflows, capacity)
        settings = dataclasses.replace(
            settings, concurrency=2 * settings.batch_size, max_attempts=ENGINE_ATTEMPTS
        )
        eager = [activity_stream(task_queue)]  # its activity worker, if this node runs one
        self.runner = WorkflowRunner(node, runs, stream, ENGINE_ATTEMPTS, eager)
        super().__init__(node, stream=stream, batch_handler=self.runner.run, settings=settings)
        self.name = f"workflows:{task_queue}"
        self.task_queue = task_queue
        self.topic = stream


def activity_worker(
    node: Node,
    *,
    task_queue: str,
    activities: Sequence[Callable[..., Any]],
    settings: ConsumerSettings,
    retry: RetryPolicy,
    workflows: Sequence[WorkflowWorkerActor] = (),
    loop: Loop | None = None,
) -> WorkerActor:
    """The worker that runs ``activities`` for ``task_queue`` (requests carry the retry
    policy of the workflow's proxy; ``retry`` serves requests without one). A response to a
    workflow that one of this node's ``workflows`` actors runs is applied in the transaction
    that acks its request."""
    return WorkerActor(
        node,
        topic=activity_stream(task_queue),
        dispatch=by_name(activities, loop=loop),
        settings=settings,
        retry=retry,
        appliers={actor.topic: actor.runner.transact for actor in workflows},
    )
