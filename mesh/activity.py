"""What activity code may ask of mesh: how it is defined, and, while it runs, what it
serves, a heartbeat, and whether it was cancelled.

::

    from mesh import activity

    @activity.defn                       # an async def runs on asyncio, a def in a thread
    async def fetch(url: str) -> str: ...

    @activity.defn(name="charge", heartbeat_timeout="30 seconds")
    def charge_card(order: dict) -> str:
        for step in range(10):
            ...
            activity.heartbeat({"step": step})   # the next attempt sees it in details()

    @activity.defn(loop="trio")          # written for trio: runs on the node's trio loop
    async def tick() -> None: ...

Nothing here needs trio: an asyncio activity is cancelled with ``asyncio.CancelledError``
(its ``start_to_close`` passed, its lease was lost, its workflow was cancelled or the node
stopped), a thread activity can poll :func:`is_cancelled`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from mesh.model.activity import (
    ATTRIBUTE,
    LOOPS,
    ActivityContext,
    ActivityDefinition,
    ActivityInfo,
    Loop,
    current,
    default_loop,
)
from mesh.model.durations import Duration, parse_duration
from mesh.model.workflow.guard import refuse_direct_calls

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["ActivityInfo", "defn", "details", "heartbeat", "info", "is_cancelled"]


@overload
def defn(function: F, /) -> F: ...


@overload
def defn(
    *,
    name: str | None = None,
    loop: Loop | None = None,
    heartbeat_timeout: Duration | None = None,
) -> Callable[[F], F]: ...


def defn(
    function: F | None = None,
    /,
    *,
    name: str | None = None,
    loop: Loop | None = None,
    heartbeat_timeout: Duration | None = None,
) -> F | Callable[[F], F]:
    """Define an activity: ``name`` (default: the function's name) is what requests call it
    by; ``loop`` where it runs (default: asyncio for an ``async def``, a worker thread for a
    ``def``; ``"trio"`` for code written for trio); ``heartbeat_timeout``: an attempt that
    does not :func:`heartbeat` for this long is failed and retried. Returns the function
    itself, so it can still be called directly outside workflows (tests)."""
    if loop is not None and loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, not {loop!r}")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"an activity name is a non-empty string, not {name!r}")
    timeout = None if heartbeat_timeout is None else _seconds(heartbeat_timeout)

    def define(function: F) -> F:
        definition = ActivityDefinition(
            name or function.__name__, loop or default_loop(function), timeout, bool(name)
        )
        setattr(function, ATTRIBUTE, definition)
        refuse_direct_calls(function, definition.name)
        return function

    return define if function is None else define(function)


def info() -> ActivityInfo:
    """What this activity serves: its name, attempt, task queue, workflow, deadline.
    :class:`RuntimeError` outside an activity run by mesh."""
    return _context().info


def heartbeat(details: Any = None) -> None:
    """Say the activity is alive (required within its ``heartbeat_timeout``), with
    ``details`` (JSON) that a later attempt reads with :func:`details` if this one fails."""
    _context().heartbeat(details)


def details() -> Any:
    """What the previous attempt last reported with :func:`heartbeat` (None: nothing)."""
    return _context().previous_details


def is_cancelled() -> bool:
    """Whether mesh cancelled this attempt (for thread activities, which cannot be
    interrupted: check it between steps and return)."""
    return _context().cancelled


def _context() -> ActivityContext:
    try:
        return current.get()
    except LookupError:
        raise RuntimeError("this function only works inside an activity run by mesh") from None


def _seconds(value: Duration) -> float:
    return parse_duration(value)
