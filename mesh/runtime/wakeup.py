"""Wake-ups for stream consumers.

A :class:`Wakeup` is a coalescing flag: many ``set()`` calls before one ``wait()`` make one
wake-up. A :class:`WakeupGroup` holds the wake-ups of every consumer of one stream in a node:
a NOTIFY wakes *one* of them (an idle one first), not all, so consumers of a hot stream do not
stampede into claims that come back empty. A consumer whose claim came back full passes the
wake-up on to a sibling, and a listener reconnect wakes them all.
"""

from __future__ import annotations

import random

import trio

from mesh.model.ids import stream_channel
from mesh.pg.listener import Listener

LISTENER_DOWN_POLL = 2.0
"""Seconds: the longest a dry consumer waits while no NOTIFY can reach it."""
ALONE_NOTICE = "alone"
"""The payload of the reaper's wake-up when messages that run alone wait in the stream."""


class Wakeup:
    def __init__(self) -> None:
        self._event = trio.Event()
        self.count = 0
        self.waiting = False
        self.alone = False
        """The reaper said messages that run alone wait (see :mod:`mesh.runtime.alone`)."""

    def set(self, _payload: str = "") -> None:
        """Wake the waiter (usable directly as a listener callback)."""
        self.count += 1
        self._event.set()

    def clear(self) -> None:
        """Forget earlier wake-ups; call just before doing the work they ask for."""
        if self._event.is_set():
            self._event = trio.Event()

    async def wait(self, timeout: float) -> bool:
        """Wait for a wake-up, at most ``timeout`` seconds; True if one came."""
        self.waiting = True
        try:
            with trio.move_on_after(timeout):
                await self._event.wait()
                return True
            return False
        finally:
            self.waiting = False


class WakeupGroup:
    """The consumers of one stream in one node."""

    def __init__(self) -> None:
        self.members: list[Wakeup] = []
        self._next = 0

    def join(self) -> Wakeup:
        wakeup = Wakeup()
        self.members.append(wakeup)
        return wakeup

    def wake_one(self, payload: str = "") -> None:
        """Wake the next idle member; if all are busy, flag one so the wake is not lost."""
        size = len(self.members)
        if not size:
            return
        if payload == ALONE_NOTICE:
            for member in self.members:
                member.alone = True
        for offset in range(size):
            candidate = self.members[(self._next + offset) % size]
            if candidate.waiting:
                self._next = (self._next + offset + 1) % size
                candidate.set()
                return
        self.members[self._next % size].set()
        self._next = (self._next + 1) % size

    def wake_all(self) -> None:
        for member in self.members:
            member.set()


class StreamWakeups:
    """One :class:`WakeupGroup` per stream, fed by the node's listener."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self._groups: dict[str, WakeupGroup] = {}

    def safety_poll(self, interval: float) -> float:
        """How long a dry consumer waits for a wake-up before it claims anyway: ``interval``
        jittered down to half (consumers started together do not poll together), and
        :data:`LISTENER_DOWN_POLL` at most while the listener is down."""
        poll = interval * random.uniform(0.5, 1.0)
        return poll if self.listener.healthy else min(poll, LISTENER_DOWN_POLL)

    def group(self, app: str, stream: str) -> WakeupGroup:
        channel = stream_channel(app, stream)
        group = self._groups.get(channel)
        if group is None:
            group = self._groups[channel] = WakeupGroup()
            self.listener.subscribe(channel, group.wake_one)
            # After a reconnect, claim at once: notifications sent meanwhile are gone.
            self.listener.on_reconnect(group.wake_all)
        return group
