"""Workflows written as code, driven one transaction at a time on plain connections (no node,
no trio): what the tests of a single workflow transaction need to hold it, race it, or
replay it where they choose.

:class:`Stepper` starts workflows, runs the batches of a task queue's workflow stream through
:func:`mesh.pg.workflows.process`, and answers activity requests with plain functions the way
a worker applies a response at its ack (the same transaction)."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from mesh.model.messages import ActivityRequest, decode, success_response
from mesh.model.workflow.plan import activity_stream, workflow_stream
from mesh.pg import workflow_messages
from mesh.pg.batch import Delivery
from mesh.pg.streams import StreamClaim, claim
from mesh.pg.workflows import WorkflowReport, process
from mesh.runtime.workflows import ResidentCache

APP = "steps"
QUEUE = "q"
OWNER = "stepper"


def fresh_runs(workflows: Sequence[Callable[..., Coroutine[Any, Any, Any]]]) -> ResidentCache:
    """A node's runs with nothing resident (its next step of any workflow replays it)."""
    return ResidentCache(workflows, 1000)


@dataclass
class Stepper:
    """One task queue's workflows on ``conn`` (autocommit, as the node's pool gives them)."""

    conn: psycopg.Connection[Any]
    workflows: Sequence[Callable[..., Coroutine[Any, Any, Any]]]
    activities: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    owner: str = OWNER

    def __post_init__(self) -> None:
        self.runs = fresh_runs(self.workflows)

    def start(self, function: Callable[..., Any] | str, *args: Any, workflow_id: str = "") -> str:
        name = function if isinstance(function, str) else function.__name__
        return workflow_messages.start(
            self.conn, APP, name, list(args), task_queue=QUEUE, workflow_id=workflow_id
        )

    def signal(self, workflow_id: str, signal_id: str, data: Any = None) -> bool:
        return workflow_messages.signal(self.conn, APP, workflow_id, signal_id, data)

    def claim_workflow_stream(self, limit: int = 50) -> list[StreamClaim]:
        return claim(
            self.conn,
            app=APP,
            stream=workflow_stream(QUEUE),
            owner=self.owner,
            limit=limit,
            lease=60,
        )

    def handle(
        self, claims: Sequence[StreamClaim], runs: ResidentCache | None = None
    ) -> WorkflowReport:
        """One workflow transaction for ``claims`` (with ``runs``: as that node)."""
        deliveries = [Delivery(decode(c.payload), c) for c in claims]  # type: ignore[arg-type]
        return process(self.conn, APP, runs or self.runs, deliveries, owner=self.owner)

    def workflow_batch(self, runs: ResidentCache | None = None) -> WorkflowReport | None:
        """Claim and handle what waits on the workflow stream (None: nothing waits)."""
        claims = self.claim_workflow_stream()
        return self.handle(claims, runs) if claims else None

    def activity_batch(self, runs: ResidentCache | None = None, limit: int = 1000) -> int:
        """Run the activity requests that wait, each answered in the transaction that acks it
        (as a worker applies a response at its ack); how many ran."""
        claims = claim(
            self.conn,
            app=APP,
            stream=activity_stream(QUEUE),
            owner=self.owner,
            limit=limit,
            lease=60,
        )
        deliveries = []
        for c in claims:
            request = decode(c.payload)
            assert isinstance(request, ActivityRequest)
            data = request.data
            function = self.activities[data["activity"]]
            assert not inspect.iscoroutinefunction(function), "stepper activities are plain"
            result = function(*data["args"])
            deliveries.append(Delivery(success_response(request, {"result": result}, 1), c))
        if deliveries:
            process(self.conn, APP, runs or self.runs, deliveries, owner=self.owner)
        return len(deliveries)

    def run_until_quiet(self, runs: ResidentCache | None = None, rounds: int = 1000) -> None:
        """Handle workflow batches and activities until neither has anything visible."""
        for _ in range(rounds):
            moved = self.workflow_batch(runs) is not None
            moved = self.activity_batch(runs) > 0 or moved
            if not moved:
                return
        raise AssertionError(f"still busy after {rounds} rounds")

    def job(self, workflow_id: str) -> tuple[str, Any]:
        """The workflow's state and its result (or error)."""
        row = self.conn.execute(
            "SELECT j.state, coalesce(a.value, to_jsonb(j.error)) FROM mesh.jobs j "
            "LEFT JOIN mesh.jobs_attributes a ON a.job_id = j.id AND a.dimension = '' "
            "AND a.symbol = 'result' WHERE j.app = %s AND j.key = %s",
            (APP, workflow_id),
        ).fetchone()
        assert row is not None, f"no workflow {workflow_id!r}"
        return row[0], row[1]


def in_thread(function: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``function`` in a thread; the list gets its result, or the exception it raised."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(function())
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def waiting_for_lock(conn: psycopg.Connection[Any], pid: int) -> bool:
    """Whether the backend ``pid`` waits for a lock (a row's, a key's, an advisory one)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", (pid,)
    ).fetchone()
    return bool(row and row[0])
