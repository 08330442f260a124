"""The stream consumer: claim in batches, handle them, settle, keep the leases.

One claim loop serves every consumer of a stream, with one of two kinds of handler:

- **a message handler** (workers): each claimed message's handler starts at once (inline until
  one waits, :mod:`mesh.runtime.consumer.inline_start`); the settle loop (:mod:`mesh.runtime.consumer.settling`)
  persists the outcomes accumulated in one call;
- **a batch handler** (the engine): one transaction acks the batch (fenced), does its work
  and claims the next batch, which the claim loop admits next.

The claim loop claims up to ``min(batch_size, free slots)`` (:mod:`mesh.runtime.consumer.slots`);
a dry stream waits for a NOTIFY (an enqueue's, or the elected poller's) or the safety poll
(:meth:`mesh.runtime.consumer.wakeups.StreamWakeups.safety_poll`). A wake-up during a claim is kept.
The stream's throttle is read here only: paused, nothing is claimed; N ms, one message per N
ms (claimed alone). A heartbeat extends every held lease each ``lease / 3`` in one statement;
when every lease of a batch is lost, its handlers are cancelled. ``stop_claiming()`` drains.

**Messages that run alone** (their holders died twice holding others, see the reaper) are
claimed only by a consumer that holds nothing, which then claims nothing else; a busy one
that learns they wait stops claiming until it holds nothing (:mod:`mesh.runtime.consumer.alone_messages`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping

import trio

from mesh.errors import DatabaseError, DatabaseUnavailable
from mesh.pg.eager import EagerOffer
from mesh.runtime.consumer.alone_messages import AloneWatch
from mesh.runtime.consumer.eager_dispatch import EagerDispatch
from mesh.runtime.consumer.handlers import BatchHandler, BatchResult, Handler, fallback_outcome
from mesh.runtime.consumer.inline_start import Waiting, first_step, resume
from mesh.runtime.consumer.leases import InFlight, keep_leases
from mesh.runtime.consumer.settings import ConsumerSettings, ConsumerStatistics
from mesh.runtime.consumer.settling import ConsumerCounters, SettleLoop, Settler, SettleScope
from mesh.runtime.consumer.slots import Loan, Slots
from mesh.runtime.consumer.wakeups import LISTENER_DOWN_POLL, StreamWakeups
from mesh.runtime.streams import Settlement, StreamClaim, Streams
from mesh.runtime.throttle import ThrottleState

log = logging.getLogger(__name__)

__all__ = ["BatchHandler", "BatchResult", "ConsumerCounters", "ConsumerSettings"]
__all__ += ["ConsumerStatistics", "Handler", "Settler", "StreamConsumer"]


class StreamConsumer:
    def __init__(
        self,
        streams: Streams,
        wakeups: StreamWakeups,
        *,
        app: str,
        stream: str,
        settings: ConsumerSettings,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        throttle: ThrottleState | None = None,
        settler: Settler | None = None,
        eager: EagerDispatch | None = None,
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise TypeError("a consumer has a message handler or a batch handler, not both")
        self.streams = streams
        self.throttle = throttle
        self.app = app
        self.stream = stream
        self.settings = settings
        self.counters = ConsumerCounters()
        self.paused = False
        self.heartbeat_details: Callable[[], Mapping[int, str]] | None = None
        """Message id -> heartbeat details (JSON text) to keep with each lease extension
        (set by a worker whose activities heartbeat)."""
        self._handler = handler
        self._batch_handler = batch_handler
        self._wakeups = wakeups
        self._group = wakeups.group(app, stream)
        self._wakeup = self._group.join()
        self.slots = Slots(settings.concurrency, on_prefetch=self._wakeup.set)
        self._eager = eager or EagerDispatch()  # a consumer of no node's: nobody borrows
        self._dry_mark: int | None = None
        """The group's wake-up count when a claim found the stream dry (:meth:`_still_dry`)."""
        self._stopping = False
        self._stopped = trio.Event()
        self._alone = AloneWatch()
        self._settle_send, settle_receive = trio.open_memory_channel[Settlement](math.inf)
        self._settle_loop = SettleLoop(
            streams,
            settler or streams,
            self.slots,
            self.counters,
            SettleScope(
                app=app,
                stream=stream,
                batch_size=settings.batch_size,
                settle_batch=settings.settle_batch,
                lease=settings.lease,
                max_attempts=settings.max_attempts,
                may_claim=lambda: self.slots.waiting and self._may_claim_along(),
                alone_wanted=lambda: self._alone.wanted,
            ),
            settle_receive,
        )

    @property
    def in_flight(self) -> int:
        return len(self.slots.in_flight)

    def wake(self) -> None:
        self._wakeup.set()

    def stop_claiming(self) -> None:
        """Begin the drain: claim nothing more; in-flight work goes on and settles."""
        self._stopping = True
        self._stopped.set()
        self._wakeup.set()
        self.slots.freed.set()

    async def wait_idle(self) -> None:
        """Return once nothing is in flight."""
        await self.slots.idle.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._release(self._forget_previous_run(), "consumer_restarted")
        with self._eager.intake(self.app, self.stream, self):
            async with trio.open_nursery() as services:
                services.start_soon(self._heartbeat_loop)
                if self._handler is not None:
                    services.start_soon(self._settle_loop.run)
                async with trio.open_nursery() as handlers:
                    task_status.started()
                    await self._claim_loop(handlers)
                await self.slots.idle.wait()
                # Claimed along with the last work after the drain began: give them back.
                await self._release(self.slots.take_prefetched()[0], "drain_released")
                services.cancel_scope.cancel()

    async def _release(self, claims: list[StreamClaim], event: str) -> None:
        """Give back leases whose messages will not be handled here: a live node must not
        let a lease expire (the reaper would take back everything the node holds)."""
        if not claims:
            return
        log.warning("event=%s stream=%s released=%d", event, self.stream, len(claims))
        try:
            await self.streams.release(claims)
        except DatabaseError as error:
            log.warning(
                "event=release_failed stream=%s error=%r (their leases will expire)",
                self.stream,
                str(error),
            )

    # -- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self, handlers: trio.Nursery) -> None:
        backoff = 0.1
        slots = self.slots
        while not self._stopping:
            if slots.prefetched:
                await self._admit_prefetched(handlers)
                continue
            free = slots.free(alone_wanted=self._alone.wanted)
            if free <= 0:
                await slots.wait_for_free()
                continue
            wanted = min(self.settings.batch_size, free)
            throttle_ms = self.throttle.effective(self.stream) if self.throttle else 0
            if self.throttle is not None and throttle_ms < 0:
                # Paused: messages keep accumulating durably; a change or a stop wakes us.
                self.paused = True
                await self.throttle.wait(None, self._stopped)
                self.paused = False
                continue
            if throttle_ms > 0:
                wanted = 1  # one message per throttle interval
            self._alone.heard(self._wakeup)
            now = trio.current_time()
            holds_nothing = slots.holds_nothing()  # before this claim's own reservation
            self._wakeup.clear()
            heard = self._group.heard
            try:
                with slots.reserve(wanted):
                    claims = await self._alone.claim(
                        self.streams,
                        self.app,
                        self.stream,
                        holds_nothing=holds_nothing,
                        limit=wanted,
                        lease=self.settings.lease,
                        max_attempts=self.settings.max_attempts,
                    )
            except DatabaseError as error:
                log.warning(
                    "event=claim_failed stream=%s error=%r retry_in=%.1fs",
                    self.stream,
                    str(error),
                    backoff,
                )
                await self._wakeup.wait(backoff)
                backoff = min(LISTENER_DOWN_POLL, self.settings.poll_interval, backoff * 2)
                continue
            backoff = 0.1
            self._dry_mark = heard if len(claims) < wanted else None
            self._wakeup.answered(bool(claims), holds_nothing)
            self.counters.claims += 1
            self.counters.claimed += len(claims)
            self._admit(claims, now, handlers)
            if self.throttle is not None and throttle_ms > 0 and claims:
                await self.throttle.wait(throttle_ms / 1000, self._stopped)
                continue
            if slots.alone_held or self._alone.wanted:
                continue  # wait for our slots to empty (claim alone then)
            if len(claims) == wanted:
                self._group.wake_one()  # there may be more: let an idle sibling claim too
            else:
                if not claims:
                    self.counters.empty_claims += 1
                await self._wait_for_news()

    def _may_claim_along(self) -> bool:
        """Whether work in progress may claim the next batch with its own statement."""
        return (
            not self._stopping
            and not self.slots.alone_held
            and not self._alone.wanted
            and (self.throttle is None or self.throttle.effective(self.stream) == 0)
        )

    async def _admit_prefetched(self, handlers: trio.Nursery) -> None:
        """Admit what a settle, a batch or an enqueue claimed for us; then, dry, wait."""
        self._admit(*self.slots.take_prefetched(), handlers)
        if self._still_dry():
            self._wakeup.clear()
            await self._wait_for_news()

    async def _wait_for_news(self) -> None:  # a wake-up, or the safety poll
        await self._wakeup.wait(self._wakeups.safety_poll(self.settings.poll_interval))

    def _still_dry(self) -> bool:
        """The last claim found fewer messages than it asked for, and nothing woke the
        stream's consumers since (a NOTIFY, a sibling's full claim, a reconnect)."""
        return self._dry_mark is not None and self._dry_mark == self._group.heard

    def lend(self, wanted: int) -> tuple[EagerOffer, Loan] | None:
        """Up to ``wanted`` free slots for a transaction of this node that enqueues to the
        stream; only while it is dry, so that messages waiting in it keep their turn."""
        if not self._still_dry() or not self._may_claim_along():
            return None
        free = self.slots.free(alone_wanted=self._alone.wanted)
        count = min(wanted, self.settings.batch_size, free)
        if count <= 0:
            return None
        offer = EagerOffer(count, self.settings.lease, self.settings.max_attempts)
        return offer, self.slots.lend(count)

    def take(self, loan: Loan, claims: list[StreamClaim], sent_at: float) -> None:
        """The lending transaction ended; ``claims``: the messages it leased to us."""
        self.slots.repay(loan)
        self.counters.claimed += len(claims)
        self.slots.prefetch(claims, sent_at)

    def _forget_previous_run(self) -> list[StreamClaim]:
        abandoned = self.slots.reset()
        self._alone = AloneWatch()
        return abandoned

    def _admit(self, claims: list[StreamClaim], sent_at: float, handlers: trio.Nursery) -> None:
        """Hold claimed messages and start their handling. ``sent_at``: when the claim was
        sent (the leases run from no earlier than that)."""
        if not claims:
            return
        batch = self.slots.admit(claims, sent_at)
        if self._batch_handler is not None:
            handlers.start_soon(self._run_batch, batch)
        else:
            handlers.start_soon(self._handle_batch, batch, handlers)

    # -- batch handlers ---------------------------------------------------------------------

    async def _run_batch(self, batch: list[InFlight]) -> None:
        """Hand ``batch`` to the batch handler, again while the database is unreachable (the
        ack is fenced: a run that committed makes the next one a no-op), and admit the batch
        it claimed in the same transaction."""
        assert self._batch_handler is not None
        claims = [entry.claim for entry in batch]
        slots, backoff = self.slots, 0.1
        retry_of: float | None = None
        result, limit, sent_at = BatchResult([]), 0, 0.0
        try:
            with trio.CancelScope() as scope:
                while True:
                    # The next batch takes this batch's slots.
                    limit = min(
                        self.settings.batch_size, slots.free(alone_wanted=False) + len(batch)
                    )
                    limit = max(0, limit) if self._may_claim_along() else 0
                    sent_at, heard = trio.current_time(), self._group.heard
                    try:
                        with slots.reserve(limit):
                            result = await self._batch_handler(
                                claims,
                                claim_next=limit,
                                lease=self.settings.lease,
                                retry_of=retry_of,
                            )
                        break
                    except DatabaseUnavailable as error:
                        log.warning(
                            "event=batch_failed stream=%s error=%r retry_in=%.1fs",
                            self.stream,
                            str(error),
                            backoff,
                        )
                        retry_of = min(entry.lease_from for entry in batch)
                        for entry in batch:  # retrying: a heartbeat finding all lost stops it
                            entry.batch_scope = scope
                        await trio.sleep(backoff)
                        backoff = min(5.0, backoff * 2)
        finally:
            for entry in batch:
                entry.finished = True
                slots.forget(entry.claim.id)
        counters = self.counters
        counters.acked += result.acked
        counters.dead_lettered += result.dead_lettered
        counters.lost += result.lost
        if limit:
            counters.claims += 1
            counters.claimed += len(result.next_claims)
            self._dry_mark = heard if len(result.next_claims) < limit else None
        slots.prefetch(result.next_claims, sent_at)

    async def _handle_batch(self, batch: list[InFlight], handlers: trio.Nursery) -> None:
        """Run the message handlers of a claimed batch, each started at once.

        Handlers run inline until one has to wait; then the rest of the batch moves to a new
        task (see :mod:`mesh.runtime.consumer.inline_start`) while this one finishes the waiting handler.
        One cancel scope covers the batch: its leases are extended, or lost, together.
        """
        assert self._handler is not None
        mine = list(batch)  # what this task settles, or forgets if it is cancelled
        try:
            with trio.CancelScope() as scope:
                for entry in mine:
                    entry.batch_scope = scope
                for index, entry in enumerate(batch):
                    started = time.monotonic()
                    try:
                        step = first_step(self._handler(entry.claim))
                        if isinstance(step, Waiting):
                            rest = batch[index + 1 :]
                            if rest:
                                del mine[index + 1 :]
                                handlers.start_soon(self._handle_batch, rest, handlers)
                            outcome = await resume(step)
                        else:
                            outcome = step.value
                    except Exception as error:  # never lose the message to a handler bug
                        log.exception(
                            "event=handler_crashed stream=%s id=%s", self.stream, entry.claim.id
                        )
                        outcome = fallback_outcome(entry.claim, error)
                    self.counters.handler_seconds.observe(time.monotonic() - started)
                    entry.finished = True
                    self._settle_send.send_nowait(Settlement(entry.claim, outcome))
                    if len(mine) == index + 1:
                        return  # the rest, if any, was handed to another task
        finally:
            # Cancelled (leases lost, or shutdown): what did not finish is no longer ours.
            for entry in mine:
                if not entry.finished:
                    self.slots.forget(entry.claim.id)

    # -- heartbeat --------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await trio.sleep(self.settings.lease / 3)
            details = self.heartbeat_details() if self.heartbeat_details else None
            self.counters.lost += await keep_leases(
                self.streams, self.stream, self.settings.lease, self.slots.in_flight, details
            )

    def statistics(self) -> ConsumerStatistics:
        counters = self.counters
        return ConsumerStatistics(
            stream=self.stream,
            in_flight=len(self.slots.in_flight),
            claimed=counters.claimed,
            acked=counters.acked,
            retried=counters.retried,
            dead_lettered=counters.dead_lettered,
            lost=counters.lost,
            claims=counters.claims,
            empty_claims=counters.empty_claims,
            wakeups=self._wakeup.count,
            draining=self._stopping,
            paused=self.paused,
            running_alone=self.slots.alone_held,
        )
