"""What clients ask of the engine directly, each one transaction: ``pub`` (start a job),
``signal`` (resume the hooks waiting on a topic) and ``interrupt`` (end a running job).

``pub`` and ``interrupt`` are :func:`mesh.pg.workflows.process` for one message; ``signal``
finds the hooks through the rules of every deployed version.
"""

from __future__ import annotations

import time
from typing import Any

from mesh.model.durations import pending_seconds
from mesh.model.engine.executor import Engine
from mesh.model.engine.state import DeliverSignal
from mesh.model.ids import new_message_id, validate_job_id
from mesh.model.limits import check_text, check_value
from mesh.model.messages import InterruptJob, StartJob
from mesh.pg import jobs as rows
from mesh.pg.database import Connection
from mesh.pg.queries import query
from mesh.pg.streams import enqueue
from mesh.pg.workflows import AppVersions, Delivery, UnknownHook, no_active_version, process


def pub(
    conn: Connection,
    app: str,
    versions: AppVersions,
    topic: str,
    data: Any,
    *,
    job_id: str = "",
    pending: float | str | None = None,
) -> str:
    """Start a job of the graph subscribed to ``topic``; returns its id. Raises
    :class:`UnknownTopic`, :class:`InputInvalid`, :class:`DuplicateJob`, or
    :class:`NoActiveVersion`, having stored nothing. With ``pending`` (seconds, or a duration
    such as '10 minutes') the job is only reserved: see :func:`start_message`."""
    message = start_message(app, topic, data, job_id=job_id, pending=pending)
    report = process(conn, app, versions, [Delivery(message)])
    result = report.results[0]
    if result.error is not None:
        raise result.error
    return result.job_id


def start_message(
    app: str, topic: str, data: Any, *, job_id: str = "", pending: float | str | None = None
) -> StartJob:
    """The message that starts a job. A ``pending`` start writes the trigger's data and runs
    nothing: the job, status ``pending``, holds its id and data until it is pruned
    ``pending`` after its start (or interrupted, or scrubbed, before that).

    Refuses (:class:`~mesh.errors.InvalidPayload`), before anything is written, data nested
    past the limit or holding text Postgres cannot store, and malformed job ids."""
    check_value(data, "the job data")
    check_text(topic, "the topic")
    if job_id:
        validate_job_id(job_id)
    return StartJob(
        id=new_message_id(),
        app=app,
        topic=topic,
        data=data,
        job_id=job_id,
        pending=None if pending is None else pending_seconds(pending),
    )


def signal(
    conn: Connection, app: str, versions: AppVersions, topic: str, data: Any, code: int = 200
) -> int:
    """Deliver ``data`` to the hooks waiting on ``topic``; returns how many were resumed now
    (0: buffered until the hook registers). :class:`UnknownHook` if no hook listens there.

    The hook rules of every deployed version apply, not only the active one's: a job keeps
    the graph it started with, so a job of an older version may wait on a hook the active
    version changed or dropped."""
    check_value(data, "the signal data")
    check_text(topic, "the signal topic")
    with conn.transaction():
        deployed = conn.execute(query("signal_versions"), {"app": app}).fetchall()
        if not deployed or not deployed[0][1]:
            raise no_active_version(app)
        now = time.time()
        deliveries: dict[str | None, DeliverSignal] = {}
        for version, _ in deployed:
            compiled = versions.get(conn, app, version)
            for delivery in Engine(compiled, now=now, new_id=new_message_id).signal_deliveries(
                topic, data, code
            ):
                deliveries.setdefault(delivery.match_key, delivery)
        if not deliveries:
            active = versions.get(conn, app, deployed[0][0])
            raise UnknownHook(
                f"no hook of app {app!r} listens to signal topic {topic!r} (in any deployed "
                f"version); hook topics of the active version {active.version}: "
                f"{', '.join(sorted(active.hook_rules)) or 'none'}"
            )
        rows.lock_signal_keys(conn, ((app, d.topic, d.match_key) for d in deliveries.values()))
        outgoing = [
            o
            for d in deliveries.values()
            for o in rows.deliver_signal(conn, app, d, new_message_id, now)
        ]
        enqueue(conn, outgoing)
        return len(outgoing)


def interrupt(
    conn: Connection,
    app: str,
    versions: AppVersions,
    job_id: str,
    *,
    reason: str = "interrupted",
    code: int = 410,
    descend: bool = False,
) -> bool:
    """Interrupt a running job now; False if it had already finished. :class:`UnknownJob` if
    there is no such job."""
    validate_job_id(job_id)
    check_text(reason, "the reason")
    message = InterruptJob(
        id=new_message_id(),
        app=app,
        job_id=job_id,
        reason=reason,
        code=code,
        descend=descend,
        sent_at=time.time(),
    )
    result = process(conn, app, versions, [Delivery(message)]).results[0]
    if result.error is not None:
        raise result.error
    return result.outcome == "applied"
