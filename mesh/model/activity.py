"""Activities as the runtime sees them: how one is defined (its name, the loop it runs on, its
heartbeat timeout) and what it may know while it runs (its context).

An activity is a plain function: an ``async def`` runs on an asyncio event loop the node owns,
a ``def`` in a worker thread, and an ``async def`` written for trio on the node's own trio
loop when it asks for it (``loop="trio"``). :func:`definition_of` reads what
``@activity.defn`` attached to a function, or makes the default definition of a plain one.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Loop = Literal["asyncio", "trio", "thread"]
LOOPS: tuple[Loop, ...] = ("asyncio", "trio", "thread")

ATTRIBUTE = "__mesh_activity__"
"""Where ``@activity.defn`` keeps a function's :class:`ActivityDefinition`."""


@dataclass(frozen=True, slots=True)
class ActivityDefinition:
    """How an activity function runs."""

    name: str
    """The name requests use (the function's ``__name__`` unless given)."""
    loop: Loop
    heartbeat_timeout: float | None = None
    """Seconds: an attempt that does not heartbeat for this long is failed and retried
    (None: no heartbeat is expected)."""
    explicit: bool = False
    """The name was given to ``@activity.defn`` (not the function's ``__name__``)."""


def default_loop(function: Callable[..., Any]) -> Loop:
    """asyncio for a coroutine function, a worker thread for a plain one."""
    return "asyncio" if inspect.iscoroutinefunction(_unwrapped(function)) else "thread"


def definition_of(function: Callable[..., Any], *, loop: Loop | None = None) -> ActivityDefinition:
    """The definition ``@activity.defn`` gave ``function``, or the default one (named by its
    ``__name__``, on its default loop). ``loop``, when given (a config's ``loop:``), wins."""
    given = getattr(function, ATTRIBUTE, None)
    if isinstance(given, ActivityDefinition):
        definition = given
        if loop is not None:
            definition = ActivityDefinition(
                given.name, loop, given.heartbeat_timeout, given.explicit
            )
    else:
        name = getattr(function, "__name__", None)
        if not isinstance(name, str):
            raise TypeError(f"{function!r} has no name: decorate it with @activity.defn(name=...)")
        definition = ActivityDefinition(name, loop or default_loop(function))
    coroutine = default_loop(function) == "asyncio"
    if coroutine and definition.loop == "thread":
        raise TypeError(
            f"activity {definition.name!r} is an async def: it cannot run in a thread; "
            "let it run on asyncio (the default) or trio"
        )
    if not coroutine and definition.loop != "thread":
        raise TypeError(
            f"activity {definition.name!r} is a plain function: it runs in a worker thread, "
            f"not on {definition.loop} (only an async def can)"
        )
    return definition


def _unwrapped(function: Callable[..., Any]) -> Callable[..., Any]:
    unwrapped: Callable[..., Any] = inspect.unwrap(function)
    return unwrapped


@dataclass(frozen=True, slots=True)
class ActivityInfo:
    """What an activity may know about the call it serves (``activity.info()``)."""

    activity: str
    """The activity's name."""
    attempt: int
    """This attempt's number, from 1."""
    task_queue: str
    """The stream the request came from."""
    workflow_id: str = ""
    """The job (graph or workflow) that asked for it."""
    activity_id: str = ""
    """Its place in the job: a graph's activity id, a workflow's call position."""
    deadline: float | None = None
    """Wall-clock seconds when ``start_to_close`` runs out (None: no limit)."""
    heartbeat_timeout: float | None = None


@dataclass(slots=True, eq=False)
class ActivityContext:
    """One attempt of one activity while it runs. Written by the activity (heartbeats) and
    by the runtime (cancellation), each on its own thread: plain attribute writes."""

    info: ActivityInfo
    previous_details: Any = None
    """What the previous attempt last reported with ``heartbeat`` (None: nothing)."""
    details: Any = None
    """What this attempt last reported."""
    beats: int = 0
    """Heartbeats so far (the runtime watches it move)."""
    cancelled: bool = False
    """Set when the runtime cancels the attempt (a timeout, a lost lease, a drain)."""

    def heartbeat(self, details: Any = None) -> None:
        self.details = details
        self.beats += 1


current: contextvars.ContextVar[ActivityContext] = contextvars.ContextVar("mesh_activity")
"""The running activity's context (set by the runtime around each call)."""
