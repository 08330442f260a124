"""Running engine batches from trio: decode the claimed messages, run the batch transaction
(:func:`mesh.pg.workflows.process`) in a worker thread, and keep counts.

A batch the database refuses as a whole is retried message by message, so one bad message
cannot hold up the others; a message refused alone is dead-lettered with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from mesh.errors import DatabaseError, DatabaseUnavailable, InvalidPayload
from mesh.model.histogram import DurationHistogram
from mesh.model.ids import ENGINE_STREAM
from mesh.model.messages import ActivityRequest, decode
from mesh.model.outcomes import DeadLetter
from mesh.pg.workflows import AppVersions, BatchReport, Delivery, NextClaim, process
from mesh.runtime.node import Node
from mesh.runtime.streams import Settlement, StreamClaim

log = logging.getLogger(__name__)


@dataclass
class EngineCounters:
    batches: int = 0
    messages: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    dead_lettered: int = 0
    batch_seconds: DurationHistogram = field(default_factory=DurationHistogram)

    def record(self, report: BatchReport) -> None:
        self.batches += 1
        self.lost += report.lost
        for result in report.results:
            self.messages += 1
            self.outcomes[result.outcome] = self.outcomes.get(result.outcome, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "messages": self.messages,
            "lost": self.lost,
            "dead_lettered": self.dead_lettered,
            **{f"outcome_{name}": count for name, count in sorted(self.outcomes.items())},
        }


class BatchRunner:
    """One node's engine batches: shares the compiled app versions between loops."""

    def __init__(self, node: Node, counters: EngineCounters) -> None:
        self.node = node
        self.counters = counters
        self.versions = AppVersions()

    async def run(
        self, claims: list[StreamClaim], *, claim_next: int, lease: float
    ) -> list[StreamClaim]:
        """Handle ``claims``; returns the next batch claimed in the same transaction."""
        deliveries: list[Delivery] = []
        undecodable: list[Settlement] = []
        for claim in claims:
            try:
                message = decode(claim.payload)
            except InvalidPayload as error:
                undecodable.append(Settlement(claim, DeadLetter(error=f"undecodable: {error}")))
                continue
            if isinstance(message, ActivityRequest):
                undecodable.append(
                    Settlement(claim, DeadLetter(error="a worker request on the engine stream"))
                )
                continue
            deliveries.append(Delivery(message, claim))
        if undecodable:
            await self.node.streams.settle(undecodable)
            self.counters.dead_lettered += len(undecodable)
        next_claim = NextClaim(ENGINE_STREAM, claim_next, lease) if claim_next > 0 else None
        try:
            report = await self.node.db.run(
                process,
                self.node.app,
                self.versions,
                deliveries,
                owner=self.node.guid,
                next_claim=next_claim,
            )
        except DatabaseUnavailable:
            raise
        except DatabaseError as error:
            log.error("event=engine_batch_refused size=%d error=%r", len(deliveries), str(error))
            await self._one_by_one(deliveries)
            return []
        self.counters.record(report)
        return report.next_claims

    async def _one_by_one(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            try:
                report = await self.node.db.run(
                    process, self.node.app, self.versions, [delivery], owner=self.node.guid
                )
                self.counters.record(report)
            except DatabaseUnavailable:
                raise
            except DatabaseError as error:
                assert delivery.claim is not None
                log.error(
                    "event=engine_message_dead_lettered id=%s error=%r",
                    delivery.claim.id,
                    str(error),
                )
                await self.node.streams.settle(
                    [Settlement(delivery.claim, DeadLetter(error=f"engine refused it: {error}"))]
                )
                self.counters.dead_lettered += 1
