"""The reaper: returns expired leases to their streams, dead-letters poison messages,
prunes finished jobs past their expiry (with their data and steps), and analyzes mesh tables
that outgrew their statistics (see :func:`mesh.pg.streams.analyze_grown_tables`).

Every node runs one; ``FOR UPDATE SKIP LOCKED`` keeps several reapers from colliding. A
message whose attempts are spent when its lease expires (its handler killed the process, or
hung, every time) is dead-lettered with an error response instead of being released again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from mesh.errors import DatabaseError
from mesh.runtime.actor import Actor, ActorStatistics
from mesh.runtime.streams import Streams

log = logging.getLogger(__name__)


class ReaperActor(Actor[None]):
    name = "reaper"

    def __init__(self, streams: Streams, *, interval: float = 2.0) -> None:
        super().__init__()
        self.streams = streams
        self.interval = interval
        self.released = 0
        self.dead_lettered = 0
        self.pruned = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self.reap_once()
            await trio.sleep(self.interval)

    async def reap_once(self) -> None:
        try:
            released, dead = await self.streams.reap()
        except DatabaseError as error:
            log.warning("event=reap_failed error=%r", str(error))
            return
        self.released += released
        self.dead_lettered += len(dead)
        try:
            pruned, _signals = await self.streams.prune_jobs()
        except DatabaseError as error:
            log.warning("event=prune_failed error=%r", str(error))
        else:
            self.pruned += pruned
        try:
            analyzed = await self.streams.analyze_grown_tables()
        except DatabaseError as error:
            log.warning("event=analyze_failed error=%r", str(error))
        else:
            for name in analyzed:
                log.info("event=table_analyzed table=mesh.%s (outgrew its statistics)", name)
        if released:
            log.info("event=leases_reclaimed count=%d", released)
        for message in dead:
            log.warning(
                "event=poison_dead_lettered id=%s attempts=%d", message.id, message.attempts
            )

    def statistics(self) -> ReaperStatistics:
        return ReaperStatistics(
            **self._base_statistics(),
            released=self.released,
            dead_lettered=self.dead_lettered,
            pruned_jobs=self.pruned,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaperStatistics(ActorStatistics):
    released: int
    """Expired leases returned to their streams."""
    dead_lettered: int
    """Messages dead-lettered for being claimed too often."""
    pruned_jobs: int
