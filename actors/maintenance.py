"""The leader actor: every node's seat in its app's election, and the elected node's duties.

As the leader (one node per app, see :mod:`mesh.runtime.leadership`) it

- looks for streams to wake every ``poll_interval`` and when the next delayed message
  (a retry, a timer, a sleep) comes due, and wakes them by NOTIFY;
- returns expired leases to their streams every ``reap_interval``, and dead-letters poison
  messages: a message whose attempts are spent when its lease expires (its handler killed the
  process, or hung, every time) gets an error response instead of being released again;
- analyzes mesh tables that outgrew their statistics with each reap (see
  :func:`mesh.pg.streams.analyze_grown_tables`), and prunes finished jobs past their expiry
  every ``CARE_INTERVAL``.

As the standby it tries the leader's seat every ``standby_interval``; as a follower it tries
the standby's seat every ``follow_interval`` (jittered). ``FOR UPDATE SKIP LOCKED`` keeps two
reapers from colliding, should two leaders ever overlap (one whose connection is gone but
whose server session lingers).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import trio

from mesh.errors import DatabaseError, InvalidPayload
from mesh.model.ids import election_channel, schedule_channel
from mesh.model.schedules import ScheduleSpec
from mesh.pg import schedules
from mesh.pg.operations import Operations
from mesh.runtime.actor import Actor, ActorStatistics
from mesh.runtime.leadership import Election, Poller, Role
from mesh.runtime.node import Node

log = logging.getLogger(__name__)

SCHEDULE_RECHECK = 60.0
"""Seconds: the leader looks at the schedules at least this often; sooner at the earliest
next fire time, and at once when a schedule is created, changed or resumed (a NOTIFY on the
app's schedule channel; anyone may send one, so they move a look forward at most once per
:data:`SCHEDULE_NUDGE_PAUSE`)."""
SCHEDULE_NUDGE_PAUSE = 0.5
CARE_INTERVAL = 10.0
"""Seconds between the leader's prunes of finished jobs."""
NUDGE_PAUSE = 2.0
"""Seconds: a follower tries for a seat at most this often, however often it is told one
was given up."""


class LeaderActor(Actor[None]):
    name = "leader"

    def __init__(
        self,
        node: Node,
        *,
        poll_interval: float = 1.0,
        reap_interval: float = 2.0,
        standby_interval: float = 1.0,
        follow_interval: float = 60.0,
        schedules: Sequence[ScheduleSpec] = (),
    ) -> None:
        super().__init__()
        self.node = node
        self.streams = node.streams
        self.election = Election(node.listener, node.app)
        self.poller = Poller(node.db, node.app)
        self.poll_interval = poll_interval
        self.reap_interval = reap_interval
        self.standby_interval = standby_interval
        self.follow_interval = follow_interval
        self.released = 0
        self.dead_lettered = 0
        self.pruned = 0
        self.schedules = ScheduleCounts()
        self._operations = Operations(node.app, node.versions, node.job_notices)
        self._config_schedules = list(schedules)
        self._nudged = trio.Event()
        self._schedules_nudged = False
        self._last_nudged = -math.inf
        self._wake = trio.Event()
        """Set to cut the leader's sleep short (a schedule changed)."""
        node.listener.on_reconnect(lambda: self._nudged.set())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self._config_schedules:
            await self._apply_config_schedules()
        channel = election_channel(self.node.app)
        try:
            with (
                self.node.listener.subscription([channel], self._seat_freed),
                self.node.listener.subscription(
                    [schedule_channel(self.node.app)], self._schedules_changed
                ),
            ):
                await self._serve()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                await self.election.resign()

    async def _serve(self) -> None:
        while True:
            role = await self.election.step()
            if role is Role.LEADER:
                await self._lead()
            elif role is Role.STANDBY:
                await trio.sleep(self.standby_interval)
            else:
                # Nodes started together do not try together; a listener that comes back
                # tries at once (its seat, if any, went with the old connection), and so does
                # a follower told that a seat was given up.
                await self._sleep_or_nudged(self.follow_interval * random.uniform(0.5, 1.0))

    def _schedules_changed(self, _payload: str) -> None:
        """Anyone may NOTIFY the schedule channel: it moves the next look forward, and wakes
        the leader at most once per :data:`SCHEDULE_NUDGE_PAUSE` (its regular looks take a
        nudge that came sooner)."""
        self._schedules_nudged = True
        if trio.current_time() >= self._last_nudged + SCHEDULE_NUDGE_PAUSE:
            self._wake.set()

    def _seat_freed(self, _payload: str) -> None:
        """Anyone may NOTIFY the election channel: it only moves a try forward, and a
        follower tries at most once per :data:`NUDGE_PAUSE`."""
        self._nudged.set()

    async def _sleep_or_nudged(self, seconds: float) -> None:
        started = trio.current_time()
        self._nudged = trio.Event()
        with trio.move_on_after(seconds):
            await self._nudged.wait()
            # Spread the followers' tries; and never more often than NUDGE_PAUSE.
            pause = max(NUDGE_PAUSE - (trio.current_time() - started), 0.0)
            await trio.sleep(pause + random.uniform(0.0, 0.5))

    async def _lead(self) -> None:
        """Serve while the seat is ours."""
        self.poller.forget()
        now = trio.current_time()
        next_reap = next_care = next_schedules = now
        while self.election.holds():
            now = trio.current_time()
            next_due_in = await self._poll()
            if self._schedules_nudged and now >= self._last_nudged + SCHEDULE_NUDGE_PAUSE:
                self._schedules_nudged, self._last_nudged = False, now
                next_schedules = now
            if now >= next_schedules:
                next_schedules = now + await self._fire_schedules()
            schedules_in = max(0.0, next_schedules - trio.current_time())
            next_due_in = schedules_in if next_due_in is None else min(next_due_in, schedules_in)
            if now >= next_reap:
                next_reap = now + self.reap_interval
                await self.reap_once()
                await self._analyze()
            if now >= next_care:
                next_care = now + CARE_INTERVAL
                await self._care()
            wait = (
                self.poll_interval if next_due_in is None else min(self.poll_interval, next_due_in)
            )
            self._wake = trio.Event()
            with trio.move_on_after(max(0.01, wait)):
                await self._wake.wait()

    async def _apply_config_schedules(self) -> None:
        """The config's schedules: created, or updated when their entry changed."""
        try:
            done = await self.node.db.run(schedules.ensure, self.node.app, self._config_schedules)
        except (DatabaseError, InvalidPayload) as error:
            log.error("event=config_schedules_failed error=%r", str(error))
            return
        for schedule_id, outcome in done.items():
            if outcome != "unchanged":
                log.info("event=schedule_%s id=%s (from the config)", outcome, schedule_id)

    async def _fire_schedules(self) -> float:
        """Fire the due schedules; seconds until the next look (the earliest next fire
        time, and at most :data:`SCHEDULE_RECHECK`, so that new schedules are seen)."""
        try:
            report = await self.node.db.run(self._operations.fire_schedules)
        except DatabaseError as error:
            log.warning("event=schedules_failed error=%r", str(error))
            return SCHEDULE_RECHECK
        self.schedules.fired += report.fired
        self.schedules.skipped += report.skipped
        self.schedules.missed += report.missed
        for workflow_id in report.started:
            log.info("event=schedule_fired workflow_id=%s", workflow_id)
        if report.next_fire_at is None:
            return SCHEDULE_RECHECK
        wait = (report.next_fire_at - datetime.now(UTC)).total_seconds()
        return min(SCHEDULE_RECHECK, max(0.02, wait))

    async def _poll(self) -> float | None:
        try:
            return await self.poller.poll()
        except DatabaseError as error:
            log.warning("event=leader_poll_failed error=%r", str(error))
            return None

    async def reap_once(self) -> None:
        try:
            released, dead = await self.streams.reap()
        except DatabaseError as error:
            log.warning("event=reap_failed error=%r", str(error))
            return
        self.released += released
        self.dead_lettered += len(dead)
        if released:
            log.info("event=leases_reclaimed count=%d", released)
        for message in dead:
            log.warning(
                "event=poison_dead_lettered id=%s attempts=%d", message.id, message.attempts
            )

    async def _care(self) -> None:
        try:
            pruned, _signals = await self.streams.prune_jobs()
        except DatabaseError as error:
            log.warning("event=prune_failed error=%r", str(error))
        else:
            self.pruned += pruned

    async def _analyze(self) -> None:
        """With each reap: a table that doubled since its statistics gets fresh ones at once
        (plans cached from the old ones cost throughput while they last)."""
        try:
            analyzed = await self.streams.analyze_grown_tables()
        except DatabaseError as error:
            log.warning("event=analyze_failed error=%r", str(error))
        else:
            for name in analyzed:
                log.info("event=table_analyzed table=mesh.%s (outgrew its statistics)", name)

    def statistics(self) -> LeaderStatistics:
        return LeaderStatistics(
            **self._base_statistics(),
            role=self.election.role.value,
            terms=self.election.terms,
            looks=self.poller.looks,
            woken=self.poller.woken,
            released=self.released,
            dead_lettered=self.dead_lettered,
            pruned_jobs=self.pruned,
            schedules_fired=self.schedules.fired,
            schedules_skipped=self.schedules.skipped,
            schedules_missed=self.schedules.missed,
        )


@dataclass(slots=True)
class ScheduleCounts:
    fired: int = 0
    skipped: int = 0
    missed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderStatistics(ActorStatistics):
    role: str
    """leader, standby or follower."""
    terms: int
    """Times this node became the leader."""
    looks: int
    """The poller's looks (as the leader)."""
    woken: int
    """Stream wake-ups the poller sent."""
    released: int
    """Expired leases returned to their streams."""
    dead_lettered: int
    """Messages dead-lettered for being claimed too often."""
    pruned_jobs: int
    schedules_fired: int = 0
    """Schedule ticks this node started as the leader."""
    schedules_skipped: int = 0
    schedules_missed: int = 0
