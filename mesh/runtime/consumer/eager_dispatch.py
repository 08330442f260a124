"""Eager dispatch: a transaction that enqueues requests for a stream this node consumes
leases them to the node as it enqueues them, and the consumer takes them from memory.

Without it, each request crosses the database twice more before it runs: the enqueue's
NOTIFY wakes the consumer, which sends a claim. Here the consumer *lends* free slots to the
transaction (:meth:`mesh.runtime.consumer.slots.Slots.lend`), the transaction inserts up to that many
of the requests already leased (``enqueue_leased``: attempt 1, the consumer's lease and
attempts; no NOTIFY), and once it commits the claims go to the consumer as if one of its own
claims had made them (:meth:`mesh.runtime.consumer.slots.Slots.prefetch`). Concurrency is never
exceeded, leases are kept by the consumer's heartbeat, and a node that dies holding them
leaves them to the reaper like any claim. If the transaction fails, nothing was leased.

A consumer lends only while its stream is *dry*: its last claim found fewer messages than it
asked for and no NOTIFY for the stream came since. So messages that were waiting keep their
turn (priority, then age): eager dispatch never lets new work pass a backlog. Consumers that
are draining, throttled, or waiting to run a message alone lend nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Protocol

from mesh.pg.eager import EagerOffer
from mesh.pg.streams import StreamClaim
from mesh.runtime.consumer.slots import Loan

Target = tuple[str, str]
"""(app, stream)."""


class Intake(Protocol):
    """A consumer of this node that takes messages leased to it at their enqueue."""

    def lend(self, wanted: int) -> tuple[EagerOffer, Loan] | None: ...

    def take(self, loan: Loan, claims: list[StreamClaim], sent_at: float) -> None: ...


class Lending:
    """The slots lent to one transaction, and where its leased messages go."""

    def __init__(self, loans: Mapping[Target, tuple[Intake, EagerOffer, Loan]]) -> None:
        self._loans = loans
        self.offers = {target: offer for target, (_, offer, _) in loans.items()}

    def settle(self, leased: Mapping[Target, list[StreamClaim]], sent_at: float) -> None:
        """The transaction committed (``leased``: what it leased) or failed (nothing): give
        back the loans and hand the claims to their consumers."""
        for target, (intake, _, loan) in self._loans.items():
            intake.take(loan, leased.get(target, []), sent_at)


class EagerDispatch:
    """The consumers of one node that take eager messages, by (app, stream)."""

    def __init__(self) -> None:
        self._intakes: dict[Target, list[Intake]] = {}

    @contextmanager
    def intake(self, app: str, stream: str, intake: Intake) -> Iterator[None]:
        """``intake`` takes eager messages for ``app``/``stream`` within the block."""
        intakes = self._intakes.setdefault((app, stream), [])
        intakes.append(intake)
        try:
            yield
        finally:
            intakes.remove(intake)

    def lend(self, app: str, streams: Sequence[str], wanted: int) -> Lending:
        """Borrow up to ``wanted`` free slots of this node's consumers of ``streams`` (one
        consumer each). Borrow what the transaction is likely to use: slots lent are
        unavailable to the consumer's own claims and to other transactions meanwhile."""
        loans: dict[Target, tuple[Intake, EagerOffer, Loan]] = {}
        for stream in streams:
            for intake in self._intakes.get((app, stream), ()):
                lent = intake.lend(wanted)
                if lent is not None:
                    loans[(app, stream)] = (intake, *lent)
                    break
        return Lending(loans)
