"""Who polls for the app: an election on the listening connection, and the poller's rules.

Idle cost must not grow with the node count, so one node per app, the
*leader*, does what every node used to do on a short timer: it finds delayed messages as they
come due and streams whose NOTIFY was missed, and wakes their consumers by NOTIFY; it also
reaps expired leases and prunes finished jobs (``actors/maintenance.py``). One *standby*
tries the leader's lock every second; every other node tries the standby's lock on its long
safety interval, and at once (after a jittered moment) when a node that gives up a seat says
so on the election channel. Locks are session locks on the node's listening connection, so a leader
that dies, however it dies, frees its seat the moment Postgres sees its connection end.

A NOTIFY costs every listening connection of the database a transaction, so the poller wakes
sparingly: a stream whose delayed messages came due is woken once; a stream whose next
message stays unclaimed (its consumers busy, paused, or absent) is woken again only after a
doubling pause, up to a minute.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum

from mesh.errors import DatabaseError
from mesh.pg import leadership
from mesh.pg.database import Database
from mesh.pg.leadership import DueStream, Look, Seat
from mesh.pg.listener import Listener

log = logging.getLogger(__name__)

MAX_STALE_PAUSE = 60.0
"""Seconds: the longest pause between wake-ups of a stream whose next message stays
unclaimed."""


class Role(Enum):
    LEADER = "leader"
    STANDBY = "standby"
    FOLLOWER = "follower"


class Election:
    """This node's seat in ``app``'s election."""

    def __init__(self, listener: Listener, app: str) -> None:
        self.listener = listener
        self.app = app
        self.role = Role.FOLLOWER
        self.terms = 0
        """Times this node became the leader."""
        self._session: int | None = None

    def holds(self) -> bool:
        """Whether the seat taken is still ours (its connection is the one that took it)."""
        return self._session is not None and self.listener.session == self._session

    async def step(self) -> Role:
        """Try for the seat above ours (and a new standby for the leader's too); returns our
        role now."""
        if self.role is not Role.FOLLOWER and not self.holds():
            log.warning("event=seat_lost app=%s role=%s", self.app, self.role.value)
            self.role, self._session = Role.FOLLOWER, None
        if self.role is Role.LEADER:
            return self.role
        role = await self._try_next()
        if role is Role.STANDBY:
            role = await self._try_next()  # the seat above may be free too (at boot, say)
        return role

    async def _try_next(self) -> Role:
        session = self.listener.session
        if session is None:
            return self.role
        seat = Seat.LEADER if self.role is Role.STANDBY else Seat.STANDBY
        try:
            taken = await self.listener.call(lambda c: leadership.try_lock(c, self.app, seat))
        except DatabaseError as error:
            log.info("event=election_failed app=%s error=%r", self.app, str(error))
            return self.role
        if not taken or self.listener.session != session:
            return self.role
        self._session = session
        if seat is Seat.LEADER:
            self.role = Role.LEADER
            self.terms += 1
            log.info("event=elected app=%s role=leader term=%d", self.app, self.terms)
            await self._release(Seat.STANDBY)  # for the next standby
        else:
            self.role = Role.STANDBY
            log.info("event=elected app=%s role=standby", self.app)
        return self.role

    async def resign(self) -> None:
        """Give the seat up now (a draining node), so the next one takes it at once."""
        if self.holds():
            await self._release(Seat.LEADER if self.role is Role.LEADER else Seat.STANDBY)
        self.role, self._session = Role.FOLLOWER, None

    async def _release(self, seat: Seat) -> None:
        try:
            await self.listener.call(lambda c: leadership.unlock(c, self.app, seat))
        except DatabaseError as error:  # the seat goes when the connection does
            log.info("event=unlock_failed app=%s seat=%s error=%r", self.app, seat.name, str(error))


@dataclass
class Poller:
    """The leader's look for streams to wake (state kept between looks)."""

    db: Database
    app: str
    stale: float = 2.0
    """Seconds a stream's next message may wait unclaimed before its stream is woken."""
    woken: int = 0
    looks: int = 0
    _since: float | None = None
    _pauses: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Stale streams: (the clock before which not to wake again, the pause after that)."""

    def forget(self) -> None:
        """A new term: look at everything that came due, whenever."""
        self._since = None
        self._pauses.clear()

    async def poll(self) -> float | None:
        """Look, wake what is due; returns seconds until the next delayed message is due."""
        found: Look = await self.db.run(
            leadership.look, self.app, since=self._since, stale=self.stale
        )
        self.looks += 1
        self._since = found.clock
        due = self._choose(found)
        if due:
            await self.db.run(leadership.wake, self.app, due)
            self.woken += len(due)
        return found.next_due_in

    def _choose(self, found: Look) -> list[DueStream]:
        chosen: list[DueStream] = []
        stale_now: set[str] = set()
        for stream in found.streams:
            if not stream.stale:
                chosen.append(stream)
                continue
            stale_now.add(stream.stream)
            not_before, pause = self._pauses.get(stream.stream, (0.0, self.stale))
            if found.clock >= not_before:
                chosen.append(stream)
                self._pauses[stream.stream] = (
                    found.clock + pause,
                    min(MAX_STALE_PAUSE, pause * 2),
                )
        for name in list(self._pauses):
            if name not in stale_now:
                del self._pauses[name]  # it moved: the next stall starts from a short pause
        return chosen
