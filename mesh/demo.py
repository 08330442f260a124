"""``mesh demo``: the order workflow (config/orders.yaml) on the embedded database.

Deploys and activates the workflow, then places orders: each is checked
(``inventory.check``); when ``availableQty >= requestedQty`` it is reserved
(``inventory.reserve``, which fails once for order ids ending in 7 and is retried), otherwise
a backorder is notified (``inventory.backorder.notify``). The engine runs every step as a
committed transaction; at the end the demo prints the seeds' SQL query and its rows.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from importlib import resources
from pathlib import Path

import trio

from mesh.api import Mesh
from mesh.config import Config, parse_config
from mesh.errors import ConfigError, JobFailed
from mesh.launch import build_actors, build_node, node_plan
from mesh.logs import configure_logging
from mesh.pg.database import Connection, redact, run_once
from mesh.pg.migrations import migrate
from mesh.pg.queries import query
from mesh.pg.stream_admin import purge_app
from mesh.pg.streams import stream_stats

SKUS = ["sku-100", "sku-200", "sku-300", "sku-400"]
MANIFEST = Path(__file__).resolve().parent.parent / "config" / "orders.yaml"


def demo_config() -> Config:
    text = resources.files("mesh.examples").joinpath("demo.yaml").read_text(encoding="utf-8")
    return parse_config(text, "mesh/examples/demo.yaml")


def _reset(conn: Connection, app: str) -> None:
    """Forget an earlier demo run: its messages and its jobs (the order ids repeat)."""
    purge_app(conn, app)
    conn.execute(query("demo_forget_jobs"), {"app": app})


def _seeds_rows(conn: Connection) -> list[tuple[object, ...]]:
    return [tuple(row) for row in conn.execute(query("demo_seeds_query")).fetchall()]


def run_demo(operator_config: Config, dsn: str, *, orders: int) -> int:
    config = demo_config()
    configure_logging(os.environ.get("MESH_LOG_LEVEL") or config.log_level)
    if not MANIFEST.is_file():
        raise ConfigError(
            str(MANIFEST), "", "the demo's workflow is missing", "run mesh demo from a checkout"
        )
    run_once(dsn, migrate)
    run_once(dsn, _reset, config.app)
    print(f"mesh demo: {orders} orders through the order workflow on {redact(dsn)}")

    node = build_node(config, dsn)
    actors = build_actors(node, node_plan(config, roles=["engine", "quorum", "worker"]))
    mesh = Mesh(node)
    statuses: Counter[str] = Counter()
    seconds: list[float] = []
    started = time.perf_counter()

    async def place(index: int, limiter: trio.CapacityLimiter) -> None:
        async with limiter:
            order = {
                "orderId": f"order-{456 + index}",
                "sku": SKUS[index % 4],
                "qty": 1 + index % 5,
            }
            begun = time.perf_counter()
            try:
                data = await mesh.pubsub("order.placed", order, timeout=60)
                statuses[str(data.get("status"))] += 1
            except JobFailed as failure:
                statuses[failure.job.status] += 1
            seconds.append(time.perf_counter() - begun)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: node.run(actors, task_status=task_status))
            await mesh.deploy(MANIFEST)
            await mesh.activate("1")
            async with trio.open_nursery() as orders_nursery:
                limiter = trio.CapacityLimiter(50)
                for index in range(orders):
                    orders_nursery.start_soon(place, index, limiter)
            node.request_stop()

    trio.run(main)
    elapsed = time.perf_counter() - started
    summary = ", ".join(f"{count} {name}" for name, count in sorted(statuses.items()))
    p50 = statistics.median(seconds) * 1000 if seconds else 0.0
    finished = sum(statuses.values())
    print(
        f"orders: {summary} ({finished}/{orders} finished in {elapsed:.2f} s, "
        f"median {p50:.0f} ms per order)"
    )
    left = [s for s in run_once(dsn, stream_stats, config.app) if s.depth or s.dead_lettered]
    print(
        "streams afterwards: "
        + ("empty, nothing pending, leased or dead-lettered" if not left else str(left))
    )
    seeds = query("demo_seeds_query")
    print(f"\nThe seeds' query:\n  {seeds}")
    for row in run_once(dsn, _seeds_rows):
        print("  ", " | ".join(str(cell) for cell in row))
    print(f'\nTry it yourself: psql "{redact(dsn)}" -c "{seeds}"')
    failed = statuses["failed"] + statuses["interrupted"]
    return 0 if finished == orders and failed == 0 else 1
