"""Running workflows written as code from trio: the batch handler of a task queue's
workflow stream, and the function that runs its activities.

:class:`WorkflowRunner` hands a claimed batch to :func:`mesh.pg.workflows.process` (one
transaction) in a database thread. A batch the database refuses, or that fails in mesh's own
code, is retried message by message; a message refused alone is dead-lettered with the reason.
The task queue's activities run in a worker (:class:`actors.worker.WorkerActor`) whose
dispatch is :func:`mesh.runtime.activities.by_name`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import trio

from mesh.errors import ConfigError, DatabaseUnavailable
from mesh.model.messages import ActivityResponse, Resume, StartJob
from mesh.model.workflow.definition import registered_workflows
from mesh.model.workflow.resident import ResidentRuns
from mesh.model.workflow.run import WorkflowRun
from mesh.pg.batch import Delivery, NextClaim
from mesh.pg.workflows import WorkflowFunction, WorkflowReport, process
from mesh.runtime.consumer import BatchResult
from mesh.runtime.graphs import confirmed_lost, decode_claims, one_by_one
from mesh.runtime.node import Node
from mesh.runtime.streams import StreamClaim

log = logging.getLogger(__name__)

EAGER_PER_MESSAGE = 4
"""Slots of the local activity worker a workflow transaction borrows per message it handles
(eager dispatch, :mod:`mesh.runtime.consumer.eager_dispatch`)."""


def workflow_functions(functions: Sequence[WorkflowFunction]) -> dict[str, WorkflowFunction]:
    """A task queue's workflows by name; what cannot be registered (a lambda, a function
    defined inside another, two under one name) is refused with :class:`ConfigError`."""
    try:
        return registered_workflows(functions)
    except TypeError as error:
        raise ConfigError("<workflows>", "workflows", str(error)) from None


class ResidentCache:
    """A node's workflow functions of one task queue and the runs it keeps in memory
    between steps (at most ``capacity``, least recently resumed evicted first): the
    :class:`~mesh.pg.workflows.RunCache` its transactions use. Called from database threads:
    the set of runs is guarded by a lock, each run by its workflow's row lock."""

    def __init__(self, functions: Sequence[WorkflowFunction], capacity: int) -> None:
        self.functions = workflow_functions(functions)
        self.resident = ResidentRuns(capacity)
        self._lock = threading.Lock()

    def function(self, name: str) -> WorkflowFunction | None:
        return self.functions.get(name)

    def take(self, key: str) -> WorkflowRun | None:
        with self._lock:
            return self.resident.take(key)

    def committed(self, kept: Sequence[tuple[WorkflowRun, int]], dropped: Sequence[str]) -> None:
        with self._lock:
            for run, applied in kept:
                run.applied = applied
                self.resident.keep(run)
            for key in dropped:
                self.resident.drop(key)

    def forget(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self.resident.drop(key)


class WorkflowRunner:
    """One task queue's workflow batches on one node."""

    def __init__(
        self,
        node: Node,
        runs: ResidentCache,
        stream: str,
        max_attempts: int,
        eager_streams: Sequence[str] = (),
    ) -> None:
        self.node = node
        self.runs = runs
        self.stream = stream
        self.max_attempts = max_attempts
        self.eager_streams = eager_streams
        """Streams whose requests this node's consumers may take at their enqueue."""

    async def run(
        self,
        claims: list[StreamClaim],
        *,
        claim_next: int,
        lease: float,
        retry_of: float | None = None,
    ) -> BatchResult:
        accepted, buried = await decode_claims(
            self.node.streams,
            claims,
            lambda message: isinstance(message, StartJob | ActivityResponse | Resume),
            "not a workflow message",
        )
        deliveries = [Delivery(message, claim) for message, claim in accepted]
        next_claim = (
            NextClaim(self.stream, claim_next, lease, self.max_attempts) if claim_next > 0 else None
        )
        try:
            report = await self.transact(deliveries, next_claim)
        except DatabaseUnavailable:
            raise
        except Exception as error:
            log.error(
                "event=workflow_batch_refused size=%d error=%r (retrying message by message)",
                len(deliveries),
                f"{type(error).__name__}: {error}",
            )
            acked, dead = await self._one_by_one(deliveries)
            return BatchResult([], acked=acked, dead_lettered=buried + dead)
        lost = confirmed_lost(report.lost, retry_of, lease)
        return BatchResult(
            report.next_claims, acked=len(deliveries) - lost, dead_lettered=buried, lost=lost
        )

    async def transact(
        self, deliveries: list[Delivery], next_claim: NextClaim | None = None
    ) -> WorkflowReport:
        """One workflow transaction for ``deliveries``: a batch of the workflow stream, or
        activity responses applied to their workflows in the transaction that acks their
        requests (as the :class:`~mesh.runtime.graphs.Applier` of this node's activity
        workers: a resident workflow moves on without its response crossing the stream)."""
        node = self.node
        # Most messages make one request; a few make several (a gather): the rest of those
        # go the ordinary way.
        lending = node.eager.lend(node.app, self.eager_streams, EAGER_PER_MESSAGE * len(deliveries))
        sent_at = trio.current_time()
        report = None
        try:
            report = await node.db.run(
                process,
                node.app,
                self.runs,
                deliveries,
                owner=node.guid,
                next_claim=next_claim,
                notices=node.job_notices,
                eager=lending.offers,
            )
        finally:
            lending.settle(report.leased if report is not None else {}, sent_at)
        for name, key, error in report.failed:
            # WARNING, so that an application that configured no logging still sees it
            # (Python's last-resort handler prints it on stderr).
            log.warning(
                "event=workflow_failed workflow_id=%s workflow=%s error=%s",
                key,
                name,
                f"{error.get('type', 'Error')}: {error.get('message', '')}"[:1000],
            )
        return report

    async def _one_by_one(self, deliveries: list[Delivery]) -> tuple[int, int]:
        async def alone(delivery: Delivery) -> int:
            return len((await self.transact([delivery])).taken)

        return await one_by_one(
            self.node.streams, [(d.claim, d) for d in deliveries if d.claim], alone, "workflow"
        )
