"""The engine actor: runs the app's workflows by consuming its engine stream.

It is a stream consumer with a batch handler (:class:`mesh.runtime.graphs.BatchRunner`): a
claimed batch of engine messages (worker responses, child starts, timers, signals,
re-entries, interrupts) goes to one database transaction, in which the fenced ack, the job
locks, the state changes, the follow-up messages and the claim of the next batch commit
together. ``loops`` batches run at once, so one batch's Python work overlaps another's round
trips. Throttles (``mesh throttle MS --topic engine``, a node's guid, or the whole mesh),
messages that run alone, heartbeats and the drain are the consumer's, as for every stream.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mesh.model.ids import ENGINE_STREAM
from mesh.model.outcomes import ENGINE_ATTEMPTS
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.consumer.actor import StreamActor, StreamActorStatistics
from mesh.runtime.graphs import BatchRunner, EngineCounters
from mesh.runtime.node import Node


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineStatistics(StreamActorStatistics):
    batches: int
    """Batch transactions run (the engine stream's and the ones run one by one)."""
    messages: int
    outcomes: dict[str, int]
    """applied, duplicate, stale, finished, refused: how many messages had each outcome."""


class EngineActor(StreamActor):
    name = "engine"

    def __init__(self, node: Node, *, settings: ConsumerSettings, loops: int = 2) -> None:
        self.counters = EngineCounters()
        self.runner = BatchRunner(node, self.counters)
        settings = dataclasses.replace(
            settings, concurrency=loops * settings.batch_size, max_attempts=ENGINE_ATTEMPTS
        )
        super().__init__(
            node, stream=ENGINE_STREAM, batch_handler=self.runner.run, settings=settings
        )
        self.loops = loops

    def statistics(self) -> EngineStatistics:
        counters = self.counters
        return EngineStatistics(
            **self._base_statistics(),
            consumer=self.consumer.statistics(),
            batches=counters.batches,
            messages=counters.messages,
            outcomes=dict(counters.outcomes),
        )
