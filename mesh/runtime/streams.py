"""Streams as trio code sees them: each operation one bridged database call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mesh.model.outcomes import Outgoing
from mesh.pg import job_queries, streams
from mesh.pg.database import Database
from mesh.pg.streams import DeadMessage, Settlement, StreamClaim, StreamStats

__all__ = ["DeadMessage", "Settlement", "StreamClaim", "StreamStats", "Streams"]


class Streams:
    """The stream operations of one node, over its database pool."""

    def __init__(self, db: Database, owner: str) -> None:
        self.db = db
        self.owner = owner

    async def enqueue(self, messages: Sequence[Outgoing]) -> list[int]:
        return await self.db.run(streams.enqueue, messages)

    async def claim(
        self,
        app: str,
        stream: str,
        *,
        limit: int,
        lease: float,
        look: bool = False,
        max_attempts: int = streams.DEFAULT_ATTEMPTS,
    ) -> list[StreamClaim]:
        return await self.db.run(
            streams.claim,
            app=app,
            stream=stream,
            owner=self.owner,
            limit=limit,
            lease=lease,
            look=look,
            max_attempts=max_attempts,
        )

    async def claim_alone(
        self,
        app: str,
        stream: str,
        *,
        lease: float,
        max_attempts: int = streams.DEFAULT_ATTEMPTS,
        others: int = 0,
    ) -> list[StreamClaim]:
        return await self.db.run(
            streams.claim_alone,
            app=app,
            stream=stream,
            owner=self.owner,
            lease=lease,
            max_attempts=max_attempts,
            others=others,
        )

    async def extend_leases(
        self,
        claims: Sequence[StreamClaim],
        lease: float,
        details: Mapping[int, str] | None = None,
    ) -> tuple[set[int], set[int]]:
        return await self.db.run(
            streams.extend_leases, owner=self.owner, claims=claims, lease=lease, details=details
        )

    async def release(self, claims: Sequence[StreamClaim]) -> set[int]:
        return await self.db.run(streams.release, owner=self.owner, claims=claims)

    async def settle(self, settlements: Sequence[Settlement]) -> set[int]:
        return await self.db.run(streams.settle, owner=self.owner, settlements=settlements)

    async def settle_and_claim(
        self,
        settlements: Sequence[Settlement],
        app: str,
        stream: str,
        *,
        limit: int,
        lease: float,
        max_attempts: int = streams.DEFAULT_ATTEMPTS,
    ) -> tuple[set[int], list[StreamClaim]]:
        return await self.db.run(
            streams.settle_and_claim,
            owner=self.owner,
            settlements=settlements,
            app=app,
            stream=stream,
            limit=limit,
            lease=lease,
            max_attempts=max_attempts,
        )

    async def prune_jobs(self, limit: int = 1000) -> tuple[int, int]:
        """Delete finished jobs past their expiry and expired buffered signals."""
        return await self.db.run(job_queries.prune, limit)

    async def reap(self, limit: int = 100) -> tuple[int, list[DeadMessage]]:
        return await self.db.run(streams.reap, limit=limit)

    async def release_all(self) -> int:
        """Give back every lease this node holds (drain)."""
        return await self.db.run(streams.release_owner, owner=self.owner)

    async def analyze_grown_tables(self) -> list[str]:
        return await self.db.run(streams.analyze_grown_tables)

    async def oldest_transaction_age(self) -> float:
        return await self.db.run(streams.oldest_transaction_age)

    async def stats(self, app: str | None = None) -> list[StreamStats]:
        return await self.db.run(streams.stream_stats, app)
