"""What ``describe()`` says of a workflow: where it stands, the calls it waits for (each with
its attempts, next retry and last failure, as far as the database knows them) and which
live nodes serve its task queue (Temporal's pending activities and pollers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from mesh.model.jobs import WorkflowStatus

CallState = Literal["scheduled", "running", "retrying", "waiting"]
"""``scheduled``: queued for its first attempt; ``running``: a node holds an attempt;
``retrying``: an attempt failed and the next waits for its time; ``waiting``: a sleep, a
condition or a child, answered by a timer, a signal or the child's end."""


@dataclass(frozen=True, slots=True)
class LastFailure:
    """An activity attempt that failed (it will be retried)."""

    type: str
    message: str
    traceback: str
    attempt: int
    at: datetime | None


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A durable call of the current generation that has no outcome yet."""

    position: int
    kind: str
    name: str
    args: list[Any]
    since: datetime
    state: CallState
    attempt: int = 0
    """Attempts so far (claims of its request; 0: not tried yet)."""
    maximum_attempts: int | None = None
    next_attempt_at: datetime | None = None
    """When a retrying activity is tried again."""
    due_at: datetime | None = None
    """When a sleep wakes or a condition times out."""
    node: str | None = None
    """The node that holds the running attempt."""
    lease_expires_at: datetime | None = None
    last_failure: LastFailure | None = None


@dataclass(frozen=True, slots=True)
class Poller:
    """A live node consuming one of the task queue's streams."""

    stream: str
    node: str
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class WorkflowDescription:
    workflow_id: str
    name: str
    task_queue: str
    status: WorkflowStatus
    generation: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    result: Any = None
    error: dict[str, Any] | None = None
    """How it failed: type, message, traceback, and the failure it came from (``cause``)."""
    pending: list[PendingCall] = field(default_factory=list)
    pollers: list[Poller] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """What looks wrong: no live node serving its task queue, an activity failing."""


def moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def no_pollers_warning(task_queue: str, stream: str) -> str:
    return (
        f"no live node serves task queue {task_queue!r} (no pollers of stream {stream!r}): "
        "the workflow waits until one does; run a node with the task queue in its config "
        "(`mesh run`) or a mesh.Worker(client, task_queue=...)"
    )
