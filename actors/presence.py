"""The presence actor: says which streams its node consumes (:mod:`mesh.pg.presence`), at
start, every few seconds, and takes it back when the node stops."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import trio

from mesh.errors import DatabaseError
from mesh.pg import presence
from mesh.runtime.actor import Actor
from mesh.runtime.node import Node

log = logging.getLogger(__name__)


class PresenceActor(Actor[None]):
    name = "presence"

    def __init__(
        self, node: Node, streams: Sequence[str], *, interval: float = presence.INTERVAL
    ) -> None:
        super().__init__()
        self.node = node
        self.streams = sorted(set(streams))
        self.interval = interval
        self.refreshes = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        node = self.node
        try:
            await self._refresh()  # before the node says it is ready: a start right after
            task_status.started()  # it finds its task queues served
            while True:
                await trio.sleep(self.interval)
                await self._refresh()
        finally:
            # Shielded: it runs while the node stops. Failing, its rows age out.
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(2.0),
                contextlib.suppress(DatabaseError),
            ):
                await node.db.run(presence.gone, node.app, node.guid)

    async def _refresh(self) -> None:
        node = self.node
        try:
            await node.db.run(presence.seen, node.app, node.guid, self.streams)
            self.refreshes += 1
        except DatabaseError as error:  # the next refresh tries again
            log.warning("event=presence_failed error=%r", str(error))
