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

from mesh.model.durable.calls import Call, Failure, Recorded
from mesh.model.durable.run import Progress, WorkflowRun
from mesh.model.ids import validate_topic
from mesh.model.messages import (
    PRIORITY_REQUEST,
    ActivityRequest,
    ActivityResponse,
    EngineMessage,
    Resume,
    encode,
)
from mesh.model.outcomes import Outgoing
from mesh.model.retry import DEFAULT_RETRY_POLICY

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


@dataclass(slots=True)
class StepPlan:
    """What the transaction must write."""

    outcome: tuple[int, Recorded] | None = None
    """The outcome the message carries, to record at its position."""
    calls: list[tuple[int, Recorded, list[Any]]] = field(default_factory=list)
    """Calls made, to record with their arguments: pending (to be performed) or done
    (markers)."""
    outgoing: list[Outgoing] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)
    duplicate: bool = False
    """The message changed nothing: its position was done already, or is not this run's."""


def outcome_of(message: EngineMessage, known: Recorded, now: float) -> Recorded:
    """The outcome ``message`` carries for the call recorded as ``known``."""
    if isinstance(message, ActivityResponse):
        if message.status == "error":
            info = message.error
            kind = info.type if info else "Error"
            text = info.message if info else "the activity failed"
            failure = Failure(kind, original_message(kind, text), message.code)
            return msgspec.structs.replace(known, done=True, error=failure, at=now)
        data = message.data if isinstance(message.data, dict) else {}
        return msgspec.structs.replace(known, done=True, result=data.get("result"), at=now)
    return msgspec.structs.replace(known, done=True, at=now)


_WHERE = re.compile(r" \(at [^()]*:\d+\)$")


def original_message(kind: str, text: str) -> str:
    """The error's own message, as raised: workers report ``Type: message (at file:line)``
    (the location stays in the dead letter and the log)."""
    text = text.removeprefix(f"{kind}: ")
    return _WHERE.sub("", text)


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
        plan.progress = run.start()
    else:
        position = position_of(message)
        known = run.history.get(position) if position is not None else None
        gid = (
            message.job_gid
            if isinstance(message, ActivityResponse)
            else getattr(message, "gid", "")
        )
        if position is None or known is None or known.done or gid != workflow.gid:
            plan.duplicate = True
            return plan
        outcome = outcome_of(message, known, now)
        plan.outcome = (position, outcome)
        plan.progress = run.deliver(position, outcome)
    plan.calls.extend((position, marker, []) for position, marker in plan.progress.done)
    for position, call in plan.progress.calls:
        plan.calls.append((position, run.history[position], call.args))
        plan.outgoing.append(_perform(workflow, position, call, now=now, new_id=new_id))
    return plan


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
        )
        return Outgoing(
            workflow.app,
            request.topic,
            encode(request),
            PRIORITY_REQUEST,
            max_attempts=policy.maximum_attempts,
        )
    if call.kind == "sleep":
        wake = Resume(
            id=new_id(),
            app=workflow.app,
            kind=WAKE,
            job_id=workflow.key,
            gid=workflow.gid,
            activity_id=str(position),
            dimension="",
            sent_at=now,
        )
        return Outgoing(
            workflow.app,
            workflow_stream(workflow.task_queue),
            encode(wake),
            PRIORITY_REQUEST,
            delay=call.timeout or 0.0,
        )
    raise NotImplementedError(
        f"{call.kind} calls are not run yet: workflows may await activities, sleeps and "
        "gathers of them"
    )


def workflow_result(progress: Progress) -> dict[str, Any]:
    """What the job's data holds when the workflow ended well (``handle.result()``)."""
    return {"result": progress.result}
