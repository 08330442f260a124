"""Driving a workflow function: replay from the history, then run in place.

:class:`WorkflowRun` owns one workflow's coroutine. The coroutine yields a :class:`Suspend`
(one call, or the calls of a ``gather``) whenever it awaits durable calls. For each call the
run takes the next position and:

- if the history has it, checks it is the same call (kind, name, argument shape; else the
  workflow stops with :class:`~mesh.errors.NondeterminismError`) and, once every call of the
  suspension has an outcome, sends the outcomes back at once: replay costs no round trip;
- if not, reports it as new (:attr:`Progress.calls`): the runtime records and performs it, and
  the coroutine stays suspended until :meth:`WorkflowRun.deliver` hands it the outcome.

So the function runs from the top once; it is replayed only when its coroutine is gone (a
crash, an eviction, another node), and then only its recorded prefix.
"""

from __future__ import annotations

import contextvars
import functools
import random
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from mesh.errors import (
    InvalidPayload,
    NondeterminismError,
    WorkflowCancelled,
)
from mesh.model.payloads import receive_args, to_json
from mesh.model.workflow.calls import Call, Failure, Recorded, failure_of, recorded
from mesh.model.workflow.guard import awaited, guarded, restricted

_current: contextvars.ContextVar[WorkflowRun] = contextvars.ContextVar("mesh_workflow_run")


def current_run() -> WorkflowRun:
    """The run whose workflow code is executing; :class:`RuntimeError` outside a workflow."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError(
            "this function only works inside a workflow function run by mesh"
        ) from None


@dataclass(frozen=True, slots=True)
class Suspend:
    """What a workflow's coroutine yields: the calls it waits for (several for a gather)."""

    calls: tuple[Call, ...]
    return_exceptions: bool = False


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """What a workflow may know about itself (``workflow.info()``)."""

    workflow_id: str
    workflow_name: str
    task_queue: str
    generation: int = 0
    """How many times it continued as new."""
    started_at: float = 0.0
    run_id: str = ""
    """The generation's id (a continued workflow gets a new one)."""


class ContinueAsNew(BaseException):
    """Raised by ``workflow.continue_as_new``: end this run, start the next with ``args``.
    A BaseException so that ``except Exception`` in workflow code does not swallow it."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        super().__init__("continue as new")
        self.args_for_next = args


@dataclass(slots=True)
class Progress:
    """What the runtime must do after the run advanced."""

    calls: list[tuple[int, Call]] = field(default_factory=list)
    """New calls, by position, to record and perform (markers and signals are already done:
    see :attr:`done`)."""
    done: list[tuple[int, Recorded]] = field(default_factory=list)
    """Calls that completed as they were made (patch markers), to record as they are."""
    finished: bool = False
    result: Any = None
    failure: Failure | None = None
    continue_with: tuple[Any, ...] | None = None
    cancelled: bool = False


class WorkflowRun:
    """One run of a workflow function over its recorded history."""

    def __init__(
        self,
        function: Callable[..., Coroutine[Any, Any, Any]],
        args: list[Any],
        info: WorkflowInfo,
        history: Mapping[int, Recorded] | None = None,
    ) -> None:
        self.info = info
        self.history: dict[int, Recorded] = dict(history or {})
        self.position = 0
        """The position the next call takes."""
        self.now = info.started_at
        self.cancel_requested = False
        self.applied = 0
        """Steps applied to the workflow's job when this run last saw it (the runtime's
        check that no other node moved the workflow on since)."""
        self._waiting: tuple[int, ...] = ()
        """The positions of the suspension's calls, in call order."""
        self._waited: frozenset[int] = frozenset()
        self._open = 0
        """How many of them have no outcome yet (kept as a count: a gather of thousands
        must not scan its calls at every outcome)."""
        self._suspension: Suspend | None = None
        self._progress = Progress()
        self._function = function
        self._args = args
        self._coroutine: Coroutine[Any, Any, Any] | None = None
        """Made at :meth:`start` (a coroutine never started would warn when collected)."""
        self.finished = False

    @functools.cached_property
    def random(self) -> random.Random:
        """The workflow's own generator, seeded by its id and generation (made when first
        used: most workflows never draw, and seeding is not free)."""
        return random.Random(f"{self.info.workflow_id}/{self.info.run_id or self.info.generation}")

    # -- driving ------------------------------------------------------------------------------

    def start(self) -> Progress:
        """Run the function until it waits for an outcome not yet recorded, or ends."""
        what = f"workflow {self.info.workflow_name!r}"
        try:
            args = receive_args(self._function, self._args, what)
        except InvalidPayload as error:
            coroutine = self._coroutine = _raising(error)
        else:
            coroutine = self._coroutine = self._function(*args)
        return self._step(lambda: coroutine.send(None))

    def deliver(self, position: int, outcome: Recorded) -> Progress:
        """The outcome of a call the run waits for. Outcomes of calls it does not wait for
        yet (a gather's others) are kept; the run goes on once its suspension is complete."""
        before = self.history.get(position, _PENDING)
        self.history[position] = outcome
        if position in self._waited and outcome.done and not before.done:
            self._open -= 1
        suspension = self._suspension
        if suspension is None or position not in self._waited or not self._complete():
            return Progress()
        return self._step(self._answer(suspension))

    def cancel(self) -> Progress:
        """Ask the workflow to stop: it sees :class:`WorkflowCancelled` at its next durable
        call (now, if it waits for one)."""
        self.cancel_requested = True
        if self._suspension is None or self.finished:
            return Progress()
        return self._step(_thrower(self._started(), WorkflowCancelled("cancelled")))

    def close(self) -> None:
        """Drop the coroutine (evicted from memory): a later run replays the history."""
        if self._coroutine is not None:
            self._coroutine.close()

    def _started(self) -> Coroutine[Any, Any, Any]:
        if self._coroutine is None:
            raise RuntimeError("the run was not started")
        return self._coroutine

    @property
    def open_calls(self) -> int:
        """The calls the run waits for whose outcomes are not recorded yet."""
        return self._open

    def waiting_for(self, signal_id: str) -> int | None:
        """The first position where the run waits for the signal ``signal_id``, if any (a
        call without an outcome is always one of the suspension's)."""
        for position in self._waiting:
            known = self.history[position]
            if known.kind == "condition" and known.name == signal_id and not known.done:
                return position
        return None

    def timers_pending(self) -> bool:
        """Whether a sleep or a condition of the run has no outcome yet: its wake or its
        timeout may still be queued."""
        return self._open > 0 and any(
            self.history[p].kind in ("sleep", "condition") and not self.history[p].done
            for p in self._waiting
        )

    def _complete(self) -> bool:
        return self._open == 0

    def _step(self, advance: Callable[[], Any]) -> Progress:
        """Advance the coroutine, then keep advancing while what it waits for is recorded."""
        self._progress = progress = Progress()
        token = _current.set(self)
        try:
            while True:
                try:
                    with guarded():
                        yielded = advance()
                except StopIteration as stop:
                    what = f"the result of workflow {self.info.workflow_name!r}"
                    try:
                        result = to_json(stop.value, what)
                    except InvalidPayload as error:
                        return self._end(progress, failure=_failure(error))
                    return self._end(progress, result=result)
                except ContinueAsNew as again:
                    return self._end(progress, continue_with=again.args_for_next)
                except WorkflowCancelled:
                    return self._end(progress, cancelled=True)
                except NondeterminismError:
                    raise  # the workflow is not the recorded one: the runtime stops it
                except Exception as error:
                    return self._end(progress, failure=_failure(restricted(error) or error))
                if not isinstance(yielded, Suspend):
                    advance = _thrower(self._started(), awaited(yielded))
                    continue
                if self.cancel_requested:
                    advance = _thrower(self._started(), WorkflowCancelled("cancelled"))
                    continue
                self._suspend(yielded, progress)
                if not self._complete():
                    return progress
                advance = self._answer(yielded)
        finally:
            _current.reset(token)

    def _answer(self, suspension: Suspend) -> Callable[[], Any]:
        """How the coroutine hears the outcomes of ``suspension``'s calls: their values in
        call order, or the first failure raised (all of them returned as exceptions, with
        ``return_exceptions``). ``workflow.now()`` moves to the latest outcome's time."""
        outcomes = [self.history[p] for p in self._waiting]
        self.now = max([self.now, *(o.at for o in outcomes)])
        failures = [o.error for o in outcomes if o.error is not None]
        if failures and not suspension.return_exceptions:
            return _thrower(self._started(), failures[0].as_error())
        values = [o.error.as_error() if o.error else o.result for o in outcomes]
        coroutine = self._started()
        return lambda: coroutine.send(values)

    def _suspend(self, suspension: Suspend, progress: Progress) -> None:
        positions: list[int] = []
        for call in suspension.calls:
            position = self.take_position()
            known = self.history.get(position)
            if known is not None:
                check_same(position, known, call)
            else:
                self.history[position] = recorded(call)
                progress.calls.append((position, call))
            positions.append(position)
        self._suspension = suspension
        self._waiting = tuple(positions)
        self._waited = frozenset(positions)
        self._open = sum(1 for p in positions if not self.history[p].done)

    def _end(self, progress: Progress, **how: Any) -> Progress:
        self.finished = True
        self._suspension = None
        progress.finished = True
        for name, value in how.items():
            setattr(progress, name, value)
        return progress

    # -- what workflow code reads (through mesh.model.workflow.api) ----------------------------

    def take_position(self) -> int:
        position = self.position
        self.position += 1
        return position

    def patched(self, change_id: str) -> bool:
        """True where the code with the change runs: new runs (a marker is recorded), and
        replays that recorded the marker; False when replaying a run made before it."""
        known = self.history.get(self.position)
        if known is not None:
            if known.kind == "patch" and known.name == change_id:
                self.position += 1
                return True
            return False  # recorded before the change: take the old path
        marker = Recorded(kind="patch", name=change_id, shape="[]", done=True, at=self.now)
        position = self.take_position()
        self.history[position] = marker
        self._progress.done.append((position, marker))
        return True

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self.random.getrandbits(128), version=4)


_PENDING = Recorded(kind="activity", name="", shape="", done=False)


def check_same(position: int, known: Recorded, call: Call) -> None:
    """:class:`NondeterminismError` unless ``call`` is the one recorded at ``position``."""
    if (known.kind, known.name, known.shape) != (call.kind, call.name, call.shape):
        raise NondeterminismError(
            f"the workflow is not the one that was recorded: at position {position} it made "
            f"{call.describe()}, the history has {known.describe()}. Keep the recorded order "
            "of durable calls, or branch with workflow.patched(change_id) for new runs"
        )


def _thrower(coroutine: Coroutine[Any, Any, Any], error: BaseException) -> Callable[[], Any]:
    return lambda: coroutine.throw(error)


async def _raising(error: BaseException) -> Any:
    raise error


def _failure(error: BaseException) -> Failure:
    return failure_of(error)
