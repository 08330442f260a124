"""The worker actor: runs one user function for every request on one topic.

Async functions run in trio; plain functions run in a worker thread (at most ``concurrency``
at once). The function receives the request's ``data`` and its return value becomes the
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
import inspect
import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from mesh import telemetry
from mesh.errors import InvalidPayload, NonRetryableError
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
from mesh.model.retry import GiveUp, RetryPolicy, decide_failure
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
        function: Callable[..., Any],
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
        self.topic = topic
        self.function = function
        self.retry = retry
        self._is_async = inspect.iscoroutinefunction(function)
        self._threads = trio.CapacityLimiter(settings.concurrency)
        self.failures = 0

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
        if not spans.enabled:
            return await self._run(request, claim)
        with spans.working(request.app, self.topic, request) as traced:
            outcome = await self._run(request, claim)
            traced.value, traced.code = _traced(outcome)
            return outcome

    async def _run(self, request: ActivityRequest, claim: StreamClaim) -> Outcome:
        try:
            result = await self._call(request.data)
        except NonRetryableError as error:
            return self._give_up(request, claim, error, code=error.code, retryable=False)
        except Exception as error:
            self.failures += 1
            decision = decide_failure(request.retry or self.retry, claim.attempt)
            if isinstance(decision, GiveUp):
                return self._give_up(request, claim, error)
            log.info(
                "event=activity_retry topic=%s id=%s attempt=%d delay=%.1fs error=%r",
                self.topic,
                request.id,
                claim.attempt,
                decision.delay,
                str(error),
            )
            return Retry(delay=decision.delay, error=_describe(error))
        data = result.data if isinstance(result, Pending) else result
        if isinstance(result, Pending):
            response = pending_response(request, data, claim.attempt)
        else:
            response = success_response(request, data, claim.attempt)
        try:
            check_value(data, f"the return value of {self._function_name()}")
            return Ack(follow_ups=(reply(request, response),))
        except InvalidPayload as error:
            problem = TypeError(f"the return value of {self._function_name()} is not JSON: {error}")
            return self._give_up(request, claim, problem, retryable=False)

    async def _call(self, data: Any) -> Any:
        if self._is_async:
            return await self.function(data)
        # abandon_on_cancel: a drain deadline must not wait for user code that never returns.
        return await trio.to_thread.run_sync(
            self.function, data, limiter=self._threads, abandon_on_cancel=True
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
            message=description, type=type(error).__name__, code=code, retryable=retryable
        )
        response = error_response(request, info, claim.attempt)
        return DeadLetter(error=description, follow_ups=(reply(request, response),))

    def _function_name(self) -> str:
        return f"{self.function.__module__}:{getattr(self.function, '__qualname__', self.function)}"

    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(
            **self._base_statistics(),
            consumer=self.consumer.statistics(),
            failures=self.failures,
            responses_applied=self.applier.applied,
        )


MAX_ERROR_LENGTH = 4000


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
