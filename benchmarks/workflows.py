"""``mesh bench durable``: workflows written as code, end to end, and what they cost.

Each workflow is ``chain(A)``: A sequential activities (async echo), or with ``gather``
``fan_out(G)``: G activities gathered at once (a fan-out, whose cost per activity must not
grow with G). The mesh runs in
``nodes`` processes started with ``mesh run`` (a workflow worker and an activity worker for
the task queue); this process is the client: ``in_flight`` tasks each start a workflow and
wait for its result. Besides throughput and latency it reports the CPU seconds the node
processes spent in the measured rounds (``node_cpu_s``, and per activity): a workflow that
ran from the top after every step (HotMesh) would cost CPU in the square of its length; here
it is linear. With ``suspended`` it also starts that many workflows that wait for a signal,
and reports the node's resident memory per suspended workflow.
"""

from __future__ import annotations

import os
from typing import Any

import trio

from benchmarks.graphs import closed_loop, median_round
from benchmarks.scale import node_processes
from benchmarks.streams import _vacuum
from mesh import activity, workflow
from mesh.api import Mesh
from mesh.health import processes_cpu_seconds, processes_rss_bytes
from mesh.model.ids import new_guid
from mesh.pg.database import redact, run_once, server_facts
from mesh.pg.migrations import migrate
from mesh.pg.workflow_rows import waiting

QUEUE = "bench-durable"


async def step(value: int) -> int:
    """The activity: an async echo (plus one), on the loop the bench names (asyncio by
    default, or trio)."""
    return value + 1


@activity.defn(name="step")
def step_in_a_thread(value: int) -> int:
    """The same activity as a plain function (``--activity-loop thread``)."""
    return value + 1


async def chain(length: int) -> int:
    """The workflow: ``length`` sequential activities."""
    acts = workflow.proxy_activities(step)
    value = 0
    for _ in range(length):
        value = await acts.step(value)
    return value


async def fan_out(width: int) -> int:
    """The workflow: ``width`` activities at once."""
    acts = workflow.proxy_activities(step)
    values: list[int] = await workflow.gather(*(acts.step(n) for n in range(width)))
    return sum(values) - sum(range(width))


async def parked(value: int) -> Any:
    """A workflow that waits for a signal nobody sends (to measure resident memory)."""
    return await workflow.condition("never")


def bench_durable(
    dsn: str,
    *,
    workflows: int,
    activities: int,
    in_flight: int,
    nodes: int,
    rounds: int = 1,
    suspended: int = 0,
    gather: int = 0,
    activity_loop: str = "asyncio",
    workflow_checks: bool = True,
) -> dict[str, Any]:
    run_once(dsn, migrate)
    os.environ["MESH_WORKFLOW_CHECKS"] = "on" if workflow_checks else "off"  # for the nodes
    facts = run_once(dsn, server_facts)
    app = f"durable-{new_guid()[:8].lower()}"
    _vacuum(dsn)
    function = "step_in_a_thread" if activity_loop == "thread" else "step"
    config_text = (
        f"app: {app}\n"
        "streams: {poll_interval: 0.5 seconds, batch_size: 50}\n"
        f"task_queues:\n  - name: {QUEUE}\n"
        "    workflows: ['benchmarks.workflows:chain', 'benchmarks.workflows:fan_out',\n"
        "                'benchmarks.workflows:parked']\n"
        f"    activities: ['benchmarks.workflows:{function}']\n"
        f"    loop: {activity_loop}\n"
        "    concurrency: 100\n"
        "log_level: warn\n"
    )
    results: list[dict[str, Any]] = []
    memory: dict[str, Any] = {}
    width = gather or activities
    with node_processes(dsn, config_text, nodes, roles=["worker", "quorum"]) as pids:
        for _ in range(rounds):
            cpu = processes_cpu_seconds(pids)
            result = trio.run(_measure, dsn, app, workflows, width, in_flight, bool(gather))
            result["node_cpu_s"] = round(processes_cpu_seconds(pids) - cpu, 3)
            result["node_cpu_ms_per_activity"] = round(
                1000 * result["node_cpu_s"] / max(1, workflows * width), 4
            )
            results.append(result)
        if suspended:
            memory = trio.run(_memory, dsn, app, suspended, pids)
    return {
        "workflows": workflows,
        "activities": width,
        "shape": f"gather of {gather}" if gather else f"chain of {activities}",
        **median_round(results),
        **({"memory": memory} if memory else {}),
        "settings": {
            "in_flight": in_flight,
            "nodes": nodes,
            "node_roles": "worker+quorum (a workflow worker and an activity worker)",
            "batch_size": 50,
            "function": "echo" if activity_loop == "thread" else "async echo",
            "activity_loop": activity_loop,
            "workflow_checks": "on" if workflow_checks else "off",
            "cpus": os.cpu_count(),
            "database": redact(dsn),
            **facts,
        },
        "measured": "client start to result; node processes started with `mesh run`",
    }


async def _measure(
    dsn: str, app: str, workflows: int, activities: int, in_flight: int, fan: bool
) -> dict[str, Any]:
    async with Mesh.open(dsn, app=app, engine=False, quorum=False) as mesh:

        async def one(_: int) -> bool:
            if fan:
                handle = await mesh.start_workflow(fan_out, activities, task_queue=QUEUE)
                return await handle.result(timeout=3600) == activities
            handle = await mesh.start_workflow(chain, activities, task_queue=QUEUE)
            return await handle.result(timeout=600) == activities

        result = await closed_loop(one, workflows, in_flight)
    result["activities_per_s"] = round(workflows * activities / result["elapsed_s"], 1)
    return result


async def _memory(dsn: str, app: str, count: int, pids: list[int]) -> dict[str, Any]:
    """Start ``count`` workflows that wait; the nodes' resident memory before and after."""
    async with Mesh.open(dsn, app=app, engine=False, quorum=False) as mesh:
        before = processes_rss_bytes(pids)
        handles = [await mesh.start_workflow(parked, n, task_queue=QUEUE) for n in range(count)]
        with trio.fail_after(120):
            # The nodes record the conditions: the database is what there is to ask.
            while await mesh.node.db.run(waiting, app) < count:  # noqa: ASYNC110
                await trio.sleep(0.2)
        after = processes_rss_bytes(pids)
        for handle in handles:
            await handle.cancel()
    return {
        "suspended": count,
        "node_rss_before_mb": round(before / 2**20, 1),
        "node_rss_after_mb": round(after / 2**20, 1),
        "rss_per_suspended_workflow_kb": round((after - before) / count / 1024, 2),
    }
