"""The settle loop of a message consumer: handler outcomes persisted in batches.

Whatever has accumulated is settled in one call (group commit), fenced by each message's
attempt number. A slot frees only once its message is settled, so in-flight counts what the
database still sees leased to us. When the claim loop waits for slots, the settle also claims
the next batch, in the same round trip and transaction.

**After a lost connection.** A settle whose connection failed may have committed with only
its reply lost. Settling is fenced, so the loop simply settles again; a message the retry
finds no longer held was settled by the first try if its lease was still valid (nobody else
can touch a leased row), and is counted as settled, not as a lost lease.

**Refused outcomes.** A batch the database refuses is settled message by message, so one bad
outcome cannot block the others; an outcome refused alone is dead-lettered with an error
response to its sender rather than left to expire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import trio

from mesh.errors import DatabaseError, DatabaseUnavailable
from mesh.model.histogram import DurationHistogram
from mesh.model.outcomes import Ack, DeadLetter, Retry, dead_letter_replies
from mesh.runtime.consumer.slots import Slots
from mesh.runtime.streams import Settlement, StreamClaim, Streams

log = logging.getLogger(__name__)


class Settler(Protocol):
    """How outcomes are persisted: :class:`Streams` itself, or one that does more in the same
    transaction (:class:`mesh.runtime.graphs.ApplyingSettler`)."""

    async def settle(self, settlements: list[Settlement]) -> set[int]: ...

    async def settle_and_claim(
        self,
        settlements: list[Settlement],
        app: str,
        stream: str,
        *,
        limit: int,
        lease: float,
        max_attempts: int,
    ) -> tuple[set[int], list[StreamClaim]]: ...


@dataclass
class ConsumerCounters:
    claimed: int = 0
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    lost: int = 0
    claims: int = 0
    empty_claims: int = 0
    handler_seconds: DurationHistogram = field(default_factory=DurationHistogram)


@dataclass(frozen=True, slots=True)
class SettleScope:
    """What the settle loop needs of its consumer."""

    app: str
    stream: str
    batch_size: int
    settle_batch: int
    lease: float
    max_attempts: int
    may_claim: Callable[[], bool]
    """Whether a settle may claim the next batch now (the claim loop waits for slots, and
    nothing stops it: draining, a throttle, a message that runs alone)."""
    alone_wanted: Callable[[], bool]


class SettleLoop:
    def __init__(
        self,
        streams: Streams,
        settler: Settler,
        slots: Slots,
        counters: ConsumerCounters,
        scope: SettleScope,
        receive: trio.MemoryReceiveChannel[Settlement],
    ) -> None:
        self.streams = streams
        self.settler = settler
        self.slots = slots
        self.counters = counters
        self.scope = scope
        self._receive = receive

    async def run(self) -> None:
        pending: list[Settlement] = []
        backoff = 0.1
        uncertain = False  # an earlier try of ``pending`` failed: it may have committed
        scope, slots = self.scope, self.slots
        while True:
            if not pending:
                pending.append(await self._receive.receive())
            while len(pending) < scope.settle_batch:
                try:
                    pending.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            # A saturated consumer claims its next batch in the same round trip and commit
            # as this settle: the slots it frees are known now.
            free = slots.free(alone_wanted=scope.alone_wanted())
            limit = min(scope.batch_size, free + len(pending))
            piggyback = limit > 0 and scope.may_claim()
            claims: list[StreamClaim] = []
            sent_at = trio.current_time()
            try:
                with slots.reserve(limit if piggyback else 0):
                    if piggyback:
                        done, claims = await self.settler.settle_and_claim(
                            pending,
                            scope.app,
                            scope.stream,
                            limit=limit,
                            lease=scope.lease,
                            max_attempts=scope.max_attempts,
                        )
                    else:
                        done = await self.settler.settle(pending)
            except DatabaseUnavailable as error:
                # Settling is fenced, so retrying the same batch is safe; leases stay
                # heartbeated meanwhile.
                log.warning(
                    "event=settle_failed stream=%s error=%r retry_in=%.1fs",
                    scope.stream,
                    str(error),
                    backoff,
                )
                uncertain = True
                await trio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
                continue
            except DatabaseError as error:
                done, unsettled = await self._one_by_one(pending, error)
                if unsettled:
                    # The database went away meanwhile: count what was settled, try the rest
                    # again later (fenced, and perhaps committed: uncertain).
                    self._record([s for s in pending if s not in unsettled], done, uncertain)
                    pending, uncertain = unsettled, True
                    await trio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
                    continue
            backoff = 0.1
            self._record(pending, done, uncertain)
            pending = []
            uncertain = False
            if piggyback:
                self.counters.claims += 1
                self.counters.claimed += len(claims)
                slots.prefetch(claims, sent_at)

    async def _one_by_one(
        self, batch: list[Settlement], error: DatabaseError
    ) -> tuple[set[int], list[Settlement]]:
        """Isolate a settlement the database refuses, so it cannot block the others. Returns
        the ids settled and the settlements left when the database became unreachable (those
        are not refused: they are tried again)."""
        stream = self.scope.stream
        log.error("event=settle_refused stream=%s size=%d error=%r", stream, len(batch), str(error))
        done: set[int] = set()
        for index, settlement in enumerate(batch):
            try:
                try:
                    done |= await self.settler.settle([settlement])
                except DatabaseUnavailable:
                    raise
                except DatabaseError as single_error:
                    done |= await self._bury(settlement, single_error)
            except DatabaseUnavailable:
                return done, batch[index:]
        return done, []

    async def _bury(self, settlement: Settlement, error: DatabaseError) -> set[int]:
        """Dead-letter a message whose outcome the database refuses (its sender gets an error
        response), rather than leave its lease to expire."""
        claim, stream = settlement.claim, self.scope.stream
        reason = f"its outcome could not be stored: {error}"
        log.error("event=settle_refused stream=%s id=%s error=%r", stream, claim.id, reason)
        replies = dead_letter_replies(claim.payload, claim.attempt, reason)
        try:
            return await self.streams.settle(
                [Settlement(claim, DeadLetter(error=reason, follow_ups=replies))]
            )
        except DatabaseUnavailable:
            raise  # not refused: tried again with the rest
        except DatabaseError as burial_error:
            log.error(
                "event=dead_letter_refused stream=%s id=%s error=%r (left leased)",
                stream,
                claim.id,
                str(burial_error),
            )
            return set()

    def _record(self, batch: list[Settlement], done: set[int], uncertain: bool = False) -> None:
        """Count what was settled. With ``uncertain`` (an earlier try failed with the
        connection), a message the last try no longer held was settled by that earlier try
        when its lease was valid all along: nobody else could have taken it."""
        now = trio.current_time()
        stream, lease = self.scope.stream, self.scope.lease
        for settlement in batch:
            message_id = settlement.claim.id
            if message_id not in done:
                entry = self.slots.in_flight.get(message_id)
                if uncertain and entry is not None and now < entry.lease_from + lease:
                    log.info(
                        "event=settle_confirmed stream=%s id=%s (committed before the "
                        "connection failed; only its reply was lost)",
                        stream,
                        message_id,
                    )
                else:
                    self.counters.lost += 1
                    log.warning("event=lease_lost_at_settle stream=%s id=%s", stream, message_id)
                    self.slots.forget(message_id)
                    continue
            if isinstance(settlement.outcome, Ack):
                self.counters.acked += 1
            elif isinstance(settlement.outcome, Retry):
                self.counters.retried += 1
            else:
                self.counters.dead_lettered += 1
            self.slots.forget(message_id)
