"""The functions workflow code calls (re-exported as ``mesh.workflow``).

Durable calls are awaited: ``await acts.reserve_item(item, qty)`` (or, typed by the function,
``await acts[reserve_item](item, qty)``), ``await sleep("30 days")``,
``await condition("approved", timeout="1 hour")``, ``await execute_child(ship, order)``,
``await gather(acts.a(x), acts.b(y))``. The rest answer at once and are deterministic on
replay: ``now()``, ``time()``, ``random()``, ``uuid4()``, ``info()``, ``patched(change_id)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Generator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from mesh.errors import ActivityFailed
from mesh.model.activity import definition_of
from mesh.model.durations import Duration, parse_duration
from mesh.model.payloads import (
    args_to_json,
    from_json,
    parameter_names,
    signature_of,
    to_json,
)
from mesh.model.retry import RetryPolicy
from mesh.model.signatures import A1, A2, A3, A4, A5, A6, R
from mesh.model.workflow.calls import Call, CallKind
from mesh.model.workflow.definition import workflow_name
from mesh.model.workflow.guard import refuse_direct_calls
from mesh.model.workflow.run import ContinueAsNew, Suspend, WorkflowInfo, current_run

T = TypeVar("T")
P = ParamSpec("P")


class TimedOut:
    """What :func:`condition` returns when its timeout passed before the signal."""

    _instance: TimedOut | None = None

    def __new__(cls) -> TimedOut:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "TIMED_OUT"


TIMED_OUT = TimedOut()


class Durable(Generic[T]):
    """A durable call not yet awaited: await it, or pass it to :func:`gather`."""

    __slots__ = ("call", "returns")

    def __init__(self, call: Call, returns: Any = Any) -> None:
        self.call = call
        self.returns = returns
        """The type its value arrives as (an annotation; ``Any``: as JSON gives it)."""

    def __await__(self) -> Generator[Suspend, list[Any], T]:
        (value,) = yield Suspend((self.call,))
        result: T = self.interpret(value)
        return result

    def interpret(self, value: Any) -> Any:
        call = self.call
        if call.kind == "condition":
            if isinstance(value, dict) and value.get("timed_out"):
                return TIMED_OUT
            value = _data(value)
        elif isinstance(value, ActivityFailed):  # gather(return_exceptions=True)
            return value
        return from_json(value, self.returns, f"the value of {call.describe()}")


def _data(value: Any) -> Any:
    return value.get("data") if isinstance(value, dict) else value


class gather(Generic[T]):
    """Wait for several durable calls at once; their results in argument order. The first
    failure (in argument order) is raised once all have ended, unless
    ``return_exceptions``: then failures come back as :class:`ActivityFailed` values."""

    __slots__ = ("calls", "return_exceptions")

    def __init__(self, *calls: Durable[Any], return_exceptions: bool = False) -> None:
        self.calls = calls
        self.return_exceptions = return_exceptions

    def __await__(self) -> Generator[Suspend, list[Any], list[Any]]:
        if not self.calls:
            return []
        values = yield Suspend(tuple(c.call for c in self.calls), self.return_exceptions)
        return [c.interpret(v) for c, v in zip(self.calls, values, strict=True)]


class Activities:
    """The proxied activities of :func:`proxy_activities`: ``acts.name(*args)`` (HotMesh's
    style; the result is typed ``Any``), or ``acts[function](*args)``, typed by the function:
    its arguments are checked and the result has its return type."""

    def __init__(
        self, calls: dict[str, Callable[..., Durable[Any]]], functions: dict[str, Any]
    ) -> None:
        self._calls = calls
        self._functions = functions

    def __getattr__(self, name: str) -> Callable[..., Durable[Any]]:
        try:
            return self._calls[name]
        except KeyError:
            raise AttributeError(
                f"no proxied activity {name!r}; proxied: {', '.join(sorted(self._calls))}"
            ) from None

    @overload
    def __getitem__(self, function: Callable[P, Awaitable[R]]) -> Callable[P, Durable[R]]: ...

    @overload
    def __getitem__(self, function: Callable[P, R]) -> Callable[P, Durable[R]]: ...

    def __getitem__(self, function: Callable[..., Any]) -> Callable[..., Durable[Any]]:
        name = next((n for n, f in self._functions.items() if f is function), None)
        if name is None:
            raise KeyError(
                f"{function!r} is not a proxied activity; proxied: {', '.join(sorted(self._calls))}"
            )
        return self._calls[name]


def proxy_activities(
    *functions: Callable[..., Any],
    retry: RetryPolicy | None = None,
    task_queue: str = "",
    start_to_close: Duration | None = None,
) -> Activities:
    """Durable stand-ins for activity functions: ``acts.name(*args)`` is a durable call of
    the activity named like the function, on ``task_queue`` (default: the workflow's), with
    ``retry`` (default: the seeds' 3 attempts, coefficient 10, 120 s cap) and at most
    ``start_to_close`` per attempt."""
    limit = None if start_to_close is None else parse_duration(start_to_close)

    def proxy(name: str, function: Callable[..., Any]) -> Callable[..., Durable[Any]]:
        signature = signature_of(function)

        def call(*args: Any, **keywords: Any) -> Durable[Any]:
            if keywords:
                raise TypeError(
                    f"activity {name!r} got keyword arguments ({', '.join(keywords)}): a "
                    "durable call records positional arguments only; pass them in order"
                )
            sent = args_to_json(args, signature.names, f"activity {name!r}")
            return Durable(
                Call(
                    kind="activity",
                    name=name,
                    args=sent,
                    retry=retry,
                    task_queue=task_queue,
                    timeout=limit,
                ),
                signature.returns,
            )

        return call

    names = {f: definition_of(f).name for f in functions}
    for function, name in names.items():
        refuse_direct_calls(function, name)
    return Activities(
        {name: proxy(name, f) for f, name in names.items()}, {name: f for f, name in names.items()}
    )


def sleep(duration: Duration) -> Durable[None]:
    """A durable sleep (``30`` seconds, ``"30 days"``): survives restarts, costs nothing
    while it lasts."""
    return Durable(Call(kind="sleep", name="sleep", timeout=parse_duration(duration)))


@overload
def condition(signal_id: str, timeout: Duration | None = None) -> Durable[Any]: ...


@overload
def condition(
    signal_id: str, timeout: Duration | None = None, *, type: type[T]
) -> Durable[T | TimedOut]: ...


def condition(signal_id: str, timeout: Duration | None = None, *, type: Any = Any) -> Durable[Any]:
    """Wait for the signal ``signal_id``: its data (as ``type``, e.g. a dataclass, when
    given), or :data:`TIMED_OUT` after ``timeout``."""
    seconds = None if timeout is None else parse_duration(timeout)
    return Durable(Call(kind="condition", name=signal_id, timeout=seconds), type)


class ChildExecute(Protocol):
    """:func:`execute_child` as type checkers see it (:mod:`mesh.model.signatures`)."""

    @overload
    def __call__(
        self,
        workflow: Callable[[], Awaitable[R]],
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1], Awaitable[R]],
        a1: A1,
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2], Awaitable[R]],
        a1: A1,
        a2: A2,
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3, A4], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        a4: A4,
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3, A4, A5], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        a4: A4,
        a5: A5,
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3, A4, A5, A6], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        a4: A4,
        a5: A5,
        a6: A6,
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[R]: ...

    @overload
    def __call__(
        self, workflow: str, /, *args: Any, workflow_id: str = "", task_queue: str = ""
    ) -> Durable[Any]: ...


class ChildStart(Protocol):
    """:func:`start_child` as type checkers see it (:mod:`mesh.model.signatures`)."""

    @overload
    def __call__(
        self,
        workflow: Callable[[], Awaitable[R]],
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[str]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1], Awaitable[R]],
        a1: A1,
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[str]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2], Awaitable[R]],
        a1: A1,
        a2: A2,
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[str]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[str]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3, A4], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        a4: A4,
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[str]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3, A4, A5], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        a4: A4,
        a5: A5,
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[str]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3, A4, A5, A6], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        a4: A4,
        a5: A5,
        a6: A6,
        /,
        *,
        workflow_id: str = "",
        task_queue: str = "",
    ) -> Durable[str]: ...

    @overload
    def __call__(
        self, workflow: str, /, *args: Any, workflow_id: str = "", task_queue: str = ""
    ) -> Durable[str]: ...


if TYPE_CHECKING:
    execute_child: ChildExecute
    start_child: ChildStart
else:

    def execute_child(workflow, /, *args, workflow_id: str = "", task_queue: str = ""):
        """Start a child workflow (a function, or its name) and wait for its result (its
        failure raises :class:`ActivityFailed`). Typed by the function
        (:mod:`mesh.model.signatures`)."""
        return _child("child", workflow, args, workflow_id, task_queue)

    def start_child(workflow, /, *args, workflow_id: str = "", task_queue: str = ""):
        """Start a child workflow without waiting for it; its workflow id."""
        return _child("start_child", workflow, args, workflow_id, task_queue)


def _child(
    kind: CallKind,
    workflow: Callable[..., Any] | str,
    args: tuple[Any, ...],
    workflow_id: str,
    task_queue: str,
) -> Durable[Any]:
    name = workflow_name(workflow)
    sent = args_to_json(args, parameter_names(workflow), f"child workflow {name!r}")
    call = Call(kind=kind, name=name, args=sent, workflow_id=workflow_id, task_queue=task_queue)
    returns = signature_of(workflow).returns if kind == "child" and callable(workflow) else Any
    return Durable(call, returns)


def signal(workflow_id: str, signal_id: str, data: Any = None) -> Durable[None]:
    """Send ``data`` as the signal ``signal_id`` to the workflow ``workflow_id`` (once, even
    when this workflow is replayed)."""
    sent = to_json(data, f"the data of signal {signal_id!r}")
    return Durable(Call(kind="signal", name=signal_id, args=[sent], workflow_id=workflow_id))


def continue_as_new(*args: Any) -> None:
    """End this run and start the workflow again with ``args`` and an empty history (the
    way to run forever without a history that grows forever). Does not return."""
    raise ContinueAsNew(tuple(args_to_json(args, (), "the next run (continue_as_new)")))


def now() -> datetime:
    """The time as the workflow sees it (an aware UTC datetime): its start, then the time of
    the latest outcome it received; the same on every replay, never earlier than a time it
    saw before (also across ``continue_as_new``)."""
    return datetime.fromtimestamp(current_run().now, UTC)


def time() -> float:
    """:func:`now` as seconds since the epoch."""
    return current_run().now


def random() -> float:
    """A number in [0, 1) from the workflow's own generator (the same on every replay)."""
    return current_run().random.random()


def uuid4() -> uuid.UUID:
    """A random UUID from the workflow's own generator (the same on every replay)."""
    return current_run().uuid4()


def info() -> WorkflowInfo:
    """The workflow's id, name, task queue and generation."""
    return current_run().info


def patched(change_id: str) -> bool:
    """Whether this run takes the code of the change ``change_id``: True for runs started
    after the change, False when replaying a run recorded before it. Branch on it to change
    a workflow that has runs in flight."""
    return current_run().patched(change_id)


__all__ = [
    "TIMED_OUT",
    "Activities",
    "CallKind",
    "Durable",
    "TimedOut",
    "condition",
    "continue_as_new",
    "execute_child",
    "gather",
    "info",
    "now",
    "patched",
    "proxy_activities",
    "random",
    "signal",
    "sleep",
    "start_child",
    "time",
    "uuid4",
]
