"""The actor base: a trio task with a typed, bounded mailbox and ``statistics()``.

Subclasses implement :meth:`Actor.run` and are started with ``await nursery.start(actor.run)``
(they call ``task_status.started()`` once ready). Other tasks talk to an actor only through
its mailbox (:meth:`send` waits when it is full; :meth:`try_send` does not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio

M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class MailboxStatistics:
    queued: int
    capacity: int
    senders_waiting: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorStatistics:
    """An actor at one moment."""

    name: str
    restarts: int
    """Times the supervisor restarted it."""
    mailbox_queued: int
    mailbox_capacity: int


class Actor(Generic[M]):
    """Base class of every actor. ``M`` is the type of its mailbox messages."""

    name: str = "actor"

    def __init__(self, *, mailbox_size: int = 64) -> None:
        self._mailbox_send, self.mailbox = trio.open_memory_channel[M](mailbox_size)
        self.restarts = 0

    async def send(self, message: M) -> None:
        """Deliver ``message``, waiting while the mailbox is full."""
        await self._mailbox_send.send(message)

    def try_send(self, message: M) -> bool:
        """Deliver ``message`` if there is room; False if the mailbox is full."""
        try:
            self._mailbox_send.send_nowait(message)
        except trio.WouldBlock:
            return False
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        raise NotImplementedError

    # Drain protocol, called by the node on shutdown. Actors that hold work override these.
    def begin_drain(self) -> None:
        """Stop taking new work; work in hand goes on."""

    async def wait_drained(self) -> None:
        """Return once the work in hand is done."""

    def in_flight(self) -> int:
        return 0

    def mailbox_statistics(self) -> MailboxStatistics:
        stats = self.mailbox.statistics()
        return MailboxStatistics(
            queued=stats.current_buffer_used,
            capacity=int(stats.max_buffer_size),
            senders_waiting=stats.tasks_waiting_send,
        )

    def statistics(self) -> ActorStatistics:
        """A snapshot of the actor's counters (subclasses return a record of their own)."""
        return ActorStatistics(**self._base_statistics())

    def _base_statistics(self) -> dict[str, Any]:
        """The fields of :class:`ActorStatistics`, for subclasses' records."""
        mailbox = self.mailbox_statistics()
        return {
            "name": self.name,
            "restarts": self.restarts,
            "mailbox_queued": mailbox.queued,
            "mailbox_capacity": mailbox.capacity,
        }
