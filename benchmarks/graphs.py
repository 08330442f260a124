"""``mesh bench workflows``: end-to-end workflows per second and latency percentiles.

Each workflow is a trigger followed by ``steps`` sequential worker activities (async echo).
The mesh runs in ``nodes`` separate processes started with ``mesh run`` (engine and worker
roles), confirmed live by roll call; this process is the client: ``in_flight`` tasks each
``pub`` a job and wait for its completion notice, until ``workflows`` have finished. Latency
is pub-to-completion as the client sees it; throughput is workflows over the time from the
first pub to the last completion.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from benchmarks.scale import node_processes
from benchmarks.streams import _percentile, _vacuum
from mesh.api import Mesh
from mesh.model.graph.validation import validate_manifest
from mesh.model.ids import new_guid
from mesh.pg.apps import activate, deploy
from mesh.pg.database import redact, run_once, server_facts
from mesh.pg.migrations import migrate

TOPIC = "bench.step"


def bench_manifest(app: str, steps: int) -> dict[str, Any]:
    activities: dict[str, Any] = {"start": {"type": "trigger"}}
    transitions: dict[str, Any] = {}
    previous = "start"
    for index in range(1, steps + 1):
        name = f"step{index}"
        activities[name] = {
            "type": "worker",
            "topic": TOPIC,
            "input": {"maps": {"n": index, "seed": "{start.output.data.seed}"}},
            "job": {"maps": {name: "{$self.output.data.n}"}},
        }
        transitions[previous] = [{"to": name}]
        previous = name
    graph = {"subscribes": "bench.run", "activities": activities, "transitions": transitions}
    return {"app": {"id": app, "version": "1", "graphs": [graph]}}


def bench_graphs(
    dsn: str, *, workflows: int, steps: int, in_flight: int, nodes: int, rounds: int = 1
) -> dict[str, Any]:
    run_once(dsn, migrate)
    facts = run_once(dsn, server_facts)
    app = f"wf-{new_guid()[:8].lower()}"
    _vacuum(dsn)
    manifest = validate_manifest(bench_manifest(app, steps))
    run_once(dsn, deploy, manifest)
    run_once(dsn, activate, app, "1")
    config_text = (
        f"app: {app}\n"
        "streams: {poll_interval: 0.5 seconds, batch_size: 50}\n"
        f"workers:\n  - {{topic: {TOPIC}, function: 'benchmarks.streams:echo', concurrency: 100}}\n"
        "log_level: warn\n"
    )
    with node_processes(dsn, config_text, nodes, roles=["engine", "worker", "quorum"]):
        results = [trio.run(_measure, dsn, app, workflows, in_flight) for _ in range(rounds)]
    return {
        "workflows": workflows,
        "steps": steps,
        **median_round(results),
        "settings": {
            "in_flight": in_flight,
            "nodes": nodes,
            "node_roles": "engine+worker+quorum",
            "engine_batch": 50,
            "function": "async echo",
            "cpus": os.cpu_count(),
            "database": redact(dsn),
            **facts,
        },
        "measured": "client pub to completion notice; node processes started with `mesh run`",
    }


async def _measure(dsn: str, app: str, workflows: int, in_flight: int) -> dict[str, Any]:
    async with Mesh.open(dsn, app=app, engine=False, quorum=False) as mesh:

        async def one(seed: int) -> bool:
            job_id = await mesh.pub("bench.run", {"seed": seed})
            return await mesh.wait_status(job_id, timeout=120) == "done"

        return await closed_loop(one, workflows, in_flight)


async def closed_loop(
    one: Callable[[int], Awaitable[bool]], count: int, in_flight: int
) -> dict[str, Any]:
    """``in_flight`` clients, each running ``one(n)`` (True: it succeeded) and then the next,
    until ``count`` have run: throughput, failures and latency percentiles."""
    latencies: list[float] = []
    failures = 0
    remaining = count

    async def client() -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            begun = time.perf_counter()
            if not await one(remaining):
                failures += 1
            latencies.append(time.perf_counter() - begun)

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(in_flight):
            nursery.start_soon(client)
    elapsed = time.perf_counter() - started
    return {
        "workflows_per_s": round(len(latencies) / elapsed, 1),
        "elapsed_s": round(elapsed, 3),
        "failed": failures,
        "latency_ms": latency_ms(latencies),
    }


def latency_ms(latencies: list[float]) -> dict[str, float]:
    """p50, p90 and p99 of ``latencies`` (seconds), in milliseconds."""
    ordered = sorted(x * 1000 for x in latencies)
    return {f"p{p}": round(_percentile(ordered, p), 1) for p in (50, 90, 99)}


def median_round(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The round of median throughput, with every round's throughput when there were
    several."""
    median = sorted(results, key=lambda r: r["workflows_per_s"])[len(results) // 2]
    if len(results) == 1:
        return median
    rounds = [r["workflows_per_s"] for r in results]
    return {**median, "rounds": rounds, "reported": "the median round"}
