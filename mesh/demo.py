"""``mesh demo``: orders flow through three worker topics on the embedded database.

Each order is checked (``inventory.check``); when ``availableQty >= requestedQty`` it is
reserved (``inventory.reserve``, which fails once for order ids ending in 7 and is retried),
otherwise a backorder is notified (``inventory.backorder.notify``). A small coordinator plays
the engine's part on the app's engine stream: it acks each response and enqueues the next
step in the same statement, so no order can be lost between steps.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from importlib import resources
from typing import Any

import trio

from mesh.config import Config, parse_config
from mesh.launch import build_actors, build_node
from mesh.logs import configure_logging
from mesh.model.ids import ENGINE_STREAM, new_message_id
from mesh.model.messages import ActivityRequest, ActivityResponse, decode, encode
from mesh.model.outcomes import Ack, Outcome, Outgoing
from mesh.pg.database import redact, run_once
from mesh.pg.migrations import migrate
from mesh.pg.streams import purge_app, stream_stats
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.node import Node
from mesh.runtime.stream_actor import StreamActor
from mesh.runtime.streams import StreamClaim

SKUS = ["sku-100", "sku-200", "sku-300", "sku-400"]


def demo_config() -> Config:
    text = resources.files("mesh.examples").joinpath("demo.yaml").read_text(encoding="utf-8")
    return parse_config(text, "mesh/examples/demo.yaml")


def _request(config: Config, topic: str, data: Any) -> Outgoing:
    worker = next(w for w in config.workers if w.topic == topic)
    policy = config.retry_policy(worker)
    request = ActivityRequest(
        id=new_message_id(),
        app=config.app,
        topic=topic,
        data=data,
        retry=policy,
        sent_at=time.time(),
    )
    return Outgoing(
        app=config.app, stream=topic, payload=encode(request), max_attempts=policy.maximum_attempts
    )


class _Coordinator(StreamActor):
    """Routes each order to its next step; records when it finishes."""

    name = "demo-coordinator"

    def __init__(self, config: Config, node: Node, orders: int) -> None:
        settings = ConsumerSettings(batch_size=100, concurrency=200, lease=10.0, poll_interval=1.0)
        super().__init__(node, stream=ENGINE_STREAM, handler=self.route, settings=settings)
        self.config = config
        self.orders = orders
        self.outcomes: Counter[str] = Counter()
        self.steps: Counter[str] = Counter()
        self.order_seconds: list[float] = []
        self.done = trio.Event()

    async def route(self, claim: StreamClaim) -> Outcome:
        response = decode(claim.payload)
        assert isinstance(response, ActivityResponse)
        self.steps[response.topic] += 1
        if response.status == "error":
            return self._finish(response, "failed")
        if response.topic == "inventory.check":
            data = response.data
            topic = (
                "inventory.reserve"
                if data["availableQty"] >= data["requestedQty"]
                else "inventory.backorder.notify"
            )
            return Ack(follow_ups=(_request(self.config, topic, data),))
        return self._finish(response, response.data["status"])

    def _finish(self, response: ActivityResponse, outcome: str) -> Ack:
        self.outcomes[outcome] += 1
        self.order_seconds.append(time.time() - response.request_sent_at)
        if sum(self.outcomes.values()) >= self.orders:
            self.done.set()
        return Ack()


def run_demo(operator_config: Config, dsn: str, *, orders: int) -> int:
    config = demo_config()
    configure_logging(os.environ.get("MESH_LOG_LEVEL") or config.log_level)
    run_once(dsn, migrate)
    run_once(dsn, purge_app, config.app)  # what an interrupted earlier demo left behind
    print(f"mesh demo: {orders} orders through 3 worker topics on {redact(dsn)}")

    node = build_node(config, dsn)
    workers = build_actors(config, node, roles=["worker"])
    coordinator = _Coordinator(config, node, orders)
    started = time.perf_counter()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: node.run([*workers, coordinator], task_status=task_status)
            )
            await node.streams.enqueue(
                [
                    _request(
                        config,
                        "inventory.check",
                        {"orderId": f"order-{i:03d}", "sku": SKUS[i % len(SKUS)], "qty": 1 + i % 5},
                    )
                    for i in range(orders)
                ]
            )
            with trio.move_on_after(120) as scope:
                await coordinator.done.wait()
            if scope.cancelled_caught:
                print("mesh demo: timed out waiting for the orders to finish")
            node.request_stop()

    trio.run(main)
    elapsed = time.perf_counter() - started
    retried = sum(a.statistics().get("retried", 0) for a in workers)
    for topic in ("inventory.check", "inventory.reserve", "inventory.backorder.notify"):
        print(f"  {topic:<28} {coordinator.steps[topic]:>5} responses")
    print(f"  retries after a failure       {retried:>5}")
    finished = sum(coordinator.outcomes.values())
    summary = ", ".join(f"{count} {name}" for name, count in sorted(coordinator.outcomes.items()))
    p50 = statistics.median(coordinator.order_seconds) * 1000 if coordinator.order_seconds else 0.0
    print(
        f"orders: {summary} ({finished}/{orders} finished in {elapsed:.2f} s, median {p50:.0f} ms per order)"
    )
    left = [s for s in run_once(dsn, stream_stats, config.app) if s.depth or s.dead_lettered]
    print(
        "streams afterwards: "
        + ("empty, nothing pending, leased or dead-lettered" if not left else str(left))
    )
    return 0 if finished == orders and coordinator.outcomes["failed"] == 0 else 1
