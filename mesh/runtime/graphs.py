"""Running engine batches from trio: decode the claimed messages, run the batch transaction
(:func:`mesh.pg.graphs.process`) in a worker thread, and keep counts.

A batch the database refuses as a whole, or that fails in the engine's own code, is retried
message by message, so one bad message cannot hold up the others (nor crash the engine); a
message refused alone is dead-lettered with the reason.

:class:`ApplyingSettler` runs the same transaction for a worker's settles: the ack of a
request and its response's effect on the job commit together, without the engine stream.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import trio

from mesh.errors import ConnectionLost, DatabaseUnavailable, InvalidPayload
from mesh.model.ids import ENGINE_STREAM
from mesh.model.messages import ActivityRequest, ActivityResponse, decode
from mesh.model.outcomes import ENGINE_ATTEMPTS, Ack, DeadLetter
from mesh.pg.batch import Delivery, NextClaim
from mesh.pg.graphs import BatchReport, process
from mesh.runtime.consumer import BatchResult
from mesh.runtime.node import Node
from mesh.runtime.streams import Settlement, StreamClaim, Streams

log = logging.getLogger(__name__)


@dataclass
class EngineCounters:
    """What engine transactions did (the stream's counts are its consumer's)."""

    batches: int = 0
    messages: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def record(self, report: BatchReport) -> None:
        self.batches += 1
        for result in report.results:
            self.messages += 1
            self.outcomes[result.outcome] = self.outcomes.get(result.outcome, 0) + 1


class BatchRunner:
    """One node's engine batches: shares the compiled app versions between loops."""

    def __init__(self, node: Node, counters: EngineCounters) -> None:
        self.node = node
        self.counters = counters
        self.versions = node.versions

    async def run(
        self,
        claims: list[StreamClaim],
        *,
        claim_next: int,
        lease: float,
        retry_of: float | None = None,
    ) -> BatchResult:
        """Handle ``claims`` in one transaction, which also claims up to ``claim_next``
        more (a :class:`~mesh.runtime.consumer.stream_consumer.BatchHandler`).

        ``retry_of``: an earlier run of these claims failed with the connection, and their
        leases run from no earlier than this trio time. The earlier run may have committed:
        claims no longer held while their leases were still valid were handled by it (nobody
        else can take a leased message), not lost.
        """
        accepted, buried = await decode_claims(
            self.node.streams,
            claims,
            lambda message: not isinstance(message, ActivityRequest),
            "a worker request on the engine stream",
        )
        deliveries = [Delivery(message, claim) for message, claim in accepted]
        next_claim = (
            NextClaim(ENGINE_STREAM, claim_next, lease, ENGINE_ATTEMPTS) if claim_next > 0 else None
        )
        try:
            report = await self.node.db.run(
                process,
                self.node.app,
                self.versions,
                deliveries,
                owner=self.node.guid,
                next_claim=next_claim,
                notices=self.node.job_notices,
            )
        except DatabaseUnavailable:
            raise
        except Exception as error:  # refused by the database, or a failure in the engine
            log.error(
                "event=engine_batch_refused size=%d error=%r (retrying message by message)",
                len(deliveries),
                f"{type(error).__name__}: {error}",
            )
            acked, dead = await self._one_by_one(deliveries)
            return BatchResult([], acked=acked, dead_lettered=buried + dead)
        report.lost = confirmed_lost(report.lost, retry_of, lease)
        self.counters.record(report)
        return BatchResult(
            report.next_claims,
            acked=len(deliveries) - report.lost,
            dead_lettered=buried,
            lost=report.lost,
        )

    async def _one_by_one(self, deliveries: list[Delivery]) -> tuple[int, int]:
        """Each message in a transaction of its own; one the engine refuses alone is
        dead-lettered with the reason. Returns how many were acked and dead-lettered."""

        async def alone(delivery: Delivery) -> int:
            report = await self.node.db.run(
                process,
                self.node.app,
                self.versions,
                [delivery],
                owner=self.node.guid,
                notices=self.node.job_notices,
            )
            self.counters.record(report)
            return len(report.taken)

        return await one_by_one(
            self.node.streams, [(d.claim, d) for d in deliveries if d.claim], alone, "engine"
        )


T = TypeVar("T")


async def decode_claims(
    streams: Streams,
    claims: list[StreamClaim],
    accept: Callable[[Any], bool],
    refusal: str,
) -> tuple[list[tuple[Any, StreamClaim]], int]:
    """The claimed messages decoded, with their claims; one that does not decode, or that
    ``accept`` refuses (``refusal`` says why), is dead-lettered. Also returns how many were."""
    accepted: list[tuple[Any, StreamClaim]] = []
    bad: list[Settlement] = []
    for claim in claims:
        try:
            message = decode(claim.payload)
        except InvalidPayload as error:
            bad.append(Settlement(claim, DeadLetter(error=f"undecodable: {error}")))
            continue
        if not accept(message):
            bad.append(Settlement(claim, DeadLetter(error=refusal)))
            continue
        accepted.append((message, claim))
    return accepted, len(await streams.settle(bad)) if bad else 0


def confirmed_lost(lost: int, retry_of: float | None, lease: float) -> int:
    """Claims a batch found gone, less those an earlier run of it committed: when it is run
    again after a lost connection (``retry_of``: when its leases started), a claim its
    lease still covered was taken by that earlier run, not by another consumer."""
    if lost and retry_of is not None and trio.current_time() < retry_of + lease:
        log.info("event=batch_confirmed count=%d (committed before the connection failed)", lost)
        return 0
    return lost


async def one_by_one(
    streams: Streams,
    items: list[tuple[StreamClaim, T]],
    run_alone: Callable[[T], Awaitable[int]],
    who: str,
) -> tuple[int, int]:
    """Run each claimed item in a transaction of its own (``run_alone`` returns how many it
    acked): one the database or mesh refuses alone is dead-lettered with the reason, so it
    cannot hold up the others. Returns how many were acked and dead-lettered."""
    acked = dead = 0
    for claim, item in items:
        try:
            acked += await run_alone(item)
        except DatabaseUnavailable:
            raise
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            log.error("event=message_dead_lettered by=%s id=%s error=%r", who, claim.id, reason)
            await streams.settle(
                [Settlement(claim, DeadLetter(error=f"{who} refused it: {reason}"))]
            )
            dead += 1
    return acked, dead


class Applied(Protocol):
    """What applying responses at their acks did: the request claims it acked, and the
    claims of the next batch it took in the same transaction."""

    taken: set[int]
    next_claims: list[StreamClaim]


Applier = Callable[[list[Delivery], NextClaim | None], Awaitable[Applied]]
"""Applies responses to the workflows they answer, each delivered with its request's claim,
in one transaction that also acks those requests (and takes the next claims)."""


class ApplyingSettler:
    """A worker's settles, each response applied to its job in the transaction of its ack.

    Through a stream, a worker's response costs one more insert, claim, delete and commit,
    and waits for the next batch of the stream's consumer. Here an ack whose one follow-up is
    a response for a stream this node applies (this app's engine stream, and the workflow
    streams of the task queues whose workflows this node runs: ``appliers``) becomes a
    :class:`Delivery` whose claim is the worker's request: the applying transaction deletes
    the request fenced by its attempt (a lost lease means no effect, as for stream messages)
    and applies the response, and the job's next step is enqueued in the same commit.
    Retries, dead letters, other follow-ups, and everything while the target stream is
    throttled settle as usual. So does a batch the database refuses or the engine cannot
    apply: its responses go through the stream, whose batches isolate and dead-letter a bad
    message, and which waits out a locked job.
    """

    def __init__(self, node: Node, appliers: Mapping[str, Applier] | None = None) -> None:
        self.node = node
        self.counters = EngineCounters()
        self.appliers: dict[str, Applier] = {ENGINE_STREAM: self._apply_to_jobs}
        self.appliers.update(appliers or {})
        self.applied = 0
        """Responses applied at their acks (to YAML jobs and to code workflows)."""

    async def settle(self, settlements: list[Settlement]) -> set[int]:
        done, _ = await self._settle(settlements, None)
        return done

    async def settle_and_claim(
        self,
        settlements: list[Settlement],
        app: str,
        stream: str,
        *,
        limit: int,
        lease: float,
        max_attempts: int,
    ) -> tuple[set[int], list[StreamClaim]]:
        return await self._settle(settlements, NextClaim(stream, limit, lease, max_attempts))

    async def _settle(
        self, settlements: list[Settlement], next_claim: NextClaim | None
    ) -> tuple[set[int], list[StreamClaim]]:
        streams = self.node.streams
        plain, applying = self._split(settlements)
        if not applying:
            if next_claim is None:
                return await streams.settle(plain), []
            return await streams.settle_and_claim(
                plain,
                self.node.app,
                next_claim.stream,
                limit=next_claim.limit,
                lease=next_claim.lease,
                max_attempts=next_claim.max_attempts,
            )
        done = await streams.settle(plain) if plain else set()
        next_claims: list[StreamClaim] = []
        for index, (stream, group) in enumerate(applying.items()):
            last = index == len(applying) - 1  # the next claim rides on the last transaction
            try:
                applied = await self.appliers[stream](
                    [delivery for _, delivery in group], next_claim if last else None
                )
            except ConnectionLost:
                # It may have committed with its reply lost: the consumer settles the batch
                # again (fenced, so nothing is done twice) and counts what is gone as settled.
                raise
            except Exception as error:
                # Refused, timed out (a job locked for long) or a bug: settle the plain way,
                # so the stream's batches isolate a bad response.
                log.warning(
                    "event=inline_apply_failed stream=%s size=%d error=%r (settling through "
                    "the stream)",
                    stream,
                    len(group),
                    str(error),
                )
                done |= await streams.settle([settlement for settlement, _ in group])
                continue
            self.applied += len(applied.taken)
            done |= applied.taken
            next_claims = applied.next_claims if last else next_claims
        return done, next_claims

    async def _apply_to_jobs(
        self, deliveries: list[Delivery], next_claim: NextClaim | None
    ) -> BatchReport:
        report = await self.node.db.run(
            process,
            self.node.app,
            self.node.versions,
            deliveries,
            owner=self.node.guid,
            next_claim=next_claim,
            notices=self.node.job_notices,
        )
        self.counters.record(report)
        return report

    def _split(
        self, settlements: list[Settlement]
    ) -> tuple[list[Settlement], dict[str, list[tuple[Settlement, Delivery]]]]:
        """The settlements to settle as usual, and the acks to apply here by stream."""
        node = self.node
        plain: list[Settlement] = []
        applying: dict[str, list[tuple[Settlement, Delivery]]] = {}
        for settlement in settlements:
            target = _response(node.app, settlement, self.appliers)
            if target is None or node.throttle.effective(target[0]) != 0:
                plain.append(settlement)
            else:
                stream, response = target
                applying.setdefault(stream, []).append(
                    (settlement, Delivery(response, settlement.claim))
                )
        return plain, applying


def _response(
    app: str, settlement: Settlement, streams: Mapping[str, Any]
) -> tuple[str, ActivityResponse] | None:
    """The stream and response an ack sends to one of ``streams`` of ``app``, when that is
    its only follow-up."""
    outcome = settlement.outcome
    if not isinstance(outcome, Ack) or len(outcome.follow_ups) != 1:
        return None
    follow_up = outcome.follow_ups[0]
    if follow_up.app != app or follow_up.stream not in streams or follow_up.delay:
        return None
    try:
        message = decode(follow_up.payload)
    except InvalidPayload:
        return None
    return (follow_up.stream, message) if isinstance(message, ActivityResponse) else None
