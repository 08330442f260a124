"""Names given by ``@workflow.defn`` / ``@activity.defn`` are the names that run, from every
client; ``execute_workflow`` starts and waits; a status is a :class:`WorkflowStatus`; a
task queue that cannot register its functions is refused before its node starts."""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio

from mesh import (
    Client,
    ConsumerSettings,
    Mesh,
    MeshClient,
    Worker,
    WorkflowStatus,
    activity,
    workflow,
)
from mesh.errors import ConfigError
from tests.unit import twin_a, twin_b

FAST = ConsumerSettings(poll_interval=0.2)


@activity.defn(name="shout.v2")
async def shout(name: str) -> str:
    return name.upper()


@workflow.defn(name="greet.v2")
async def greet(name: str) -> str:
    acts = workflow.proxy_activities(shout)
    return await acts[shout](name)


async def test_named_definitions_run_under_their_names_from_every_client(dsn: str) -> None:
    async with Mesh.open(
        dsn,
        app="named",
        workflows={"q": [greet]},
        activities={"q": [shout]},
        worker_settings=FAST,
        engine_settings=FAST,
    ) as mesh:
        assert await mesh.execute_workflow(greet, "ada", task_queue="q") == "ADA"
        handle = await mesh.start_workflow("greet.v2", "bob", task_queue="q")
        assert await handle.result() == "BOB"
        status = await handle.status()
        assert status is WorkflowStatus.DONE
        record = await mesh.get_job(handle.workflow_id)
        assert record.topic == "greet.v2", record
        sync = MeshClient(dsn, app="named")
        aclient = await Client.connect(dsn, app="named")
        try:
            result = await trio.to_thread.run_sync(
                lambda: sync.execute_workflow(greet, "cy", task_queue="q")
            )
            assert result == "CY"
            assert await aclient.execute_workflow(greet, "di", task_queue="q") == "DI"
            assert await aclient.get_status(handle.workflow_id) is WorkflowStatus.DONE
            # describe() is one implementation: the same value through the three.
            via_mesh = await mesh.describe(handle.workflow_id)
            via_sync = await trio.to_thread.run_sync(sync.describe, handle.workflow_id)
            via_async = await aclient.describe(handle.workflow_id)
            # (a node may refresh its presence between two reads: compare pollers by node)
            views = [
                (replace(d, pollers=[]), sorted((p.stream, p.node) for p in d.pollers))
                for d in (via_mesh, via_sync, via_async)
            ]
            assert views[0] == views[1] == views[2]
            assert (via_mesh.status, via_mesh.result, via_mesh.name) == ("done", "BOB", "greet.v2")
        finally:
            sync.close()
            await aclient.close()


async def test_colliding_definitions_are_refused_before_any_node_starts(dsn: str) -> None:
    sync = MeshClient(dsn, app="named")
    try:
        with pytest.raises(ConfigError, match="two workflow functions are named 'same'"):
            Worker(sync, task_queue="q", workflows=[twin_a.same, twin_b.same])
        with pytest.raises(ConfigError, match="lambda"):
            Worker(sync, task_queue="q", activities=[lambda x: x])
    finally:
        sync.close()
    with pytest.raises(ConfigError, match="defined inside"):

        async def inner() -> None: ...

        async with Mesh.open(dsn, app="named", workflows={"q": [inner]}):
            raise AssertionError("the node must not start")
