"""The stream consumer: claim in batches, run handlers concurrently, settle in batches.

Three duties under one nursery:

- **claim loop**: claims up to ``min(batch_size, free slots)`` messages and starts their
  handlers (inline until one has to wait, see :mod:`mesh.runtime.inline`); when the stream
  runs dry it waits for a NOTIFY wake-up or the fallback poll, whichever comes first. Wake-ups
  that arrive while a claim is running are kept and cause one more claim (coalescing).
- **settle loop**: collects handler outcomes and persists whatever has accumulated in one
  call (group commit), fenced by each message's attempt number. A slot frees only once its
  message is settled, so in-flight counts what the database still sees leased to us. When the
  claim loop is waiting for slots, the settle also claims the next batch, in the same round
  trip and transaction.
- **heartbeat**: every ``lease / 3`` extends the leases of everything in flight in one
  statement; when every lease of a claimed batch is lost, that batch's handlers are cancelled.

Slots are accounted as in flight + claimed-but-not-started + promised to a running claim, so
concurrency is never exceeded whichever loop claims. ``stop_claiming()`` starts a drain: no
new claims; in-flight work finishes and settles.

**Messages that run alone.** A message whose holders died twice while holding other messages
(see the reaper) is claimed only by a consumer that holds nothing, and while it runs the
consumer claims nothing else: if it kills the process again, the attempt is its own. A busy
consumer that learns such a message waits (:mod:`mesh.runtime.alone`) stops claiming until
what it holds is settled, then claims alone.

**Settles after a lost connection.** A settle whose connection failed may have committed
with only its reply lost. Settling is fenced, so the consumer simply settles again; a message
the retry finds no longer held was settled by the first try if its lease was still valid
(nobody else can touch a leased row), and is counted as settled, not as a lost lease.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from mesh.errors import DatabaseError, DatabaseUnavailable
from mesh.model.histogram import DurationHistogram
from mesh.model.outcomes import Ack, DeadLetter, Outcome, Retry, dead_letter_replies
from mesh.runtime.alone import AloneWatch
from mesh.runtime.inline import Waiting, first_step, resume
from mesh.runtime.leases import InFlight, keep_leases
from mesh.runtime.streams import Settlement, StreamClaim, Streams
from mesh.runtime.throttle import ThrottleState
from mesh.runtime.wakeup import StreamWakeups

log = logging.getLogger(__name__)

Handler = Callable[[StreamClaim], Coroutine[Any, Any, Outcome]]


class Settler(Protocol):
    """How outcomes are persisted: :class:`Streams` itself, or one that does more in the same
    transaction (:class:`mesh.runtime.engine.ApplyingSettler`)."""

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


@dataclass(frozen=True)
class ConsumerSettings:
    batch_size: int = 50
    """Messages claimed per round trip."""
    concurrency: int = 50
    """Messages in flight at once (claimed and not yet settled)."""
    lease: float = 30.0
    """Seconds a claim is leased; heartbeats extend it every lease / 3."""
    poll_interval: float = 2.0
    """Fallback poll when no NOTIFY arrives (NOTIFY is a hint, polling the guarantee)."""
    settle_batch: int = 500
    max_attempts: int = 3
    """Attempts of a message that carries no retry policy (the worker's policy)."""


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


class StreamConsumer:
    def __init__(
        self,
        streams: Streams,
        wakeups: StreamWakeups,
        *,
        app: str,
        stream: str,
        handler: Handler,
        settings: ConsumerSettings,
        throttle: ThrottleState | None = None,
        settler: Settler | None = None,
    ) -> None:
        self.streams = streams
        self.settler: Settler = settler or streams
        self.throttle = throttle
        self.app = app
        self.stream = stream
        self.settings = settings
        self.counters = ConsumerCounters()
        self._handler = handler
        self._in_flight: dict[int, InFlight] = {}
        self._group = wakeups.group(app, stream)
        self._wakeup = self._group.join()
        self._slot_freed = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self._stopping = False
        self._stopped = trio.Event()
        self.paused = False
        self._waiting_for_slots = False
        self._prefetched: list[StreamClaim] = []
        self._prefetched_at = 0.0
        self._reserved = 0  # slots promised to a claim that is still running
        self._alone_held = 0  # in flight and running alone: claim nothing else meanwhile
        self._alone = AloneWatch()
        self._settle_send, self._settle_receive = trio.open_memory_channel[Settlement](math.inf)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def wake(self) -> None:
        self._wakeup.set()

    def stop_claiming(self) -> None:
        """Begin the drain: claim nothing more; in-flight work goes on and settles."""
        self._stopping = True
        self._stopped.set()
        self._wakeup.set()
        self._slot_freed.set()

    async def wait_idle(self) -> None:
        """Return once nothing is in flight."""
        await self._idle.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        abandoned = self._forget_previous_run()
        if abandoned:
            # Their handlers are gone. Give the leases back now: a live node must not let a
            # lease expire (the reaper would take back everything the node holds).
            try:
                await self.streams.release(abandoned)
            except DatabaseError as error:
                log.warning(
                    "event=release_failed stream=%s error=%r (their leases will expire)",
                    self.stream,
                    str(error),
                )
        async with trio.open_nursery() as services:
            services.start_soon(self._heartbeat_loop)
            services.start_soon(self._settle_loop)
            async with trio.open_nursery() as handlers:
                task_status.started()
                await self._claim_loop(handlers)
            await self._idle.wait()
            services.cancel_scope.cancel()

    # -- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self, handlers: trio.Nursery) -> None:
        backoff = 0.1
        while not self._stopping:
            if self._prefetched:
                # Claimed by the settle loop along with its last settle (see _settle_loop).
                claims, self._prefetched = self._prefetched, []
                self._admit(claims, handlers, self._prefetched_at)
                continue
            free = self._free_slots()
            if free <= 0:
                self._slot_freed = trio.Event()
                self._waiting_for_slots = True
                await self._slot_freed.wait()
                self._waiting_for_slots = False
                continue
            wanted = min(self.settings.batch_size, free)
            throttle = self.throttle
            throttle_ms = throttle.effective(self.stream) if throttle else 0
            if throttle and throttle_ms < 0:
                # Paused: messages keep accumulating durably; a change or a stop wakes us.
                self.paused = True
                await throttle.wait(None, self._stopped)
                self.paused = False
                continue
            if throttle_ms > 0:
                wanted = 1  # one message per throttle interval
            self._alone.heard(self._wakeup)
            now = trio.current_time()
            holds_nothing = self._holds_nothing()  # before this claim's own reservation
            self._wakeup.clear()
            self._reserved += wanted
            try:
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
                backoff = min(self.settings.poll_interval, backoff * 2)
                continue
            finally:
                self._reserved -= wanted
            backoff = 0.1
            self.counters.claims += 1
            self.counters.claimed += len(claims)
            self._admit(claims, handlers, now)
            if throttle and throttle_ms > 0 and claims:
                await throttle.wait(throttle_ms / 1000, self._stopped)
                continue
            if self._alone_held or self._alone.wanted:
                continue  # wait for our slots to empty (claim alone then)
            if len(claims) == wanted:
                self._group.wake_one()  # there may be more: let an idle sibling claim too
            else:
                if not claims:
                    self.counters.empty_claims += 1
                await self._wakeup.wait(self.settings.poll_interval)

    def _forget_previous_run(self) -> list[StreamClaim]:
        """After a crash and restart, drop what the dead run held: its handlers are gone.
        Returns the claims to give back (those whose outcome was not produced); outcomes it
        already produced stay queued and are still settled (fenced)."""
        abandoned = [e.claim for e in self._in_flight.values() if not e.finished]
        abandoned += self._prefetched
        if abandoned:
            log.warning(
                "event=consumer_restarted stream=%s abandoned=%d (their leases are released)",
                self.stream,
                len(abandoned),
            )
        self._in_flight.clear()
        self._prefetched.clear()
        self._reserved = 0
        self._alone_held = 0
        self._waiting_for_slots = False
        self._idle.set()
        return abandoned

    def _holds_nothing(self) -> bool:
        return not self._in_flight and not self._prefetched and not self._reserved

    def _free_slots(self) -> int:
        """Slots neither in flight, nor claimed and waiting, nor promised to a running claim;
        none while a message runs alone, or while one waits to (until we hold nothing)."""
        if self._alone_held or (self._alone.wanted and not self._holds_nothing()):
            return 0
        return (
            self.settings.concurrency
            - len(self._in_flight)
            - len(self._prefetched)
            - self._reserved
        )

    def _admit(self, claims: list[StreamClaim], handlers: trio.Nursery, sent_at: float) -> None:
        """Take claimed messages in flight and start their handlers. ``sent_at``: when the
        claim was sent (the leases run from no earlier than that)."""
        if not claims:
            return
        batch = [InFlight(claim, lease_from=sent_at) for claim in claims]
        for entry in batch:
            self._in_flight[entry.claim.id] = entry
            if entry.claim.alone:
                self._alone_held += 1
        if self._idle.is_set():
            self._idle = trio.Event()
        handlers.start_soon(self._handle_batch, batch, handlers)

    async def _handle_batch(self, batch: list[InFlight], handlers: trio.Nursery) -> None:
        """Run the handlers of a claimed batch, each started at once.

        Handlers run inline until one has to wait; then the rest of the batch moves to a new
        task (see :mod:`mesh.runtime.inline`) while this one finishes the waiting handler.
        One cancel scope covers the batch: its leases are extended, or lost, together.
        """
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
                        outcome = _fallback_outcome(entry.claim, error)
                    self.counters.handler_seconds.observe(time.monotonic() - started)
                    entry.finished = True
                    self._settle_send.send_nowait(Settlement(entry.claim, outcome))
                    if len(mine) == index + 1:
                        return  # the rest, if any, was handed to another task
        finally:
            # Cancelled (leases lost, or shutdown): what did not finish is no longer ours.
            for entry in mine:
                if not entry.finished:
                    self._forget(entry.claim.id)

    def _forget(self, message_id: int) -> None:
        entry = self._in_flight.pop(message_id, None)
        if entry is not None:
            if entry.claim.alone:
                self._alone_held -= 1
            self._slot_freed.set()
            if not self._in_flight:
                self._idle.set()

    # -- heartbeat --------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await trio.sleep(self.settings.lease / 3)
            self.counters.lost += await keep_leases(
                self.streams, self.stream, self.settings.lease, self._in_flight
            )

    # -- settling ---------------------------------------------------------------------------

    async def _settle_loop(self) -> None:
        pending: list[Settlement] = []
        backoff = 0.1
        uncertain = False  # an earlier try of ``pending`` failed: it may have committed
        while True:
            if not pending:
                pending.append(await self._settle_receive.receive())
            while len(pending) < self.settings.settle_batch:
                try:
                    pending.append(self._settle_receive.receive_nowait())
                except trio.WouldBlock:
                    break
            # A saturated consumer claims its next batch in the same round trip and commit
            # as this settle: the slots it frees are known now.
            limit = min(self.settings.batch_size, self._free_slots() + len(pending))
            piggyback = (
                self._waiting_for_slots
                and not self._stopping
                and not self._alone_held
                and not self._alone.wanted
                and limit > 0
                and (self.throttle is None or self.throttle.effective(self.stream) == 0)
            )
            claims: list[StreamClaim] = []
            sent_at = trio.current_time()
            try:
                if piggyback:
                    self._reserved += limit
                    done, claims = await self.settler.settle_and_claim(
                        pending,
                        self.app,
                        self.stream,
                        limit=limit,
                        lease=self.settings.lease,
                        max_attempts=self.settings.max_attempts,
                    )
                else:
                    done = await self.settler.settle(pending)
            except DatabaseUnavailable as error:
                # Settling is fenced, so retrying the same batch is safe; leases stay
                # heartbeated meanwhile.
                log.warning(
                    "event=settle_failed stream=%s error=%r retry_in=%.1fs",
                    self.stream,
                    str(error),
                    backoff,
                )
                uncertain = True
                await trio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
                continue
            except DatabaseError as error:
                done, unsettled = await self._settle_one_by_one(pending, error)
                if unsettled:
                    # The database went away meanwhile: count what was settled, try the rest
                    # again later (fenced, and perhaps committed: uncertain).
                    self._record([s for s in pending if s not in unsettled], done, uncertain)
                    pending, uncertain = unsettled, True
                    await trio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
                    continue
            finally:
                if piggyback:
                    self._reserved -= limit
            backoff = 0.1
            self._record(pending, done, uncertain)
            pending = []
            uncertain = False
            if piggyback:
                self.counters.claims += 1
                self.counters.claimed += len(claims)
                if claims:
                    self._prefetched.extend(claims)
                    self._prefetched_at = sent_at
                    self._slot_freed.set()

    async def _settle_one_by_one(
        self, batch: list[Settlement], error: DatabaseError
    ) -> tuple[set[int], list[Settlement]]:
        """Isolate a settlement the database refuses, so it cannot block the others. Returns
        the ids settled and the settlements left when the database became unreachable (those
        are not refused: they are tried again)."""
        log.error(
            "event=settle_refused stream=%s size=%d error=%r", self.stream, len(batch), str(error)
        )
        done: set[int] = set()
        for index, settlement in enumerate(batch):
            try:
                try:
                    done |= await self.settler.settle([settlement])
                except DatabaseUnavailable:
                    raise
                except DatabaseError as single_error:
                    done |= await self._bury_unsettleable(settlement, single_error)
            except DatabaseUnavailable:
                return done, batch[index:]
        return done, []

    async def _bury_unsettleable(self, settlement: Settlement, error: DatabaseError) -> set[int]:
        """Dead-letter a message whose outcome the database refuses (its sender gets an error
        response), rather than leave its lease to expire."""
        claim = settlement.claim
        reason = f"its outcome could not be stored: {error}"
        log.error("event=settle_refused stream=%s id=%s error=%r", self.stream, claim.id, reason)
        try:
            return await self.streams.settle(
                [
                    Settlement(
                        claim,
                        DeadLetter(
                            error=reason,
                            follow_ups=dead_letter_replies(claim.payload, claim.attempt, reason),
                        ),
                    )
                ]
            )
        except DatabaseUnavailable:
            raise  # not refused: tried again with the rest
        except DatabaseError as burial_error:
            log.error(
                "event=dead_letter_refused stream=%s id=%s error=%r (left leased)",
                self.stream,
                claim.id,
                str(burial_error),
            )
            return set()

    def _record(self, batch: list[Settlement], done: set[int], uncertain: bool = False) -> None:
        """Count what was settled. With ``uncertain`` (an earlier try failed with the
        connection), a message the last try no longer held was settled by that earlier try
        when its lease was valid all along: nobody else could have taken it."""
        now = trio.current_time()
        for settlement in batch:
            message_id = settlement.claim.id
            if message_id not in done:
                entry = self._in_flight.get(message_id)
                if uncertain and entry is not None and now < entry.lease_from + self.settings.lease:
                    log.info(
                        "event=settle_confirmed stream=%s id=%s (committed before the "
                        "connection failed; only its reply was lost)",
                        self.stream,
                        message_id,
                    )
                else:
                    self.counters.lost += 1
                    log.warning(
                        "event=lease_lost_at_settle stream=%s id=%s", self.stream, message_id
                    )
                    self._forget(message_id)
                    continue
            if isinstance(settlement.outcome, Ack):
                self.counters.acked += 1
            elif isinstance(settlement.outcome, Retry):
                self.counters.retried += 1
            else:
                self.counters.dead_lettered += 1
            self._forget(message_id)

    def statistics(self) -> dict[str, object]:
        return {
            "stream": self.stream,
            "in_flight": len(self._in_flight),
            "claimed": self.counters.claimed,
            "acked": self.counters.acked,
            "retried": self.counters.retried,
            "dead_lettered": self.counters.dead_lettered,
            "lost": self.counters.lost,
            "wakeups": self._wakeup.count,
            "draining": self._stopping,
            "paused": self.paused,
            "running_alone": self._alone_held,
        }


def _fallback_outcome(claim: StreamClaim, error: Exception) -> Outcome:
    message = f"{type(error).__name__}: {error}"
    if claim.attempt >= claim.max_attempts:
        return DeadLetter(error=message)
    return Retry(delay=1.0, error=message)
