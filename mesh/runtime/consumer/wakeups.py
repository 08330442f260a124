"""Wake-ups for stream consumers.

A :class:`Wakeup` is a coalescing flag: many ``set()`` calls before one ``wait()`` make one
wake-up. A :class:`WakeupGroup` holds the wake-ups of every consumer of one stream in a node:
a NOTIFY wakes *one* of them (an idle one first), not all, so consumers of a hot stream do not
stampede into claims that come back empty. A consumer whose claim came back full passes the
wake-up on to a sibling, and a listener reconnect wakes them all.

**Two channels per stream.** An enqueue NOTIFYs the stream's channel; the elected poller, the
reaper and a draining node NOTIFY its *wake* channel (payload ``due``, ``stale``, ``alone``
or ``wake``), which every node answers. An enqueue's NOTIFY reaches every node of the
database, and only one claim can win a lone message: a hundred nodes would send a hundred
claims, 99 of them empty, and wake a hundred processes on few CPUs. So each node learns, from
how often its claims after such a NOTIFY came back empty, about how many nodes hear it, and
answers only a share of them, so that about :data:`ANSWERING` claims go out per NOTIFY in all
(a node with few rivals answers every one). A node whose share falls below
:data:`DEAF_BELOW` stops listening to the stream's channel altogether (UNLISTEN), so its
process is not woken either, and listens again when the poller says the stream stalled
(``stale``: its next message waited 2 s unclaimed, because too few nodes answered or all of
them were busy). Those who answer wait a random moment first, up to a millisecond per rival,
so their claims do not land on the database (and the CPUs) in the same instant.
"""

from __future__ import annotations

import random

import trio

from mesh.model.ids import stream_channel, wake_channel
from mesh.pg.listener import Listener

LISTENER_DOWN_POLL = 2.0
"""Seconds: the longest a dry consumer waits while no NOTIFY can reach it."""
SPREAD_PER_RIVAL = 0.001
"""Seconds of random spread per rival a NOTIFY-woken claim waits (see the module text)."""
MAX_SPREAD = 0.1
ANSWERING = 6.0
"""Claims the nodes consuming a stream aim to send, all together, per enqueue NOTIFY."""
DEAF_BELOW = 0.25
"""A node answering a smaller share of a stream's enqueue NOTIFYs stops listening to them."""
LEARN = 0.25
"""Weight of each claim's outcome in the moving averages."""
IDLE_TO_LEARN = 0.5
"""Seconds a consumer must have held nothing for its claim to teach it about rivals."""
ALONE_NOTICE = "alone"
"""The payload of the reaper's wake-up when messages that run alone wait in the stream."""
STALE_NOTICE = "stale"
"""The poller's payload for a stream whose next message waited unclaimed."""


class Wakeup:
    def __init__(self, group: WakeupGroup | None = None) -> None:
        self._event = trio.Event()
        self.group = group
        self.count = 0
        self.waiting = False
        self.alone = False
        """The reaper said messages that run alone wait (see :mod:`mesh.runtime.consumer.alone_messages`)."""
        self.notified: str | None = None
        """The payload of the NOTIFY that made the wake-up; None: something else did."""
        self._answering = False
        self._busy_at = float("-inf")
        """When a claim of this consumer last found something, or it held something."""

    def set(self, _payload: str = "") -> None:
        """Wake the waiter (usable directly as a listener callback)."""
        self.count += 1
        self._event.set()

    def answered(self, found: bool, held_nothing: bool) -> None:
        """Note what a claim found. Learned from only when an enqueue's NOTIFY caused it and
        the consumer held nothing, for :data:`IDLE_TO_LEARN` at least: a consumer at work
        claims the messages it enqueues along with its own transactions, so its claims after
        their NOTIFYs come back empty with no rival anywhere."""
        now = trio.current_time()
        learn = self._answering and held_nothing and now - self._busy_at >= IDLE_TO_LEARN
        if found or not held_nothing:
            self._busy_at = now
        if learn and self.group is not None:
            self.group.learn(found)
        self._answering = False

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
                payload, self.notified = self.notified, None
                self._answering = payload == ""  # an enqueue's NOTIFY
                rivals = self.group.rivals() if self.group is not None else 1.0
                if payload is not None and rivals >= 1.5:
                    await trio.sleep(random.uniform(0, min(MAX_SPREAD, rivals * SPREAD_PER_RIVAL)))
                return True
            return False
        finally:
            self.waiting = False


class WakeupGroup:
    """The consumers of one stream in one node, and how the node answers its NOTIFYs."""

    def __init__(self, listener: Listener | None = None, channel: str = "") -> None:
        self.members: list[Wakeup] = []
        self._next = 0
        self._listener = listener
        self._channel = channel
        self.share = 1.0
        """The share of the stream's enqueue NOTIFYs this node answers."""
        self.deaf = False
        """Not listening to the stream's enqueue NOTIFYs (see the module text)."""
        self._empty = 0.0
        """How often claims that answered an enqueue NOTIFY came back empty (moving average)."""
        self._share_seen = 1.0
        """The share in force at those claims (a moving average, as ``_empty``)."""
        self.heard = 0
        """Counts every cause to look at the stream (a NOTIFY, a sibling's full claim, a
        reconnect): unchanged since a claim came back short, the stream is still dry."""

    def join(self) -> Wakeup:
        wakeup = Wakeup(self)
        self.members.append(wakeup)
        return wakeup

    def rivals(self) -> float:
        """About how many nodes answer the same enqueue NOTIFY (this one included)."""
        return 1.0 / max(1.0 - self._empty, 0.01)

    def learn(self, found: bool) -> None:
        """Take in what a claim that answered an enqueue NOTIFY found: rivals / share is
        about how many nodes hear each one; answer enough of them for :data:`ANSWERING`."""
        self._empty += LEARN * ((0.0 if found else 1.0) - self._empty)
        self._share_seen += LEARN * (self.share - self._share_seen)
        self.share = min(1.0, ANSWERING * self._share_seen / self.rivals())
        if self.share < DEAF_BELOW and not self.deaf and self._listener is not None:
            self.deaf = True
            self._listener.unsubscribe(self._channel, self.enqueued)

    def enqueued(self, payload: str) -> None:
        """An enqueue's NOTIFY (the listener's callback): wake a member, for this node's
        share of them."""
        self.heard += 1
        if random.random() < self.share:
            self.wake_one(payload, notified=True)

    def woken(self, payload: str) -> None:
        """A NOTIFY on the wake channel (the poller's, the reaper's, a drain's): always
        answered; a stalled stream makes a deaf node listen again."""
        if payload == STALE_NOTICE and self.deaf and self._listener is not None:
            self.deaf, self.share, self._empty, self._share_seen = False, 1.0, 0.0, 1.0
            self._listener.subscribe(self._channel, self.enqueued)
        self.wake_one(payload, notified=True)

    def wake_one(self, payload: str = "", *, notified: bool = False) -> None:
        """Wake the next idle member; if all are busy, flag one so the wake is not lost.
        ``notified``: a NOTIFY with ``payload`` is the cause."""
        self.heard += 1
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
                candidate.notified = payload if notified else None
                candidate.set()
                return
        self.members[self._next % size].set()
        self._next = (self._next + 1) % size

    def wake_all(self) -> None:
        self.heard += 1
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
            group = self._groups[channel] = WakeupGroup(self.listener, channel)
            self.listener.subscribe(channel, group.enqueued)
            self.listener.subscribe(wake_channel(app, stream), group.woken)
            # After a reconnect, claim at once: notifications sent meanwhile are gone.
            self.listener.on_reconnect(group.wake_all)
        return group
