"""The node: one OS process hosting supervised actors around one pool and one listener.

Lifecycle: open the pool and wait (logging, never exiting) until the database answers; check
the schema version; start the listener, then the actors under a supervisor; run until SIGTERM
or SIGINT. The first signal drains: actors stop claiming, in-flight work finishes until the
drain deadline, the leases left are released in one statement, and ``run`` returns (exit 0).
A second signal exits the process at once. Every database step of shutdown has a deadline,
so it completes even when the database is unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from dataclasses import dataclass
from typing import Any

import trio

from mesh.errors import DatabaseError, DatabaseUnavailable, MeshError, lone_error
from mesh.model.ids import new_guid
from mesh.model.quorum import JobNotices
from mesh.pg.database import Database, DatabaseStatistics, check_timeouts
from mesh.pg.graphs import AppVersions
from mesh.pg.listener import Listener, ListenerStatistics
from mesh.pg.migrations import check_schema
from mesh.pg.migrations import migrate as migrate_schema
from mesh.runtime.activities import ActivityRunner, AsyncioLoop
from mesh.runtime.actor import Actor, ActorStatistics
from mesh.runtime.consumer.eager_dispatch import EagerDispatch
from mesh.runtime.consumer.wakeups import StreamWakeups
from mesh.runtime.quorum_client import QuorumClient
from mesh.runtime.streams import Streams
from mesh.runtime.supervisor import Supervisor
from mesh.runtime.throttle import ThrottleState

log = logging.getLogger(__name__)


class Node:
    def __init__(
        self,
        dsn: str,
        *,
        app: str,
        pool_size: int = 8,
        pool_max_idle: float = 60.0,
        drain_seconds: float = 30.0,
        listener_check_interval: float = 60.0,
        statement_timeout: float = 30.0,
        quorum_secret: bytes | None = None,
        listen_dsn: str | None = None,
        migrate: bool = False,
        announce_jobs: bool = False,
        asyncio_loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """``asyncio_loop``: run asyncio activities on this (an application's) loop rather
        than on one of the node's own."""
        self.guid = new_guid()
        self.migrate = migrate
        self.job_notices = JobNotices(self.guid, quorum_secret) if announce_jobs else None
        """Job events told to the quorum too (``quorum.announce_jobs``), or None."""
        """At boot, bring the schema up to date instead of only checking it."""
        self.app = app
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.drain_seconds = drain_seconds
        self.db = Database(
            dsn,
            pool_size=pool_size,
            application_name=f"mesh:{app}:{self.guid}",
            statement_timeout=statement_timeout,
            max_idle=pool_max_idle,
            through_pooler=listen_dsn is not None and listen_dsn != dsn,
        )
        self.listener = Listener(
            listen_dsn or dsn, name=self.guid, check_interval=listener_check_interval
        )
        self.streams = Streams(self.db, owner=self.guid)
        self.wakeups = StreamWakeups(self.listener)
        self.eager = EagerDispatch()
        """This node's consumers that take messages leased at their enqueue."""
        self.throttle = ThrottleState(self.guid)
        self.versions = AppVersions()
        """Compiled app versions, shared by the engine and the workers that apply responses."""
        self.quorum = QuorumClient(
            self.db, self.listener, app=app, guid=self.guid, secret=quorum_secret
        )
        self.asyncio_loop = AsyncioLoop(f"mesh-asyncio:{self.guid}", loop=asyncio_loop)
        """The asyncio loop of this node's asyncio activities (started by the first)."""
        self.activities = ActivityRunner(self.asyncio_loop)
        self.supervisor = Supervisor(f"node:{self.guid}")
        self.actors: list[Actor[Any]] = []
        self._stop = trio.Event()
        self._boot_scope: trio.CancelScope | None = None
        self.draining = False

    def request_stop(self) -> None:
        """Begin a graceful shutdown (what the first SIGTERM does)."""
        self._stop.set()
        if self._boot_scope is not None:
            self._boot_scope.cancel()  # still waiting for the database: just stop waiting

    async def run(
        self,
        actors: list[Actor[Any]],
        *,
        handle_signals: bool = True,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run ``actors`` until stopped; returns after a clean drain.

        Raises :class:`mesh.errors.SchemaOutOfDate` when the schema is not current and
        :class:`mesh.errors.SupervisorGaveUp` when an actor keeps failing.
        """
        try:
            async with trio.open_nursery() as nursery:
                if handle_signals:
                    nursery.start_soon(self._watch_signals)
                with trio.CancelScope() as self._boot_scope:
                    await self._connect_and_check_schema()
                self._boot_scope = None
                if self._stop.is_set():
                    log.info("event=node_stopped_before_start guid=%s", self.guid)
                    nursery.cancel_scope.cancel()
                    return
                log.info(
                    "event=node_starting guid=%s app=%s pid=%s actors=%d",
                    self.guid,
                    self.app,
                    self.pid,
                    len(actors),
                )
                await nursery.start(self.listener.run)
                async with trio.open_nursery() as actor_nursery:
                    for actor in actors:
                        self.actors.append(actor)
                        await self.supervisor.start(actor_nursery, actor)
                    log.info("event=node_ready guid=%s", self.guid)
                    task_status.started()
                    await self._stop.wait()
                    await self._drain()
                    actor_nursery.cancel_scope.cancel()
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # Surface a lone mesh error (schema out of date, supervisor gave up) as itself.
            lone = lone_error(group)
            if isinstance(lone, MeshError):
                raise lone from None
            raise
        finally:
            with trio.CancelScope(shield=True):
                if self.actors:
                    await self._release_leases()
                if self.asyncio_loop.running:
                    await trio.to_thread.run_sync(self.asyncio_loop.close)
                await self.db.close(timeout=2.0)
        log.info("event=node_stopped guid=%s", self.guid)

    async def _connect_and_check_schema(self) -> None:
        """Wait (logging) until the database answers, then check its schema version (or,
        with ``migrate``, bring it up to date: idempotent, under the migration lock)."""
        opened = False
        while True:
            await self.db.wait_until_reachable()
            if not opened:
                await self.db.open()  # only now: a pool opened against a dead server just spams
                opened = True
            try:
                await self.db.run(migrate_schema if self.migrate else check_schema)
                await self.db.run(check_timeouts)
                return
            except DatabaseUnavailable as error:
                log.warning("event=database_lost_during_boot error=%r", str(error))

    async def _drain(self) -> None:
        self.draining = True
        in_flight = sum(a.in_flight() for a in self.actors)
        log.info(
            "event=node_draining guid=%s in_flight=%d deadline=%.1fs",
            self.guid,
            in_flight,
            self.drain_seconds,
        )
        for actor in self.actors:
            actor.begin_drain()
        with trio.move_on_after(self.drain_seconds) as scope:
            for actor in self.actors:
                await actor.wait_drained()
        if scope.cancelled_caught:
            left = sum(a.in_flight() for a in self.actors)
            log.warning(
                "event=drain_deadline guid=%s still_in_flight=%d (their leases are released)",
                self.guid,
                left,
            )

    async def _release_leases(self) -> None:
        with trio.move_on_after(3.0) as scope:
            try:
                released = await self.streams.release_all()
            except DatabaseError as error:
                log.warning(
                    "event=release_failed guid=%s error=%r (the reaper returns them when the leases expire)",
                    self.guid,
                    str(error),
                )
                return
            if released:
                log.info("event=leases_released guid=%s count=%d", self.guid, released)
        if scope.cancelled_caught:
            log.warning(
                "event=release_timed_out guid=%s (the reaper returns them when the leases expire)",
                self.guid,
            )

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                if not self._stop.is_set():
                    log.info(
                        "event=signal signal=%s action=drain (send again to exit at once)",
                        signal.Signals(signum).name,
                    )
                    self.request_stop()
                else:
                    log.warning(
                        "event=signal signal=%s action=exit_now", signal.Signals(signum).name
                    )
                    os._exit(128 + signum)

    def statistics(self) -> NodeStatistics:
        return NodeStatistics(
            guid=self.guid,
            app=self.app,
            pid=self.pid,
            host=self.host,
            draining=self.draining,
            database=self.db.statistics(),
            listener=self.listener.statistics(),
            actors=tuple(actor.statistics() for actor in self.actors),
        )


@dataclass(frozen=True, slots=True)
class NodeStatistics:
    guid: str
    app: str
    pid: int
    host: str
    draining: bool
    database: DatabaseStatistics
    listener: ListenerStatistics
    actors: tuple[ActorStatistics, ...]
