"""An actor whose work is one stream consumer: the drain protocol wired to the consumer."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from mesh.runtime.actor import Actor, ActorStatistics
from mesh.runtime.consumer.stream_consumer import (
    BatchHandler,
    ConsumerSettings,
    ConsumerStatistics,
    Handler,
    Settler,
    StreamConsumer,
)
from mesh.runtime.node import Node


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamActorStatistics(ActorStatistics):
    consumer: ConsumerStatistics


class StreamActor(Actor[None]):
    """Consumes ``stream`` of the node's app with ``handler`` or ``batch_handler`` (see
    :class:`StreamConsumer`)."""

    def __init__(
        self,
        node: Node,
        *,
        stream: str,
        settings: ConsumerSettings,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        settler: Settler | None = None,
    ) -> None:
        super().__init__()
        self.consumer = StreamConsumer(
            node.streams,
            node.wakeups,
            app=node.app,
            stream=stream,
            handler=handler,
            batch_handler=batch_handler,
            settings=settings,
            throttle=node.throttle,
            settler=settler,
            eager=node.eager,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.consumer.run(task_status=task_status)

    def begin_drain(self) -> None:
        self.consumer.stop_claiming()

    async def wait_drained(self) -> None:
        await self.consumer.wait_idle()

    def in_flight(self) -> int:
        return self.consumer.in_flight

    def statistics(self) -> StreamActorStatistics:
        return StreamActorStatistics(**self._base_statistics(), consumer=self.consumer.statistics())
