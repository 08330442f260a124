"""The engine actor: runs the app's workflows by consuming its engine stream.

Each loop claims a batch of engine messages (worker responses, child starts, timers,
signals, re-entries, interrupts) and hands the whole batch to one database transaction
(:class:`mesh.runtime.engine.BatchRunner`): fenced ack, job locks, state changes, follow-up
messages, and the claim of the next batch commit together. Several loops overlap one
batch's Python work with another's database round trips. Throttles on the engine stream
(``mesh throttle MS --topic engine``, a node's guid, or the whole mesh) act here as in every
claim loop: paused, nothing is claimed; N ms, one message per N ms.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from mesh.errors import DatabaseError, DatabaseUnavailable
from mesh.model.ids import ENGINE_STREAM
from mesh.runtime.actor import Actor
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.engine import BatchRunner, EngineCounters
from mesh.runtime.node import Node

log = logging.getLogger(__name__)


class EngineActor(Actor[None]):
    name = "engine"

    def __init__(self, node: Node, *, settings: ConsumerSettings, loops: int = 2) -> None:
        super().__init__()
        self.node = node
        self.settings = settings
        self.loops = loops
        self.counters = EngineCounters()
        self.runner = BatchRunner(node, self.counters)
        self._group = node.wakeups.group(node.app, ENGINE_STREAM)
        self._wakeups = [self._group.join() for _ in range(loops)]
        self._stopping = False
        self._stopped = trio.Event()
        self._paused_loops = 0
        self._busy = 0
        self._idle = trio.Event()
        self._idle.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for wakeup in self._wakeups:
                nursery.start_soon(self._loop, wakeup)
            task_status.started()

    async def _loop(self, wakeup: Any) -> None:
        settings = self.settings
        claims: list[Any] = []
        backoff = 0.1
        throttle = self.node.throttle
        while not self._stopping:
            throttle_ms = throttle.effective(ENGINE_STREAM)
            if throttle_ms < 0 and not claims:
                # Paused (once a batch already claimed is done): the messages wait durably; a
                # throttle change or the drain wakes us.
                self._paused_loops += 1
                try:
                    await throttle.wait(None, self._stopped)
                finally:
                    self._paused_loops -= 1
                continue
            batch_size = 1 if throttle_ms > 0 else settings.batch_size
            if not claims:
                wakeup.clear()
                try:
                    claims = await self.node.streams.claim(
                        self.node.app,
                        ENGINE_STREAM,
                        limit=batch_size,
                        lease=settings.lease,
                    )
                except DatabaseError as error:
                    log.warning(
                        "event=engine_claim_failed error=%r retry_in=%.1fs", str(error), backoff
                    )
                    await wakeup.wait(backoff)
                    backoff = min(settings.poll_interval, backoff * 2)
                    continue
                backoff = 0.1
                if not claims:
                    await wakeup.wait(settings.poll_interval)
                    continue
            self._enter()
            try:
                claims = await self.runner.run(
                    claims,
                    claim_next=0 if self._stopping or throttle_ms else settings.batch_size,
                    lease=settings.lease,
                )
            except DatabaseUnavailable as error:
                # Nothing committed; the leases expire and the reaper hands them out again
                # (or this loop claims them afresh once the database is back).
                log.warning(
                    "event=engine_batch_failed error=%r retry_in=%.1fs", str(error), backoff
                )
                claims = []
                await trio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
                continue
            finally:
                self._leave()
            if throttle_ms > 0:
                await throttle.wait(throttle_ms / 1000, self._stopped)
            elif len(claims) == settings.batch_size:
                self._group.wake_one()  # more may be waiting: let a sibling loop claim too

    def _enter(self) -> None:
        self._busy += 1
        if self._idle.is_set():
            self._idle = trio.Event()

    def _leave(self) -> None:
        self._busy -= 1
        if not self._busy:
            self._idle.set()

    def begin_drain(self) -> None:
        self._stopping = True
        self._stopped.set()
        for wakeup in self._wakeups:
            wakeup.set()

    async def wait_drained(self) -> None:
        await self._idle.wait()

    def in_flight(self) -> int:
        return self._busy

    def statistics(self) -> dict[str, Any]:
        return {
            **super().statistics(),
            **self.counters.snapshot(),
            "busy_loops": self._busy,
            "paused": self._paused_loops == self.loops,
        }
