"""What handling one claimed stream message decided; the stream layer persists it.

A handler returns one outcome per message. The consumer settles outcomes in batches: acks and
dead letters with their follow-up messages in one statement, retries in another, each fenced
by the attempt number the message was claimed with.
"""

from __future__ import annotations

from typing import Any

import msgspec

from mesh.errors import InvalidPayload
from mesh.model.ids import ENGINE_STREAM
from mesh.model.messages import (
    PRIORITY_REQUEST,
    PRIORITY_RESPONSE,
    ActivityRequest,
    ActivityResponse,
    EngineMessage,
    ErrorInfo,
    ParentRef,
    Resume,
    decode,
    encode,
    error_response,
)
from mesh.model.retry import DEFAULT_RETRY_POLICY


class Outgoing(msgspec.Struct, frozen=True):
    """A message to enqueue: already-encoded JSON ``payload`` for ``app``/``stream``."""

    app: str
    stream: str
    payload: bytes
    priority: int = PRIORITY_REQUEST
    max_attempts: int = 3
    delay: float = 0.0
    """Seconds before it becomes visible to consumers."""


class Ack(msgspec.Struct, frozen=True):
    """Done: delete the message and enqueue ``follow_ups`` in the same statement."""

    follow_ups: tuple[Outgoing, ...] = ()


class Retry(msgspec.Struct, frozen=True):
    """Failed, attempts remain: release it, visible again after ``delay`` seconds."""

    delay: float
    error: str
    details: str | None = None
    """An activity's last heartbeat details (JSON text) for its next attempt; None: none."""
    failure: str | None = None
    """The failed attempt (JSON text: type, message, traceback, attempt, at), kept in the
    request as ``last_failure`` for ``describe()``; None: not an activity."""


class DeadLetter(msgspec.Struct, frozen=True):
    """Failed for good: move it to the dead letters with ``error``, enqueue ``follow_ups``."""

    error: str
    follow_ups: tuple[Outgoing, ...] = ()


Outcome = Ack | Retry | DeadLetter

ENGINE_ATTEMPTS = 5
"""Claims of an engine message before it is dead-lettered (each engine crash spends one)."""


def to_engine(
    message: EngineMessage, *, delay: float = 0.0, priority: int = PRIORITY_REQUEST
) -> Outgoing:
    """The message that carries ``message`` to its app's engine stream."""
    return Outgoing(
        message.app,
        ENGINE_STREAM,
        encode(message),
        priority,
        max_attempts=ENGINE_ATTEMPTS,
        delay=delay,
    )


def to_parent(
    app: str, parent: ParentRef, code: int, data: Any, *, message_id: str, now: float
) -> Outgoing:
    """The message that tells a parent's await activity how its child ended (or answered)."""
    result = Resume(
        id=message_id,
        app=app,
        kind="child",
        job_id=parent.job_id,
        gid=parent.gid,
        activity_id=parent.activity_id,
        dimension=parent.dimension,
        code=code,
        data=data,
        sent_at=now,
    )
    return to_engine(result, priority=PRIORITY_RESPONSE)


def reply(request: ActivityRequest, response: ActivityResponse) -> Outgoing:
    """The message that carries ``response`` to the stream the request named."""
    return Outgoing(
        app=request.app,
        stream=request.reply_to,
        payload=encode(response),
        priority=PRIORITY_RESPONSE,
        max_attempts=(request.retry or DEFAULT_RETRY_POLICY).maximum_attempts,
    )


def dead_letter_replies(payload: str, attempts: int, error: str) -> tuple[Outgoing, ...]:
    """The error response owed for a dead-lettered message, if it was a request."""
    try:
        message = decode(payload)
    except InvalidPayload:
        return ()
    if not isinstance(message, ActivityRequest):
        return ()
    failure = ErrorInfo(message=error, type="DeadLettered", code=500, retryable=False)
    return (reply(message, error_response(message, failure, attempts)),)
