"""One durable step, decided: what a message on a workflow's stream does to the workflow.

The runtime locks the workflow's job, finds its run (resident, or rebuilt from the recorded
calls), and asks :func:`plan_step` what to write for the message it claimed:

- the outcome it carries (an activity's response, a timer's wake), recorded at its position
  once (a duplicate finds the position done and changes nothing);
- the calls the workflow made next, each recorded (pending) at its position, and the
  messages that perform them: a request on the activity stream of its task queue whose
  response comes back on the workflow's stream, or a wake after a sleep;
- the workflow's end, when it ended (its result, its failure, or its next run's arguments).

Streams follow HotMesh's names: a task queue ``q`` runs workflows on stream ``q`` and
activities on ``q-activity``. An activity request carries ``{"activity": name, "args": [...]}``;
its response carries ``{"result": value}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from mesh.model.ids import validate_topic
from mesh.model.messages import (
    PRIORITY_REQUEST,
    ActivityRequest,
    ActivityResponse,
    EngineMessage,
    Resume,
    StartJob,
    encode,
)
from mesh.model.outcomes import Outgoing
from mesh.model.retry import DEFAULT_RETRY_POLICY
from mesh.model.workflow.calls import Call, Failure, Recorded, failure_from
from mesh.model.workflow.run import Progress, WorkflowRun

WAKE = "wake"
"""The kind of the :class:`Resume` that ends a durable sleep."""


def workflow_stream(task_queue: str) -> str:
    """The stream a task queue's workflows run from (their starts, outcomes and wakes)."""
    return validate_topic(task_queue)


def activity_stream(task_queue: str) -> str:
    """The stream a task queue's activities run from."""
    return validate_topic(f"{task_queue}-activity")


@dataclass(frozen=True, slots=True)
class Workflow:
    """The workflow's job, as the runtime loaded it under its lock."""

    app: str
    key: str
    """The workflow id."""
    gid: str
    """The generation's id (a continued workflow gets a new one)."""
    task_queue: str
    trace: str = ""
    """The trace context its spans join (telemetry; '' without)."""


@dataclass(slots=True)
class StepPlan:
    """What the transaction must write."""

    outcomes: list[tuple[int, Recorded]] = field(default_factory=list)
    """Outcomes to record at their positions (the message's, and any that followed at once)."""
    calls: list[tuple[int, Recorded, list[Any]]] = field(default_factory=list)
    """Calls made, to record with their arguments: pending (to be performed) or done
    (markers)."""
    outgoing: list[Outgoing] = field(default_factory=list)
    timers: dict[int, Outgoing] = field(default_factory=dict)
    """The timeouts of the conditions made, by position (sent unless the condition is
    answered in the same step, by a signal that waited for it)."""
    answered: list[int] = field(default_factory=list)
    """Conditions a signal answered: their timeouts, if queued, are withdrawn."""
    effects: list[tuple[int, Call]] = field(default_factory=list)
    """Calls the runtime performs in the database itself: signals to other workflows,
    children, and conditions (a signal may be waiting for them already)."""
    buffered: tuple[str, Any] | None = None
    """A signal nobody waits for yet: (signal id, data), kept for the condition to come."""
    progress: Progress = field(default_factory=Progress)
    duplicate: bool = False
    """The message changed nothing: its position was done already, or is not this run's."""


SIGNAL = "signal"
TERMINATE = "terminate"
"""Ends the workflow at once, as interrupted; its code does not see it (unlike a cancel)."""
"""The kind of the :class:`Resume` that carries a signal to a workflow (``activity_id`` is
the signal id, ``data`` its data)."""
TIMEOUT = "timeout"
"""The kind of the :class:`Resume` that ends a condition's wait."""
CANCEL = "cancel"
"""The kind of the :class:`Resume` that asks a workflow to stop (``handle.cancel()``)."""
CHILD = "child"
"""The kind of the :class:`Resume` that carries a child's end to its parent (``data``:
``{"result": value}`` or ``{"error": {type, message, code}}``)."""

RUNTIME_KINDS = frozenset({"signal", "child", "start_child", "condition"})


def outcome_of(message: EngineMessage, known: Recorded, now: float) -> Recorded:
    """The outcome ``message`` carries for the call recorded as ``known``."""
    if isinstance(message, ActivityResponse):
        if message.status == "error":
            info = message.error
            kind = info.type if info else "Error"
            text = info.message if info else "the activity failed"
            failure = Failure(
                kind,
                original_message(kind, text),
                message.code,
                details=info.details if info else None,
                non_retryable=not info.retryable if info else False,
                traceback=info.traceback if info else "",
                activity=known.name,
            )
            return msgspec.structs.replace(known, done=True, error=failure, at=now)
        data = message.data if isinstance(message.data, dict) else {}
        return msgspec.structs.replace(known, done=True, result=data.get("result"), at=now)
    if isinstance(message, Resume) and message.kind == TIMEOUT:
        return msgspec.structs.replace(known, done=True, result={"timed_out": True}, at=now)
    if isinstance(message, Resume) and message.kind == CHILD:
        data = message.data if isinstance(message.data, dict) else {}
        failed = failure_from(data.get("error"))
        if failed is not None:
            failed = msgspec.structs.replace(failed, activity=known.name)
            return msgspec.structs.replace(known, done=True, error=failed, at=now)
        return msgspec.structs.replace(known, done=True, result=data.get("result"), at=now)
    return msgspec.structs.replace(known, done=True, at=now)


_WHERE = re.compile(r" \(at [^()]*:\d+\)$")


def original_message(kind: str, text: str) -> str:
    """The error's own message, as raised: workers report ``Type: message (at file:line)``
    (the location stays in the dead letter and the log)."""
    text = text.removeprefix(f"{kind}: ")
    return _WHERE.sub("", text)


ANSWERS = {"activity": "response", "sleep": WAKE, "condition": TIMEOUT, "child": CHILD}
"""What ends each kind of call: an activity's response, a sleep's wake, a condition's
timeout (its signal is matched by id, see :meth:`WorkflowRun.waiting_for`), a child's end."""


def answers(message: EngineMessage, known: Recorded) -> bool:
    """Whether ``message`` is the kind of outcome the call ``known`` waits for."""
    if isinstance(message, ActivityResponse):
        return known.kind == "activity"
    return isinstance(message, Resume) and ANSWERS.get(known.kind) == message.kind


def position_of(message: EngineMessage) -> int | None:
    """The position an outcome message is for (None: not an outcome, or malformed)."""
    activity = getattr(message, "activity_id", None)
    if isinstance(activity, str) and activity.isdigit():
        return int(activity)
    return None


def plan_step(
    run: WorkflowRun,
    workflow: Workflow,
    message: EngineMessage | None,
    *,
    now: float,
    new_id: Callable[[], str],
) -> StepPlan:
    """Apply ``message`` (None: the workflow's start) to ``run``, which the caller has
    started (replayed) already when it was not resident."""
    plan = StepPlan()
    if message is None:
        _advance(plan, run, workflow, run.start(), now=now, new_id=new_id)
        return plan
    gid = message.job_gid if isinstance(message, ActivityResponse) else getattr(message, "gid", "")
    to_workflow = isinstance(message, Resume) and message.kind in (SIGNAL, CANCEL)
    if gid != workflow.gid and not to_workflow:
        # An outcome for an earlier generation's call. A signal or a cancel is addressed to
        # the workflow, whatever generation was current when it was sent: the current one
        # takes it (it may have continued as new meanwhile).
        plan.duplicate = True
        return plan
    if isinstance(message, Resume) and message.kind == CANCEL:
        _advance(plan, run, workflow, run.cancel(), now=now, new_id=new_id)
        return plan
    if isinstance(message, Resume) and message.kind == SIGNAL:
        position = run.waiting_for(message.activity_id)
        if position is None:
            plan.buffered = (message.activity_id, message.data)
            return plan
        outcome = msgspec.structs.replace(
            run.history[position], done=True, result={"data": message.data}, at=now
        )
        plan.answered.append(position)
    else:
        position = position_of(message)
        known = run.history.get(position) if position is not None else None
        if position is None or known is None or known.done or not answers(message, known):
            plan.duplicate = True  # not an outcome this call waits for: nothing happens
            return plan
        outcome = outcome_of(message, known, now)
    plan_outcome(plan, run, workflow, position, outcome, now=now, new_id=new_id)
    return plan


def plan_outcome(
    plan: StepPlan,
    run: WorkflowRun,
    workflow: Workflow,
    position: int,
    outcome: Recorded,
    *,
    now: float,
    new_id: Callable[[], str],
) -> None:
    """Record ``outcome`` at ``position`` and go on with the run (the runtime calls this too,
    for a call it completed at once: a signal sent, a child started, a buffered signal)."""
    plan.outcomes.append((position, outcome))
    _advance(plan, run, workflow, run.deliver(position, outcome), now=now, new_id=new_id)


def _advance(
    plan: StepPlan,
    run: WorkflowRun,
    workflow: Workflow,
    progress: Progress,
    *,
    now: float,
    new_id: Callable[[], str],
) -> None:
    plan.progress = progress
    plan.calls.extend((position, marker, []) for position, marker in progress.done)
    for position, call in progress.calls:
        plan.calls.append((position, run.history[position], call.args))
        if call.kind in RUNTIME_KINDS:
            plan.effects.append((position, call))
            if call.kind == "condition" and call.timeout is not None:
                plan.timers[position] = _resume(
                    workflow, position, TIMEOUT, call.timeout, now, new_id
                )
        else:
            plan.outgoing.append(_perform(workflow, position, call, now=now, new_id=new_id))


def _resume(
    workflow: Workflow,
    position: int,
    kind: str,
    delay: float,
    now: float,
    new_id: Callable[[], str],
) -> Outgoing:
    return to_workflow(workflow, kind, str(position), delay=delay, now=now, new_id=new_id)


def to_workflow(
    workflow: Workflow,
    kind: str,
    activity_id: str = "",
    *,
    data: Any = None,
    delay: float = 0.0,
    now: float = 0.0,
    new_id: Callable[[], str],
) -> Outgoing:
    """A :class:`Resume` of ``kind`` for the current generation of ``workflow``, on its
    task queue's stream (a wake, a timeout, a signal, a cancel, a child's answer)."""
    message = Resume(
        id=new_id(),
        app=workflow.app,
        kind=kind,
        job_id=workflow.key,
        gid=workflow.gid,
        activity_id=activity_id,
        dimension="",
        data=data,
        sent_at=now,
    )
    return Outgoing(
        workflow.app, workflow_stream(workflow.task_queue), encode(message), delay=delay
    )


def start_of(workflow: Workflow, *, new_id: Callable[[], str]) -> Outgoing:
    """The message that runs the start of ``workflow``'s current generation."""
    message = StartJob(
        id=new_id(), app=workflow.app, topic="", data={"gid": workflow.gid}, job_id=workflow.key
    )
    return Outgoing(workflow.app, workflow_stream(workflow.task_queue), encode(message))


def child_answer(
    parent: Workflow,
    position: int,
    result: Any,
    error: dict[str, Any] | None,
    *,
    new_id: Callable[[], str],
) -> Outgoing:
    """What a child's end tells the await at ``position`` of its ``parent``."""
    data = {"result": result} if error is None else {"error": error}
    return to_workflow(parent, CHILD, str(position), data=data, new_id=new_id)


def taken_id(workflow_id: str) -> Failure:
    """The failure of a child call whose workflow id another workflow holds."""
    return Failure("DuplicateJob", f"workflow id {workflow_id!r} is taken", 409)


def no_target(workflow_id: str) -> Failure:
    """The failure of a signal call to a workflow that is not running."""
    return Failure("UnknownJob", f"no running workflow {workflow_id!r}", 404)


def _perform(
    workflow: Workflow, position: int, call: Call, *, now: float, new_id: Callable[[], str]
) -> Outgoing:
    """The message that performs ``call``."""
    if call.kind == "activity":
        policy = call.retry or DEFAULT_RETRY_POLICY
        request = ActivityRequest(
            id=new_id(),
            app=workflow.app,
            topic=activity_stream(call.task_queue or workflow.task_queue),
            data={"activity": call.name, "args": call.args, "timeout": call.timeout},
            job_id=workflow.key,
            activity_id=str(position),
            reply_to=workflow_stream(workflow.task_queue),
            retry=policy,
            sent_at=now,
            job_gid=workflow.gid,
            trace=workflow.trace,
        )
        return Outgoing(
            workflow.app,
            request.topic,
            encode(request),
            PRIORITY_REQUEST,
            max_attempts=policy.maximum_attempts,
        )
    if call.kind == "sleep":
        return _resume(workflow, position, WAKE, call.timeout or 0.0, now, new_id)
    raise ValueError(f"a {call.kind} call is performed by the runtime, not by a message")


def workflow_result(progress: Progress) -> dict[str, Any]:
    """What the job's data holds when the workflow ended well (``handle.result()``)."""
    return {"result": progress.result}
