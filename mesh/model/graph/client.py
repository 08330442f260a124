"""What a client asks of the engine directly, as messages checked before anything is written:
start a job (:func:`start_message`) and interrupt one (:func:`interrupt_message`)."""

from __future__ import annotations

from typing import Any

from mesh.model.durations import Duration, pending_seconds
from mesh.model.ids import new_message_id, validate_job_id
from mesh.model.limits import check_text, check_value
from mesh.model.messages import InterruptJob, StartJob


def start_message(
    app: str,
    topic: str,
    data: Any,
    *,
    job_id: str = "",
    pending: Duration | None = None,
    trace: str = "",
) -> StartJob:
    """The message that starts a job. A ``pending`` start (seconds, or a duration such as
    '10 minutes') writes the trigger's data and runs nothing: the job, status ``pending``,
    holds its id and data until it is pruned ``pending`` after its start (or interrupted, or
    scrubbed, before that).

    Refuses (:class:`~mesh.errors.InvalidPayload`, :class:`~mesh.errors.InvalidIdentifier`)
    data nested past the limit or holding text Postgres cannot store, and malformed job ids."""
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
        trace=trace,
    )


def interrupt_message(
    app: str, job_id: str, *, reason: str, code: int, descend: bool, now: float
) -> InterruptJob:
    """The message that interrupts ``job_id`` (and, with ``descend``, its children)."""
    validate_job_id(job_id)
    check_text(reason, "the reason")
    return InterruptJob(
        id=new_message_id(),
        app=app,
        job_id=job_id,
        reason=reason,
        code=code,
        descend=descend,
        sent_at=now,
    )
