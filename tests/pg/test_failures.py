"""Failures say what happened: ``describe()`` shows the calls a workflow waits for with
their attempt, next retry and last failure (with its traceback); ``ActivityFailed``
carries the cause (type, message, details, non-retryable flag, traceback); a child's
failure chains to the activity failure inside it; a workflow started where no node serves
its task queue is reported (a warning at start, and in ``describe()``)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from mesh import (
    ActivityFailed,
    ConsumerSettings,
    Mesh,
    MeshClient,
    NonRetryableError,
    RetryPolicy,
    WorkflowStatus,
    activity,
    workflow,
)
from mesh.errors import JobFailed
from tests.helpers import wait_until

FAST = ConsumerSettings(poll_interval=0.2)
SLOW_RETRY = RetryPolicy(maximum_attempts=3, backoff_coefficient=100.0, maximum_interval=100.0)


class OutOfStock(Exception):
    pass


@activity.defn
async def reserve(sku: str) -> str:
    raise OutOfStock(f"no {sku} left")


@activity.defn
async def charge(amount: int) -> str:
    raise NonRetryableError("card declined", code=402, details={"amount": amount})


async def keeps_retrying(sku: str) -> str:
    acts = workflow.proxy_activities(reserve, retry=SLOW_RETRY)
    return await acts[reserve](sku)


async def catches(amount: int) -> dict[str, Any]:
    acts = workflow.proxy_activities(charge)
    try:
        await acts[charge](amount)
    except ActivityFailed as failed:
        return {
            "type": failed.type_name,
            "message": failed.message,
            "code": failed.code,
            "details": failed.details,
            "non_retryable": failed.non_retryable,
            "activity": failed.activity,
            "raised_in_charge": "in charge" in failed.traceback,
        }
    return {}


async def pays(amount: int) -> str:
    acts = workflow.proxy_activities(charge)
    return await acts[charge](amount)


async def parent(amount: int) -> list[Any]:
    try:
        await workflow.execute_child(pays, amount)
    except ActivityFailed as failed:
        cause = failed.__cause__
        assert isinstance(cause, ActivityFailed)
        return [failed.type_name, failed.activity, cause.type_name, cause.activity, cause.details]
    return []


async def test_describe_shows_a_retrying_activity_with_its_last_failure(dsn: str) -> None:
    async with Mesh.open(
        dsn,
        app="fails",
        workflows={"q": [keeps_retrying]},
        activities={"q": [reserve]},
        worker_settings=FAST,
        engine_settings=FAST,
    ) as mesh:
        handle = await mesh.start_workflow(keeps_retrying, "sku-9", task_queue="q")

        async def retrying() -> bool:
            pending = (await handle.describe()).pending
            return bool(pending) and pending[0].state == "retrying"

        await wait_until(retrying, what="the activity waiting for its second attempt")
        described = await handle.describe()
        assert described.status is WorkflowStatus.RUNNING and described.name == "keeps_retrying"
        (call,) = described.pending
        assert (call.kind, call.name, call.args, call.attempt, call.maximum_attempts) == (
            "activity",
            "reserve",
            ["sku-9"],
            1,
            3,
        )
        assert call.next_attempt_at is not None and call.next_attempt_at > call.since
        failure = call.last_failure
        assert failure is not None and (failure.type, failure.message, failure.attempt) == (
            "OutOfStock",
            "no sku-9 left",
            1,
        )
        assert "raise OutOfStock" in failure.traceback, failure.traceback
        streams = {p.stream for p in described.pollers}
        assert streams == {"q", "q-activity"}, described.pollers
        assert any("'reserve'" in w and "OutOfStock" in w for w in described.warnings)
        assert await handle.terminate() is True


async def test_activity_failed_carries_the_cause_and_a_child_chains_to_it(dsn: str) -> None:
    async with Mesh.open(
        dsn,
        app="fails",
        workflows={"q": [catches, pays, parent]},
        activities={"q": [charge]},
        worker_settings=FAST,
        engine_settings=FAST,
    ) as mesh:
        assert await mesh.execute_workflow(catches, 12, task_queue="q") == {
            "type": "NonRetryableError",
            "message": "card declined",
            "code": 402,
            "details": {"amount": 12},
            "non_retryable": True,
            "activity": "charge",
            "raised_in_charge": True,
        }
        chain = await mesh.execute_workflow(parent, 5, task_queue="q")
        assert chain == ["NonRetryableError", "pays", "NonRetryableError", "charge", {"amount": 5}]
        # The failed workflow's error: type, message, its traceback and its cause.
        handle = await mesh.start_workflow(pays, 7, task_queue="q")
        with pytest.raises(JobFailed):
            await handle.result()
        described = await handle.describe()
        error = described.error
        assert described.status is WorkflowStatus.FAILED and error is not None
        assert (error["type"], error["message"], error["code"]) == (
            "NonRetryableError",
            "card declined",
            402,
        )
        assert "in pays" in error["traceback"]
        assert error["cause"]["activity"] == "charge" and "in charge" in error["cause"]["traceback"]
        assert described.pending == [] and described.warnings == []


async def test_a_task_queue_nobody_serves_is_reported(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = MeshClient(dsn, app="fails")
    try:
        with caplog.at_level(logging.WARNING, logger="mesh.pg.operations"):
            handle = await trio.to_thread.run_sync(
                lambda: client.start_workflow("orphan", 1, task_queue="nobody")
            )
            await trio.to_thread.run_sync(
                lambda: client.start_workflow("orphan", 2, task_queue="nobody")
            )
        warned = [r.getMessage() for r in caplog.records if "no_pollers" in r.getMessage()]
        assert len(warned) == 1, warned  # once per task queue while it stays unserved
        assert "'nobody'" in warned[0] and "mesh.Worker" in warned[0]
        described = await trio.to_thread.run_sync(handle.describe)
        assert described.status is WorkflowStatus.RUNNING and described.pollers == []
        assert any("no live node serves task queue 'nobody'" in w for w in described.warnings)
    finally:
        client.close()
