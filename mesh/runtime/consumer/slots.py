"""A consumer's slots: what it holds (in flight, claimed and waiting, promised to a running
claim) and how many more messages it may claim.

Slots count messages, never batches: concurrency is never exceeded whoever claims (the claim
loop, a settle that claims in its round trip, a batch that claims its successor in its
transaction). A message that runs alone takes every slot while it is held; while one waits
to run alone, nothing more is claimed until nothing is held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import trio

from mesh.runtime.consumer.leases import InFlight
from mesh.runtime.streams import StreamClaim


@dataclass(frozen=True, slots=True)
class Loan:
    """Slots promised to another actor's transaction (see :meth:`Slots.lend`)."""

    count: int
    generation: int


class Slots:
    def __init__(self, concurrency: int, on_prefetch: Callable[[], None] | None = None) -> None:
        self.concurrency = concurrency
        self.on_prefetch = on_prefetch
        """Called when claims are kept for the claim loop (it must wake to admit them)."""
        self.in_flight: dict[int, InFlight] = {}
        self.prefetched: list[StreamClaim] = []
        """Claimed along with a settle or a batch, not yet admitted."""
        self.prefetched_at = 0.0
        self.reserved = 0
        """Promised to a claim that is still running."""
        self.alone_held = 0
        """Held messages that run alone: claim nothing else meanwhile."""
        self.waiting = False
        """The claim loop waits for a slot to free."""
        self.freed = trio.Event()
        self.idle = trio.Event()
        self.idle.set()
        self.generation = 0
        """Counts :meth:`reset` calls: a loan made before one is void."""

    def holds_nothing(self) -> bool:
        return not self.in_flight and not self.prefetched and not self.reserved

    def free(self, *, alone_wanted: bool) -> int:
        """Slots neither in flight, nor claimed and waiting, nor promised to a running claim;
        none while a message runs alone, or while one waits to (until we hold nothing)."""
        if self.alone_held or (alone_wanted and not self.holds_nothing()):
            return 0
        return self.concurrency - len(self.in_flight) - len(self.prefetched) - self.reserved

    async def wait_for_free(self) -> None:
        self.freed = trio.Event()
        self.waiting = True
        try:
            await self.freed.wait()
        finally:
            self.waiting = False

    @contextmanager
    def reserve(self, count: int) -> Iterator[None]:
        """Promise ``count`` slots to the claim running in the block."""
        self.reserved += count
        try:
            yield
        finally:
            self.reserved -= count

    def lend(self, count: int) -> Loan:
        """Promise ``count`` slots to a transaction of another actor of this node, which may
        enqueue that many messages leased to us (eager dispatch); :meth:`repay` after it."""
        self.reserved += count
        return Loan(count, self.generation)

    def repay(self, loan: Loan) -> None:
        if loan.generation == self.generation:
            self.reserved -= loan.count

    def admit(self, claims: list[StreamClaim], sent_at: float) -> list[InFlight]:
        """Hold ``claims`` (their leases run from no earlier than ``sent_at``)."""
        batch = [InFlight(claim, lease_from=sent_at) for claim in claims]
        for entry in batch:
            self.in_flight[entry.claim.id] = entry
            if entry.claim.alone:
                self.alone_held += 1
        if batch and self.idle.is_set():
            self.idle = trio.Event()
        return batch

    def prefetch(self, claims: list[StreamClaim], sent_at: float) -> None:
        """Keep ``claims`` (made along with other work) for the claim loop to admit."""
        if claims:
            self.prefetched.extend(claims)
            self.prefetched_at = sent_at
            self.freed.set()
            if self.on_prefetch is not None:
                self.on_prefetch()

    def take_prefetched(self) -> tuple[list[StreamClaim], float]:
        claims, self.prefetched = self.prefetched, []
        return claims, self.prefetched_at

    def forget(self, message_id: int) -> None:
        """The message is settled, or no longer ours: its slot is free."""
        entry = self.in_flight.pop(message_id, None)
        if entry is not None:
            if entry.claim.alone:
                self.alone_held -= 1
            self.freed.set()
            if not self.in_flight:
                self.idle.set()

    def reset(self) -> list[StreamClaim]:
        """After a crash and restart, drop what the dead run held: its handlers are gone.
        Returns the claims to give back (those whose outcome was not produced); outcomes it
        already produced stay queued and are still settled (fenced)."""
        abandoned = [e.claim for e in self.in_flight.values() if not e.finished]
        abandoned += self.prefetched
        self.in_flight.clear()
        self.prefetched.clear()
        self.reserved = 0
        self.generation += 1
        self.alone_held = 0
        self.waiting = False
        self.idle.set()
        return abandoned
