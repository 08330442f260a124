"""``mesh demo``: the order workflow on the embedded database, as YAML and as code.

Deploys and activates the workflow, then places orders: each is checked
(``inventory.check``); when ``availableQty >= requestedQty`` it is reserved
(``inventory.reserve``, which fails once for order ids ending in 7 and is retried), otherwise
a backorder is notified (``inventory.backorder.notify``). The engine runs every step as a
committed transaction. Then the same orders run through the workflow written as code
(``mesh.examples.orders.order_workflow``, task queue ``orders-code``), and one more from the
synchronous client. At the end the demo prints the seeds' SQL query and its rows, and one code
workflow's recorded calls.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
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
CODE_QUEUE = "orders-code"
"""The task queue of the order workflow written as code (mesh/examples/demo.yaml)."""
MANIFEST = Path(__file__).resolve().parent.parent / "config" / "orders.yaml"


def demo_config() -> Config:
    text = resources.files("mesh.examples").joinpath("demo.yaml").read_text(encoding="utf-8")
    return parse_config(text, "mesh/examples/demo.yaml")


def _reset(conn: Connection, app: str) -> None:
    """Forget an earlier demo run: its messages and its jobs (the order ids repeat)."""
    purge_app(conn, app)
    conn.execute(query("demo_forget_jobs"), {"app": app})


@dataclass
class _Tally:
    """How one variant's orders ended, and how long each took."""

    statuses: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)

    def line(self, what: str, orders: int, elapsed: float) -> str:
        summary = ", ".join(f"{count} {name}" for name, count in sorted(self.statuses.items()))
        p50 = statistics.median(self.seconds) * 1000 if self.seconds else 0.0
        finished = sum(self.statuses.values())
        return (
            f"{what}: {summary} ({finished}/{orders} finished in {elapsed:.2f} s, "
            f"median {p50:.0f} ms per order)"
        )

    def ok(self, orders: int) -> bool:
        failed = self.statuses["failed"] + self.statuses["interrupted"]
        return sum(self.statuses.values()) == orders and failed == 0


def _order(index: int) -> tuple[str, int]:
    return SKUS[index % 4], 1 + index % 5


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
    yaml_orders, code_orders = _Tally(), _Tally()
    elapsed: dict[str, float] = {}
    synchronous: list[str] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: node.run(actors, task_status=task_status))
            await mesh.deploy(MANIFEST)
            await mesh.activate("1")
            for what, place, tally in (
                ("yaml", _place_yaml, yaml_orders),
                ("code", _place_code, code_orders),
            ):
                started = time.perf_counter()
                async with trio.open_nursery() as orders_nursery:
                    limiter = trio.CapacityLimiter(50)
                    for index in range(orders):
                        orders_nursery.start_soon(place, mesh, index, limiter, tally)
                elapsed[what] = time.perf_counter() - started
            synchronous.append(await trio.to_thread.run_sync(_place_synchronously, dsn, config.app))
            node.request_stop()

    trio.run(main)
    print(yaml_orders.line("orders (YAML workflow)", orders, elapsed["yaml"]))
    print(code_orders.line("orders (workflow as code)", orders, elapsed["code"]))
    print(f"one more from the synchronous client (MeshClient): {synchronous[0]}")
    left = [s for s in run_once(dsn, stream_stats, config.app) if s.depth or s.dead_lettered]
    print(
        "streams afterwards: "
        + ("empty, nothing pending, leased or dead-lettered" if not left else str(left))
    )
    for title, name in (
        ("HotMesh's README query (status is the semaphore: 0 once done)", "demo_seeds_query"),
        ("A code workflow's calls", "demo_code_steps_query"),
    ):
        sql = _shown(name)
        print(f"\n{title}:\n  {sql}")
        for row in run_once(dsn, _rows_of, name):
            print("  ", " | ".join(_cell(cell) for cell in row))
    print(f'\nTry it yourself: psql "{redact(dsn)}" -c "{_shown("demo_seeds_query")}"')
    return (
        0
        if yaml_orders.ok(orders) and code_orders.ok(orders) and synchronous == ["reserved"]
        else 1
    )


def _shown(name: str) -> str:
    """A named query as a person would type it: on one line, without its comment lines."""
    return " ".join(
        " ".join(line.split()) for line in query(name).splitlines() if not line.startswith("--")
    )


def _cell(value: object) -> str:
    """A cell as text: JSON values as JSON, not as Python reprs."""
    if isinstance(value, dict | list | bool) or value is None:
        return json.dumps(value)
    return str(value)


def _rows_of(conn: Connection, name: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in conn.execute(query(name)).fetchall()]


async def _place_yaml(mesh: Mesh, index: int, limiter: trio.CapacityLimiter, tally: _Tally) -> None:
    """One order through the YAML workflow of config/orders.yaml."""
    async with limiter:
        sku, qty = _order(index)
        order = {"orderId": f"order-{456 + index}", "sku": sku, "qty": qty}
        begun = time.perf_counter()
        try:
            data = await mesh.pubsub("order.placed", order, timeout=60)
            tally.statuses[str(data.get("status"))] += 1
        except JobFailed as failure:
            tally.statuses[failure.status] += 1
        tally.seconds.append(time.perf_counter() - begun)


async def _place_code(mesh: Mesh, index: int, limiter: trio.CapacityLimiter, tally: _Tally) -> None:
    """One order through ``mesh.examples.orders.order_workflow`` (a workflow as code)."""
    async with limiter:
        sku, qty = _order(index)
        order_id = f"code-order-{456 + index}"
        begun = time.perf_counter()
        try:
            handle = await mesh.start_workflow(
                "order_workflow", order_id, sku, qty, task_queue=CODE_QUEUE, workflow_id=order_id
            )
            tally.statuses[str(await handle.result(timeout=60))] += 1
        except JobFailed as failure:
            tally.statuses[failure.status] += 1
        tally.seconds.append(time.perf_counter() - begun)


def _place_synchronously(dsn: str, app: str) -> str:
    """The same workflow from a program without trio (MeshClient)."""
    from mesh.pg.client import MeshClient

    with MeshClient(dsn, app=app) as client:
        handle = client.start_workflow(
            "order_workflow",
            "sync-order-1",
            "sku-100",
            1,
            task_queue=CODE_QUEUE,
            workflow_id="sync-order-1",
        )
        return str(handle.result(timeout=60))
