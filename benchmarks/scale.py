"""``mesh bench scale``: the stream workload of ``mesh bench streams`` with 1, 2, 4 ... worker
*processes*, each started through ``mesh run``, to show how throughput scales by process count.

Per round: a fresh app, P worker nodes (one consumer each, async echo) confirmed live by roll
call, then this process enqueues the messages and collects the responses from the engine
stream; the clock runs from the first enqueue to the last response.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from benchmarks.streams import TOPIC, _Collector, _vacuum, produce_and_collect
from mesh.config import Config, parse_config
from mesh.control_session import control_session
from mesh.model.ids import new_guid
from mesh.pg.database import redact, run_once, server_facts
from mesh.pg.migrations import migrate
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.node import Node


def bench_scale(dsn: str, *, processes: list[int], messages: int, batch: int) -> dict[str, Any]:
    run_once(dsn, migrate)
    facts = run_once(dsn, server_facts)
    results = [_one_round(dsn, count, messages=messages, batch=batch) for count in processes]
    return {
        "messages": messages,
        "results": results,
        "settings": {
            "batch": batch,
            "concurrency_per_process": batch,
            "function": "async echo",
            "cpus": os.cpu_count(),
            "database": redact(dsn),
            **facts,
        },
        "measured": "first enqueue to last response; P worker processes started with `mesh run`, "
        "producer and collector in the bench process",
    }


def _one_round(dsn: str, count: int, *, messages: int, batch: int) -> dict[str, Any]:
    app = f"scale-{new_guid()[:8].lower()}"
    _vacuum(dsn)
    config_text = (
        f"app: {app}\n"
        "streams: {poll_interval: 0.5 seconds}\n"
        f"workers:\n  - {{topic: {TOPIC}, function: 'benchmarks.streams:echo', concurrency: {batch}, batch_size: {batch}}}\n"
        "log_level: warn\n"
    )
    with node_processes(dsn, config_text, count, roles=["worker"]):
        result = trio.run(_measure, dsn, app, messages, batch)
    return {"processes": count, **result}


@contextmanager
def node_processes(
    dsn: str, config_text: str, count: int, *, roles: list[str], ready_within: float = 60.0
) -> Iterator[list[int]]:
    """``count`` nodes started with ``mesh run`` on ``config_text``, live by roll call when
    the block starts (within ``ready_within`` seconds; it gets their pids), drained with
    SIGTERM when it ends."""
    with tempfile.TemporaryDirectory() as folder:
        config_path = Path(folder) / "mesh.yaml"
        config_path.write_text(config_text)
        config = parse_config(config_text, str(config_path))
        env = {**os.environ, "MESH_DATABASE_URL": dsn, "PORT": ""}
        command = [sys.executable, "-m", "mesh.cli", "--config", str(config_path), "run"]
        for role in roles:
            command += ["--role", role]
        nodes = [subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL) for _ in range(count)]
        try:
            trio.run(_wait_for_members, config, dsn, count, ready_within)
            yield [node.pid for node in nodes]
        finally:
            for node in nodes:
                node.send_signal(signal.SIGTERM)
            for node in nodes:
                node.wait(timeout=60)


async def _wait_for_members(config: Config, dsn: str, count: int, within: float) -> None:
    with trio.fail_after(within):
        async with control_session(config, dsn) as client:
            while len(await client.roll_call(0.3)) < count:
                pass


async def _measure(dsn: str, app: str, messages: int, batch: int) -> dict[str, Any]:
    node = Node(dsn, app=app, pool_size=8)
    collector = _Collector(
        node, messages, ConsumerSettings(batch_size=batch * 4, concurrency=batch * 8)
    )
    result = await produce_and_collect(node, [], collector, messages=messages, batch=batch)
    del result["messages"]
    return result
