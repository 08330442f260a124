"""mesh.Worker runs workflows and activities inside the application's own process: under
asyncio (the node on trio in a thread, the asyncio activities on the application's loop)
and under trio (in the caller's run)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from mesh import Client, Worker, workflow

LOOPS: list[int] = []


async def where_am_i(value: int) -> int:
    """An asyncio activity: it notes the loop it runs on."""
    LOOPS.append(id(asyncio.get_running_loop()))
    await asyncio.sleep(0)
    return value * 10


def in_a_thread(value: int) -> int:
    return value + 1


async def both(value: int) -> list[int]:
    acts = workflow.proxy_activities(where_am_i, in_a_thread)
    return [await acts.where_am_i(value), await acts.in_a_thread(value)]


def test_worker__in_an_asyncio_app_runs_asyncio_activities_on_the_apps_loop(dsn: str) -> None:
    LOOPS.clear()

    async def app() -> dict[str, Any]:
        async with await Client.connect(dsn, app="inapp") as client:
            worker = Worker(
                client, task_queue="q", workflows=[both], activities=[where_am_i, in_a_thread]
            )
            async with worker:
                results = [
                    await (await client.start_workflow(both, n, task_queue="q")).result(timeout=30)
                    for n in range(3)
                ]
            return {"results": results, "loop": id(asyncio.get_running_loop())}

    outcome = asyncio.run(app())
    assert outcome["results"] == [[0, 1], [10, 2], [20, 3]]
    assert [outcome["loop"]] * 3 == LOOPS, "the activities ran on the application's loop"
    assert not [t for t in threading.enumerate() if t.name.startswith("mesh-worker")]


async def test_worker__in_a_trio_app_runs_in_the_same_run(dsn: str) -> None:
    LOOPS.clear()
    async with (
        await Client.connect(dsn, app="inapp") as client,
        Worker(
            client, task_queue="q", workflows=[both], activities=[where_am_i, in_a_thread]
        ) as worker,
    ):
        handle = await client.start_workflow(both, 4, task_queue="q")
        result = await handle.result(timeout=30)
        assert worker.node is not None and worker.node.actors, "a node with its actors"
    assert result == [40, 5]
    assert len(LOOPS) == 1, "the asyncio activity ran on the node's own asyncio loop"
