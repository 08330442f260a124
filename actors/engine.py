"""The engine actor: runs the app's workflows by consuming its engine stream.

Each loop claims a batch of engine messages (worker responses, child starts, timers,
signals, re-entries, interrupts) and hands the whole batch to one database transaction
(:class:`mesh.runtime.engine.BatchRunner`): fenced ack, job locks, state changes, follow-up
messages, and the claim of the next batch commit together. Several loops overlap one
batch's Python work with another's database round trips. Throttles on the engine stream
(``mesh throttle MS --topic engine``, a node's guid, or the whole mesh) act here as in every
claim loop: paused, nothing is claimed; N ms, one message per N ms.

A message that runs alone (its holder died twice holding others, see the reaper) is claimed
only when no loop holds a batch, and handled as a batch of one while the other loops wait.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from mesh.errors import DatabaseError, DatabaseUnavailable
from mesh.model.ids import ENGINE_STREAM
from mesh.model.outcomes import ENGINE_ATTEMPTS
from mesh.runtime.actor import Actor
from mesh.runtime.alone import AloneWatch
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.engine import BatchRunner, EngineCounters
from mesh.runtime.node import Node
from mesh.runtime.streams import StreamClaim

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
        self._claim_lock = trio.Lock()
        self._alone_running = False
        self._alone = AloneWatch()
        self._isolation = trio.Event()  # set when a batch ends (a loop may claim alone now)
        self._idle = trio.Event()
        self._idle.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # A restart after a crash starts afresh; what the dead run held expires and is reaped.
        self._busy = self._paused_loops = 0
        self._alone_running = False
        self._alone = AloneWatch()
        self._idle.set()
        async with trio.open_nursery() as nursery:
            for wakeup in self._wakeups:
                nursery.start_soon(self._loop, wakeup)
            task_status.started()

    async def _loop(self, wakeup: Any) -> None:
        settings = self.settings
        claims: list[Any] = []
        retried = False  # the last run of ``claims`` failed with the connection
        claims_from = 0.0  # when the statement that leased ``claims`` was sent
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
                self._alone.heard(wakeup)
                if self._alone_running or (self._alone.wanted and self._busy):
                    # A message runs alone, or waits to: no new batch until the loops are idle.
                    with trio.move_on_after(settings.poll_interval):
                        await self._isolation.wait()
                    continue
                wakeup.clear()
                claims_from = trio.current_time()
                try:
                    claims = await self._claim(batch_size)
                except DatabaseError as error:
                    log.warning(
                        "event=engine_claim_failed error=%r retry_in=%.1fs", str(error), backoff
                    )
                    await wakeup.wait(backoff)
                    backoff = min(settings.poll_interval, backoff * 2)
                    continue
                backoff = 0.1
                if not claims:
                    if not self._alone_running:  # else: wait for it above, not for a poll
                        await wakeup.wait(settings.poll_interval)
                    continue
            running_alone = any(c.alone for c in claims)
            claim_next = settings.batch_size
            if self._stopping or throttle_ms or running_alone or self._alone.wanted:
                claim_next = 0
            self._enter()
            done = False
            try:
                sent_at = trio.current_time()
                claims = await self.runner.run(
                    claims,
                    claim_next=claim_next,
                    lease=settings.lease,
                    retry_of=claims_from if retried else None,
                )
                claims_from, retried, done = sent_at, False, True
            except DatabaseUnavailable as error:
                # It may have committed with only its reply lost: run the same claims again
                # (the fenced ack makes a committed batch a no-op). A live node lets no lease
                # expire: the reaper would take back everything it holds.
                log.warning(
                    "event=engine_batch_failed error=%r retry_in=%.1fs", str(error), backoff
                )
                retried = True
                await trio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
                continue
            finally:
                if running_alone and (done or self._stopping):
                    self._alone_running = False  # kept while the same claims are run again
                self._leave()
            if throttle_ms > 0:
                await throttle.wait(throttle_ms / 1000, self._stopped)
            elif len(claims) == settings.batch_size:
                self._group.wake_one()  # more may be waiting: let a sibling loop claim too

    async def _claim(self, batch_size: int) -> list[StreamClaim]:
        """A batch for one loop (or one message that runs alone, when no loop holds one).
        One claim at a time, so "no loop holds a batch" stays true until the claim is in."""
        async with self._claim_lock:
            if self._alone_running:
                return []
            claims = await self._alone.claim(
                self.node.streams,
                self.node.app,
                ENGINE_STREAM,
                holds_nothing=not self._busy,
                limit=batch_size,
                lease=self.settings.lease,
                max_attempts=ENGINE_ATTEMPTS,
            )
            self._alone_running = any(c.alone for c in claims)
            return claims

    def _enter(self) -> None:
        self._busy += 1
        if self._idle.is_set():
            self._idle = trio.Event()

    def _leave(self) -> None:
        self._busy -= 1
        if not self._busy:
            self._idle.set()
        self._isolation.set()
        self._isolation = trio.Event()

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
            "running_alone": int(self._alone_running),
        }
