"""``describe()`` of a workflow written as code: its record, the calls it waits for with
the messages that are to answer them, and the live consumers of its task queue."""

from __future__ import annotations

import json
from typing import Any

from mesh.model.jobs import JobRecord, WorkflowStatus
from mesh.model.workflow.description import (
    CallState,
    LastFailure,
    PendingCall,
    Poller,
    WorkflowDescription,
    moment,
    no_pollers_warning,
)
from mesh.model.workflow.plan import activity_stream, workflow_stream
from mesh.pg import presence
from mesh.pg.database import Connection
from mesh.pg.queries import query

_TIMERS = frozenset({"sleep", "condition"})


def describe(conn: Connection, app: str, record: JobRecord) -> WorkflowDescription:
    data = record.data
    task_queue = str(data.get("task_queue") or "")
    generation = data.get("generation")
    running = record.status == "running"
    calls = _pending(conn, app, record) if running else []
    streams = [workflow_stream(task_queue), activity_stream(task_queue)] if task_queue else []
    pollers = [
        Poller(c.stream, c.node, moment(c.seen_at) or record.updated_at)
        for c in presence.consumers(conn, app, streams)
    ]
    return WorkflowDescription(
        workflow_id=record.key,
        name=record.topic,
        task_queue=task_queue,
        status=WorkflowStatus(record.status),
        generation=int(generation.get("number", 0)) if isinstance(generation, dict) else 0,
        created_at=record.created_at,
        updated_at=record.updated_at,
        completed_at=record.completed_at,
        result=data.get("result") if record.status == "done" else None,
        error=record.error,
        pending=calls,
        pollers=pollers,
        warnings=_warnings(task_queue, running, calls, pollers) if task_queue else [],
    )


def _pending(conn: Connection, app: str, record: JobRecord) -> list[PendingCall]:
    params = {"app": app, "key": record.key}
    messages: dict[str, tuple[Any, ...]] = {}
    for row in conn.execute(query("workflow_describe_messages"), params):
        stream, kind, position, gid, *rest = row
        if gid == record.gid and kind in ("request", "resume") and position:
            messages.setdefault(position, (stream, *rest))
    found = []
    for position, kind, name, args, since in conn.execute(query("workflow_describe_calls"), params):
        message = messages.get(str(position))
        found.append(_call(position, kind, name, json.loads(args), since, message))
    return found


def _call(
    position: int,
    kind: str,
    name: str,
    args: list[Any],
    since: float,
    message: tuple[Any, ...] | None,
) -> PendingCall:
    base: dict[str, Any] = {
        "position": position,
        "kind": kind,
        "name": name,
        "args": args,
        "since": moment(since),
    }
    if kind != "activity":
        due = moment(message[3]) if message is not None and kind in _TIMERS else None
        return PendingCall(**base, state="waiting", due_at=due)
    if message is None:
        return PendingCall(**base, state="scheduled")
    _, attempts, maximum, visible_at, owner, expires_at, failure = message
    state: CallState
    if owner is not None:
        state = "running"
    elif attempts > 0:
        state = "retrying"
    else:
        state = "scheduled"
    return PendingCall(
        **base,
        state=state,
        attempt=attempts,
        maximum_attempts=maximum or None,
        next_attempt_at=moment(visible_at) if state == "retrying" else None,
        node=owner,
        lease_expires_at=moment(expires_at),
        last_failure=_last_failure(failure),
    )


def _last_failure(text: str | None) -> LastFailure | None:
    if not text:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return None
    if not isinstance(found, dict):
        return None
    return LastFailure(
        type=str(found.get("type", "Error")),
        message=str(found.get("message", "")),
        traceback=str(found.get("traceback", "")),
        attempt=found["attempt"] if isinstance(found.get("attempt"), int) else 0,
        at=moment(found["at"]) if isinstance(found.get("at"), int | float) else None,
    )


def _warnings(
    task_queue: str, running: bool, calls: list[PendingCall], pollers: list[Poller]
) -> list[str]:
    if not running:
        return []
    warnings = []
    served = {p.stream for p in pollers}
    stream = workflow_stream(task_queue)
    if stream not in served:
        warnings.append(no_pollers_warning(task_queue, stream))
    activities = activity_stream(task_queue)
    if activities not in served and any(c.kind == "activity" for c in calls):
        warnings.append(
            f"no live node runs the activities of task queue {task_queue!r} (no pollers of "
            f"stream {activities!r}): its activity calls wait until one does"
        )
    for call in calls:
        failure = call.last_failure
        if failure is not None:
            retry = (
                f"; next attempt at {call.next_attempt_at:%H:%M:%S}" if call.next_attempt_at else ""
            )
            warnings.append(
                f"activity {call.name!r} (position {call.position}) failed attempt "
                f"{failure.attempt}: {failure.type}: {failure.message}{retry}"
            )
    return warnings
