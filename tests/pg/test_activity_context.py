"""What an activity knows while it runs, on every loop: ``activity.info()`` (asyncio, thread
and trio activities alike), heartbeats with a ``heartbeat_timeout`` (an attempt that stops
heartbeating is cancelled and retried, and the next attempt reads its last details), and
``is_cancelled()`` for a thread that cannot be interrupted."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import trio
import trio.lowlevel

from mesh import Mesh, RetryPolicy, activity, workflow
from mesh.runtime.consumer import ConsumerSettings
from tests.helpers import wait_until

FAST = ConsumerSettings(poll_interval=0.2)
AGAIN_AT_ONCE = RetryPolicy(maximum_attempts=2, maximum_interval=0)


def _info() -> dict[str, Any]:
    info = activity.info()
    return {
        "activity": info.activity,
        "attempt": info.attempt,
        "task_queue": info.task_queue,
        "workflow_id": info.workflow_id,
        "activity_id": info.activity_id,
        "has_deadline": info.deadline is not None and info.deadline > time.time(),
    }


@activity.defn
async def on_asyncio() -> dict[str, Any]:
    await asyncio.sleep(0)
    return {**_info(), "loop": "asyncio"}


@activity.defn(name="in_a_thread")
def on_a_thread() -> dict[str, Any]:
    return {**_info(), "loop": threading.current_thread().name != "MainThread"}


@activity.defn(loop="trio")
async def on_trio() -> dict[str, Any]:
    await trio.lowlevel.checkpoint()
    return {**_info(), "loop": "trio"}


@activity.defn(heartbeat_timeout="0.5 seconds")
async def stalls_once() -> dict[str, Any]:
    """Attempt 1 reports progress, then hangs; attempt 2 picks up where it said it was."""
    if activity.info().attempt == 1:
        activity.heartbeat({"step": 1})
        await asyncio.sleep(0.1)
        activity.heartbeat({"step": 2})
        await asyncio.sleep(60)  # stops heartbeating: cancelled after 0.5 s
    return {"attempt": activity.info().attempt, "resumed_from": activity.details()}


THREAD_SAW: list[bool] = []


@activity.defn(heartbeat_timeout="0.5 seconds")
def stalls_once_in_a_thread() -> dict[str, Any]:
    """The same in a thread: it cannot be interrupted, so it watches is_cancelled()."""
    if activity.info().attempt == 1:
        activity.heartbeat("halfway")
        deadline = time.monotonic() + 30
        while not activity.is_cancelled() and time.monotonic() < deadline:
            time.sleep(0.01)  # simulated work between checks
        THREAD_SAW.append(activity.is_cancelled())
        return {"attempt": 1}
    return {"attempt": activity.info().attempt, "resumed_from": activity.details()}


async def asks_everything() -> dict[str, Any]:
    acts = workflow.proxy_activities(on_asyncio, on_a_thread, on_trio, start_to_close="30 seconds")
    return {
        "asyncio": await acts.on_asyncio(),
        "thread": await acts.in_a_thread(),
        "trio": await acts.on_trio(),
    }


async def outlives_a_stall() -> list[Any]:
    acts = workflow.proxy_activities(stalls_once, stalls_once_in_a_thread, retry=AGAIN_AT_ONCE)
    return [await acts.stalls_once(), await acts.stalls_once_in_a_thread()]


def context_mesh(dsn: str) -> Any:
    return Mesh.open(
        dsn,
        app="ctx",
        workflows={"ctx": [asks_everything, outlives_a_stall]},
        activities={
            "ctx": [on_asyncio, on_a_thread, on_trio, stalls_once, stalls_once_in_a_thread]
        },
        worker_settings=FAST,
        engine_settings=FAST,
    )


async def test_info__is_the_same_on_asyncio_in_a_thread_and_on_trio(dsn: str) -> None:
    async with context_mesh(dsn) as mesh:
        handle = await mesh.start_workflow(asks_everything, task_queue="ctx", workflow_id="asks")
        result = await handle.result(timeout=30)
    for position, (loop, name) in enumerate(
        [("asyncio", "on_asyncio"), ("thread", "in_a_thread"), ("trio", "on_trio")]
    ):
        seen = result[loop]
        assert seen.pop("loop") in (loop, True)
        assert seen == {
            "activity": name,
            "attempt": 1,
            "task_queue": "ctx-activity",
            "workflow_id": "asks",
            "activity_id": str(position),
            "has_deadline": True,
        }


async def test_heartbeat_timeout__retries_the_stalled_attempt_with_its_last_details(
    dsn: str,
) -> None:
    THREAD_SAW.clear()
    async with context_mesh(dsn) as mesh:
        handle = await mesh.start_workflow(outlives_a_stall, task_queue="ctx")
        result = await handle.result(timeout=60)
    assert result == [
        {"attempt": 2, "resumed_from": {"step": 2}},
        {"attempt": 2, "resumed_from": "halfway"},
    ]
    await wait_until(lambda: bool(THREAD_SAW), what="the abandoned thread to return")
    assert THREAD_SAW == [True], "the thread saw it was cancelled"


def test_activity_functions__outside_mesh_say_where_they_work() -> None:
    import pytest

    with pytest.raises(RuntimeError, match="only works inside an activity"):
        activity.info()
