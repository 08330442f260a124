"""A job in memory: its row, its data, the activities it ran, and what changed.

The engine loads a :class:`JobState` under the job's row lock, applies messages to it, and
saves exactly what changed (``dirty_*``, ``new_steps``) together with the messages and the
deferred database commands (``commands``) the changes cause, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mesh.model.messages import ParentRef
from mesh.model.outcomes import Outgoing

JobStatus = Literal["running", "pending", "done", "failed", "interrupted"]
FINAL = frozenset({"done", "failed", "interrupted"})
PARTS = ("input", "output", "hook")


@dataclass(frozen=True, slots=True)
class RegisterHook:
    """Wait for signals on ``topic`` whose rule resolves to ``match_key`` (JSON text)."""

    topic: str
    match_key: str
    activity: str
    dimension: str


@dataclass(frozen=True, slots=True)
class UnregisterHooks:
    """Stop waiting: the hook of ``activity`` in ``dimension``, or every hook of the job."""

    activity: str | None = None
    dimension: str = ""


@dataclass(frozen=True, slots=True)
class DeliverSignal:
    """Resume the hooks waiting on ``topic``: those with ``match_key``, or all when it is
    None. With ``buffer``, a signal nobody waits for yet is kept until a hook registers."""

    topic: str
    match_key: str | None
    data: Any
    code: int = 200
    buffer: bool = True


@dataclass(frozen=True, slots=True)
class InterruptChildren:
    """Interrupt the job's running child jobs (``descend``)."""

    reason: str
    code: int


@dataclass(frozen=True, slots=True)
class Announce:
    """Tell subscribers the job reached ``status`` (a NOTIFY; they read the state)."""

    topic: str
    status: str


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Withdraw the job's queued activity requests and timers: it ended early."""


Command = RegisterHook | UnregisterHooks | DeliverSignal | InterruptChildren | Announce | Withdraw


@dataclass(frozen=True, slots=True)
class Step:
    activity: str
    dimension: str
    leg: int
    code: int = 200


@dataclass(slots=True)
class JobState:
    id: int
    app: str
    key: str
    gid: str
    version: str
    topic: str
    entity: str | None
    status: str
    semaphore: int
    threshold: int = 0
    cycles: int = 0
    parent_id: int | None = None
    parent: ParentRef | None = None
    error: dict[str, Any] | None = None
    created_at: float = 0.0
    expire_seconds: float | None = None
    """Set at completion (or a pending start): seconds until the job may be pruned (None:
    never)."""
    persisted: bool = False
    """The job answered its waiters and its parent and stays open (persist, persistent)."""
    trace: str = ""
    """The trace context its spans join (a W3C traceparent; '' without telemetry)."""
    data: dict[str, Any] = field(default_factory=dict)
    activities: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(activity, dimension) -> {"input": ..., "output": ..., "hook": ...} data."""
    steps: dict[tuple[str, str, int], int] = field(default_factory=dict)
    """(activity, dimension, leg) -> code."""
    # What changed, to be saved with the transaction.
    created: bool = False
    changed: bool = False
    dirty_data: set[str] = field(default_factory=set)
    dirty_parts: set[tuple[str, str, str]] = field(default_factory=set)
    new_steps: list[Step] = field(default_factory=list)
    outgoing: list[Outgoing] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.status == "running"

    def set_data(self, name: str, value: Any) -> None:
        self.data[name] = value
        self.dirty_data.add(name)

    def part(self, activity: str, dimension: str, name: str) -> Any:
        return self.activities.get((activity, dimension), {}).get(name)

    def set_part(self, activity: str, dimension: str, name: str, value: Any) -> None:
        self.activities.setdefault((activity, dimension), {})[name] = value
        self.dirty_parts.add((activity, dimension, name))

    def has_step(self, activity: str, dimension: str, leg: int) -> bool:
        return (activity, dimension, leg) in self.steps

    def add_step(self, activity: str, dimension: str, leg: int, code: int = 200) -> None:
        self.steps[(activity, dimension, leg)] = code
        self.new_steps.append(Step(activity, dimension, leg, code))

    def adjust(self, delta: int) -> None:
        if delta:
            self.semaphore += delta
            self.changed = True

    def snapshot(self) -> _Snapshot:
        return _Snapshot(
            status=self.status,
            persisted=self.persisted,
            semaphore=self.semaphore,
            cycles=self.cycles,
            error=self.error,
            data=dict(self.data),
            activities={k: dict(v) for k, v in self.activities.items()},
            steps=dict(self.steps),
            sizes=(
                len(self.new_steps),
                len(self.outgoing),
                len(self.commands),
            ),
            dirty=(set(self.dirty_data), set(self.dirty_parts)),
        )

    def restore(self, snapshot: _Snapshot) -> None:
        """Undo everything since ``snapshot`` (a message whose handling failed midway)."""
        self.status = snapshot.status
        self.persisted = snapshot.persisted
        self.semaphore = snapshot.semaphore
        self.cycles = snapshot.cycles
        self.error = snapshot.error
        self.data = snapshot.data
        self.activities = snapshot.activities
        self.steps = snapshot.steps
        steps, outgoing, commands = snapshot.sizes
        del self.new_steps[steps:]
        del self.outgoing[outgoing:]
        del self.commands[commands:]
        self.dirty_data, self.dirty_parts = snapshot.dirty


@dataclass(frozen=True, slots=True)
class _Snapshot:
    status: str
    persisted: bool
    semaphore: int
    cycles: int
    error: dict[str, Any] | None
    data: dict[str, Any]
    activities: dict[tuple[str, str], dict[str, Any]]
    steps: dict[tuple[str, str, int], int]
    sizes: tuple[int, int, int]
    dirty: tuple[set[str], set[tuple[str, str, str]]]


def parent_dimension(dimension: str) -> str:
    """'/1/3' -> '/1' -> ''."""
    return dimension.rsplit("/", 1)[0] if dimension else ""


def lineage(dimension: str) -> list[str]:
    """The dimension and every one it descends from, nearest first: '/1/3', '/1', ''."""
    found = [dimension]
    while dimension:
        dimension = parent_dimension(dimension)
        found.append(dimension)
    return found
