"""Workflow code is refused the calls that would make a replay differ (the wall clock, the
process's random generator, real sleeps) and direct calls of activities; each refusal names
the durable call to use. Code outside workflows is untouched."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import anyio
import pytest
import trio

from mesh import activity, workflow
from mesh.errors import RestrictedCall
from mesh.model.workflow import guard
from mesh.model.workflow.run import WorkflowInfo, WorkflowRun

INFO = WorkflowInfo("w-1", "guarded", "q", started_at=1000.0)


@activity.defn
async def charge(amount: int) -> int:
    return amount


def plain_activity(amount: int) -> int:
    return amount


def failure_of(body: Callable[[], Any]) -> str:
    async def flow() -> Any:
        result = body()
        if hasattr(result, "__await__"):
            result = await result
        return result

    progress = WorkflowRun(flow, [], INFO).start()
    assert progress.finished and progress.failure is not None, progress
    assert progress.failure.type == "RestrictedCall", progress.failure
    return progress.failure.message


@pytest.mark.parametrize(
    ("body", "named", "fix"),
    [
        (time.time, "time.time()", "workflow.now()"),
        (time.time_ns, "time.time_ns()", "workflow.now()"),
        (lambda: time.sleep(0), "time.sleep()", "workflow.sleep"),
        (datetime.now, "datetime.now()", "workflow.now()"),
        (datetime.utcnow, "datetime.utcnow()", "workflow.now()"),
        (date.today, "date.today()", "workflow.now()"),
        (random.random, "random.random()", "workflow.random()"),
        (lambda: random.randint(1, 6), "random.", "workflow.random()"),
        (lambda: random.choice("abc"), "random.", "workflow.random()"),
        (uuid.uuid4, "uuid.uuid4()", "workflow.uuid4()"),
        (lambda: os.urandom(4), "os.urandom()", "workflow.uuid4()"),
        (lambda: asyncio.sleep(1), "asyncio.sleep()", "workflow.sleep"),
        (lambda: anyio.sleep(1), "anyio.sleep()", "workflow.sleep"),
        (lambda: trio.sleep(1), "trio.sleep()", "workflow.sleep"),  # noqa: ASYNC105
        (lambda: charge(3), "activity 'charge' called directly", "proxy_activities(charge)"),
    ],
)
def test_a_call_that_breaks_replay_is_refused_naming_the_durable_one(
    body: Callable[[], Any], named: str, fix: str
) -> None:
    message = failure_of(body)
    assert named in message and fix in message, message


def test_an_activity_proxied_by_the_workflow_is_refused_when_called_directly() -> None:
    async def flow() -> Any:
        workflow.proxy_activities(plain_activity)
        return plain_activity(2)

    progress = WorkflowRun(flow, [], INFO).start()
    assert progress.failure is not None and "plain_activity" in progress.failure.message


def test_the_durable_forms_work_and_outside_workflows_nothing_is_refused() -> None:
    async def flow() -> Any:
        return [workflow.time(), workflow.random() < 1, str(workflow.uuid4())[14]]

    progress = WorkflowRun(flow, [], INFO).start()
    assert progress.failure is None and progress.result == [1000.0, True, "4"]
    assert sys.getprofile() is None  # unset once the step is over
    # The same calls outside a workflow (and the activity itself) are untouched.
    assert time.time() > 0 and 0 <= random.random() < 1 and uuid.uuid4().version == 4
    assert asyncio.run(charge(5)) == 5


def test_a_workflow_may_catch_a_refusal_and_go_on() -> None:
    async def flow() -> Any:
        try:
            time.time()
        except RestrictedCall as refused:
            return [workflow.time(), type(refused).__name__]
        return []

    progress = WorkflowRun(flow, [], INFO).start()
    assert progress.failure is None and progress.result == [1000.0, "RestrictedCall"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (lambda: asyncio.sleep(1), "asyncio called"),
        (lambda: trio.sleep(1), "trio called"),  # noqa: ASYNC105
        (lambda: anyio.sleep(1), "anyio called"),
    ],
)
def test_without_the_guard_sleeps_are_still_refused_at_no_cost(
    body: Callable[[], Any], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off (outside testing mode): awaiting an event loop's sleep is refused all the same,
    while the wall clock is not checked."""
    monkeypatch.setattr(guard, "ENABLED", False)
    message = failure_of(body)
    assert named in message and "workflow.sleep" in message, message

    async def reads_the_clock() -> float:
        return time.time()

    progress = WorkflowRun(reads_the_clock, [], INFO).start()
    assert progress.failure is None and isinstance(progress.result, float)


def test_testing_mode_turns_the_guard_on() -> None:
    assert guard.enabled() is True  # pytest is imported: testing mode
