"""What starts, signals and cancels a workflow written as code: the job a start inserts,
and the messages on the workflow's task-queue stream. Used by clients (``Mesh``) and by
workflows themselves (children, signals between workflows) in the workflow transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from mesh.errors import DuplicateJob
from mesh.model.durable.plan import (
    CANCEL,
    SIGNAL,
    Workflow,
    start_of,
    to_workflow,
    workflow_stream,
)
from mesh.model.ids import new_guid, new_message_id, validate_job_id
from mesh.model.limits import check_value
from mesh.model.outcomes import Outgoing
from mesh.pg.database import Connection
from mesh.pg.queries import query
from mesh.pg.streams import enqueue_params

_encode = msgspec.json.Encoder().encode


def start(
    conn: Connection,
    app: str,
    name: str,
    args: Sequence[Any],
    *,
    task_queue: str,
    workflow_id: str = "",
) -> str:
    """Start the workflow ``name`` with ``args`` on ``task_queue``; its id. A taken
    ``workflow_id`` is refused (:class:`DuplicateJob`), having written nothing."""
    key = validate_job_id(workflow_id) if workflow_id else new_guid()
    check_value(list(args), "the workflow's arguments")
    with conn.transaction():
        start_message = insert(conn, app, key, name, list(args), task_queue, parent=None)
        if start_message is None:
            raise DuplicateJob(
                f"workflow id {key!r} is taken in app {app!r} (until that job expires); "
                "choose another id, or get a handle to the running one"
            )
        conn.execute(query("enqueue"), enqueue_params([start_message]))
    return key


def insert(
    conn: Connection,
    app: str,
    key: str,
    name: str,
    args: list[Any],
    task_queue: str,
    *,
    parent: dict[str, Any] | None,
) -> Outgoing | None:
    """Insert a workflow's job; the message that starts it, or None when the id is taken."""
    gid = new_guid()
    row = conn.execute(
        query("durable_start"),
        {
            "app": app,
            "key": key,
            "gid": gid,
            "name": name,
            "args": _encode(args).decode(),
            "task_queue": workflow_stream(task_queue),
            "parent": _encode(parent).decode() if parent else None,
        },
    ).fetchone()
    return None if row is None else start_message(app, key, gid, task_queue)


def signal(conn: Connection, app: str, workflow_id: str, signal_id: str, data: Any) -> bool:
    """Send ``data`` as the signal ``signal_id`` to a running workflow; False if there is
    none by that id. A signal its workflow does not wait for yet waits for it."""
    validate_job_id(workflow_id)
    check_value(data, "the signal data")
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
    row = conn.execute(query("durable_target"), {"app": app, "key": workflow_id}).fetchone()
    if row is None:
        return None
    gid, task_queue = row
    target = Workflow(app=app, key=workflow_id, gid=gid, task_queue=task_queue)
    return to_workflow(target, kind, activity_id, data=data, new_id=new_message_id)


def start_message(app: str, key: str, gid: str, task_queue: str) -> Outgoing:
    """The message that runs a workflow generation's start."""
    workflow = Workflow(app=app, key=key, gid=gid, task_queue=task_queue)
    return start_of(workflow, new_id=new_message_id)
