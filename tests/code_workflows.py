"""Workflows written as code for tests that run them in node processes (by dotted path)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mesh import activity, workflow


async def add_one(value: int) -> int:
    await asyncio.sleep(0.02)  # long enough to be in flight when a node is killed
    return value + 1


async def sequence(value: int) -> int:
    acts = workflow.proxy_activities(add_one)
    for _ in range(3):
        value = await acts.add_one(value)
    return value


async def fan_out(value: int) -> list[int]:
    acts = workflow.proxy_activities(add_one)
    return await workflow.gather(*(acts.add_one(value + n) for n in range(5)))


async def nap(value: int) -> int:
    await workflow.sleep(1)
    acts = workflow.proxy_activities(add_one)
    return await acts.add_one(value)


async def approval(value: int) -> Any:
    return await workflow.condition("approve")


async def impatient(value: int) -> str:
    answer = await workflow.condition("never", timeout=1)
    return "timed out" if answer is workflow.TIMED_OUT else "answered"


async def child(value: int) -> int:
    acts = workflow.proxy_activities(add_one)
    return await acts.add_one(value * 10)


async def parent(value: int) -> int:
    return await workflow.execute_child(child, value) + 1


async def loop(count: int) -> int:
    if count < 3:
        acts = workflow.proxy_activities(add_one)
        await acts.add_one(count)
        workflow.continue_as_new(count + 1)
    return count


EXPECTED = {
    "sequence": lambda v: v + 3,
    "fan_out": lambda v: [v + n + 1 for n in range(5)],
    "nap": lambda v: v + 1,
    "approval": lambda v: {"ok": v},
    "impatient": lambda v: "timed out",
    "parent": lambda v: v * 10 + 2,
    "loop": lambda v: max(v, 3),
}
"""What each shape returns for its argument (the approvals are signalled ``{"ok": v}``)."""


async def signalled(value: int) -> Any:
    """An activity, then a condition whose signal may have come long before, or comes later."""
    acts = workflow.proxy_activities(add_one)
    first = await acts.add_one(value)
    answer = await workflow.condition("go", timeout=30)
    if answer is workflow.TIMED_OUT:
        return "timed out"
    return {"first": first, "signal": answer}


@activity.defn(heartbeat_timeout="60 seconds")
def counts_on(target: int) -> dict[str, Any]:
    """Heartbeats its progress; on its first attempt it never finishes (the test kills its
    node), on a later one it reports what the earlier attempt last heartbeated."""
    info = activity.info()
    if info.attempt > 1:
        return {"attempt": info.attempt, "resumed_from": activity.details()}
    for step in range(target):
        activity.heartbeat({"done": step + 1})
    while not activity.is_cancelled():
        time.sleep(0.05)
    return {"attempt": info.attempt, "resumed_from": None}


async def counting(target: int) -> Any:
    acts = workflow.proxy_activities(counts_on)
    return await acts[counts_on](target)


async def ticked(n: int) -> int:
    """What a schedule starts in the tests."""
    return n
