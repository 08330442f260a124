"""Start a coroutine inline, and finish it in the same task if it has to wait.

Spawning a trio task costs about as much as handling a small message, and most handlers of a
claimed batch finish without ever waiting (pure computation, or an answer already at hand). So
a batch task starts each handler itself with :func:`first_step`. If the handler finishes
there, no task was needed. If it yields to trio (it waits for I/O), the batch task hands the
*rest* of the batch to a new task and finishes this handler with :func:`resume`. Every message
still starts at once, so concurrency stays what the consumer's settings say. Measured on
``mesh bench streams``: about 11 % less CPU per message.

Both steps run in the same task, so the handler sees one consistent trio context (current
task, cancel scopes, context variables), exactly as with ``await``.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Finished(Generic[T]):
    """The coroutine completed within its first step."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


class Waiting(Generic[T]):
    """The coroutine yielded ``trap`` to trio; finish it with ``await resume(waiting)``."""

    __slots__ = ("coroutine", "trap")

    def __init__(self, coroutine: Coroutine[Any, Any, T], trap: Any) -> None:
        self.coroutine = coroutine
        self.trap = trap


def first_step(coroutine: Coroutine[Any, Any, T]) -> Finished[T] | Waiting[T]:
    """Run ``coroutine`` until it finishes or first yields. Its exceptions propagate."""
    try:
        trap = coroutine.send(None)
    except StopIteration as stop:
        return Finished(stop.value)
    return Waiting(coroutine, trap)


@types.coroutine
def resume(waiting: Waiting[T]) -> Generator[Any, Any, T]:
    """Continue a waiting coroutine in the current task: what ``await`` would have done."""
    coroutine, trap = waiting.coroutine, waiting.trap
    while True:
        try:
            sent = yield trap
        except BaseException as error:  # Cancelled and friends go into the coroutine
            try:
                trap = coroutine.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
        else:
            try:
                trap = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
