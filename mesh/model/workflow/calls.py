"""The durable calls a workflow makes, and what is recorded of each.

A call is identified on replay by its kind, its name and the *shape* of its arguments (their
JSON types, not their values): a workflow that now calls another activity, or the same one
with arguments of another shape, at a recorded position is not the workflow that was
recorded. Values may differ (they are the workflow's own, recomputed the same way)."""

from __future__ import annotations

from typing import Any

import msgspec

from mesh.model.retry import RetryPolicy

CallKind = str
"""The kind of a durable call: ``activity``, ``sleep``, ``condition``, ``child``,
``start_child``, ``signal`` or ``patch``. :mod:`mesh.model.workflow.plan` says how each is
performed and what answers it (a kind is added there and in :mod:`~mesh.model.workflow.api`,
see CONTRIBUTING.md)."""


class Call(msgspec.Struct, frozen=True, kw_only=True):
    """One durable call as the workflow made it."""

    kind: CallKind
    name: str
    """The activity's or child workflow's name, the signal id, or the change id of a patch."""
    args: list[Any] = msgspec.field(default_factory=list)
    retry: RetryPolicy | None = None
    task_queue: str = ""
    timeout: float | None = None
    """Seconds: a sleep's length, a condition's wait, an activity's start-to-close limit."""
    workflow_id: str = ""
    """A child's id (chosen, or made by the runtime), or the target of a signal."""

    @property
    def shape(self) -> str:
        return shape_of(self.args)

    def describe(self) -> str:
        """How an error names the call: ``activity reserve_item(str, int)``."""
        return f"{self.kind} {self.name}({self.shape[1:-1]})"


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded call at a position: what was called, and how it ended (if it has)."""

    kind: CallKind
    name: str
    shape: str
    done: bool = False
    result: Any = None
    error: Failure | None = None
    at: float = 0.0
    """Wall-clock seconds when the outcome was recorded (``workflow.now()`` after it)."""

    def describe(self) -> str:
        return f"{self.kind} {self.name}({self.shape[1:-1]})"


class Failure(msgspec.Struct, frozen=True):
    """An activity's (or child's) failure, after its retry policy was spent."""

    type: str
    message: str
    code: int = 500


def stored_time(seconds: float) -> float:
    """``seconds`` to the microsecond, as Postgres stores a timestamp: a time a workflow
    sees is rounded so before it is recorded, so that a replay, which reads it back, sees
    the very same float."""
    return round(seconds * 1_000_000) / 1_000_000  # an exact division: the nearest double


def recorded(call: Call) -> Recorded:
    """What is recorded of ``call`` when it is made (its outcome comes later)."""
    return Recorded(kind=call.kind, name=call.name, shape=call.shape)


def shape_of(value: Any, depth: int = 0) -> str:
    """The JSON types of ``value``: ``[str, int, {qty: int}]``; deep values are ``...``."""
    if depth > 3:
        return "..."
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(shape_of(item, depth + 1) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(
            f"{key}: {shape_of(item, depth + 1)}" for key, item in sorted(value.items())
        )
        return "{" + inner + "}"
    return type(value).__name__
