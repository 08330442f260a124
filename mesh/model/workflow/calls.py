"""The durable calls a workflow makes, and what is recorded of each.

A call is identified on replay by its kind, its name and the *shape* of its arguments (their
JSON types, not their values): a workflow that now calls another activity, or the same one
with arguments of another shape, at a recorded position is not the workflow that was
recorded. Values may differ (they are the workflow's own, recomputed the same way)."""

from __future__ import annotations

import traceback
from typing import Any

import msgspec

from mesh.errors import ActivityFailed
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


class Failure(msgspec.Struct, frozen=True, omit_defaults=True):
    """An activity's (or child's, or workflow's) failure, after its retry policy was spent.
    Stored as a step's ``error`` and a failed job's ``error``."""

    type: str
    message: str
    code: int = 500
    details: Any = None
    """What the error carried for the caller (``NonRetryableError(..., details=...)``)."""
    non_retryable: bool = False
    """It was not retried: the code said so (:class:`~mesh.errors.NonRetryableError`)."""
    traceback: str = ""
    """Where it was raised: the activity's traceback, or the workflow's."""
    activity: str = ""
    """The activity (or child workflow) that failed, when it is one."""
    cause: Failure | None = None
    """What it came from: the activity failure that failed a workflow, and through a
    child's failure, the child's cause."""

    def as_error(self) -> ActivityFailed:
        """The :class:`ActivityFailed` workflow code sees, its ``__cause__`` chained."""
        error = ActivityFailed(
            self.type,
            self.message,
            self.code,
            details=self.details,
            non_retryable=self.non_retryable,
            traceback=self.traceback,
            activity=self.activity,
        )
        if self.cause is not None:
            error.__cause__ = self.cause.as_error()
        return error

    def as_dict(self) -> dict[str, Any]:
        """As stored in a job's ``error`` (JSON)."""
        stored: dict[str, Any] = msgspec.to_builtins(self)
        return stored


MAX_TRACEBACK = 8000
"""Characters of a traceback kept with a failure (its end, where it was raised)."""


def traceback_text(error: BaseException) -> str:
    """``error``'s traceback as Python prints it, its last :data:`MAX_TRACEBACK`
    characters, storable (no NUL)."""
    text = "".join(traceback.format_exception(error)).replace("\x00", "\\0")
    if len(text) > MAX_TRACEBACK:
        text = "...\n" + text[-MAX_TRACEBACK:]
    return text.encode("utf-8", "replace").decode()


def failure_of(error: BaseException) -> Failure:
    """The failure of a workflow that raised ``error``: its type, message, the workflow's
    traceback, and the activity failure it came from (an :class:`ActivityFailed`, uncaught,
    is its own cause: the workflow's failure keeps the activity's traceback there)."""
    if isinstance(error, ActivityFailed):
        own = _activity_failure(error, 0)
        return msgspec.structs.replace(own, traceback=traceback_text(error), cause=own)
    code = getattr(error, "code", 500)
    return Failure(
        type(error).__name__,
        str(error),
        code if isinstance(code, int) else 500,
        details=_json_or_none(getattr(error, "details", None)),
        traceback=traceback_text(error),
        cause=_cause(error.__cause__ or error.__context__, 0),
    )


def _activity_failure(error: ActivityFailed, depth: int) -> Failure:
    return Failure(
        error.type_name,
        error.message,
        error.code,
        details=error.details,
        non_retryable=error.non_retryable,
        traceback=error.traceback,
        activity=error.activity,
        cause=_cause(error.__cause__, depth + 1),
    )


def _cause(error: BaseException | None, depth: int) -> Failure | None:
    """An activity failure a workflow's error came from (chains of at most ten)."""
    if isinstance(error, ActivityFailed) and depth < 10:
        return _activity_failure(error, depth)
    return None


def failure_from(stored: Any) -> Failure | None:
    """A failure as stored (a job's or a child's ``error``); None if it is not one."""
    if not isinstance(stored, dict):
        return None
    try:
        return msgspec.convert(stored, Failure)
    except msgspec.ValidationError:
        return Failure(
            str(stored.get("type", "Error")),
            str(stored.get("message", "failed")),
            stored["code"] if isinstance(stored.get("code"), int) else 500,
        )


def _json_or_none(value: Any) -> Any:
    try:
        msgspec.json.encode(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value


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
