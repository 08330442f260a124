"""Workflows written as code on real Postgres, through Mesh.open: activities (async and in
threads), sleep, gather, retries spent and caught, replay after eviction, state as rows."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import psycopg
import pytest

from mesh import Mesh
from mesh.errors import ActivityFailed, DuplicateJob, JobFailed, WorkflowCancelled
from mesh.model.retry import RetryPolicy
from mesh.model.workflow import api as workflow
from mesh.runtime.consumer import ConsumerSettings

FAST = ConsumerSettings(poll_interval=0.2)
CALLS: Counter[tuple[str, Any]] = Counter()


async def check_inventory(item_id: str) -> int:
    CALLS["check_inventory", item_id] += 1
    return 5 if item_id.startswith("in-stock") else 0


async def reserve_item(item_id: str, quantity: int) -> str:
    CALLS["reserve_item", item_id] += 1
    await asyncio.sleep(0)  # an async activity: it runs on the node's asyncio loop
    return f"reserved {quantity} of {item_id}"


def notify_backorder(item_id: str) -> None:  # a plain function: runs in a worker thread
    CALLS["notify_backorder", item_id] += 1


async def order_workflow(item_id: str, qty: int) -> str:
    acts = workflow.proxy_activities(
        check_inventory, reserve_item, notify_backorder, retry=RetryPolicy(maximum_attempts=5)
    )
    available = await acts.check_inventory(item_id)
    if available >= qty:
        return await acts.reserve_item(item_id, qty)
    await acts.notify_backorder(item_id)
    return "backordered"


async def always_fails(item_id: str) -> None:
    CALLS["always_fails", item_id] += 1
    raise LookupError(f"{item_id} is nowhere")


async def careful(item_id: str) -> dict[str, Any]:
    acts = workflow.proxy_activities(
        always_fails, check_inventory, retry=RetryPolicy(maximum_attempts=2, maximum_interval=0)
    )
    try:
        await acts.always_fails(item_id)
    except ActivityFailed as error:
        await workflow.sleep(0.2)
        counts = await workflow.gather(
            acts.check_inventory("in-stock-a"), acts.check_inventory("none-b")
        )
        return {"type": error.type_name, "message": error.message, "counts": counts}
    return {"unexpected": True}


async def unguarded(item_id: str) -> None:
    acts = workflow.proxy_activities(always_fails, retry=RetryPolicy(maximum_attempts=1))
    await acts.always_fails(item_id)


QUEUES = {"orders": [order_workflow, careful, unguarded]}
ACTIVITIES = {"orders": [check_inventory, reserve_item, notify_backorder, always_fails]}


def code_mesh(dsn: str, workflows: dict[str, list[Any]]) -> Any:
    """A Mesh whose node runs ``workflows`` and the test's activities on task queue orders."""
    return Mesh.open(
        dsn,
        app="code",
        workflows=workflows,
        activities=ACTIVITIES,
        worker_settings=FAST,
        engine_settings=FAST,
    )


async def test_order_workflow__as_code_with_async_and_thread_activities(dsn: str) -> None:
    CALLS.clear()
    async with code_mesh(dsn, QUEUES) as mesh:
        reserved = await mesh.start_workflow(
            order_workflow, "in-stock-1", 2, task_queue="orders", workflow_id="order-1"
        )
        backordered = await mesh.start_workflow(
            "order_workflow", "gone-2", 1, task_queue="orders", workflow_id="order-2"
        )
        assert await reserved.result(timeout=30) == "reserved 2 of in-stock-1"
        assert await backordered.result(timeout=30) == "backordered"
        with pytest.raises(DuplicateJob, match="order-1"):
            await mesh.start_workflow(
                order_workflow, "x", 1, task_queue="orders", workflow_id="order-1"
            )
        assert await reserved.status() == "done"
    assert (
        Counter(
            {
                ("check_inventory", "in-stock-1"): 1,
                ("reserve_item", "in-stock-1"): 1,
                ("check_inventory", "gone-2"): 1,
                ("notify_backorder", "gone-2"): 1,
            }
        )
        == CALLS
    )
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT s.position, s.kind, s.name, s.args, s.result, s.done FROM mesh.workflow_steps s "
            "JOIN mesh.jobs j ON j.id = s.job_id WHERE j.key = 'order-1' ORDER BY s.position"
        ).fetchall()
    assert rows == [
        (0, "activity", "check_inventory", ["in-stock-1"], 5, True),
        (1, "activity", "reserve_item", ["in-stock-1", 2], "reserved 2 of in-stock-1", True),
    ]


async def test_retries_spent__caught_in_the_workflow_then_sleep_and_gather(dsn: str) -> None:
    CALLS.clear()
    async with code_mesh(dsn, QUEUES) as mesh:
        handle = await mesh.start_workflow(careful, "w1", task_queue="orders")
        result = await handle.result(timeout=30)
        failing = await mesh.start_workflow(unguarded, "w2", task_queue="orders")
        with pytest.raises(JobFailed) as failed:
            await failing.result(timeout=30)
    assert result == {"type": "LookupError", "message": "w1 is nowhere", "counts": [5, 0]}
    assert CALLS["always_fails", "w1"] == 2  # both attempts, then the workflow heard it
    error = failed.value.job.error
    assert error is not None and error["type"] == "LookupError" and "w2" in error["message"]


async def gated(item_id: str) -> str:
    acts = workflow.proxy_activities(check_inventory, reserve_item)
    await acts.check_inventory(item_id)
    await workflow.condition("go")
    return await acts.reserve_item(item_id, 1)


async def test_eviction__workflows_replay_from_their_history_and_run_activities_once(
    dsn: str,
) -> None:
    """One resident workflow for twenty waiting ones: nineteen are evicted, and each resumes
    by replaying its rows, running no activity twice."""
    import actors.workflows
    from mesh.pg.workflow_rows import waiting
    from tests.helpers import wait_until

    CALLS.clear()
    original = actors.workflows.RESIDENT_WORKFLOWS
    actors.workflows.RESIDENT_WORKFLOWS = 1
    try:
        async with code_mesh(dsn, {"orders": [gated]}) as mesh:
            handles = [
                await mesh.start_workflow(gated, f"in-stock-{n}", task_queue="orders")
                for n in range(20)
            ]

            async def all_waiting() -> bool:
                return await mesh.node.db.run(waiting, "code") == 20

            await wait_until(all_waiting, what="twenty workflows at their condition")
            (runner,) = [
                a for a in mesh.node.actors if isinstance(a, actors.workflows.WorkflowWorkerActor)
            ]
            evicted = runner.runner.runs.resident.evicted
            for handle in handles:
                await handle.signal("go")
            results = [await h.result(timeout=60) for h in handles]
    finally:
        actors.workflows.RESIDENT_WORKFLOWS = original
    assert evicted >= 19, "all but one of the waiting runs were evicted"
    assert results == [f"reserved 1 of in-stock-{n}" for n in range(20)]
    assert set(CALLS.values()) == {1} and len(CALLS) == 40


async def approval(order: str) -> Any:
    first = await workflow.condition("approve")
    late = await workflow.condition("never", timeout=0.3)
    return {"first": first, "late": "timed out" if late is workflow.TIMED_OUT else late}


async def child_double(value: int) -> int:
    acts = workflow.proxy_activities(check_inventory)
    await acts.check_inventory(f"child-{value}")
    if value < 0:
        raise ValueError("negative")
    return value * 2


async def parent(value: int) -> dict[str, Any]:
    doubled = await workflow.execute_child(child_double, value)
    started = await workflow.start_child(child_double, value + 1, workflow_id=f"free-{value}")
    try:
        await workflow.execute_child(child_double, -1)
    except ActivityFailed as error:
        failed = f"{error.type_name}: {error.message}"
    await workflow.signal(f"waiter-{value}", "approve", {"from": workflow.info().workflow_id})
    return {"doubled": doubled, "started": started, "failed": failed}


async def counter(count: int) -> int:
    if count < 3:
        await workflow.sleep(0)
        workflow.continue_as_new(count + 1)
    return count


async def stoppable(item: str) -> str:
    acts = workflow.proxy_activities(check_inventory)
    try:
        await workflow.condition("go")
    except WorkflowCancelled:
        try:
            await acts.check_inventory("cleanup")
        except WorkflowCancelled:
            raise
    return "went"


SIGNALLING = {"orders": [approval, child_double, parent, counter, stoppable]}


async def test_conditions_children_signals_continue_and_cancel(dsn: str) -> None:
    from mesh.errors import WorkflowCancelled  # noqa: F401 (the workflow above uses it)

    CALLS.clear()
    async with code_mesh(dsn, SIGNALLING) as mesh:
        early = await mesh.start_workflow(approval, "a", task_queue="orders", workflow_id="early")
        assert await early.signal("approve", {"ok": 1})  # may arrive before the condition
        assert await early.result(timeout=30) == {"first": {"ok": 1}, "late": "timed out"}
        waiter = await mesh.start_workflow(
            approval, "b", task_queue="orders", workflow_id="waiter-7"
        )
        family = await mesh.start_workflow(parent, 7, task_queue="orders", workflow_id="family")
        assert await family.result(timeout=30) == {
            "doubled": 14,
            "started": "free-7",
            "failed": "ValueError: negative",
        }
        assert await waiter.result(timeout=30) == {"first": {"from": "family"}, "late": "timed out"}
        assert await mesh.get_handle("free-7").result(timeout=30) == 16
        looped = await mesh.start_workflow(counter, 0, task_queue="orders", workflow_id="loop")
        assert await looped.result(timeout=30) == 3
        stopped = await mesh.start_workflow(stoppable, "s", task_queue="orders")
        await wait_for_steps(dsn, stopped.workflow_id, 1)
        assert await stopped.cancel()
        with pytest.raises(JobFailed) as cancelled:
            await stopped.result(timeout=30)
        assert cancelled.value.job.status == "interrupted"
        assert not await stopped.signal("go")  # not running any more
    assert CALLS["check_inventory", "child-7"] == 1 and CALLS["check_inventory", "child-8"] == 1
    assert ("check_inventory", "cleanup") not in CALLS  # cancelled at that call too


async def wait_for_steps(dsn: str, key: str, count: int) -> None:
    from tests.helpers import wait_until

    def recorded() -> bool:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM mesh.workflow_steps s JOIN mesh.jobs j ON j.id = s.job_id "
                "WHERE j.key = %s",
                (key,),
            ).fetchone()
        return row is not None and row[0] >= count

    await wait_until(recorded, what=f"{count} recorded calls of {key}")
