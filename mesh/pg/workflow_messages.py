"""What starts, signals and cancels a workflow written as code: the job a start inserts,
and the messages on the workflow's task-queue stream. Used by clients (``Mesh``) and by
workflows themselves (children, signals between workflows) in the workflow transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from mesh.errors import DuplicateJob
from mesh.model.ids import new_guid, new_message_id, validate_job_id
from mesh.model.limits import check_text, json_text
from mesh.model.outcomes import Outgoing
from mesh.model.workflow.plan import (
    CANCEL,
    SIGNAL,
    TERMINATE,
    Workflow,
    start_of,
    to_workflow,
    workflow_stream,
)
from mesh.pg.batch import roll_back
from mesh.pg.database import Connection
from mesh.pg.queries import query
from mesh.pg.streams import enqueue_params

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class WorkflowStart:
    """A client's start of a workflow, checked: ``key`` is its id (chosen or new)."""

    key: str
    name: str
    args: str
    """The arguments, as JSON text."""
    task_queue: str
    trace: str = ""
    """The trace context the workflow's spans join (telemetry)."""

    @classmethod
    def of(
        cls,
        name: str,
        args: Sequence[Any],
        *,
        task_queue: str,
        workflow_id: str = "",
        trace: str = "",
    ) -> WorkflowStart:
        """The start of ``name`` with ``args`` on ``task_queue``; refuses a malformed id,
        name or task queue, or arguments that are not JSON, before anything reaches the
        database."""
        key = validate_job_id(workflow_id) if workflow_id else new_guid()
        workflow_stream(task_queue)  # a task queue that cannot name a stream is refused
        check_text(name, "the workflow's name")
        arguments = json_text(list(args), "the workflow's arguments")
        return cls(key, name, arguments, task_queue, trace)


def start(
    conn: Connection,
    app: str,
    name: str,
    args: Sequence[Any],
    *,
    task_queue: str,
    workflow_id: str = "",
    trace: str = "",
) -> str:
    """Start the workflow ``name`` with ``args`` on ``task_queue``; its id. A taken
    ``workflow_id`` is refused (:class:`DuplicateJob`), having written nothing."""
    begun = WorkflowStart.of(
        name, args, task_queue=task_queue, workflow_id=workflow_id, trace=trace
    )
    (outcome,) = start_many(conn, app, [begun])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def start_many(
    conn: Connection, app: str, starts: Sequence[WorkflowStart]
) -> list[str | Exception]:
    """Start workflows in one transaction (one statement for the jobs, one for their
    messages, two round trips): each one's id, or :class:`DuplicateJob` for a taken id
    (that start writes nothing; the others commit)."""
    gids = [new_guid() for _ in starts]
    rows = [
        {
            "ord": index,
            "key": begun.key,
            "gid": gid,
            "name": begun.name,
            "args": msgspec.Raw(begun.args.encode()),
            "task_queue": workflow_stream(begun.task_queue),
            "trace": begun.trace,
        }
        for index, (begun, gid) in enumerate(zip(starts, gids, strict=True))
    ]
    outcomes: list[str | Exception] = []
    messages: list[Outgoing] = []
    try:
        with conn.pipeline():  # two round trips: BEGIN and the jobs; the messages and COMMIT
            conn.execute("BEGIN")
            cursor = conn.execute(
                query("workflow_start_many"), {"app": app, "rows": _encode(rows).decode()}
            )
            inserted = {row[0] for row in cursor.fetchall()}
            for begun, gid in zip(starts, gids, strict=True):
                if gid in inserted:
                    outcomes.append(begun.key)
                    messages.append(start_message(app, begun.key, gid, begun.task_queue))
                else:
                    outcomes.append(
                        DuplicateJob(
                            f"workflow id {begun.key!r} is taken in app {app!r} (until that "
                            "job expires); choose another id, or get a handle to the running one"
                        )
                    )
            if messages:
                conn.execute(query("enqueue"), enqueue_params(messages))
            conn.execute("COMMIT")
    except BaseException:
        roll_back(conn)
        raise
    return outcomes


def insert(
    conn: Connection,
    app: str,
    key: str,
    name: str,
    args: list[Any],
    task_queue: str,
    *,
    parent: dict[str, Any] | None = None,
    trace: str = "",
) -> Outgoing | None:
    """Insert a workflow's job; the message that starts it, or None when the id is taken."""
    gid, params = _start_params(app, key, name, _encode(args).decode(), task_queue, parent)
    params["trace"] = trace
    row = conn.execute(query("workflow_start"), params).fetchone()
    return None if row is None else start_message(app, key, gid, task_queue)


def _start_params(
    app: str,
    key: str,
    name: str,
    args: str,
    task_queue: str,
    parent: dict[str, Any] | None,
) -> tuple[str, dict[str, Any]]:
    """A new generation id and the ``durable_start`` parameters of a workflow's job."""
    gid = new_guid()
    return gid, {
        "app": app,
        "key": key,
        "gid": gid,
        "name": name,
        "args": args,
        "task_queue": workflow_stream(task_queue),
        "parent": _encode(parent).decode() if parent else None,
    }


def signal(conn: Connection, app: str, workflow_id: str, signal_id: str, data: Any) -> bool:
    """Send ``data`` as the signal ``signal_id`` to a running workflow; False if there is
    none by that id. A signal its workflow does not wait for yet waits for it."""
    validate_job_id(workflow_id)
    json_text(data, "the signal data")
    message = signal_message(conn, app, workflow_id, signal_id, data)
    if message is None:
        return False
    conn.execute(query("enqueue"), enqueue_params([message]))
    return True


def cancel(conn: Connection, app: str, workflow_id: str) -> bool:
    """Ask a running workflow to stop: it sees :class:`WorkflowCancelled` at its next
    durable call (at once, if it waits for one). False if there is none by that id."""
    validate_job_id(workflow_id)
    message = message_to(conn, app, workflow_id, CANCEL, "", None)
    if message is None:
        return False
    conn.execute(query("enqueue"), enqueue_params([message]))
    return True


def terminate(conn: Connection, app: str, workflow_id: str, reason: str) -> bool:
    """End a running workflow as interrupted, its code not told (its resident run is
    dropped, its parent answered, its waiters woken); False if there is none by that id."""
    validate_job_id(workflow_id)
    check_text(reason, "the reason")
    message = message_to(conn, app, workflow_id, TERMINATE, "", {"reason": reason})
    if message is None:
        return False
    conn.execute(query("enqueue"), enqueue_params([message]))
    return True


def signal_message(
    conn: Connection, app: str, workflow_id: str, signal_id: str, data: Any
) -> Outgoing | None:
    """The message that carries a signal to a running workflow (None: none by that id)."""
    return message_to(conn, app, workflow_id, SIGNAL, signal_id, data)


def message_to(
    conn: Connection, app: str, workflow_id: str, kind: str, activity_id: str, data: Any
) -> Outgoing | None:
    """A message of ``kind`` on the stream of the running workflow ``workflow_id``, for its
    current generation (None: no running workflow by that id)."""
    row = conn.execute(query("workflow_target"), {"app": app, "key": workflow_id}).fetchone()
    if row is None:
        return None
    gid, task_queue = row
    target = Workflow(app=app, key=workflow_id, gid=gid, task_queue=task_queue)
    return to_workflow(target, kind, activity_id, data=data, new_id=new_message_id)


def start_message(app: str, key: str, gid: str, task_queue: str) -> Outgoing:
    """The message that runs a workflow generation's start."""
    workflow = Workflow(app=app, key=key, gid=gid, task_queue=task_queue)
    return start_of(workflow, new_id=new_message_id)
