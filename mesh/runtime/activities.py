"""Where activity functions run, and how a call crosses to them and back.

- **asyncio** (an ``async def``, by default): on an asyncio event loop the node owns, in a
  thread of its own (:class:`AsyncioLoop`, started when the first such activity runs). The
  call is handed over with ``asyncio.run_coroutine_threadsafe``; its end wakes the trio
  task that waits for it. A trio cancellation (``start_to_close``, a lost lease, a drain
  deadline) cancels the asyncio task: the activity sees ``asyncio.CancelledError``.
- **thread** (a ``def``): in a trio worker thread, at most ``concurrency`` at once; a
  cancelled call is abandoned (the thread runs on, and can see :func:`mesh.activity.is_cancelled`).
- **trio** (``@activity.defn(loop="trio")``): awaited on the node's own trio loop.

Around each call the activity's context is set (:data:`mesh.model.activity.current`: what
``activity.info()`` and ``activity.heartbeat()`` use); it travels with the call to the asyncio
loop and to the thread. With a ``heartbeat_timeout``, an attempt whose heartbeats stop is
cancelled and fails with :class:`HeartbeatTimeout` (retried like any failure).

This module and the database bridge are the only ones that hand work to other threads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import outcome
import trio

from mesh.errors import ConfigError, InvalidPayload, NonRetryableError, lone_error
from mesh.model.activity import ActivityContext, ActivityDefinition, Loop, current, definition_of
from mesh.model.naming import check_own_name, index, where
from mesh.model.payloads import receive_args

log = logging.getLogger(__name__)


CLEANUP_SECONDS = 3.0
"""How long a stopping asyncio loop lets cancelled activities finish their cleanup."""

RESOURCE_EXIT_SECONDS = 10.0
"""How long a worker's resources may take to close when it stops."""


class HeartbeatTimeout(Exception):
    """An activity attempt did not heartbeat within its ``heartbeat_timeout``."""


class _Call:
    """One call crossing to the asyncio loop and back."""

    __slots__ = ("args", "cancelled", "context", "done", "function", "outcome", "task")

    def __init__(
        self, function: Callable[..., Any], args: tuple[Any, ...], context: contextvars.Context
    ) -> None:
        self.function = function
        self.args = args
        self.context = context
        """The caller's context (the activity's, set by the worker): the task runs in it."""
        self.done = trio.Event()
        self.outcome: outcome.Outcome[Any] | None = None
        self.task: asyncio.Future[Any] | None = None
        self.cancelled = False

    def cancel(self) -> None:
        """(asyncio thread) The caller gave up: cancel the task, or never start it."""
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()


class AsyncioLoop:
    """An asyncio event loop in a thread of its own: started on first use, stopped by
    :meth:`close` (its remaining tasks cancelled first)."""

    def __init__(
        self, name: str = "mesh-asyncio", *, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.name = name
        self._borrowed = loop
        """An application's own running loop (a :class:`mesh.Worker` in an asyncio app):
        used as it is, never started or stopped here."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._token: trio.lowlevel.TrioToken | None = None
        self._outbox: collections.deque[_Call] = collections.deque()
        """Calls handed over by trio, not started yet (appended in trio, taken in asyncio)."""
        self._inbox: collections.deque[_Call] = collections.deque()
        """Calls that ended, not delivered yet (appended in asyncio, taken in trio)."""
        self._starting = False
        self._delivering = False

    @property
    def running(self) -> bool:
        return self._loop is not None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started if it was not."""
        if self._borrowed is not None:
            return self._borrowed
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(loop, ready), name=self.name, daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
            # Stopping: activities were cancelled already (the worker's cancellation reached
            # them); give them a moment to finish their cleanup, then cancel what is left.
            tasks = asyncio.all_tasks(loop)
            if tasks:
                _, left = loop.run_until_complete(asyncio.wait(tasks, timeout=CLEANUP_SECONDS))
                for task in left:
                    task.cancel()
                if left:
                    loop.run_until_complete(asyncio.wait(left, timeout=1.0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``await function(*args)`` on the loop; its result or its exception here. Cancelled
        here, the asyncio task is cancelled (and not waited for).

        Calls cross in batches: the calls made in one trio tick are started by one callback
        on the asyncio loop, and the calls that end in one asyncio tick are delivered by one
        callback in trio (two thread wake-ups for a batch, not for each call)."""
        loop = self.loop()
        if self._token is None:
            self._token = trio.lowlevel.current_trio_token()
        call = _Call(function, args, contextvars.copy_context())
        self._outbox.append(call)
        if not self._starting:
            self._starting = True
            loop.call_soon_threadsafe(self._start_calls)
        try:
            await call.done.wait()
        except BaseException:
            loop.call_soon_threadsafe(call.cancel)
            raise
        return call.outcome.unwrap()  # type: ignore[union-attr]

    def _start_calls(self) -> None:
        """(asyncio thread) Start every call handed over since the last time."""
        self._starting = False
        while self._outbox:
            call = self._outbox.popleft()
            if call.cancelled:
                continue
            loop = asyncio.get_running_loop()
            task = loop.create_task(call.function(*call.args), context=call.context)
            call.task = task
            task.add_done_callback(functools.partial(self._ended, call))

    def _ended(self, call: _Call, task: asyncio.Future[Any]) -> None:
        """(asyncio thread) A call ended: deliver it to trio with the others of this tick."""
        if task.cancelled():
            call.outcome = outcome.Error(
                asyncio.CancelledError("the activity was cancelled on its asyncio loop")
            )
        elif task.exception() is not None:
            call.outcome = outcome.Error(task.exception())  # type: ignore[arg-type]
        else:
            call.outcome = outcome.Value(task.result())
        self._inbox.append(call)
        if not self._delivering:
            self._delivering = True
            token = self._token
            assert token is not None
            with contextlib.suppress(trio.RunFinishedError):  # nobody waits any more
                token.run_sync_soon(self._deliver)

    def _deliver(self) -> None:
        """(trio) Wake the callers of every call that ended since the last time."""
        self._delivering = False
        while self._inbox:
            self._inbox.popleft().done.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop (its tasks cancelled) and wait up to ``timeout`` for its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("event=asyncio_loop_stuck name=%s (left running)", self.name)


class ActivityRunner:
    """Runs activity calls on the loop each one is defined for (one per node: the asyncio
    loop is shared by its workers; each worker limits its own threads)."""

    def __init__(self, asyncio_loop: AsyncioLoop) -> None:
        self.asyncio_loop = asyncio_loop

    async def call(
        self,
        definition: ActivityDefinition,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        context: ActivityContext,
        *,
        threads: trio.CapacityLimiter,
    ) -> Any:
        """``function(*args)`` with ``context`` as the running activity's; with a heartbeat
        timeout, cancelled (:class:`HeartbeatTimeout`) when its heartbeats stop."""
        token = current.set(context)
        try:
            if definition.heartbeat_timeout is None:
                return await self._run(definition, function, args, threads)
            return await self._watched(definition, function, args, context, threads)
        except BaseException:
            context.cancelled = True
            raise
        finally:
            current.reset(token)

    @contextlib.asynccontextmanager
    async def entered(self, resources: Sequence[tuple[ActivityDefinition, Any]]) -> Any:
        """Enter each resource on the loop its activities run on; leave them in reverse
        order when done (each left even if another fails to leave)."""
        entered: list[tuple[ActivityDefinition, Any]] = []
        try:
            for definition, owner in resources:
                await self._enter(definition, owner)
                entered.append((definition, owner))
            yield
        finally:
            # Shielded (the worker is being cancelled), but bounded: a resource that does
            # not close must not hold the node's shutdown.
            with trio.move_on_after(RESOURCE_EXIT_SECONDS, shield=True):
                for definition, owner in reversed(entered):
                    try:
                        await self._leave(definition, owner)
                    except Exception as error:
                        log.warning(
                            "event=activity_resource_exit_failed resource=%r error=%r",
                            type(owner).__name__,
                            f"{type(error).__name__}: {error}",
                        )

    async def _enter(self, definition: ActivityDefinition, owner: Any) -> None:
        if hasattr(owner, "__aenter__"):
            if definition.loop == "trio":
                await owner.__aenter__()
            else:
                await self.asyncio_loop.call(owner.__aenter__)
        else:
            await trio.to_thread.run_sync(owner.__enter__)

    async def _leave(self, definition: ActivityDefinition, owner: Any) -> None:
        if hasattr(owner, "__aexit__"):
            if definition.loop == "trio":
                await owner.__aexit__(None, None, None)
            else:
                await self.asyncio_loop.call(owner.__aexit__, None, None, None)
        else:
            await trio.to_thread.run_sync(owner.__exit__, None, None, None)

    async def _run(
        self,
        definition: ActivityDefinition,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        threads: trio.CapacityLimiter,
    ) -> Any:
        if definition.loop == "asyncio":
            return await self.asyncio_loop.call(function, *args)
        if definition.loop == "thread":
            # abandon_on_cancel: a drain deadline must not wait for code that never returns.
            return await trio.to_thread.run_sync(
                functools.partial(function, *args), limiter=threads, abandon_on_cancel=True
            )
        return await function(*args)

    async def _watched(
        self,
        definition: ActivityDefinition,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        context: ActivityContext,
        threads: trio.CapacityLimiter,
    ) -> Any:
        timeout = definition.heartbeat_timeout
        assert timeout is not None
        result: list[Any] = []
        try:
            async with trio.open_nursery() as nursery:

                async def run() -> None:
                    result.append(await self._run(definition, function, args, threads))
                    nursery.cancel_scope.cancel()

                nursery.start_soon(run)
                seen = context.beats
                while True:
                    await trio.sleep(timeout)
                    if context.beats == seen:
                        nursery.cancel_scope.cancel()
                        break
                    seen = context.beats
        except BaseExceptionGroup as group:
            lone = lone_error(group)
            raise (lone if lone is not None else group) from None
        if result:
            return result[0]
        raise HeartbeatTimeout(
            f"activity {definition.name!r} sent no heartbeat for {timeout:g} s: it is retried"
        )


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Invocation:
    """A request turned into a call: what runs, with which arguments, for how long at most,
    and how its return value becomes the response's data."""

    definition: ActivityDefinition
    function: Callable[..., Any]
    args: tuple[Any, ...]
    timeout: float | None = None
    """Seconds (``start_to_close``); None: no limit."""
    wrap: Callable[[Any], Any] = _same


class Dispatch:
    """What a worker runs: its activity functions, and, for a request's data, the call to
    make (:class:`NonRetryableError` for data no function of the worker accepts)."""

    def __init__(
        self,
        functions: Sequence[tuple[ActivityDefinition, Callable[..., Any]]],
        choose: Callable[[Any], Invocation],
    ) -> None:
        self.functions = list(functions)
        self._choose = choose

    def __call__(self, data: Any) -> Invocation:
        return self._choose(data)

    def resources(self) -> list[tuple[ActivityDefinition, Any]]:
        """The objects whose bound methods are activities and that are context managers
        (``async with`` on the loop their activities run on, or ``with``): entered before
        the worker claims, left when it stops. An asyncpg pool or an HTTP client made once
        per worker lives on such an object."""
        found: dict[int, tuple[ActivityDefinition, Any]] = {}
        for definition, function in self.functions:
            owner = getattr(function, "__self__", None)
            if owner is None or isinstance(owner, type):
                continue
            if hasattr(owner, "__aenter__") or hasattr(owner, "__enter__"):
                found.setdefault(id(owner), (definition, owner))
        return list(found.values())


def one_function(function: Callable[..., Any], *, loop: Loop | None = None) -> Dispatch:
    """A graph's worker: ``function`` gets the request's data."""
    definition = _defined(function, loop)

    def choose(data: Any) -> Invocation:
        return Invocation(definition, function, (data,))

    return Dispatch([(definition, function)], choose)


def by_name(functions: Sequence[Callable[..., Any]], *, loop: Loop | None = None) -> Dispatch:
    """A task queue's activities: a request names one (``{"activity": name, "args": [...],
    "timeout": seconds}``) and is answered ``{"result": value}``. Two functions under one
    name are refused (:class:`ConfigError`), before anything runs."""
    definitions: dict[str, ActivityDefinition] = {}
    pairs: list[tuple[str, Callable[..., Any]]] = []
    for function in functions:
        definition = _defined(function, loop)
        if not definition.explicit:
            try:
                check_own_name(function, "activity")
            except TypeError as error:
                raise ConfigError("<activities>", where(function), str(error)) from None
        definitions.setdefault(definition.name, definition)
        pairs.append((definition.name, function))
    try:
        functions_by_name = index(pairs, "activity")
    except TypeError as error:
        raise ConfigError("<activities>", "activities", str(error)) from None
    named = {name: (definitions[name], f) for name, f in functions_by_name.items()}

    def choose(data: Any) -> Invocation:
        if not isinstance(data, dict) or not isinstance(data.get("args", []), list):
            raise NonRetryableError(f"not an activity request: {data!r:.200}")
        name = data.get("activity")
        found = named.get(name) if isinstance(name, str) else None
        if found is None:
            raise NonRetryableError(
                f"no activity {name!r} runs here; registered: {', '.join(sorted(named))}"
            )
        timeout = data.get("timeout")
        limit = timeout if isinstance(timeout, int | float) and 0 < timeout < math.inf else None
        definition, function = found
        try:
            args = receive_args(function, data.get("args", []), f"activity {name!r}")
        except InvalidPayload as error:  # it would not fit on any attempt
            raise NonRetryableError(str(error)) from None
        return Invocation(definition, function, tuple(args), limit, _as_result)

    return Dispatch(list(named.values()), choose)


def _defined(function: Callable[..., Any], loop: Loop | None) -> ActivityDefinition:
    try:
        return definition_of(function, loop=loop)
    except TypeError as error:
        raise ConfigError("<activities>", where(function), str(error)) from None


def _as_result(value: Any) -> dict[str, Any]:
    return {"result": value}
