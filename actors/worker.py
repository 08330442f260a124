"""The worker actor: runs a user function for every request on one topic.

What runs is the worker's :class:`~mesh.runtime.activities.Dispatch`'s answer for the
request's data: one function for a graph's worker topic (it receives the data), or the
activity a code workflow's request names (it receives the request's arguments). It runs on
the loop it is defined for (:mod:`mesh.runtime.activities`: asyncio by default for an
``async def``, a worker thread for a ``def``, at most ``concurrency`` at once), with its
context set (``mesh.activity.info()``, ``heartbeat()``); its return value becomes the
``success`` response. A response for this app's engine, or for a workflow stream whose
workflows this node runs (``appliers``), is applied to its job in the transaction that acks
the request (:class:`mesh.runtime.graphs.ApplyingSettler`); any other is written to the
request's ``reply_to`` stream in the statement that acks it. ``Pending(data)``
sends a 202 response and keeps the activity open. An exception is retried per the message's
retry policy (falling back to the worker's); after the last attempt, or at once for
:class:`mesh.errors.NonRetryableError`, the request is dead-lettered together with an
``error`` response.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import trio

from mesh import telemetry
from mesh.errors import InvalidPayload, NonRetryableError
from mesh.model.activity import ActivityContext, ActivityInfo
from mesh.model.limits import check_value
from mesh.model.messages import (
    ActivityRequest,
    ErrorInfo,
    Pending,
    decode,
    error_response,
    pending_response,
    success_response,
)
from mesh.model.outcomes import Ack, DeadLetter, Outcome, Retry, reply
from mesh.model.payloads import to_json
from mesh.model.retry import GiveUp, RetryPolicy, decide_failure
from mesh.model.workflow.calls import traceback_text
from mesh.runtime.activities import Dispatch, Invocation
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.consumer.actor import StreamActor, StreamActorStatistics
from mesh.runtime.graphs import Applier, ApplyingSettler
from mesh.runtime.node import Node
from mesh.runtime.streams import StreamClaim

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStatistics(StreamActorStatistics):
    failures: int
    """Function calls that raised."""
    responses_applied: int
    """Responses applied to their jobs in the transaction of their ack."""


class WorkerActor(StreamActor):
    def __init__(
        self,
        node: Node,
        *,
        topic: str,
        dispatch: Dispatch,
        settings: ConsumerSettings,
        retry: RetryPolicy,
        appliers: Mapping[str, Applier] | None = None,
    ) -> None:
        self.applier = ApplyingSettler(node, appliers)
        # A request without a policy of its own gets the worker's: its stream row takes the
        # policy's attempts at its first claim (the reaper counts crashes against them).
        settings = dataclasses.replace(settings, max_attempts=retry.maximum_attempts)
        super().__init__(
            node, stream=topic, handler=self.handle, settings=settings, settler=self.applier
        )
        self.name = f"worker:{topic}"
        self.node = node
        self.topic = topic
        self.dispatch = dispatch
        self.retry = retry
        self._threads = trio.CapacityLimiter(settings.concurrency)
        self.failures = 0
        self._attempts: dict[int, ActivityContext] = {}
        """The attempts that run, by message id (their heartbeat details are kept with each
        lease extension: a node that dies hands them to the next attempt)."""
        self.consumer.heartbeat_details = self._heartbeat_details

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Enter the worker's activity resources (objects whose methods are its activities),
        then consume; leave them when it stops."""
        async with self.node.activities.entered(self.dispatch.resources()):
            await super().run(task_status=task_status)

    async def handle(self, claim: StreamClaim) -> Outcome:
        """Run the function for one claimed request and decide the outcome."""
        try:
            request = decode(claim.payload)
        except InvalidPayload as error:
            return DeadLetter(error=f"undecodable message: {error}")
        if not isinstance(request, ActivityRequest):
            return DeadLetter(
                error=f"worker topic {self.topic!r} received a {type(request).__name__}"
            )
        spans = telemetry.current()
        try:
            if not spans.enabled:
                return await self._run(request, claim)
            with spans.working(request.app, self.topic, request) as traced:
                outcome = await self._run(request, claim)
                traced.value, traced.code = _traced(outcome)
                return outcome
        finally:
            self._attempts.pop(claim.id, None)

    def _heartbeat_details(self) -> dict[int, str]:
        """The latest heartbeat details of the attempts that reported any."""
        found = {}
        for message_id, context in list(self._attempts.items()):
            text = _details(context)
            if text is not None:
                found[message_id] = text
        return found

    async def _run(self, request: ActivityRequest, claim: StreamClaim) -> Outcome:
        invocation: Invocation | None = None
        context: ActivityContext | None = None
        try:
            invocation = self.dispatch(request.data)
            context = self._context(invocation, request, claim)
            self._attempts[claim.id] = context
            result = invocation.wrap(await self._call(invocation, context))
        except NonRetryableError as error:
            return self._give_up(request, claim, error, code=error.code, retryable=False)
        except Exception as error:
            self.failures += 1
            policy = request.retry or self.retry
            decision = decide_failure(policy, claim.attempt)
            if isinstance(decision, GiveUp):
                return self._give_up(request, claim, error)
            description = _describe(error)
            log.warning(
                "event=activity_attempt_failed topic=%s workflow_id=%s activity=%s attempt=%d "
                "of=%d retry_in=%.1fs error=%r",
                self.topic,
                request.job_id,
                context.info.activity if context else _name(invocation),
                claim.attempt,
                policy.maximum_attempts,
                decision.delay,
                description,
            )
            return Retry(
                delay=decision.delay,
                error=description,
                details=_details(context),
                failure=_last_failure(error, claim.attempt),
            )
        data = result.data if isinstance(result, Pending) else result
        try:
            data = to_json(data, f"the return value of {_name(invocation)}")
        except InvalidPayload as error:  # the same on every attempt: not retried
            return self._give_up(request, claim, error, retryable=False)
        if isinstance(result, Pending):
            response = pending_response(request, data, claim.attempt)
        else:
            response = success_response(request, data, claim.attempt)
        return Ack(follow_ups=(reply(request, response),))

    def _context(
        self, invocation: Invocation, request: ActivityRequest, claim: StreamClaim
    ) -> ActivityContext:
        """What the attempt may know of itself (``mesh.activity.info()``)."""
        definition = invocation.definition
        deadline = time.time() + invocation.timeout if invocation.timeout else None
        return ActivityContext(
            ActivityInfo(
                activity=definition.name,
                attempt=claim.attempt,
                task_queue=self.topic,
                workflow_id=request.job_id,
                activity_id=request.activity_id,
                deadline=deadline,
                heartbeat_timeout=definition.heartbeat_timeout,
            ),
            previous_details=request.heartbeat,
        )

    async def _call(self, invocation: Invocation, context: ActivityContext) -> Any:
        runner = self.node.activities
        limit = invocation.timeout if invocation.timeout is not None else math.inf
        with trio.fail_after(limit):
            return await runner.call(
                invocation.definition,
                invocation.function,
                invocation.args,
                context,
                threads=self._threads,
            )

    def _give_up(
        self,
        request: ActivityRequest,
        claim: StreamClaim,
        error: BaseException,
        *,
        code: int = 500,
        retryable: bool = True,
    ) -> DeadLetter:
        description = _describe(error)
        log.warning(
            "event=activity_failed topic=%s id=%s attempts=%d error=%r",
            self.topic,
            request.id,
            claim.attempt,
            description,
        )
        info = ErrorInfo(
            message=description,
            type=type(error).__name__,
            code=code,
            retryable=retryable,
            traceback=traceback_text(error),
            details=_json_or_none(getattr(error, "details", None)),
        )
        response = error_response(request, info, claim.attempt)
        return DeadLetter(error=description, follow_ups=(reply(request, response),))

    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(
            **self._base_statistics(),
            consumer=self.consumer.statistics(),
            failures=self.failures,
            responses_applied=self.applier.applied,
        )


MAX_ERROR_LENGTH = 4000


def _details(context: ActivityContext | None) -> str | None:
    """The attempt's last heartbeat details as JSON text, for the next attempt (None: it
    reported none, or nothing JSON can hold)."""
    if context is None or not context.beats or context.details is None:
        return None
    try:
        details = to_json(context.details, "the heartbeat details")
        return msgspec.json.encode(details).decode()
    except (InvalidPayload, TypeError, ValueError) as error:
        log.warning(
            "event=heartbeat_details_dropped activity=%s error=%r",
            context.info.activity,
            str(error),
        )
        return None


def _last_failure(error: BaseException, attempt: int) -> str:
    """The failed attempt as the retried request keeps it (``last_failure``, JSON text),
    for ``describe()``."""
    try:
        message = str(error)[:MAX_ERROR_LENGTH]
    except Exception:
        message = f"<{type(error).__name__} whose message cannot be shown>"
    failure = {
        "type": type(error).__name__,
        "message": message,
        "traceback": traceback_text(error),
        "attempt": attempt,
        "at": time.time(),
    }
    return msgspec.json.encode(failure).decode()


def _json_or_none(value: Any) -> Any:
    """``value`` if JSON can hold it, else None."""
    try:
        check_value(value, "the error's details")
    except (InvalidPayload, TypeError, ValueError):
        return None
    return value


def _name(invocation: Invocation | None) -> str:
    if invocation is None:
        return "the activity"
    function = invocation.function
    return f"{function.__module__}:{getattr(function, '__qualname__', function)}"


def _traced(outcome: Outcome) -> tuple[str, int]:
    """A worker span's outcome and code: success or pending (with the response's code),
    retry (released for a later attempt) or error (given up)."""
    if isinstance(outcome, Retry):
        return "retry", 500
    if isinstance(outcome, DeadLetter):
        return "error", 500
    responses = [f.payload for f in getattr(outcome, "follow_ups", ())]
    pending = any(b'"status":"pending"' in payload for payload in responses)
    return ("pending", 202) if pending else ("success", 200)


def _describe(error: BaseException) -> str:
    """The error as stored and reported: type, message (cut to a readable length, and made
    storable: no NUL, no lone surrogates) and where it was raised."""
    where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    location = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
    try:
        message = str(error)
    except Exception:  # a user exception whose __str__ fails still gets reported
        message = f"<{type(error).__name__} whose message cannot be shown>"
    if len(message) > MAX_ERROR_LENGTH:
        message = message[:MAX_ERROR_LENGTH] + f"... ({len(message)} characters)"
    text = f"{type(error).__name__}: {message}{location}"
    return text.encode("utf-8", "replace").decode().replace("\x00", "\\0")
