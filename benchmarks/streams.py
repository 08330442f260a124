"""``mesh bench streams``: end-to-end stream throughput and latency, optionally against raw SQL.

The workload: a producer enqueues ``messages`` activity requests in batches of ``batch``;
``workers`` consumers on the topic claim them in batches, run an async echo function and
settle each (ack + response to a reply stream, one statement per batch); a collector on
the reply stream claims and acks the responses and records each one's latency from the
moment its request was enqueued. The clock runs from the first enqueue to the last response.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import trio

from benchmarks.baseline import run_raw_sql_baseline
from benchmarks.db import vacuum_streams
from mesh import activity
from mesh.model.ids import new_guid, new_message_id
from mesh.model.messages import ActivityRequest, ActivityResponse, decode, encode
from mesh.model.outcomes import Ack, Outcome, Outgoing
from mesh.model.retry import DEFAULT_RETRY_POLICY
from mesh.pg.database import redact, run_once, server_facts
from mesh.pg.migrations import migrate
from mesh.runtime.activities import one_function
from mesh.runtime.actor import Actor
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.consumer.actor import StreamActor
from mesh.runtime.node import Node
from mesh.runtime.streams import StreamClaim

TOPIC = "bench"
REPLIES = "bench.replies"
"""Where the requests want their responses. Not the engine stream: a worker applies a
response for the engine to its job at the ack, and these requests have no job."""


@activity.defn(loop="trio")
async def echo(data: Any) -> Any:
    """The worker function: returns its input, on the node's trio loop (the bench measures
    the stream, not a crossing to another event loop)."""
    return data


class _Collector(StreamActor):
    """Consumes the reply stream and records each response's end-to-end latency."""

    name = "bench-collector"

    def __init__(self, node: Node, expected: int, settings: ConsumerSettings) -> None:
        super().__init__(node, stream=REPLIES, handler=self._record, settings=settings)
        self.expected = expected
        self.latencies: list[float] = []
        self.finished_at = 0.0
        self.done = trio.Event()

    async def _record(self, claim: StreamClaim) -> Outcome:
        response = decode(claim.payload)
        assert isinstance(response, ActivityResponse)
        now = time.time()
        self.latencies.append(now - response.request_sent_at)
        if len(self.latencies) >= self.expected and not self.done.is_set():
            self.finished_at = time.perf_counter()
            self.done.set()
        return Ack()


def _requests(app: str, count: int) -> list[Outgoing]:
    now = time.time()
    return [
        Outgoing(
            app=app,
            stream=TOPIC,
            payload=encode(
                ActivityRequest(
                    id=new_message_id(),
                    app=app,
                    topic=TOPIC,
                    data={"n": i},
                    sent_at=now,
                    reply_to=REPLIES,
                )
            ),
            max_attempts=DEFAULT_RETRY_POLICY.maximum_attempts,
        )
        for i in range(count)
    ]


async def _run_mesh(
    dsn: str, *, messages: int, batch: int, workers: int, concurrency: int
) -> dict[str, Any]:
    from actors.worker import WorkerActor

    app = f"bench-{new_guid()[:8].lower()}"
    node = Node(dsn, app=app, pool_size=workers * 2 + 4)
    settings = ConsumerSettings(
        batch_size=batch, concurrency=concurrency, lease=30.0, poll_interval=2.0
    )
    actors: list[Actor[Any]] = [
        WorkerActor(
            node,
            topic=TOPIC,
            dispatch=one_function(echo),
            settings=settings,
            retry=DEFAULT_RETRY_POLICY,
        )
        for _ in range(workers)
    ]
    collector = _Collector(
        node, messages, ConsumerSettings(batch_size=batch * 4, concurrency=batch * 8, lease=30.0)
    )
    result = await produce_and_collect(node, actors, collector, messages=messages, batch=batch)
    result["claims"] = sum(a.consumer.counters.claims for a in actors if isinstance(a, WorkerActor))
    return result


async def produce_and_collect(
    node: Node, actors: list[Actor[Any]], collector: _Collector, *, messages: int, batch: int
) -> dict[str, Any]:
    """Run ``node`` with ``actors`` and ``collector``, enqueue ``messages`` requests in batches
    and wait for every response; returns the timing summary."""
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: node.run(
                [*actors, collector], handle_signals=False, task_status=task_status
            )
        )
        started = time.perf_counter()
        for offset in range(0, messages, batch):
            await node.streams.enqueue(_requests(node.app, min(batch, messages - offset)))
        await collector.done.wait()
        node.request_stop()
    seconds = collector.finished_at - started
    latencies_ms = sorted(x * 1000 for x in collector.latencies)
    return {
        "messages": messages,
        "seconds": round(seconds, 3),
        "throughput_per_s": round(messages / seconds, 1),
        "latency_ms": {
            "p50": round(_percentile(latencies_ms, 50), 2),
            "p99": round(_percentile(latencies_ms, 99), 2),
            "mean": round(statistics.fmean(latencies_ms), 2),
        },
    }


def _percentile(ordered: list[float], percent: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))
    return ordered[index]


def bench_streams(
    dsn: str,
    *,
    messages: int,
    batch: int,
    workers: int,
    concurrency: int,
    baseline: bool,
    rounds: int = 1,
) -> dict[str, Any]:
    """Run the mesh workload ``rounds`` times (alternating with the raw-SQL baseline when
    asked) and report the median round, every round's figures, and the ratio of medians."""
    run_once(dsn, migrate)
    facts = run_once(dsn, server_facts)
    payloads = [o.payload.decode() for o in _requests("baseline", messages)] if baseline else []
    mesh_rounds: list[dict[str, Any]] = []
    raw_rounds: list[dict[str, Any]] = []
    for _ in range(rounds):
        _vacuum(dsn)  # every run starts from a vacuumed table: one run's dead rows stay its own
        mesh_rounds.append(
            trio.run(
                lambda: _run_mesh(
                    dsn, messages=messages, batch=batch, workers=workers, concurrency=concurrency
                )
            )
        )
        if baseline:
            _vacuum(dsn)
            raw_rounds.append(
                run_raw_sql_baseline(dsn, payloads=payloads, batch=batch, workers=workers)
            )
    result = dict(_median_round(mesh_rounds))
    result["settings"] = {
        "batch": batch,
        "workers": workers,
        "concurrency_per_worker": concurrency,
        "rounds": rounds,
        "function": "async echo",
        "lease_s": 30.0,
        "cpus": os.cpu_count(),
        "database": redact(dsn),
        **facts,
    }
    result["measured"] = (
        "first enqueue to last response claimed by the collector; latency per message from its "
        "enqueue; the median round by throughput"
    )
    if rounds > 1:
        result["rounds_throughput_per_s"] = [r["throughput_per_s"] for r in mesh_rounds]
    if baseline:
        raw = dict(_median_round(raw_rounds))
        raw["rounds_throughput_per_s"] = [r["throughput_per_s"] for r in raw_rounds]
        result["baseline"] = raw
        result["ratio_to_raw_sql"] = round(result["throughput_per_s"] / raw["throughput_per_s"], 3)
    return result


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(rounds, key=lambda r: r["throughput_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def _vacuum(dsn: str) -> None:
    run_once(dsn, vacuum_streams)
